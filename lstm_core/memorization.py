"""How much of a generated text is copied, word for word, from the training text?

A small LSTM trained on one essay tends to recite it. This module measures that in two ways:

* **Text against text** (no model needed): for every generated token, the longest span ending
  there that appears verbatim in the source (``SourceIndex.match_lengths``); from that, the
  copied passages (``copied_spans``) and the share of generated n-grams never seen in the
  source (``ngram_novelty``, McCoy et al. 2021, "How much do language models copy from their
  training data?"). ``analyze`` gathers it all in one ``MemorizationReport``.
* **Model against source** (``extractable_memorization``, Carlini et al. 2022, "Quantifying
  Memorization Across Neural Language Models"): give the model k tokens of the source and
  check whether greedy decoding continues with the source's next m tokens exactly.

**<unk> never counts as memorized.** A capped vocabulary maps rare words to <unk>, and a model
that writes <unk> where the source has <unk> has not reproduced the source's words: on a text of
rare words it would otherwise look as if it recited nearly everything. So no span or n-gram
that holds <unk> is copied, and no window whose continuation holds <unk> is extractable.

Tokens are any hashable items (word strings or integer ids). Everything on text runs in time
linear in len(source) + len(generated): the source is indexed once in a suffix automaton, and
the generated text is then read through it one token at a time. A pairwise comparison
(difflib, or checking every generated span against every source position) would be
O(len(source) * len(generated)).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from lstm_core.data import check_positive
from lstm_core.generate import decode
from lstm_core.vocab import UNK, UNK_ID

_ROOT = 0  # the automaton's start state: the empty span


def _as_tokens(tokens, name: str) -> list:
    """A plain list of tokens; a 1-D tensor of ids becomes a list of ints."""
    if isinstance(tokens, torch.Tensor):
        if tokens.dim() != 1:
            raise ValueError(f"{name} must be a 1-D sequence of tokens, got shape {tuple(tokens.shape)}")
        return tokens.tolist()  # tensors hash by identity, so compare their values instead
    if isinstance(tokens, str):
        # A bare string would be read character by character, which is rarely what is meant.
        raise ValueError(f"{name} must be a sequence of tokens such as text.split(), not a str")
    return list(tokens)


class SourceIndex:
    """Every contiguous span of a source token sequence, indexed for linear-time look-ups.

    The index is a *suffix automaton*: the smallest machine that reads tokens one at a time and
    accepts exactly the spans that occur somewhere in the source. Think of it as a trie of all
    the source's spans with identical branches merged. Each state stands for a group of spans
    that end at exactly the same positions in the source (so they always appear together).
    Per state ``s`` we keep:

    * ``_next[s]``: a dict ``token -> state``: append this token to the span and go there
      (missing key = the longer span never occurs in the source);
    * ``_link[s]``: the *suffix link*, the state of the longest shorter suffix that is in a
      different group; following it means "forget the oldest tokens of the match";
    * ``_len[s]``: the length of the longest span in the group;
    * ``_end[s]``: one position in the source where the group's spans end, so a match can be
      located: a span of length L in state s occurs at ``_end[s] - L + 1``.

    Building it adds source tokens one by one (Blumer et al. 1985); it has at most 2n states
    and 3n transitions for n source tokens and takes O(n) expected time with hash dicts.

    ``unk`` is the token that never matches (the module docstring says why): "<unk>" for
    words; pass ``unk=UNK_ID`` for a sequence of ids.
    """

    def __init__(self, source: Sequence[Hashable], unk: Hashable = UNK) -> None:
        self.source = _as_tokens(source, "source")
        self.unk = unk
        if not self.source:
            raise ValueError("source is empty: give the training text as a non-empty token list")
        self._next: list[dict] = [{}]
        self._link: list[int] = [-1]
        self._len: list[int] = [0]
        self._end: list[int] = [-1]
        last = _ROOT
        for pos, token in enumerate(self.source):
            last = self._extend(last, token, pos)

    def __len__(self) -> int:
        return len(self.source)

    def _new_state(self, length: int, link: int, end: int, next_: dict) -> int:
        self._next.append(next_)
        self._link.append(link)
        self._len.append(length)
        self._end.append(end)
        return len(self._len) - 1

    def _extend(self, last: int, token: Hashable, pos: int) -> int:
        """Add source[pos] = token; `last` is the state of the whole source read so far."""
        cur = self._new_state(self._len[last] + 1, _ROOT, pos, {})
        # Every suffix of the old source that could not be followed by `token` now can.
        p = last
        while p != -1 and token not in self._next[p]:
            self._next[p][token] = cur
            p = self._link[p]
        if p == -1:
            return cur  # `token` is new to the source: its suffix link is the root
        q = self._next[p][token]
        if self._len[p] + 1 == self._len[q]:
            self._link[cur] = q
            return cur
        # q mixes spans that now end at different positions: split off the shorter ones.
        clone = self._new_state(self._len[p] + 1, self._link[q], self._end[q], dict(self._next[q]))
        while p != -1 and self._next[p].get(token) == q:
            self._next[p][token] = clone
            p = self._link[p]
        self._link[q] = self._link[cur] = clone
        return cur

    def _walk(self, generated: list) -> tuple[list[int], list[int]]:
        """Longest match ending at each position, and where in the source it ends (-1: none).

        Amortised O(len(generated)): the match grows by at most one token per step, and each
        suffix-link hop shortens it, so there are at most len(generated) hops in total.
        """
        lengths, ends = [], []
        state, length = _ROOT, 0
        for token in generated:
            if token == self.unk:  # no copied span runs through <unk>
                state, length = _ROOT, 0
                lengths.append(0)
                ends.append(-1)
                continue
            while state != _ROOT and token not in self._next[state]:
                state = self._link[state]  # drop the oldest tokens until `token` can follow
                length = self._len[state]
            if token in self._next[state]:
                state = self._next[state][token]
                length += 1
            else:
                state, length = _ROOT, 0  # this token never appears in the source
            lengths.append(length)
            ends.append(self._end[state])
        return lengths, ends

    def match_lengths(self, generated: Sequence[Hashable]) -> list[int]:
        """For each position j, the largest L such that generated[j-L+1 : j+1] is in the source."""
        return self._walk(_as_tokens(generated, "generated"))[0]

    def locate(self, span: Sequence[Hashable]) -> int | None:
        """A start offset where `span` occurs in the source, or None. O(len(span)).

        The empty span occurs everywhere; its offset is 0. A span holding <unk> is never found.
        """
        state = _ROOT
        span = _as_tokens(span, "span")
        if any(token == self.unk for token in span):
            return None
        for token in span:
            state = self._next[state].get(token)
            if state is None:
                return None
        return self._end[state] - len(span) + 1 if span else 0

    def contains(self, span: Sequence[Hashable]) -> bool:
        """Whether `span` occurs verbatim (contiguously) in the source."""
        return self.locate(span) is not None


def _as_index(source_or_index) -> SourceIndex:
    """Reuse a SourceIndex; build one from a token sequence otherwise."""
    if isinstance(source_or_index, SourceIndex):
        return source_or_index
    return SourceIndex(source_or_index)


@dataclass(frozen=True)
class CopiedSpan:
    """generated[start:end] equals source[source_start : source_start + length]."""

    start: int  # first generated position of the span
    end: int  # one past the last generated position (half-open, like a slice)
    source_start: int  # an offset in the source where the same tokens occur

    @property
    def length(self) -> int:
        return self.end - self.start


def _spans_from_walk(lengths: list[int], ends: list[int], min_len: int) -> list[CopiedSpan]:
    """Cut the copied tokens into non-overlapping spans, greedily from left to right. O(n)."""
    n = len(lengths)
    starts = [j - lengths[j] + 1 for j in range(n)]  # the longest match ending at j starts here
    # A token is copied if some match of length >= min_len ending at or after it covers it.
    covered, first = [False] * n, n
    for j in range(n - 1, -1, -1):
        if lengths[j] >= min_len:
            first = min(first, starts[j])
        covered[j] = first <= j
    spans, i = [], 0
    while i < n:
        if not covered[i]:
            i += 1
            continue
        # generated[i : e+1] occurs in the source exactly when the match ending at e starts <= i.
        e = i + 1
        while e < n and covered[e] and starts[e] <= i:
            e += 1
        # generated[i:e] is a suffix of the match ending at e - 1, whose source end we know.
        spans.append(CopiedSpan(i, e, ends[e - 1] - (e - i) + 1))
        i = e
    return spans


def copied_spans(generated, source_or_index, min_len: int = 4) -> list[CopiedSpan]:
    """The passages of `generated` copied verbatim from the source, left to right.

    Every generated token inside some copied span of length >= min_len is covered by exactly
    one returned span, and each returned span occurs in the source at its ``source_start``.
    Spans are built greedily: start at the first uncovered copied token and extend while the
    longer span still occurs in the source. When two copied passages overlap in the generated
    text (e.g. "a b c d" and "b c d e f" copied from different places), the second is cut
    where the first ends, so a cut piece ("e f") may be shorter than min_len.
    O(len(generated)) once the source is indexed.
    """
    check_positive(min_len=min_len)
    index = _as_index(source_or_index)
    lengths, ends = index._walk(_as_tokens(generated, "generated"))
    return _spans_from_walk(lengths, ends, min_len)


def _novelty_from_lengths(lengths: list[int], max_n: int) -> dict[int, float]:
    """Share of novel n-grams for n = 1..max_n, from match lengths. O(len(lengths) + max_n).

    The n-gram ending at j is in the source iff lengths[j] >= n. Counting positions by their
    (capped) match length once gives every n at the same cost.
    """
    count = [0] * (max_n + 1)  # count[L] = positions whose match length is L (capped at max_n)
    for length in lengths:
        count[min(length, max_n)] += 1
    novelty, shorter = {}, 0  # shorter = positions with match length < n
    for n in range(1, min(max_n, len(lengths)) + 1):
        shorter += count[n - 1]
        # The first n - 1 positions have match length < n but end no n-gram: leave them out.
        novelty[n] = (shorter - (n - 1)) / (len(lengths) - n + 1)
    return novelty


def ngram_novelty(generated, source_or_index, max_n: int = 8) -> dict[int, float]:
    """{n: share of generated n-grams (repeats counted) that never occur in the source}.

    Values of n longer than the generated text (no n-grams at all) are left out of the dict,
    so an empty text gives {}. 0.0 means every n-gram was copied, 1.0 means none was.
    """
    check_positive(max_n=max_n)
    lengths = _as_index(source_or_index).match_lengths(generated)
    return _novelty_from_lengths(lengths, max_n)


@dataclass
class MemorizationReport:
    """Everything ``analyze`` measures about one generated text."""

    match_lengths: list[int]  # per generated token: longest copied span ending there
    spans: list[CopiedSpan]  # copied passages, see copied_spans()
    novelty: dict[int, float]  # n -> share of novel n-grams; n > len(text) left out
    copied_4gram_fraction: float  # share of generated 4-grams found in the source
    longest_copied_span: int  # longest verbatim run, in tokens (= max match length, any length)
    copied_token_fraction: float  # share of generated tokens inside a span of >= min_len
    # Share of generated 4-grams that already occurred earlier in the generated text itself: a
    # model stuck in a loop ("the tower of the tower of ...") repeats its own output, which is
    # not the same as reciting the source, though a looped phrase may also be in the source.
    self_repeated_4gram_fraction: float = 0.0


def self_repeated_fraction(generated, n: int = 4) -> float:
    """Share of the n-grams of `generated` that already occurred earlier in it (0.0 if none).

    Overlapping occurrences count: in "a b a b a b" every 2-gram after the first two repeats.
    """
    check_positive(n=n)
    tokens = _as_tokens(generated, "generated")
    grams = [tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]
    seen, repeats = set(), 0
    for gram in grams:
        repeats += gram in seen
        seen.add(gram)
    return repeats / len(grams) if grams else 0.0


def analyze(generated, source_or_index, min_len: int = 4, max_n: int = 8) -> MemorizationReport:
    """Measure verbatim copying of `generated` from the source in one linear pass.

    Pass a SourceIndex to analyse many texts against the same source without re-indexing it.
    An empty generated text gives an empty report (no spans, no n-grams, zero fractions).
    """
    check_positive(min_len=min_len, max_n=max_n)
    index = _as_index(source_or_index)
    generated = _as_tokens(generated, "generated")
    lengths, ends = index._walk(generated)
    spans = _spans_from_walk(lengths, ends, min_len)
    four = _novelty_from_lengths(lengths, 4)
    return MemorizationReport(
        match_lengths=lengths,
        spans=spans,
        novelty=_novelty_from_lengths(lengths, max_n),
        copied_4gram_fraction=1.0 - four[4] if 4 in four else 0.0,
        longest_copied_span=max(lengths, default=0),
        copied_token_fraction=sum(s.length for s in spans) / len(lengths) if lengths else 0.0,
        self_repeated_4gram_fraction=self_repeated_fraction(generated, 4),
    )


def _model_device(model: nn.Module) -> torch.device:
    """Where the model's weights live (CPU for a model without any)."""
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return torch.device("cpu")


def greedy_continue(model: nn.Module, prefixes: torch.Tensor, steps: int) -> torch.Tensor:
    """Greedy (argmax) continuation of each row of `prefixes`: (N, k) -> (N, steps).

    The prefixes are read once, then one token at a time is fed back with the carried state
    (``generate.decode``, the loop generation uses too). Unlike generation, every id may be
    chosen, <unk> included: the source being tested may hold <unk> too.
    """
    if prefixes.dim() != 2 or prefixes.size(1) == 0 or prefixes.dtype != torch.long:
        raise ValueError(
            f"prefixes must be a LongTensor of shape (N, k) with k >= 1, got dtype "
            f"{prefixes.dtype} and shape {tuple(prefixes.shape)}")
    if not isinstance(steps, int) or steps < 0:
        raise ValueError(f"steps must be a whole number >= 0, got {steps!r}")
    if steps == 0:
        return prefixes.new_empty((prefixes.size(0), 0))
    columns = decode(model, prefixes, steps, lambda logits: logits.argmax(dim=-1))
    return torch.stack(list(columns), dim=1)  # (N, steps)


def extractable_memorization(model: nn.Module, source_ids, prefix_len: int = 8,
                             suffix_len: int = 8, stride: int | None = None,
                             max_windows: int = 2000, batch_size: int = 256,
                             unk_id: int | None = UNK_ID) -> float:
    """Share of source windows whose continuation the model reproduces exactly (Carlini 2022).

    The source ids are cut into windows of prefix_len + suffix_len tokens, starting every
    `stride` tokens (default: prefix_len + suffix_len, so windows do not overlap and every
    source token is tested at most once). If there are more than `max_windows`, that many
    are taken, spread evenly over the source. For each window the model reads the prefix and
    greedily generates suffix_len ids; the window counts as extractable when they all equal
    the source's next ids and none of those is ``unk_id`` (a window whose continuation holds
    <unk> is tested, and never counts). 1.0 means the model recites every tested passage.
    """
    ids = torch.as_tensor(source_ids)
    if ids.dim() != 1 or ids.is_floating_point() or ids.is_complex() or ids.dtype == torch.bool:
        raise ValueError(f"source_ids must be a 1-D sequence of integer ids, got {ids.dtype} "
                         f"with shape {tuple(ids.shape)}")
    check_positive(prefix_len=prefix_len, suffix_len=suffix_len, max_windows=max_windows,
                   batch_size=batch_size)
    window = prefix_len + suffix_len
    stride = window if stride is None else stride
    check_positive(stride=stride)
    if len(ids) < window:
        raise ValueError(f"source has {len(ids)} ids, fewer than one window of "
                         f"prefix_len + suffix_len = {window}")
    windows = ids.long().unfold(0, window, stride)  # (W, window): rows start 0, stride, ...
    if len(windows) > max_windows:
        rows = [i * len(windows) // max_windows for i in range(max_windows)]
        windows = windows[rows]
    device = _model_device(model)
    hits = 0
    for batch in windows.split(batch_size):
        batch = batch.to(device)
        generated = greedy_continue(model, batch[:, :prefix_len], suffix_len)
        suffix = batch[:, prefix_len:]
        recited = (generated == suffix).all(dim=1)
        if unk_id is not None:
            recited &= (suffix != unk_id).all(dim=1)
        hits += int(recited.sum())
    return hits / len(windows)
