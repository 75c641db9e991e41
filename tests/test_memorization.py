"""Memorization analysis on hand-made texts whose answers are known, plus a brute-force check."""

import random

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lstm_core.memorization import (
    CopiedSpan,
    SourceIndex,
    analyze,
    copied_spans,
    extractable_memorization,
    greedy_continue,
    ngram_novelty,
)
from lstm_core.vocab import UNK, UNK_ID

SOURCE = "the cat sat on the mat".split()


# ---- brute-force references: O(n^2) and obviously right ----

def occurs(span, source):
    """Whether `span` appears contiguously in `source` (any token type)."""
    k = len(span)
    return any(source[i:i + k] == span for i in range(len(source) - k + 1))


def brute_match_lengths(generated, source):
    lengths = []
    for j in range(len(generated)):
        best = 0
        for L in range(1, j + 2):
            if occurs(generated[j - L + 1:j + 1], source):
                best = L
        lengths.append(best)
    return lengths


def brute_novelty(generated, source, max_n):
    out = {}
    for n in range(1, min(max_n, len(generated)) + 1):
        source_grams = {tuple(source[i:i + n]) for i in range(len(source) - n + 1)}
        grams = [tuple(generated[i:i + n]) for i in range(len(generated) - n + 1)]
        out[n] = sum(g not in source_grams for g in grams) / len(grams)
    return out


def brute_covered(generated, source, min_len):
    """Positions inside any span of length >= min_len that occurs in the source."""
    covered = set()
    for i in range(len(generated)):
        for j in range(i + min_len, len(generated) + 1):
            if occurs(generated[i:j], source):
                covered.update(range(i, j))
    return covered


def check_spans(spans, generated, source):
    """Each span occurs at its source_start; spans are sorted and do not overlap."""
    for span in spans:
        assert span.length >= 1
        assert source[span.source_start:span.source_start + span.length] == \
            generated[span.start:span.end]
    for left, right in zip(spans, spans[1:], strict=False):
        assert left.end <= right.start


# ---- SourceIndex ----

def test_match_lengths_by_hand():
    index = SourceIndex(SOURCE)
    generated = "the cat sat on the hat the mat".split()
    # "the cat sat on the" (5) is copied, "hat" is not in the source, then "the mat" (2).
    assert index.match_lengths(generated) == [1, 2, 3, 4, 5, 0, 1, 2]
    # "c a b" is in "a b c a b", but "c a b c" is not, so the match at the last "c" drops to 3.
    assert SourceIndex(list("abcab")).match_lengths(list("cabcx")) == [1, 2, 3, 3, 0]


def test_locate_and_contains():
    index = SourceIndex(SOURCE)
    assert index.locate(["on", "the", "mat"]) == 3
    assert index.locate(["cat"]) == 1
    assert index.locate(["the", "mat"]) == 4
    assert index.locate(["the"]) in (0, 4)
    assert index.locate(["mat", "the"]) is None
    assert index.contains(["sat", "on"]) and not index.contains(["dog"])
    assert index.locate([]) == 0 and index.contains([])
    assert len(index) == len(SOURCE)


def test_bad_input_raises():
    with pytest.raises(ValueError, match="empty"):
        SourceIndex([])
    with pytest.raises(ValueError, match="empty"):
        analyze(["a"], [])
    with pytest.raises(ValueError, match="min_len"):
        copied_spans(SOURCE, SOURCE, min_len=0)
    with pytest.raises(ValueError, match="min_len"):
        analyze(SOURCE, SOURCE, min_len=0)
    with pytest.raises(ValueError, match="max_n"):
        ngram_novelty(SOURCE, SOURCE, max_n=0)
    with pytest.raises(ValueError, match="not a str"):
        SourceIndex("the cat sat")
    with pytest.raises(ValueError, match="1-D"):
        SourceIndex(torch.zeros(2, 3, dtype=torch.long))


# ---- analyze and its parts ----

def test_exact_copy():
    report = analyze(SOURCE, SOURCE, min_len=4, max_n=8)
    n = len(SOURCE)
    assert report.match_lengths == list(range(1, n + 1))
    assert report.novelty == {k: 0.0 for k in range(1, n + 1)}  # n-grams longer than 6: left out
    assert report.spans == [CopiedSpan(0, n, 0)]
    assert report.longest_copied_span == n
    assert report.copied_token_fraction == 1.0
    assert report.copied_4gram_fraction == 1.0


def test_fully_novel_text():
    generated = "a dog ran off quickly".split()
    report = analyze(generated, SOURCE)
    assert report.match_lengths == [0] * 5
    assert report.novelty == {k: 1.0 for k in range(1, 6)}
    assert report.spans == []
    assert report.longest_copied_span == 0
    assert report.copied_token_fraction == 0.0
    assert report.copied_4gram_fraction == 0.0


def test_splice_of_two_passages():
    source = [f"w{i}" for i in range(20)]  # all distinct, so each passage occurs once
    generated = source[2:9] + ["NEW"] + source[12:17] + source[3:8]
    spans = copied_spans(generated, source, min_len=4)
    assert spans == [CopiedSpan(0, 7, 2), CopiedSpan(8, 13, 12), CopiedSpan(13, 18, 3)]
    check_spans(spans, generated, source)
    report = analyze(generated, source)
    assert report.longest_copied_span == 7
    assert report.copied_token_fraction == 17 / 18
    # 4-grams: 15 in all; novel ones cross "NEW" (4) or the seam between passages 2 and 3 (3).
    assert report.copied_4gram_fraction == pytest.approx(8 / 15)
    assert report.novelty[1] == pytest.approx(1 / 18)


def test_short_matches_not_reported():
    generated = "the cat ran on the mat".split()  # copied runs of 2 and 3 tokens only
    assert copied_spans(generated, SOURCE, min_len=4) == []
    assert copied_spans(generated, SOURCE, min_len=3) == [CopiedSpan(3, 6, 3)]
    assert analyze(generated, SOURCE).copied_token_fraction == 0.0
    assert analyze(generated, SOURCE).longest_copied_span == 3  # counted whatever min_len


def test_overlapping_copies_are_cut_not_dropped():
    source = list("abcdXbcdef")
    generated = list("abcdef")  # "abcd" and "bcdef" are both copied, "abcde" is not
    spans = copied_spans(generated, source, min_len=4)
    assert spans == [CopiedSpan(0, 4, 0), CopiedSpan(4, 6, 8)]  # "ef" is the rest of "bcdef"
    check_spans(spans, generated, source)
    # "eZ" occurs too, but "Z" lies in no copied span of 4, so the cut piece stops before it.
    source = list("abcdXbcdeYeZ")
    spans = copied_spans(list("abcdeZ"), source, min_len=4)
    assert spans == [CopiedSpan(0, 4, 0), CopiedSpan(4, 5, 8)]


def test_repeated_tokens():
    source = ["a"] * 10
    generated = ["a"] * 15
    report = analyze(generated, source, min_len=4, max_n=12)
    assert report.match_lengths == list(range(1, 11)) + [10] * 5
    assert report.novelty == {**{n: 0.0 for n in range(1, 11)}, 11: 1.0, 12: 1.0}
    assert [(s.start, s.end) for s in report.spans] == [(0, 10), (10, 15)]
    check_spans(report.spans, generated, source)
    assert report.copied_token_fraction == 1.0
    assert ngram_novelty(["b"] * 3, source) == {1: 1.0, 2: 1.0, 3: 1.0}


def test_integer_tokens_and_tensors():
    source = [5, 6, 7, 8, 9, 5, 6]
    index = SourceIndex(torch.tensor(source))
    assert index.match_lengths([6, 7, 8, 1, 9, 5, 6, 7]) == [1, 2, 3, 0, 1, 2, 3, 3]
    assert index.match_lengths(torch.tensor([9, 5, 6])) == [1, 2, 3]
    assert copied_spans([0, 7, 8, 9, 5, 6, 0], index) == [CopiedSpan(1, 6, 2)]
    assert analyze([7, 8, 9, 5, 6, 0], index).copied_4gram_fraction == pytest.approx(2 / 3)


def test_empty_generated_gives_empty_report():
    report = analyze([], SOURCE)
    assert report.match_lengths == [] and report.spans == [] and report.novelty == {}
    assert report.longest_copied_span == 0
    assert report.copied_token_fraction == 0.0 and report.copied_4gram_fraction == 0.0
    assert analyze(["the"], SOURCE).copied_4gram_fraction == 0.0  # no 4-grams at all


def test_against_brute_force_on_random_sequences():
    rng = random.Random(1234)
    for _ in range(400):
        source = [rng.choice("abc") for _ in range(rng.randint(1, 20))]
        generated = [rng.choice("abc") for _ in range(rng.randint(0, 20))]
        index = SourceIndex(source)
        lengths = index.match_lengths(generated)
        assert lengths == brute_match_lengths(generated, source), (source, generated)
        novelty = ngram_novelty(generated, index, max_n=6)
        expected = brute_novelty(generated, source, max_n=6)
        assert novelty.keys() == expected.keys()
        for n in expected:
            assert novelty[n] == pytest.approx(expected[n])
        min_len = rng.randint(1, 4)
        spans = copied_spans(generated, index, min_len=min_len)
        check_spans(spans, generated, source)
        covered = {i for s in spans for i in range(s.start, s.end)}
        assert covered == brute_covered(generated, source, min_len), (source, generated)
        for span in spans:  # greedy: no span can grow by one more copied token
            grown = generated[span.start:span.end + 1]
            assert span.end == len(generated) or span.end not in covered or \
                not occurs(grown, source)
        j = rng.randrange(len(source))
        k = rng.randint(j + 1, len(source))
        start = index.locate(source[j:k])
        assert start is not None and source[start:start + k - j] == source[j:k]


def test_large_source_builds():
    # No timing assertion: this just has to finish quickly, which a quadratic method would not.
    rng = random.Random(0)
    source = [rng.randrange(5000) for _ in range(200_000)]
    index = SourceIndex(source)
    passage = source[100_000:100_500]
    assert index.match_lengths(passage) == list(range(1, 501))
    assert index.locate(passage) == 100_000
    report = analyze(passage + [-1] + source[5:50], index)
    assert [(s.start, s.end, s.source_start) for s in report.spans] == \
        [(0, 500, 100_000), (501, 546, 5)]


# ---- extractable memorization with fake models that follow the model contract ----

class BigramLookup(nn.Module):
    """Predicts table[token] after every token, with certainty; records how it was called."""

    def __init__(self, table):
        super().__init__()
        self.register_buffer("table", torch.tensor(table))
        self.calls = []  # (idx shape, state passed?, training flag, inference mode)

    def forward(self, idx, targets=None, state=None, last_only=False):
        self.calls.append((tuple(idx.shape), state is not None, self.training,
                           torch.is_inference_mode_enabled()))
        logits = F.one_hot(self.table[idx], len(self.table)).float()  # (B, T, V)
        return logits, None, ("opaque", idx[:, -1])


class TrigramLookup(nn.Module):
    """Predicts table[prev, token]: the token before the first input comes from `state`.

    Right only if the caller passes the state back, so it checks that greedy_continue does.
    """

    def __init__(self, source, vocab_size):
        super().__init__()
        unknown = vocab_size  # row used when the previous token is not known
        table = torch.zeros(vocab_size + 1, vocab_size, dtype=torch.long)
        for prev, cur, nxt in zip(source, source[1:], source[2:], strict=False):
            table[prev, cur] = nxt
        self.register_buffer("table", table)
        self.unknown = unknown

    def forward(self, idx, targets=None, state=None, last_only=False):
        first = torch.full_like(idx[:, :1], self.unknown) if state is None else state[:, None]
        prev = torch.cat([first, idx[:, :-1]], dim=1)  # (B, T)
        logits = F.one_hot(self.table[prev, idx], self.table.size(1)).float()  # (B, T, V)
        return logits, None, idx[:, -1]


def test_greedy_continue_follows_the_contract():
    model = BigramLookup([(t + 1) % 10 for t in range(10)])
    model.train()
    prefixes = torch.tensor([[0, 1, 2], [7, 8, 9]])
    out = greedy_continue(model, prefixes, steps=4)
    assert out.tolist() == [[3, 4, 5, 6], [0, 1, 2, 3]]
    assert model.calls[0] == ((2, 3), False, False, True)  # whole prefix, no state, eval mode
    assert model.calls[1:] == [((2, 1), True, False, True)] * 3  # one token at a time
    assert model.training  # restored
    model.eval()
    greedy_continue(model, prefixes, steps=1)
    assert not model.training
    assert greedy_continue(model, prefixes, steps=0).shape == (2, 0)
    with pytest.raises(ValueError, match="prefixes"):
        greedy_continue(model, torch.tensor([1, 2, 3]), steps=2)


def test_extractable_memorization_perfect_model():
    source = list(range(10)) * 4
    model = BigramLookup([(t + 1) % 10 for t in range(10)])
    assert extractable_memorization(model, source, prefix_len=3, suffix_len=2) == 1.0
    # The bigram table cannot tell what follows 1 here, but the trigram model with state can.
    source = [0, 1, 2, 3, 1, 4] * 5
    model = TrigramLookup(source, vocab_size=5)
    # These fakes' ids are plain numbers, not a vocabulary's: id 1 is no <unk> here.
    rate = extractable_memorization(model, torch.tensor(source), prefix_len=2, suffix_len=4,
                                    stride=1, batch_size=7, unk_id=None)
    assert rate == 1.0


def test_extractable_memorization_rate_by_hand():
    source = list(range(10)) * 4  # 40 ids
    table = [(t + 1) % 10 for t in range(10)]
    table[5] = 7  # wrong after 5
    model = BigramLookup(table)
    # stride 1: 36 windows starting at s, prefix ends with x = (s + 2) % 10. With 2 tokens to
    # generate, the window fails if x = 5 (first token wrong) or x = 4 (second token wrong):
    # s % 10 in {2, 3}, i.e. s = 2, 3, 12, 13, 22, 23, 32, 33 -> 8 failures of 36.
    rate = extractable_memorization(model, source, prefix_len=3, suffix_len=2, stride=1,
                                    batch_size=5, unk_id=None)
    assert rate == pytest.approx(28 / 36)
    # max_windows=3 takes windows 0, 12 and 24 of the 36: only s = 12 fails.
    rate = extractable_memorization(model, source, prefix_len=3, suffix_len=2, stride=1,
                                    max_windows=3, unk_id=None)
    assert rate == pytest.approx(2 / 3)
    # Default stride = 5 (non-overlapping): s = 0, 5, ..., 35 gives x in {2, 7}: all right.
    assert extractable_memorization(model, source, prefix_len=3, suffix_len=2) == 1.0


def test_extractable_memorization_bad_input():
    model = BigramLookup([1, 0])
    with pytest.raises(ValueError, match="fewer than one window"):
        extractable_memorization(model, [0, 1, 0], prefix_len=2, suffix_len=2)
    with pytest.raises(ValueError, match="prefix_len"):
        extractable_memorization(model, [0, 1] * 10, prefix_len=0)
    with pytest.raises(ValueError, match="integer ids"):
        extractable_memorization(model, [0.5, 1.0] * 10)


# ---- <unk> never counts as memorized ----

def test_a_window_continued_by_unk_is_not_memorized():
    """A capped vocabulary turns a text of rare words into <unk> after <unk>: a model that
    always predicts <unk> "reproduces" it, yet has memorized none of its words."""
    always_unk = BigramLookup([UNK_ID] * 10)
    rare_words = [UNK_ID] * 64
    assert extractable_memorization(always_unk, rare_words, prefix_len=4, suffix_len=4) == 0.0
    # Windows whose continuation holds a real word still count: ids 0 2 3 ... follow each
    # other in the bigram table; the <unk> window (4 of the 5 at stride 8) does not.
    table = [2, 0, 3, 4, 5, 6, 7, 8, 9, 2]
    source = [2, 3, 4, 5, 6, 7, 8, 9] + [UNK_ID] * 32
    rate = extractable_memorization(BigramLookup(table), source, prefix_len=4, suffix_len=4)
    assert rate == pytest.approx(1 / 5)
    # A suffix with one <unk> among known words is not a recitation either.
    source = [2, 3, 4, 5, 6, 7, UNK_ID, 9]
    table[7], table[UNK_ID] = UNK_ID, 9
    assert extractable_memorization(BigramLookup(table), source, prefix_len=4,
                                    suffix_len=4) == 0.0


def test_no_copied_span_or_ngram_runs_through_unk():
    source = f"the cat {UNK} sat on {UNK} {UNK} the mat".split()
    generated = f"the cat {UNK} sat on {UNK} {UNK} the mat".split()  # the whole source
    report = analyze(generated, source, min_len=2)
    assert report.match_lengths == [1, 2, 0, 1, 2, 0, 0, 1, 2]
    assert report.longest_copied_span == 2
    assert [(s.start, s.end) for s in report.spans] == [(0, 2), (3, 5), (7, 9)]
    assert report.novelty[4] == 1.0 and report.copied_4gram_fraction == 0.0
    assert ngram_novelty([UNK] * 6, source, max_n=2) == {1: 1.0, 2: 1.0}
    index = SourceIndex(source)
    assert not index.contains([UNK]) and not index.contains(["cat", UNK, "sat"])
    assert index.contains(["sat", "on"])


def test_unk_among_ids_is_the_unk_id_given():
    ids = [5, 6, UNK_ID, 7, 8]
    assert SourceIndex(ids, unk=UNK_ID).match_lengths(ids) == [1, 2, 0, 1, 2]
    assert SourceIndex(ids).match_lengths(ids) == [1, 2, 3, 4, 5]  # words' <unk> only
