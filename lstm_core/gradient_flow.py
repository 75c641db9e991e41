"""How far back a gradient reaches: the vanishing gradient made visible.

For a passage x_1 .. x_T, take the loss of predicting the word after x_T and ask how strongly it
depends on each earlier input word: the norm of d loss_T / d e_t, where e_t is the word vector
fed in at step t. Plotted against the distance T - t, normalized to 1 at distance 0, it shows
how much of a word's influence survives the trip back through the recurrence. A plain RNN
multiplies the gradient by one tanh-and-matrix Jacobian per step, so its curve usually falls
off exponentially; the LSTM's cell state (c_t = f * c_{t-1} + ...) and the GRU's update
(h_t = ... + z * h_{t-1}) give it a gated shortcut instead.

Also here: ``equal_size_configs``/``equal_size_models``, the three cells at (nearly) the same
parameter count, so that they can be compared fairly.
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from torch import Tensor

from lstm_core.cells import CELLS
from lstm_core.model import LSTMLanguageModel, ModelConfig


def gradient_flow(model: LSTMLanguageModel, passage: Tensor | list[int]) -> dict[str, list[float]]:
    """Gradient of the last step's loss with respect to each earlier input word, by distance.

    passage: token ids (T + 1,), or (N, T + 1) for N passages: the first T are read, the last
    one is the target of the loss. Returns ``{"distance": [0, .., T-1], "grad_norm": [...]}``
    with grad_norm[d] = |d loss / d e_{T-d}| / |d loss / d e_T| (so grad_norm[0] == 1). With
    several passages the normalized curves are averaged in log space (a geometric mean), since
    they span orders of magnitude. Runs in eval mode (no dropout); the parameters are untouched.
    """
    ids = torch.as_tensor(passage, dtype=torch.long, device=model.embedding.device)
    ids = ids.unsqueeze(0) if ids.dim() == 1 else ids
    if ids.dim() != 2 or ids.size(1) < 2:
        raise ValueError(f"passage must be (T + 1,) or (N, T + 1) ids with T >= 1, got {tuple(ids.shape)}")
    inputs, targets = ids[:, :-1], ids[:, -1]  # (N, T), (N,)
    norms = _input_gradient_norms(model, inputs, targets)  # (N, T), position t
    relative = norms / norms[:, -1:].clamp_min(torch.finfo(norms.dtype).tiny)
    curve = relative.clamp_min(torch.finfo(norms.dtype).tiny).log().mean(0).exp()
    curve = curve.flip(0)  # position T-1-d -> distance d
    return {"distance": list(range(inputs.size(1))), "grad_norm": curve.tolist()}


def _input_gradient_norms(model: LSTMLanguageModel, inputs: Tensor, targets: Tensor) -> Tensor:
    """|d loss / d e_t| for every row and position of ``inputs`` (N, T)."""
    N, T = inputs.shape
    V = model.config.vocab_size
    # The gradient is wanted per *position*, but a word that occurs twice shares one embedding
    # row. So give every position a row of its own: append a copy of its word's vector to the
    # embedding matrix, read the passage as those new ids (V, V+1, ...), and run the model with
    # that matrix in place of its own (functional_call leaves the model's parameters alone).
    # The output layer then scores V + N*T words; only the first V are real, so the loss uses
    # those (with tied weights the copies would otherwise also act as output rows).
    copies = model.embedding[inputs.reshape(-1)].detach().requires_grad_(True)  # (N*T, E)
    params = {"embedding": torch.cat([model.embedding.detach(), copies])}
    if model.out_weight is None:  # tied: the output layer grows with the matrix, so its bias too
        params["out_bias"] = torch.cat([model.out_bias.detach(), copies.new_zeros(N * T)])
    positions = V + torch.arange(N * T, device=inputs.device).view(N, T)
    was_training = model.training
    model.eval()
    try:
        logits, _, _ = torch.func.functional_call(model, params, (positions,),
                                                  {"last_only": True}, strict=False)
    finally:
        model.train(was_training)
    # Rows are independent, so the sum of their losses gives each row its own gradient.
    loss = F.cross_entropy(logits[:, -1, :V], targets, reduction="sum")
    (grad,) = torch.autograd.grad(loss, copies)
    return grad.view(N, T, -1).norm(dim=-1)


def at_distances(flow: dict[str, list[float]], distances: tuple[int, ...]) -> dict[int, float]:
    """The curve's value at a few distances (those the passage is long enough for)."""
    return {d: flow["grad_norm"][d] for d in distances if d < len(flow["grad_norm"])}


# ----------------------------------------------------------------------------------------------
# The three cells at equal size


def equal_size_configs(base: ModelConfig, cells: tuple[str, ...] = CELLS) -> dict[str, ModelConfig]:
    """One config per cell, each with the hidden size whose parameter count is closest to
    ``base``'s (``LSTMLanguageModel.num_parameters``). With tied weights the embedding size
    moves with the hidden size (tying needs them equal); otherwise only the hidden size moves.
    """
    target = _count(base)
    return {cell: _closest_size(dataclasses.replace(base, cell=cell), target) for cell in cells}


def equal_size_models(base: ModelConfig, cells: tuple[str, ...] = CELLS,
                      seed: int = 0) -> dict[str, LSTMLanguageModel]:
    """Untrained models of each cell at equal parameter count, for the same vocabulary."""
    models = {}
    for cell, config in equal_size_configs(base, cells).items():
        torch.manual_seed(seed)
        models[cell] = LSTMLanguageModel(config)
    return models


def _count(config: ModelConfig) -> int:
    with torch.device("meta"):  # shapes only: no memory, no initialization work
        return LSTMLanguageModel(config).num_parameters()


def _resized(config: ModelConfig, hidden: int) -> ModelConfig:
    embed = hidden if config.tie_weights else config.embed_dim
    return dataclasses.replace(config, hidden_size=hidden, embed_dim=embed)


def _closest_size(config: ModelConfig, target: int) -> ModelConfig:
    """Binary search on the hidden size: the count grows with it."""
    low, high = 1, 16 * config.hidden_size
    while low < high:
        mid = (low + high) // 2
        if _count(_resized(config, mid)) < target:
            low = mid + 1
        else:
            high = mid
    below = _resized(config, max(low - 1, 1))
    above = _resized(config, low)
    return min((above, below), key=lambda c: abs(_count(c) - target))
