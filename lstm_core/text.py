"""Reading text files and turning text into word tokens (and back).

Two tokenizer schemes, picked by name:

- ``"seed"`` is the write-up's: lower-cased and split on spaces, so ``"end."`` stays one word
  (``"end."`` and ``"end"`` are different words). Unlike the write-up's ``split(" ")``, a run
  of spaces is one break: ``"Hello  world "`` gives ``["hello", "world"]``, never an empty word.
- ``"words"`` lower-cases and splits off punctuation, so ``"end."`` becomes ``["end", "."]``.
  Words keep internal apostrophes and hyphens (``don't``, ``sunday-morning``), so the model sees
  fewer, more frequent words.

Both schemes find paragraphs the same way (``split_paragraphs``): one per line, as in the
write-up's essay, unless the text is hard-wrapped with blank lines between its paragraphs; then
the lines between two blank lines are joined. ``layout_notice`` says in one line what was done.
Both put the token ``PARAGRAPH`` between paragraphs in the flat token stream, so a model can
learn where paragraphs end.
"""

import re
import unicodedata
from collections.abc import Iterable
from pathlib import Path

SCHEMES = ("seed", "words")
PARAGRAPH = "\n"  # the paragraph-break token; no word token ever contains a newline

# A word: letters/digits (``\w`` is Unicode-aware, so "café" is one word), numbers such as 3.5
# or 1,000, and internal apostrophes or hyphens (don't, o'clock, sunday-morning).
# A dash: em dash, en dash, or two or more hyphens. Anything else that is not a space is one
# punctuation token per character.
_TOKEN_RE = re.compile(r"\d+(?:[.,]\d+)+|\w+(?:['’-]\w+)*|--+|[—–]|[^\w\s]")

# Spacing rules used by detokenize for the "words" scheme.
_NO_SPACE_BEFORE = set(",.;:!?)]}%") | {"”", "’", "»"}
# A straight quote mark both opens and closes, so we count: odd ones open, even ones close.
# (A plural possessive such as "dogs' bones" fools the count for ' -- a known rough edge.)
_STRAIGHT_QUOTES = {'"', "'"}
_NO_SPACE_AFTER = set("([{") | {"“", "‘", "«"}
_DASHES = {"—", "–"}


def decode_text(data: bytes, name: str = "text") -> str:
    """Decode UTF-8 bytes into text with "\\n" line endings, refusing what is not usable text.

    ``name`` is only used in error messages (the app passes the uploaded file's name).
    Raises ValueError for binary data, invalid UTF-8, or text that is empty or only whitespace.
    """
    nul = data.find(b"\x00")
    if nul >= 0:
        # NUL bytes never occur in UTF-8 text; they mean a binary file (or UTF-16 text).
        raise ValueError(
            f"{name} looks like a binary file (it contains a NUL byte at offset {nul}); "
            "please give a plain UTF-8 text file"
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(
            f"{name} is not valid UTF-8 (bad byte at offset {err.start}); "
            "save it as UTF-8 text and try again"
        ) from None
    text = text.removeprefix("\ufeff")  # a byte order mark some editors put at the start
    # Windows ("\r\n") and old Mac ("\r") line endings would otherwise end up inside words.
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not text.strip():
        raise ValueError(f"{name} is empty (or only whitespace); there is nothing to learn from")
    return text


MAX_TEXT_BYTES = 20_000_000  # 20 MB, about 3.5 million words: far more than one LSTM here needs


def read_text(path: str | Path, max_bytes: int = MAX_TEXT_BYTES) -> str:
    """Read a UTF-8 text file of at most ``max_bytes``; see ``decode_text`` for the checks.

    Only that many bytes are ever read, so /dev/zero or a huge file cannot fill the memory.
    """
    with open(path, "rb") as f:
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise ValueError(f"{path} is larger than the {max_bytes:,}-byte limit for a training text")
    return decode_text(data, name=str(path))


def _check_scheme(scheme: str) -> None:
    if scheme not in SCHEMES:
        raise ValueError(f"unknown tokenizer scheme {scheme!r}; choose one of {SCHEMES}")


# A hard-wrapped text breaks its lines at a fixed width (Project Gutenberg at about 70
# characters, mail and code at 72-80); a paragraph written on one line is nearly always longer
# than 100 characters. So: a text is hard-wrapped when three lines in four are this short.
WRAP_WIDTH = 100
WRAPPED_SHARE = 0.75
# A run of lines with no blank line is one paragraph only up to this length: a long book
# paragraph (400 words) fills about 40 lines of 60 characters. A longer run (say a whole body
# after one blank line under the title) has paragraphs that blank lines do not mark.
MAX_PARAGRAPH_LINES = 40


def _blocks(text: str) -> list[list[str]]:
    """The non-blank lines (stripped), grouped into the runs that blank lines separate."""
    blocks: list[list[str]] = [[]]
    for line in text.split("\n"):
        line = line.strip()  # a line holding only spaces counts as blank
        if line:
            blocks[-1].append(line)
        elif blocks[-1]:
            blocks.append([])
    return [block for block in blocks if block]


def _join_blocks(blocks: list[list[str]]) -> tuple[list[str], int]:
    """Each run of lines joined into one paragraph, except runs that blank lines do not mark
    as paragraphs (the only run, or one over MAX_PARAGRAPH_LINES): their lines stay one
    paragraph each. Returns the paragraphs and how many lines were left unjoined that way."""
    paragraphs, unmarked = [], 0
    for block in blocks:
        if len(blocks) == 1 or len(block) > MAX_PARAGRAPH_LINES:
            paragraphs.extend(block)
            unmarked += len(block)
        else:
            paragraphs.append(" ".join(block))
    return paragraphs, unmarked


def _layout(text: str) -> tuple[list[str], str | None]:
    """The text's paragraphs (each one string) and a one-line notice of how they were found.

    Joining a hard-wrapped text's lines is right for users: otherwise every line is a
    paragraph, the seed recipe's prefixes stop every dozen words and a model learns a paragraph
    break after each line. But lines are joined only where blank lines say where paragraphs
    end; guessing ends from line lengths would merge verse, lists or dialogue, so wrapped lines
    without blank lines between paragraphs stay one paragraph each, with a warning.
    """
    blocks = _blocks(text)
    lines = [line for block in blocks for line in block]
    short = sum(len(line) <= WRAP_WIDTH for line in lines)
    if len(lines) < 2 or short < WRAPPED_SHARE * len(lines):
        return lines, None  # one paragraph per line: the write-up's layout
    paragraphs, unmarked = _join_blocks(blocks)
    found = f"{short:,} of its {len(lines):,} lines are at most {WRAP_WIDTH} characters"
    if len(paragraphs) == len(lines):  # nothing joined
        if not unmarked:
            return lines, None  # a blank line after every line
        return lines, (f"this text looks hard-wrapped ({found}) but blank lines do not separate "
                       "its paragraphs, so each line is read as a paragraph; put a blank line "
                       "between paragraphs to have their lines joined")
    notice = (f"hard-wrapped text ({found}): its lines are joined into "
              f"{len(paragraphs) - unmarked:,} paragraphs at the blank lines")
    if unmarked:
        notice += (f", except {unmarked:,} lines with no blank line among them for over "
                   f"{MAX_PARAGRAPH_LINES} lines, each read as a paragraph")
    return paragraphs, notice


def split_paragraphs(text: str) -> list[str]:
    """The text's paragraphs, each one string (the lines of a hard-wrapped one joined)."""
    return _layout(text)[0]


def layout_notice(text: str) -> str | None:
    """One line saying how a hard-wrapped text's paragraphs were read; None for any other text.

    The same for both schemes, since both find paragraphs with ``split_paragraphs``.
    """
    return _layout(text)[1]


def _words_tokens(paragraph: str) -> list[str]:
    # NFC joins "e" + combining accent into one "é", so accented words are not split apart.
    return _TOKEN_RE.findall(unicodedata.normalize("NFC", paragraph).lower())


def tokenize_paragraphs(text: str, scheme: str) -> list[list[str]]:
    """Split text into paragraphs of tokens, one list per non-empty paragraph; no token is
    empty or holds a space."""
    _check_scheme(scheme)
    if scheme == "seed":
        # The write-up's split(" ") made an empty word of every extra space; split() takes
        # any run of spaces (tabs, no-break spaces) as one break. A text with single spaces,
        # such as the write-up's essay, gives the same tokens as the write-up.
        return [p.lower().split() for p in split_paragraphs(text)]
    tokens = (_words_tokens(p) for p in split_paragraphs(text))
    return [paragraph for paragraph in tokens if paragraph]


def tokenize(text: str, scheme: str) -> list[str]:
    """Turn text into one flat token list, with ``PARAGRAPH`` between paragraphs."""
    tokens: list[str] = []
    for i, paragraph in enumerate(tokenize_paragraphs(text, scheme)):
        if i > 0:
            tokens.append(PARAGRAPH)
        tokens.extend(paragraph)
    return tokens


def _split_on_paragraphs(tokens: Iterable[str]) -> list[list[str]]:
    paragraphs: list[list[str]] = [[]]
    for token in tokens:
        if token == PARAGRAPH:
            paragraphs.append([])
        else:
            paragraphs[-1].append(token)
    return paragraphs


def _is_dash(token: str) -> bool:
    return token in _DASHES or (len(token) >= 2 and set(token) == {"-"})


def _join_words(tokens: list[str]) -> str:
    """Join "words" tokens with spaces where a person would put them."""
    out: list[str] = []
    quote_open = dict.fromkeys(_STRAIGHT_QUOTES, False)  # straight quotes open/close in turn
    no_space_next = True  # nothing goes before the first token
    for token in tokens:
        space = not no_space_next
        no_space_next = False
        if token in _STRAIGHT_QUOTES:
            quote_open[token] = not quote_open[token]
            if quote_open[token]:
                no_space_next = True  # opening quote: hug the next word
            else:
                space = False  # closing quote: hug the previous word
        elif token in _NO_SPACE_BEFORE:
            space = False
        elif token in _NO_SPACE_AFTER:
            no_space_next = True
        elif _is_dash(token):
            space, no_space_next = False, True  # dashes are written tight: "word—word"
        out.append(" " + token if space and out else token)
    return "".join(out)


def detokenize(tokens: Iterable[str], scheme: str) -> str:
    """Turn tokens back into readable text (lower-case: capitals are not restored).

    ``PARAGRAPH`` tokens become a line break ("seed", like the input it came from) or a blank
    line ("words").
    """
    _check_scheme(scheme)
    paragraphs = _split_on_paragraphs(tokens)
    if scheme == "seed":
        return "\n".join(" ".join(p) for p in paragraphs)
    return "\n\n".join(_join_words(p) for p in paragraphs)
