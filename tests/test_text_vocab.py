"""Tests for reading, tokenizing and the vocabulary (lstm_core.text, lstm_core.vocab)."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from lstm_core.text import (
    MAX_PARAGRAPH_LINES,
    PARAGRAPH,
    SCHEMES,
    decode_text,
    detokenize,
    layout_notice,
    read_text,
    split_paragraphs,
    tokenize,
    tokenize_paragraphs,
)
from lstm_core.vocab import PAD, PAD_ID, UNK, UNK_ID, UnknownWordsError, Vocabulary

ROOT = Path(__file__).resolve().parents[1]
SPIKE = ROOT.parent / "shared" / "corpus" / "the_spike.txt"  # the write-up's essay, not committed

# ------------------------------------------------------------------------------ reading


def test_read_text_utf8(tmp_path):
    path = tmp_path / "a.txt"
    path.write_bytes("Café — naïve\n".encode())
    assert read_text(path) == "Café — naïve\n"


def test_read_text_refuses_binary(tmp_path):
    path = tmp_path / "image.bin"
    path.write_bytes(b"GIF89a\x00\x01\x02")
    with pytest.raises(ValueError, match=r"image\.bin.*binary.*offset 6"):
        read_text(path)


def test_read_text_refuses_invalid_utf8_with_offset(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes("abc café".encode("latin-1"))  # é is byte 0xE9 at offset 7
    with pytest.raises(ValueError, match=r"latin1\.txt.*UTF-8.*offset 7"):
        read_text(path)


@pytest.mark.parametrize("data", [b"", b"   \n\t\r\n", b"\xef\xbb\xbf"])
def test_read_text_refuses_empty(tmp_path, data):
    path = tmp_path / "empty.txt"
    path.write_bytes(data)
    with pytest.raises(ValueError, match=r"empty\.txt.*empty"):
        read_text(path)


def test_line_endings_normalised_and_bom_stripped():
    assert decode_text(b"\xef\xbb\xbfone\r\ntwo\rthree\n") == "one\ntwo\nthree\n"


def test_decode_text_names_the_upload():
    with pytest.raises(ValueError, match="upload.txt"):
        decode_text(b"\xff\xfe", name="upload.txt")


# ---------------------------------------------------------------------------- tokenizing


def test_seed_tokenizer_splits_on_spaces_as_the_write_up():
    assert tokenize("Hello world", "seed") == "Hello world".lower().split(" ")
    assert tokenize("The end.", "seed") == ["the", "end."]  # punctuation stays in the word


@pytest.mark.parametrize("scheme", SCHEMES)
def test_no_empty_tokens_from_repeated_or_trailing_spaces(scheme):
    assert tokenize("Hello  world ", scheme) == ["hello", "world"]
    assert tokenize("  Hello \t world\u00a0again  \n\n  ", scheme) == ["hello", "world", "again"]


@pytest.mark.skipif(not SPIKE.is_file(), reason="the write-up's essay is not on this machine")
def test_seed_tokens_of_the_write_ups_essay_are_unchanged():
    text = read_text(SPIKE)
    # The write-up's own code, as the seed scheme read the essay before empty words went.
    before = [p.lower().split(" ") for p in text.split("\n") if p.strip()]
    assert tokenize_paragraphs(text, "seed") == before
    assert layout_notice(text) is None


def test_seed_paragraphs():
    text = "One two\n\n  \nThree four\n"
    assert tokenize_paragraphs(text, "seed") == [["one", "two"], ["three", "four"]]
    assert tokenize(text, "seed") == ["one", "two", PARAGRAPH, "three", "four"]
    assert detokenize(tokenize(text, "seed"), "seed") == "one two\nthree four"


def test_words_tokenizer_examples():
    assert tokenize("Hello, world!", "words") == ["hello", ",", "world", "!"]
    assert tokenize("Don't stop at o'clock", "words") == ["don't", "stop", "at", "o'clock"]
    assert tokenize("A Sunday-morning walk", "words") == ["a", "sunday-morning", "walk"]
    dashes = ["wait", "—", "no", "--", "yes", "–", "maybe"]
    assert tokenize("wait—no -- yes–maybe", "words") == dashes
    quotes = ["he", "said", '"', "hi", '"', "(", "twice", ")", "."]
    assert tokenize('He said "hi" (twice).', "words") == quotes
    assert tokenize("Café   naïve\tÉTÉ", "words") == ["café", "naïve", "été"]


def test_words_round_trip_reads_naturally():
    text = "She said, \"Don't go — it's late.\" (Really?) Yes; at sunday-morning [noon]."
    expected = "she said, \"don't go—it's late.\" (really?) yes; at sunday-morning [noon]."
    assert detokenize(tokenize(text, "words"), "words") == expected


def test_words_paragraphs_blank_lines_or_one_per_line():
    # With blank lines, single line breaks are just spaces (hard-wrapped text).
    wrapped = "First line\ncontinues.\n\n\nSecond para."
    expected = [["first", "line", "continues", "."], ["second", "para", "."]]
    assert tokenize_paragraphs(wrapped, "words") == expected
    # Without any blank line, each line is a paragraph (like the write-up's essay).
    assert tokenize_paragraphs("One.\nTwo.", "words") == [["one", "."], ["two", "."]]


# Public-domain style prose, written for this test.
_PARAGRAPHS = [
    "The keeper rose before the light, as was his custom, and went down the iron stair to see "
    "what the night had left upon the rocks. There was a spar, a broken crate, and a gull "
    "that would not fly.",
    "He carried the gull up to the lamp room and set it by the stove. It watched him with one "
    "eye, and he watched it with both, and neither of them said a word until noon.",
    "By evening the wind had gone round to the west. The gull walked to the door, considered "
    "the sea for a long while, and went out into it without a backward look.",
]


def _hard_wrap(paragraphs, blank_lines=True):
    """Project Gutenberg style: lines of about 60 characters, each with a trailing space."""
    lines = [[line + " " for line in textwrap.wrap(p, 60)] for p in paragraphs]
    joiner = "\n \n" if blank_lines else "\n"
    return joiner.join("\n".join(block) for block in lines) + "\n"


@pytest.mark.parametrize("scheme", SCHEMES)
def test_hard_wrapped_text_tokenizes_into_its_paragraphs(scheme):
    text = _hard_wrap(_PARAGRAPHS)
    assert text.count("\n") > 3 * len(_PARAGRAPHS)  # really wrapped, so this test can fail
    assert split_paragraphs(text) == _PARAGRAPHS
    expected = [tokenize(p, scheme) for p in _PARAGRAPHS]
    assert tokenize_paragraphs(text, scheme) == expected
    notice = layout_notice(text)
    assert notice.startswith("hard-wrapped text") and "joined into 3 paragraphs" in notice
    assert "\n" not in notice


def test_hard_wrapped_text_without_blank_lines_is_warned_about():
    text = _hard_wrap(_PARAGRAPHS, blank_lines=False)
    lines = text.split("\n")[:-1]
    assert split_paragraphs(text) == [line.strip() for line in lines]  # one paragraph per line
    notice = layout_notice(text)
    assert "looks hard-wrapped" in notice and "blank line" in notice and "\n" not in notice
    # One blank line after a title does not glue a long body into one paragraph.
    body = _hard_wrap(_PARAGRAPHS * 5, blank_lines=False)
    titled = "THE GULL\n\n" + body + "\nTHE END\n"
    body_lines = [line.strip() for line in body.split("\n")[:-1]]
    assert len(body_lines) > MAX_PARAGRAPH_LINES
    assert split_paragraphs(titled) == ["THE GULL", *body_lines, "THE END"]
    assert "looks hard-wrapped" in layout_notice(titled)
    # Paragraphs that blank lines mark are joined, the long stretch is not.
    mixed = _hard_wrap(_PARAGRAPHS) + "\n" + titled
    assert split_paragraphs(mixed) == split_paragraphs(_hard_wrap(_PARAGRAPHS)) + split_paragraphs(titled)
    assert f"except {len(body_lines)} lines with no blank line" in layout_notice(mixed)


def test_one_paragraph_per_line_text_is_read_per_line_without_notice():
    text = read_text(ROOT / "corpus" / "lighthouse_keeper.txt")
    lines = [line for line in text.split("\n") if line.strip()]
    assert layout_notice(text) is None
    assert len(tokenize_paragraphs(text, "words")) == len(lines)
    # A blank line after a title (or between every paragraph) changes nothing.
    titled = "The Lighthouse Keeper\n\n" + text.replace("\n", "\n\n")
    assert len(tokenize_paragraphs(titled, "words")) == len(lines) + 1
    assert layout_notice(titled) is None


@pytest.mark.parametrize("scheme", SCHEMES)
def test_model_vocabulary_of_a_wrapped_text_has_no_blank_words(scheme):
    from training.config import TrainConfig
    from training.loop import Corpus

    text = _hard_wrap(_PARAGRAPHS).replace(" and ", "  and  ")
    vocab = Corpus.from_text(text, TrainConfig(tokenizer=scheme, val_fraction=0.0)).vocab
    # Generation only ever emits vocabulary words, so it cannot print a blank one.
    words = [w for w in vocab.words if w != PARAGRAPH]
    assert words and all(w and not any(c.isspace() for c in w) for w in words)
    assert vocab.counts[vocab.words.index(PARAGRAPH)] == len(_PARAGRAPHS) - 1


def test_paragraph_token_between_paragraphs_only():
    tokens = tokenize("One.\n\nTwo.\n\n", "words")
    assert tokens == ["one", ".", PARAGRAPH, "two", "."]
    assert detokenize(tokens, "words") == "one.\n\ntwo."


def test_unknown_scheme_lists_valid_ones():
    with pytest.raises(ValueError, match="seed.*words"):
        tokenize("x", "chars")
    assert SCHEMES == ("seed", "words")


# ---------------------------------------------------------------------------- vocabulary

_PRINT_WORDS = (
    "from lstm_core.vocab import Vocabulary; "
    "print(Vocabulary.build('b a c b a d e f g h'.split()).words)"
)


def test_vocab_ids_identical_across_processes():
    outputs = []
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        result = subprocess.run(
            [sys.executable, "-c", _PRINT_WORDS],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        outputs.append(result.stdout)
    assert outputs[0] == outputs[1]
    assert outputs[0].strip() == "['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h']"


def test_vocab_order_and_reserved_ids():
    vocab = Vocabulary.build(["x", "y", "y", "z", "y", "x"])
    assert vocab.words == ["y", "x", "z"]  # by count, then alphabetically
    assert len(vocab) == 5
    assert vocab.token_to_id("y") == 2
    assert vocab.id_to_token(PAD_ID) == PAD and vocab.id_to_token(UNK_ID) == UNK
    assert "y" in vocab and PAD not in vocab


def test_encode_decode_round_trip():
    tokens = tokenize("The cat sat.\n\nThe dog sat.", "words")
    vocab = Vocabulary.build(tokens)
    ids = vocab.encode(tokens)
    assert min(ids) >= 2
    assert vocab.decode(ids) == tokens


def test_text_containing_reserved_strings_gets_ordinary_ids():
    vocab = Vocabulary.build(["<pad>", "<unk>", "word"])
    assert vocab.token_to_id("<pad>") >= 2
    assert vocab.encode(["<pad>", "<unk>"]) != [PAD_ID, UNK_ID]
    assert min(vocab.encode(["<pad>", "<unk>"])) >= 2
    assert vocab.id_to_token(0) == "<pad>"


def test_unknown_words_error_names_them():
    vocab = Vocabulary.build(["a", "b"])
    with pytest.raises(UnknownWordsError, match="'zebra'.*'yak'") as info:
        vocab.encode(["a", "zebra", "yak", "zebra"])
    assert info.value.words == ["zebra", "yak"]
    assert isinstance(info.value, ValueError)
    assert vocab.encode(["a", "zebra"], unknown="unk") == [vocab.token_to_id("a"), UNK_ID]
    assert vocab.unknown_words(["q", "a", "q", "r"]) == ["q", "r"]


def test_unknown_words_error_caps_the_list():
    err = UnknownWordsError([f"w{i}" for i in range(13)])
    assert "'w9'" in str(err) and "'w10'" not in str(err) and "and 3 more" in str(err)


def test_min_count_drops_rare_words():
    vocab = Vocabulary.build(["a", "a", "b"], min_count=2)
    assert "a" in vocab and "b" not in vocab
    assert vocab.encode(["b"], unknown="unk") == [UNK_ID]


def test_dict_and_json_round_trip(tmp_path):
    vocab = Vocabulary.build(tokenize("Ünïcode words, and more words.", "words"), scheme="words")
    d = vocab.to_dict()
    assert Vocabulary.from_dict(d) == vocab
    path = tmp_path / "vocab.json"
    vocab.save_json(path)
    loaded = Vocabulary.load_json(path)
    assert loaded == vocab and loaded.scheme == "words"
    assert Vocabulary.build(["a"], scheme="seed") != Vocabulary.build(["a"], scheme="words")


@pytest.mark.parametrize(
    "broken",
    [
        [],
        {"format": 2, "scheme": "words", "words": [], "counts": []},
        {"format": 1, "scheme": "bytes", "words": [], "counts": []},
        {"format": 1, "scheme": "words", "words": ["a", "a"], "counts": [1, 1]},
        {"format": 1, "scheme": "words", "words": ["a"], "counts": []},
        {"format": 1, "scheme": "words", "words": [3], "counts": [1]},
    ],
)
def test_from_dict_refuses_malformed(broken):
    with pytest.raises(ValueError):
        Vocabulary.from_dict(broken)


def test_straight_quotes_open_and_close_in_turn():
    tokens = tokenize('a "b" c \'d\' e "f"', "words")
    assert detokenize(tokens, "words") == 'a "b" c \'d\' e "f"'


def test_training_logs_the_layout_notice_first(temp_store, tmp_path):
    # train_run's log lines are what the CLI prints and the Train tab shows.
    import threading

    from training.config import TrainConfig
    from training.tracking import train_run

    corpus = tmp_path / "wrapped.txt"
    corpus.write_text(_hard_wrap(_PARAGRAPHS * 2), encoding="utf-8")
    config = TrainConfig.for_recipe("seed", corpus=str(corpus), steps=2, hidden_size=8,
                                    embed_dim=8, batch_size=4)
    stop, lines = threading.Event(), []
    stop.set()  # stopped before its first step: the notice comes before any training
    train_run(config, on_log=lines.append, stop_event=stop)
    assert lines[0].startswith("hard-wrapped text") and "joined into 6 paragraphs" in lines[0]
