"""Canaries: a random secret planted in the training text, and how well the model learned it.

Carlini et al. 2019, "The Secret Sharer" (arXiv 1802.08232), measure unintended memorization
by planting a *canary*, a fixed prefix of ordinary words followed by a random secret (here d
digits, each digit a word: "my secret number is 4 7 1 9 3 2"), some number of times in the
training text. Afterwards every possible secret of that format, the space R of all 10^d digit
strings, is scored by the model's loss given the prefix, and the canary's **rank** among them
(1 = the model finds it the likeliest) gives its **exposure**::

    exposure = log2 |R| - log2 rank        (bits; from 0 up to log2 |R|)

Exposure log2 |R| (about 20 bits for six digits) means the model ranks the real secret first
of a million: it has learned it. A model that never saw the canary ranks it somewhere in the
middle, an exposure of about one bit.

Up to ``MAX_EXACT_DIGITS`` digits the rank is exact: ``exact_exposure`` walks the tree of digit
strings with batched LSTM states, so each candidate's loss is one sum along a path from the
root and no prefix is read twice. Above that ``estimated_exposure`` scores a uniform sample of
candidates and fits a skew-normal distribution to their losses (the paper's estimate by
distribution modeling, Section 4.3): exposure = -log2 P(loss <= the canary's loss).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from lstm_core.text import PARAGRAPH
from lstm_core.vocab import Vocabulary

DIGITS = tuple("0123456789")  # each digit is one word of the secret
PREFIX = ("my", "secret", "number", "is")  # ordinary words, the same in every run
MAX_EXACT_DIGITS = 6  # 10^6 candidates walked exactly; longer secrets are estimated
MAX_DIGITS = 30  # a bound on the format (10^30 candidates are only ever sampled)
MAX_REPEATS = 10_000  # a bound on the copies planted
CHUNK_ROWS = 4096  # candidates whose next-word logits are computed at once (memory: rows x V)
# The exposure at each evaluation reads at most this many rows (words): about the cost of
# validating 8,192 held-out tokens. Past it the rank is estimated from as many sampled words.
EVAL_BUDGET_ROWS = 12_000
MIN_BELOW = 20  # sampled candidates below the secret needed to count its share (else fit)
BOUND_MARGIN = 1e-3  # nats: the walk keeps branches this far above the secret's loss (rounding)


@dataclass(frozen=True)
class Canary:
    """A canary's words: the fixed prefix, then the secret digits."""

    prefix: tuple[str, ...]
    secret: tuple[str, ...]

    @property
    def words(self) -> tuple[str, ...]:
        return self.prefix + self.secret

    @property
    def text(self) -> str:
        """The canary as it reads in the training text (both tokenizers split it on spaces)."""
        return " ".join(self.words)

    @property
    def space(self) -> int:
        """|R|: how many secrets of this format there are."""
        return 10 ** len(self.secret)


@dataclass(frozen=True)
class Exposure:
    """The canary's rank among all |R| candidates and its exposure in bits."""

    bits: float  # log2 |R| - log2 rank
    rank: float  # 1 = the likeliest candidate (estimated: |R| x the fitted probability)
    space: int  # |R|
    exact: bool  # walked every candidate (True) or fitted to a sample (False)


def make_canary(digits: int, seed: int, prefix: tuple[str, ...] = PREFIX) -> Canary:
    """The canary of ``digits`` random digits drawn from its own generator (``seed``), so the
    secret depends on nothing else: not the text, the repetitions or the training seed."""
    if not isinstance(digits, int) or not 1 <= digits <= MAX_DIGITS:
        raise ValueError(f"canary digits must be a whole number from 1 to {MAX_DIGITS}, got {digits!r}")
    generator = torch.Generator().manual_seed(seed)
    drawn = torch.randint(0, 10, (digits,), generator=generator).tolist()
    return Canary(tuple(prefix), tuple(DIGITS[d] for d in drawn))


def plant(tokens: list[str], canary: Canary, repeats: int, seed: int) -> list[str]:
    """``tokens`` with ``repeats`` copies of the canary, each its own paragraph, inserted at
    paragraph starts drawn at random (a generator of its own, ``seed``).

    Give it only the training part: the held-out tail must stay text the model never saw.
    A place may be drawn twice; its copies then stand one after the other.
    """
    if not isinstance(repeats, int) or not 0 <= repeats <= MAX_REPEATS:
        raise ValueError(f"canary repeats must be a whole number from 0 to {MAX_REPEATS}, got {repeats!r}")
    if repeats == 0:
        return list(tokens)
    starts = [0] + [i + 1 for i, token in enumerate(tokens) if token == PARAGRAPH]
    generator = torch.Generator().manual_seed(seed + 1)  # not the digits' stream
    picks = torch.randint(0, len(starts), (repeats,), generator=generator).tolist()
    copies = dict.fromkeys(starts, 0)
    for pick in picks:
        copies[starts[pick]] += 1
    planted: list[str] = []
    for i, token in enumerate(tokens):
        for _ in range(copies.get(i, 0)):
            planted.extend([*canary.words, PARAGRAPH])
        planted.append(token)
    return planted


def with_words(vocab: Vocabulary, words) -> Vocabulary:
    """``vocab`` holding ``words`` too, so every candidate secret can be scored: a digit the
    text never shows (or a word the cap or min_count left out) is appended with count 1
    (a vocabulary counts every word at least once)."""
    missing = [w for w in dict.fromkeys(words) if w not in vocab]
    if not missing:
        return vocab
    return Vocabulary(vocab.words + missing, vocab.counts + [1] * len(missing), vocab.scheme)


def canary_ids(canary: Canary, vocab: Vocabulary) -> tuple[list[int], list[int], list[int]]:
    """(context, digit ids, secret): the ids the model reads before the secret (a paragraph
    break, when the vocabulary has one, then the prefix), of the ten digits, of the secret."""
    context = [vocab.token_to_id(PARAGRAPH)] if PARAGRAPH in vocab else []
    context += [vocab.token_to_id(w) for w in canary.prefix]
    return (context, [vocab.token_to_id(d) for d in DIGITS],
            [vocab.token_to_id(d) for d in canary.secret])


# ----------------------------------------------------------------------------------------------
# Scoring candidates


def _read(model, ids: Tensor, state=None):
    """Logits after the last position of ``ids`` (B, T) -> (B, V), and the new state."""
    logits, _, state = model(ids, state=state, last_only=True)
    return logits[:, -1].float(), state


def _digit_losses(model, ids: Tensor, state, digit_ids: Tensor):
    """Read one word per row, ``ids`` (N,), from ``state``, in chunks of CHUNK_ROWS rows:
    each row's loss for each next digit, -log p (N, 10), and the new state."""
    losses, states = [], []
    for rows in torch.arange(len(ids), device=ids.device).split(CHUNK_ROWS):
        logits, new = _read(model, ids[rows, None], tuple(s[:, rows] for s in state))
        losses.append(-F.log_softmax(logits, -1)[:, digit_ids])
        states.append(new)
    return torch.cat(losses), tuple(torch.cat(parts, dim=1) for parts in zip(*states, strict=True))


def _walk(model, losses: Tensor, state, digits: int, digit_ids: Tensor, bound: float,
          max_rows: float) -> tuple[Tensor, Tensor] | None:
    """Walk the digit tree one level (one digit) at a time, from the root whose next-digit
    ``losses`` (1, 10) and ``state`` are given. Returns (codes, losses) of the strings whose
    loss stays below ``bound``, codes being their digits as numbers, in numeric order; None
    when the walk would read more than ``max_rows`` rows.

    A digit only adds loss (-log p >= 0), so a string whose loss reaches ``bound`` has none
    below it under the bound: it is dropped with all its branch.
    """
    codes = torch.zeros(1, dtype=torch.long, device=losses.device)
    totals = losses.new_zeros(1)
    read = 0
    for level in range(digits):
        totals = (totals[:, None] + losses).reshape(-1)  # (N * 10,): each node's ten children
        codes = (codes[:, None] * 10 + torch.arange(10, device=codes.device)).reshape(-1)
        keep = (totals < bound).nonzero()[:, 0]
        codes, totals = codes[keep], totals[keep]
        if level == digits - 1:
            return codes, totals
        read += len(codes)
        if read > max_rows:
            return None
        state = tuple(s[:, keep // 10] for s in state)  # each child starts from its parent's
        losses, state = _digit_losses(model, digit_ids[codes % 10], state, digit_ids)
    raise AssertionError("unreachable: the last level returns")


@torch.inference_mode()
def candidate_losses(model, context: list[int], digit_ids: list[int], digits: int,
                     bound: float = math.inf, max_rows: float = math.inf):
    """Every secret of ``digits`` digits after ``context`` whose loss (summed negative
    log-likelihood, nats) is below ``bound``: (their digits as numbers, their losses), or None
    when that takes reading more than ``max_rows`` rows. With no bound all 10^digits, in
    numeric order: entry k is the secret that spells k.

    The context's own loss is the same for every candidate, so it is left out: it would shift
    all losses alike and change no rank.
    """
    if not 1 <= digits <= MAX_EXACT_DIGITS:
        raise ValueError(f"exact scoring walks at most {MAX_EXACT_DIGITS} digits, got {digits}")
    was_training = model.training
    model.eval()
    try:
        device = next(model.parameters()).device
        logits, state = _read(model, torch.tensor([context], device=device))
        ids = torch.tensor(digit_ids, device=device)
        found = _walk(model, -F.log_softmax(logits, -1)[:, ids], state, digits, ids, bound,
                      max_rows)
        return None if found is None else (found[0].cpu(), found[1].cpu())
    finally:
        model.train(was_training)


@torch.inference_mode()
def sequence_losses(model, context: list[int], secrets: Tensor) -> Tensor:
    """The loss of each row of ``secrets`` (N, d) of ids after ``context``: (N,), in nats.
    The plain way (each secret read whole), for samples and for checking the walk."""
    was_training = model.training
    model.eval()
    try:
        device = next(model.parameters()).device
        first, state = _read(model, torch.tensor([context], device=device))
        first = F.log_softmax(first, -1)[0]  # (V,): the first digit's log-probabilities
        out = []
        for rows in secrets.to(device).split(CHUNK_ROWS):
            loss = -first[rows[:, 0]]
            if rows.size(1) > 1:  # read digits 1..d-1, scoring digits 2..d
                start = tuple(s.expand(-1, rows.size(0), -1).contiguous() for s in state)
                logits, _, _ = model(rows[:, :-1], state=start)
                logp = F.log_softmax(logits.float(), -1).gather(-1, rows[:, 1:, None])
                loss = loss - logp.squeeze(-1).sum(1)
            out.append(loss.cpu())
        return torch.cat(out)
    finally:
        model.train(was_training)


def rank_of(losses: Tensor, target: float) -> int:
    """1 + the number of candidates with a lower loss than ``target``."""
    return 1 + int((losses < target).sum())


def exposure_from_rank(rank: float, space: int) -> float:
    return math.log2(space) - math.log2(rank)


def _secret_number(secret: list[int], digit_ids: list[int]) -> int:
    return int("".join(str(digit_ids.index(i)) for i in secret))


def exact_exposure(model, context: list[int], digit_ids: list[int], secret: list[int],
                   max_rows: float = math.inf) -> Exposure | None:
    """The secret's rank among every candidate, counted exactly; None when the walk would
    read more than ``max_rows`` rows.

    Only candidates that could rank above the secret are scored: the walk drops every branch
    whose loss already reaches the secret's (plus a margin for rounding), so a well-learned
    secret costs a fraction of the 10^d candidates.
    """
    space = 10 ** len(secret)
    own = sequence_losses(model, context, torch.tensor([secret]))[0].item()
    found = candidate_losses(model, context, digit_ids, len(secret), own + BOUND_MARGIN, max_rows)
    if found is None:
        return None
    codes, losses = found
    where = (codes == _secret_number(secret, digit_ids)).nonzero()
    assert len(where) == 1, "the walk lost the secret's own branch"
    rank = rank_of(losses, losses[where[0, 0]].item())  # its loss as the walk summed it
    return Exposure(exposure_from_rank(rank, space), float(rank), space, True)


# ----------------------------------------------------------------------------------------------
# Estimating the rank from a sample (secrets too long to walk)


def skew_normal_fit(samples: Tensor) -> tuple[float, float, float]:
    """(location, scale, shape) of the skew-normal distribution with the sample's mean,
    variance and skewness (the method of moments; |skewness| is capped just below the
    distribution's largest, 0.995)."""
    x = samples.double()
    mean, std = x.mean(), x.std()
    if std.item() == 0:
        return mean.item(), 0.0, 0.0
    skew = (((x - mean) / std) ** 3).mean().clamp(-0.99, 0.99)
    a = skew.abs() ** (2 / 3)
    delta = torch.sign(skew) * torch.sqrt(math.pi / 2 * a / (a + ((4 - math.pi) / 2) ** (2 / 3)))
    scale = std / torch.sqrt(1 - 2 * delta**2 / math.pi)
    location = mean - scale * delta * math.sqrt(2 / math.pi)
    return location.item(), scale.item(), (delta / torch.sqrt(1 - delta**2)).item()


def skew_normal_log_cdf(x: float, location: float, scale: float, shape: float) -> float:
    """log P(X <= x) for a skew-normal X, integrated numerically in log space, so a canary
    far below every sample (a probability of 1e-30) still gets its figure."""
    if scale == 0:
        return 0.0 if x >= location else -math.inf
    z = (x - location) / scale
    t = torch.linspace(z - 40.0, z, 8001, dtype=torch.float64)  # the density is nil below
    # density of the standardized variable: 2 phi(t) Phi(shape t)
    log_pdf = (math.log(2) - 0.5 * t**2 - 0.5 * math.log(2 * math.pi)
               + torch.special.log_ndtr(shape * t))
    step = (t[1] - t[0]).item()
    return min(0.0, (torch.logsumexp(log_pdf, 0) + math.log(step)).item())


def estimated_exposure(model, context: list[int], digit_ids: list[int], secret: list[int],
                       samples: int = 4000, seed: int = 0) -> Exposure:
    """The exposure from ``samples`` candidates drawn uniformly: -log2 of the share of them
    with a lower loss than the secret (the paper's sampling estimate) while at least
    MIN_BELOW are lower; past that the share is too small to count, and a skew-normal fitted
    to their losses gives it. Kept between 0 and log2 |R| (a rank of at least 1)."""
    generator = torch.Generator().manual_seed(seed)
    drawn = torch.randint(0, 10, (samples, len(secret)), generator=generator)
    ids = torch.tensor(digit_ids)[drawn]  # (samples, d)
    losses = sequence_losses(model, context, torch.cat([torch.tensor([secret]), ids]))
    own, losses = losses[0].item(), losses[1:]
    below = int((losses < own).sum())
    if below >= MIN_BELOW:
        log_p = math.log(below / samples)
    else:
        log_p = skew_normal_log_cdf(own, *skew_normal_fit(losses))
    space = 10 ** len(secret)
    bits = min(max(-log_p / math.log(2), 0.0), math.log2(space))
    return Exposure(bits, 2 ** (math.log2(space) - bits), space, False)


def exposure(model, context: list[int], digit_ids: list[int], secret: list[int],
             max_rows: float = math.inf) -> Exposure:
    """Exact up to MAX_EXACT_DIGITS digits when the walk reads at most ``max_rows`` rows;
    otherwise estimated from max_rows / d sampled candidates (the same work)."""
    if len(secret) <= MAX_EXACT_DIGITS:
        found = exact_exposure(model, context, digit_ids, secret, max_rows)
        if found is not None:
            return found
    samples = 4000 if math.isinf(max_rows) else max(int(max_rows) // len(secret), 100)
    return estimated_exposure(model, context, digit_ids, secret, samples)


@torch.inference_mode()
def extracted(model, context: list[int], secret: list[int]) -> bool:
    """Whether greedy decoding after the context writes the secret, digit for digit."""
    was_training = model.training
    model.eval()
    try:
        device = next(model.parameters()).device
        ids, state, out = torch.tensor([context], device=device), None, []
        for _ in secret:
            logits, state = _read(model, ids, state)
            ids = logits.argmax(-1, keepdim=True)  # (1, 1)
            out.append(int(ids))
        return out == list(secret)
    finally:
        model.train(was_training)
