"""Text generation: feed the prompt once, then one token at a time, carrying (h, c).

The write-up re-ran the whole padded sequence for every new word; an LSTM's state already
summarises everything it has read, so carrying it forward gives the same distribution at a
fraction of the cost (see bench/).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import Tensor

from lstm_core.text import tokenize
from lstm_core.vocab import PAD_ID, UNK_ID, UnknownWordsError, Vocabulary

MAX_NEW_TOKENS = 10_000  # a bound on one request; longer texts are better made in pieces


@dataclass
class SamplingConfig:
    max_new_tokens: int = 50  # how many tokens to generate after the prompt
    temperature: float = 0.0  # 0 = greedy (always the most likely token); higher = more random
    top_k: int | None = None  # sample only among the k most likely tokens
    top_p: float | None = None  # sample only among the most likely tokens whose mass reaches p
    seed: int | None = None  # seeds a torch.Generator so sampling is reproducible

    def __post_init__(self) -> None:
        if not isinstance(self.max_new_tokens, int) or not 0 <= self.max_new_tokens <= MAX_NEW_TOKENS:
            raise ValueError(
                f"length must be a whole number from 0 to {MAX_NEW_TOKENS}, got {self.max_new_tokens!r}")
        if not math.isfinite(self.temperature) or self.temperature < 0:
            raise ValueError(f"temperature must be a finite number >= 0, got {self.temperature}")
        if self.top_k is not None and self.top_k < 1:
            raise ValueError(f"top_k must be at least 1 (or unset), got {self.top_k}")
        if self.top_p is not None and not (0.0 < self.top_p <= 1.0):
            raise ValueError(f"top_p must be in (0, 1] (or unset), got {self.top_p}")


def encode_prompt(text: str, vocab: Vocabulary) -> list[int]:
    """Tokenize a prompt with the vocabulary's own scheme; unknown words raise, by name."""
    tokens = tokenize(text or "", vocab.scheme)
    if not tokens:
        raise ValueError("The prompt is empty: type at least one word from the training text.")
    unknown = vocab.unknown_words(tokens)
    if unknown:
        # Name every unknown word: the write-up silently dropped them.
        raise UnknownWordsError(unknown, hint="the model only knows words from its training text")
    return vocab.encode(tokens)


def filter_logits(logits: Tensor, top_k: int | None = None, top_p: float | None = None) -> Tensor:
    """Set to -inf every logit outside the top-k and outside the top-p nucleus. (B, V) -> (B, V)."""
    if (top_k is None or top_k >= logits.size(-1)) and (top_p is None or top_p >= 1.0):
        return logits  # nothing to filter (the common case, once per generated word)
    logits = logits.clone()
    if top_k is not None and top_k < logits.size(-1):
        kth_best = torch.topk(logits, top_k, dim=-1).values[:, -1:]  # (B, 1)
        logits[logits < kth_best] = -math.inf
    if top_p is not None and top_p < 1.0:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        cumulative = sorted_logits.softmax(-1).cumsum(-1)
        # Drop a token when the tokens ranked above it already reach top_p; the best token is
        # always kept because nothing ranks above it.
        drop_sorted = (cumulative - sorted_logits.softmax(-1)) >= top_p
        drop = drop_sorted.scatter(-1, order, drop_sorted)
        logits[drop] = -math.inf
    return logits


def pick_next(logits: Tensor, temperature: float, top_k: int | None = None,
              top_p: float | None = None, generator: torch.Generator | None = None) -> Tensor:
    """Choose the next token id for each row of ``logits`` (B, V). Returns (B,).

    Greedy (the most likely id) at temperature 0; otherwise a draw from the softmax of the
    logits divided by the temperature, top-k / top-p filtered.
    """
    logits = logits.to(torch.float64, copy=True)  # float64: 1e-300 is a temperature, not zero
    # The reserved ids are not words: never generate them.
    logits[:, PAD_ID] = -math.inf
    logits[:, UNK_ID] = -math.inf
    if temperature == 0:
        return logits.argmax(-1)  # greedy: the most likely word
    # Shift the best logit to 0 before dividing: every other logit becomes <= 0, so even a tiny
    # temperature gives -inf (probability 0) rather than inf - inf = nan, and the limit is greedy.
    logits = (logits - logits.max(-1, keepdim=True).values) / temperature
    probs = filter_logits(logits, top_k, top_p).softmax(-1)  # (B, V)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)  # (B,)


@torch.inference_mode()
def decode(model, idx: Tensor, steps: int, choose: Callable[[Tensor], Tensor]) -> Iterator[Tensor]:
    """The one decoding loop: read ``idx`` (B, T) once, then feed back one token at a time.

    ``choose(logits)`` turns the last position's logits (B, V) into the next ids (B,); each
    step's ids are yielded, (B,). The model runs in eval mode (no dropout), carrying its (h, c),
    and its training flag is restored afterwards.
    """
    was_training = model.training
    model.eval()
    try:
        state = None
        for _ in range(steps):
            logits, _, state = model(idx, state=state, last_only=True)  # (B, 1 or T, V)
            next_ids = choose(logits[:, -1])  # (B,)
            yield next_ids
            idx = next_ids.view(-1, 1).to(idx.device)  # from now on, one token at a time
    finally:
        model.train(was_training)


def stream_ids(model, prompt_ids: list[int], sampling: SamplingConfig) -> Iterator[int]:
    """Yield new token ids one by one as they are generated (the prompt is not repeated)."""
    if not prompt_ids:
        raise ValueError("The prompt is empty: give at least one token.")
    generator = None
    if sampling.seed is not None:
        generator = torch.Generator().manual_seed(sampling.seed)
    device = next(model.parameters()).device
    idx = torch.tensor([prompt_ids], device=device)  # (1, T): the whole prompt, once

    def choose(logits: Tensor) -> Tensor:
        return pick_next(logits.cpu(), sampling.temperature, sampling.top_k, sampling.top_p,
                         generator)

    for next_id in decode(model, idx, sampling.max_new_tokens, choose):
        yield int(next_id)


def generate_ids(model, prompt_ids: list[int], sampling: SamplingConfig) -> list[int]:
    """The prompt followed by the generated ids."""
    return list(prompt_ids) + list(stream_ids(model, prompt_ids, sampling))
