"""Reading text files and turning text into word tokens (and back).

Two tokenizer schemes, picked by name:

- ``"seed"`` is exactly what the write-up does: one paragraph per line, lower-cased, split on
  single spaces. ``"Hello  world"`` gives ``["hello", "", "world"]`` (two spaces make an empty
  word) and ``"end."`` stays one word, so ``"end."`` and ``"end"`` are different words.
- ``"words"`` lower-cases and splits off punctuation, so ``"end."`` becomes ``["end", "."]``.
  Words keep internal apostrophes and hyphens (``don't``, ``sunday-morning``), so the model sees
  fewer, more frequent words.

Both schemes put the token ``PARAGRAPH`` between paragraphs in the flat token stream, so a
model can learn where paragraphs end.
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
_BLANK_LINE_RE = re.compile(r"\n[^\S\n]*\n")  # a line holding only spaces counts as blank

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


def _split_paragraphs(text: str) -> list[str]:
    """Split text into paragraphs for the "words" scheme.

    Paragraphs are separated by blank lines (single line breaks inside a paragraph are just
    spaces, as in hard-wrapped books). A text with no blank line at all is taken to have one
    paragraph per line, like the write-up's essay.
    """
    if _BLANK_LINE_RE.search(text):
        return _BLANK_LINE_RE.split(text)
    return text.split("\n")


def _words_tokens(paragraph: str) -> list[str]:
    # NFC joins "e" + combining accent into one "é", so accented words are not split apart.
    return _TOKEN_RE.findall(unicodedata.normalize("NFC", paragraph).lower())


def tokenize_paragraphs(text: str, scheme: str) -> list[list[str]]:
    """Split text into paragraphs of tokens, one list per non-empty paragraph."""
    _check_scheme(scheme)
    if scheme == "seed":
        # The write-up's code: split("\n"), then split(" ") -- single spaces, exactly.
        return [p.lower().split(" ") for p in text.split("\n") if p.strip()]
    paragraphs = (_words_tokens(p) for p in _split_paragraphs(text))
    return [tokens for tokens in paragraphs if tokens]


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
