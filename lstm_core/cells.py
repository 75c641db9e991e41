"""Two simpler recurrent cells beside the LSTM: a plain tanh RNN and a GRU.

They are written the same way as ``lstm_layer`` in model.py: the input's share of every step
computed in one matmul, then a loop over time that adds the recurrent part and applies the
equations. The weights follow PyTorch's layout, so ``nn.RNN`` and ``nn.GRU`` holding copies of
them compute the same numbers (tests/test_cells.py checks it, forwards and backwards):

    plain RNN:  h_t = tanh(x_t W_ih^T + b + h_{t-1} W_hh^T)

    GRU:        r_t = sigmoid(x_t W_ir^T + b_r + h_{t-1} W_hr^T)            reset gate
                z_t = sigmoid(x_t W_iz^T + b_z + h_{t-1} W_hz^T)            update gate
                n_t = tanh(x_t W_in^T + b_in + r_t * (h_{t-1} W_hn^T + b_hn))  candidate
                h_t = (1 - z_t) * n_t + z_t * h_{t-1}

Neither has a cell state: their whole state is h. The plain RNN squeezes h through tanh and a
matrix at every step, so a gradient travelling back k steps is multiplied by k such Jacobians
and usually fades (or blows up). The GRU's ``z * h_{t-1}`` term is a gated shortcut, like the
LSTM's ``f * c_{t-1}``: where z is near 1, h (and its gradient) passes through almost unchanged.

Shapes: B = batch, T = time steps, In = input size, H = hidden size.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

CELLS = ("lstm", "gru", "rnn")
# How many H-row blocks each cell stacks in weight_ih / weight_hh / bias.
GATE_BLOCKS = {"lstm": 4, "gru": 3, "rnn": 1}
# What ``LSTMLanguageModel.inspect`` returns for each cell, in the order of the equations.
RECORDED = {
    "lstm": ("input", "forget", "candidate", "output", "cell", "hidden"),
    "gru": ("reset", "update", "candidate", "hidden"),
    "rnn": ("hidden",),
}
TORCH_MODULES = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}  # nn.RNN's default is tanh


def rnn_layer(
    x: Tensor, h: Tensor, weight_ih: Tensor, weight_hh: Tensor, bias: Tensor,
    record: dict[str, list[Tensor]] | None = None,
) -> tuple[Tensor, Tensor]:
    """Run one plain tanh RNN layer over ``x`` (B, T, In) from ``h`` (B, H).

    weight_ih (H, In), weight_hh (H, H), bias (H,). Returns all hidden states (B, T, H) and
    the final h. One bias is enough: nn.RNN's b_ih and b_hh are only ever added together.
    """
    x_proj = x @ weight_ih.T + bias  # (B, T, H): the input's share of every step at once
    outputs = []
    for x_t in x_proj.unbind(1):  # x_t: (B, H)
        h = torch.tanh(x_t + h @ weight_hh.T)  # h_t = tanh(x_t W_ih^T + b + h_{t-1} W_hh^T)
        outputs.append(h)
        if record is not None:
            record["hidden"].append(h.detach())
    return torch.stack(outputs, dim=1), h


def gru_layer(
    x: Tensor, h: Tensor, weight_ih: Tensor, weight_hh: Tensor, bias: Tensor, bias_hn: Tensor,
    record: dict[str, list[Tensor]] | None = None,
) -> tuple[Tensor, Tensor]:
    """Run one GRU layer over ``x`` (B, T, In) from ``h`` (B, H).

    The weights stack the three blocks in PyTorch's order: reset r, update z, candidate n.
    weight_ih (3H, In), weight_hh (3H, H), bias (3H,): the input-side biases, with nn.GRU's
    recurrent biases of r and z folded in (they are only ever added); bias_hn (H,): the
    candidate's recurrent bias, which sits inside ``r * (...)`` and so cannot be folded.
    Returns all hidden states (B, T, H) and the final h.
    """
    x_gates = x @ weight_ih.T + bias  # (B, T, 3H)
    outputs = []
    for x_t in x_gates.unbind(1):  # x_t: (B, 3H)
        x_r, x_z, x_n = x_t.chunk(3, dim=1)  # each (B, H)
        h_r, h_z, h_n = (h @ weight_hh.T).chunk(3, dim=1)  # one recurrent matmul, (B, H) each
        r = torch.sigmoid(x_r + h_r)  # reset gate: how much of h the candidate may look at
        z = torch.sigmoid(x_z + h_z)  # update gate: how much of the old h to keep
        n = torch.tanh(x_n + r * (h_n + bias_hn))  # candidate new h
        h = (1 - z) * n + z * h  # h_t = (1 - z_t) * n_t + z_t * h_{t-1}
        outputs.append(h)
        if record is not None:
            for name, value in (("reset", r), ("update", z), ("candidate", n), ("hidden", h)):
                record[name].append(value.detach())
    return torch.stack(outputs, dim=1), h

