"""The AWD-LSTM regularizers (Merity et al. 2017), each a few lines on an open cell.

Every dropout here is a *mask*: a tensor of 0s and 1 / (1 - p)s, drawn once and multiplied
into something. Where the mask is drawn decides what the model can no longer rely on:

- ``locked_dropout``: one mask per sequence for a (B, T, D) tensor, shape (B, 1, D), so the same
  units are dropped at every time step (variational dropout, Gal & Ghahramani 2016). A fresh
  mask per step lets the recurrence average the noise away; a locked one removes a unit from
  the whole sentence.
- ``embedding_dropout``: one mask per word of the vocabulary, shape (V, 1): a dropped word's
  whole vector is zero wherever it occurs in the batch, so the model must predict from context.
- ``weight_drop``: DropConnect on the hidden-to-hidden matrix W_hh, one mask per forward call,
  the same at every time step: the recurrence itself is thinned, not the activations, and the
  masked matrix is simply passed to the cell (the hand-written backward needs no change).
- ``activation_penalty`` (AR) and ``temporal_activation_penalty`` (TAR): L2 penalties on the
  size of the top layer's h and on how much it changes from one step to the next.

All masks draw from torch's global generator, so seeding it makes them reproducible; every
function returns its input unchanged when p == 0 (and the model calls none in eval mode).
"""

from __future__ import annotations

from torch import Tensor


def dropout_mask(like: Tensor, shape: tuple[int, ...], p: float) -> Tensor:
    """A mask of the given shape: 0 with probability p, else 1 / (1 - p) (so E[mask] = 1)."""
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout probability must be in [0, 1), got {p}")
    return like.new_empty(shape).bernoulli_(1.0 - p).div_(1.0 - p)


def locked_dropout(x: Tensor, p: float) -> Tensor:
    """x (B, T, D) * m (B, 1, D): the same units dropped at every time step of a sequence."""
    if p == 0.0:
        return x
    B, _, D = x.shape
    return x * dropout_mask(x, (B, 1, D), p)


def embedding_dropout(embedding: Tensor, p: float) -> Tensor:
    """E (V, E) * m (V, 1): whole words dropped; use the result for the input lookup only."""
    if p == 0.0:
        return embedding
    return embedding * dropout_mask(embedding, (embedding.size(0), 1), p)


def weight_drop(weight_hh: Tensor, p: float) -> Tensor:
    """W_hh (4H, H) * M (4H, H): DropConnect, one mask for every step of this forward call.

    The gates become z_t = x_t W_ih^T + b + h_{t-1} (W_hh * M)^T: each recurrent connection is
    either present for the whole sequence or absent for the whole sequence.
    """
    if p == 0.0:
        return weight_hh
    return weight_hh * dropout_mask(weight_hh, tuple(weight_hh.shape), p)


def activation_penalty(h: Tensor, alpha: float) -> Tensor:
    """AR: alpha * mean(h_t^2) over (B, T, H); keeps activations small, so no single unit
    can carry a sharp, word-specific code. AWD-LSTM applies it to the dropped-out output."""
    return alpha * h.pow(2).mean()


def temporal_activation_penalty(h: Tensor, beta: float) -> Tensor:
    """TAR: beta * mean((h_t - h_{t-1})^2) over (B, T-1, H); a smooth hidden state cannot jump to
    a new, memorized pattern at every word. AWD-LSTM applies it to the output before dropout."""
    if h.size(1) < 2:
        return h.new_zeros(())
    return beta * (h[:, 1:] - h[:, :-1]).pow(2).mean()
