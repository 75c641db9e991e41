"""The vocabulary: a fixed, saved mapping between words and integer ids.

The write-up numbers words in ``set()`` order, which changes from one Python process to the
next (string hashing is randomised), and never saves the mapping, so a model trained in one
process speaks a different language in the next. Here ids depend only on the text: most
frequent words first, ties broken alphabetically, and the vocabulary is saved with the model.

The write-up also pads with id 0, which is a real word as well. Here ids 0 and 1 are reserved
for padding and unknown words; real words start at id 2. Strings only ever map to real words,
so a text that happens to contain the string "<pad>" gets an ordinary id for it.
"""

import json
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from lstm_core.text import SCHEMES

PAD = "<pad>"  # shown for PAD_ID when decoding; fills the left of short prefixes
UNK = "<unk>"  # shown for UNK_ID; stands in for words the model never saw
PAD_ID = 0
UNK_ID = 1
_FIRST_WORD_ID = 2
_FORMAT = 1  # bump when to_dict() changes shape
_MAX_LISTED = 10  # unknown words named in an error message


class UnknownWordsError(ValueError):
    """Some tokens are not in the vocabulary; ``.words`` lists them in order of appearance."""

    def __init__(self, words: list[str], hint: str = "use unknown='unk' to map unknown words to <unk>"):
        self.words = words
        shown = ", ".join(repr(w) for w in words[:_MAX_LISTED])
        if len(words) > _MAX_LISTED:
            shown += f" and {len(words) - _MAX_LISTED} more"
        noun = "word is" if len(words) == 1 else "words are"
        super().__init__(
            f"{len(words)} {noun} not in the vocabulary: {shown} ({hint})"
        )


class Vocabulary:
    """Maps words to ids and back. Build one with ``Vocabulary.build(tokens)``."""

    def __init__(self, words: list[str], counts: list[int], scheme: str = "words"):
        """Use ``build`` or ``from_dict`` instead; word ``words[i]`` gets id ``i + 2``."""
        self.scheme = scheme
        self.words = list(words)
        self.counts = list(counts)
        self._ids = {w: i + _FIRST_WORD_ID for i, w in enumerate(self.words)}

    @classmethod
    def build(cls, tokens: Iterable[str], min_count: int = 1, scheme: str = "words",
              max_size: int = 0):
        """Count the tokens and keep those seen at least ``min_count`` times.

        ``max_size`` > 0 keeps only that many words, the most frequent first (ties broken
        alphabetically); the rest become <unk>. The embedding and output layers grow with the
        vocabulary, so a text of unique words would otherwise make a huge model.
        ``scheme`` is the tokenizer scheme the tokens came from; it is saved so that text
        can be tokenized the same way later.
        """
        if isinstance(tokens, str):
            raise ValueError("build() needs a list of tokens, not a string; tokenize it first")
        if not isinstance(min_count, int) or min_count < 1:
            raise ValueError(f"min_count must be a whole number >= 1, got {min_count!r}")
        if not isinstance(max_size, int) or max_size < 0:
            raise ValueError(f"max_size must be a whole number >= 0 (0 = no cap), got {max_size!r}")
        if scheme not in SCHEMES:
            raise ValueError(f"unknown tokenizer scheme {scheme!r}; choose one of {SCHEMES}")
        counts = Counter(tokens)
        # Sorting by (-count, word) gives the same order in every process, unlike set().
        kept = [w for w, c in counts.items() if c >= min_count]
        kept.sort(key=lambda w: (-counts[w], w))
        if max_size:
            kept = kept[:max_size]
        return cls(kept, [counts[w] for w in kept], scheme)

    def __len__(self) -> int:
        return len(self.words) + _FIRST_WORD_ID

    def __contains__(self, word: object) -> bool:
        return word in self._ids

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Vocabulary):
            return NotImplemented
        return (self.scheme, self.words, self.counts) == (other.scheme, other.words, other.counts)

    def __repr__(self) -> str:
        return f"Vocabulary({len(self.words)} words + 2 reserved, scheme={self.scheme!r})"

    def token_to_id(self, word: str) -> int:
        """The id of a real word; raises UnknownWordsError for words not in the vocabulary."""
        if word not in self._ids:
            raise UnknownWordsError([word])
        return self._ids[word]

    def id_to_token(self, i: int) -> str:
        """The word for an id (``PAD`` and ``UNK`` for the reserved ids 0 and 1)."""
        i = int(i)  # also accepts 0-d tensors
        if not 0 <= i < len(self):
            raise ValueError(f"id {i} is out of range for a vocabulary of size {len(self)}")
        if i == PAD_ID:
            return PAD
        if i == UNK_ID:
            return UNK
        return self.words[i - _FIRST_WORD_ID]

    def unknown_words(self, tokens: Iterable[str]) -> list[str]:
        """The distinct tokens not in the vocabulary, in order of first appearance."""
        return list(dict.fromkeys(t for t in tokens if t not in self._ids))

    def encode(self, tokens: Iterable[str], unknown: str = "error") -> list[int]:
        """Turn tokens into ids.

        ``unknown="error"`` raises UnknownWordsError naming every unknown token;
        ``unknown="unk"`` maps them to UNK_ID instead.
        """
        if isinstance(tokens, str):
            raise ValueError("encode() needs a list of tokens, not a string; tokenize it first")
        if unknown not in ("error", "unk"):
            raise ValueError(f"unknown must be 'error' or 'unk', got {unknown!r}")
        tokens = list(tokens)
        if unknown == "error":
            missing = self.unknown_words(tokens)
            if missing:
                raise UnknownWordsError(missing)
        return [self._ids.get(t, UNK_ID) for t in tokens]

    def decode(self, ids: Iterable[int]) -> list[str]:
        """Turn ids (a list or a 1-D tensor) back into tokens."""
        return [self.id_to_token(i) for i in ids]

    def to_dict(self) -> dict:
        """The vocabulary as plain builtins, safe for JSON and ``torch.load(weights_only=True)``."""
        return {
            "format": _FORMAT,
            "scheme": self.scheme,
            "words": list(self.words),
            "counts": list(self.counts),
        }

    @classmethod
    def from_dict(cls, d: dict) -> "Vocabulary":
        """Rebuild a vocabulary from ``to_dict()`` output, checking that it is well formed."""
        if not isinstance(d, dict):
            raise ValueError(f"a vocabulary must be a dict, got {type(d).__name__}")
        if d.get("format") != _FORMAT:
            raise ValueError(f"unsupported vocabulary format {d.get('format')!r}; expected 1")
        if d.get("scheme") not in SCHEMES:
            raise ValueError(f"vocabulary has unknown scheme {d.get('scheme')!r}")
        words, counts = d.get("words"), d.get("counts")
        if not isinstance(words, list) or not all(isinstance(w, str) for w in words):
            raise ValueError("vocabulary 'words' must be a list of strings")
        if len(set(words)) != len(words):
            raise ValueError("vocabulary 'words' contains duplicates")
        if not isinstance(counts, list) or len(counts) != len(words):
            raise ValueError("vocabulary 'counts' must be a list as long as 'words'")
        if not all(isinstance(c, int) and not isinstance(c, bool) and c >= 1 for c in counts):
            raise ValueError("vocabulary 'counts' must be whole numbers >= 1")
        return cls(words, counts, d["scheme"])

    def save_json(self, path: str | Path) -> None:
        """Write the vocabulary to a UTF-8 JSON file."""
        Path(path).write_text(json.dumps(self.to_dict(), ensure_ascii=False), encoding="utf-8")

    @classmethod
    def load_json(cls, path: str | Path) -> "Vocabulary":
        """Read a vocabulary written by ``save_json``."""
        try:
            d = json.loads(Path(path).read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise ValueError(f"{path} is not a valid vocabulary JSON file: {err}") from None
        return cls.from_dict(d)
