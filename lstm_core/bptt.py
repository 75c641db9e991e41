"""The same LSTM layer with its backward pass written by hand (backpropagation through time).

``lstm_layer`` in model.py lets autograd record every small operation of every step and replay
them backwards. That is easy to read but slow on a CPU: dozens of tiny kernels and saved
tensors per step. Here the forward pass saves only the four gate activations, the cell state
and its tanh at each step, and the backward pass applies the chain rule to the LSTM equations
directly, one step at a time from the end:

    forward:  z = x_t W_ih^T + b + h W_hh^T       i, f, o = sigmoid(z_i, z_f, z_o); g = tanh(z_g)
              c_t = f * c_{t-1} + i * g           h_t = o * tanh(c_t)
    backward: dc  = dc_{t+1} + dh * o * (1 - tanh(c_t)^2)
              do  = dh * tanh(c_t)                 di = dc * g       dg = dc * i
              df  = dc * c_{t-1}                   dc_t-1 = dc * f
              dz  = [di * i(1-i), df * f(1-f), dg * (1-g^2), do * o(1-o)]
              dh_{t-1} = dz W_hh                   dW_hh = sum_t dz_t^T h_{t-1}

The input projection ``x W_ih^T + b`` is one matmul over all steps, forwards and backwards.
Everything is laid out time-major, (T, B, ...), so each step reads and writes one contiguous
block. tests/test_model.py checks this against ``lstm_layer`` and torch.nn.LSTM, and gradcheck
checks the backward pass against finite differences.
"""

from __future__ import annotations

import torch
from torch import Tensor


def _tanh_(x: Tensor) -> Tensor:
    """tanh in place, as 2 * sigmoid(2x) - 1: the same function, and on a CPU PyTorch's sigmoid
    kernel plus two scalings beats its tanh kernel on these strided (B, H) blocks."""
    return x.mul_(2).sigmoid_().mul_(2).sub_(1)


def _local_derivatives(gates: Tensor, cells: Tensor, tanh_cells: Tensor, c0: Tensor):
    """Everything in the backward pass that does not depend on the incoming gradient, for all
    steps at once, in a few large in-place operations before the sequential loop:

        local[t] = [g i(1-i), c_{t-1} f(1-f), i (1-g^2), tanh(c_t) o(1-o)]     (T, B, 4H)
        dc_from_h[t] = o (1 - tanh(c_t)^2), the path from h_t back to c_t      (T, B, H)

    so that inside the loop dz_t = [dc, dc, dc, dh] * local[t].
    """
    i, f, g, o = gates.chunk(4, dim=2)  # each (T, B, H)
    local = torch.empty_like(gates)  # filled block by block, in place, without temporaries
    local_i, local_f, local_g, local_o = local.chunk(4, dim=2)
    torch.mul(i, 1 - i, out=local_i).mul_(g)  # g i (1 - i)
    torch.mul(f, 1 - f, out=local_f)  # f (1 - f), times c_{t-1}:
    local_f[1:].mul_(cells[:-1])
    local_f[0].mul_(c0)
    torch.mul(g, g, out=local_g).neg_().add_(1).mul_(i)  # i (1 - g^2)
    torch.mul(o, 1 - o, out=local_o).mul_(tanh_cells)  # tanh(c_t) o (1 - o)
    dc_from_h = torch.mul(tanh_cells, tanh_cells).neg_().add_(1).mul_(o)
    return local, dc_from_h


class LSTMFunction(torch.autograd.Function):
    """(x (T, B, E), h0, c0 (B, H), weight_ih (4H, E), weight_hh (4H, H), bias (4H,))
    -> (hs (T, B, H), h (B, H), c (B, H))."""

    @staticmethod
    def forward(ctx, x: Tensor, h0: Tensor, c0: Tensor, weight_ih: Tensor, weight_hh: Tensor,
                bias: Tensor):
        T, B, E = x.shape
        H = weight_hh.size(1)
        # The input's share of every step's gates in one matmul, bias included. gates[t] is a
        # contiguous (B, 4H) block that step t then finishes in place: a step allocates nothing.
        gates = torch.addmm(bias, x.reshape(T * B, E), weight_ih.t()).view(T, B, 4 * H)
        cells = x.new_empty(T, B, H)  # c_t
        tanh_cells = x.new_empty(T, B, H)  # tanh(c_t), kept for the backward pass
        hs = x.new_empty(T, B, H)  # h_t
        h, c = h0, c0
        weight_hh_t = weight_hh.t()
        for t in range(T):
            z = gates[t]
            z.addmm_(h, weight_hh_t)  # z = x_t W_ih^T + b + h W_hh^T
            z[:, : 2 * H].sigmoid_()  # input and forget gates
            _tanh_(z[:, 2 * H : 3 * H])  # candidate
            z[:, 3 * H :].sigmoid_()  # output gate
            i, f, g, o = z.chunk(4, dim=1)
            c = torch.mul(f, c, out=cells[t]).addcmul_(i, g)  # c_t = f * c_{t-1} + i * g
            tanh_c = _tanh_(torch.mul(c, 1.0, out=tanh_cells[t]))
            h = torch.mul(o, tanh_c, out=hs[t])  # h_t = o * tanh(c_t)
        ctx.save_for_backward(x, gates, cells, tanh_cells, hs, h0, c0, weight_ih, weight_hh)
        return hs, h.clone(), c.clone()

    @staticmethod
    def backward(ctx, grad_hs: Tensor, grad_h: Tensor, grad_c: Tensor):
        x, gates, cells, tanh_cells, hs, h0, c0, weight_ih, weight_hh = ctx.saved_tensors
        T, B, H = cells.shape
        if grad_hs is None:
            grad_hs = torch.zeros_like(hs)
        local, dc_from_h = _local_derivatives(gates, cells, tanh_cells, c0)
        f = gates[:, :, H : 2 * H].contiguous()  # the forget gate, (T, B, H)

        dz = torch.empty_like(gates)  # (T, B, 4H): gradient of each step's pre-activations
        dh = grad_h.clone() if grad_h is not None else torch.zeros_like(h0)
        dc = grad_c.clone() if grad_c is not None else torch.zeros_like(c0)
        for t in range(T - 1, -1, -1):
            dh += grad_hs[t]  # from the output at t, and from step t+1 (via dh)
            dc.addcmul_(dh, dc_from_h[t])  # from c_{t+1} (via dc), and through h_t
            dz_t, local_t = dz[t], local[t]
            # The first three blocks (i, f, g) scale dc; the output gate's block scales dh.
            torch.mul(local_t[:, : 3 * H].view(B, 3, H), dc.unsqueeze(1),
                      out=dz_t[:, : 3 * H].view(B, 3, H))
            torch.mul(local_t[:, 3 * H :], dh, out=dz_t[:, 3 * H :])
            dc.mul_(f[t])  # to c_{t-1}
            dh = dz_t @ weight_hh  # to h_{t-1}
        # All steps at once: the weight gradients sum over steps, dW = sum_t dz_t^T (input at t).
        dz_flat = dz.view(T * B, 4 * H)
        # h_{t-1} is h0 for the first step and hs[t-1] after it.
        grad_weight_hh = dz[0].t() @ h0
        if T > 1:
            grad_weight_hh.addmm_(dz[1:].reshape(-1, 4 * H).t(), hs[:-1].reshape(-1, H))
        grad_weight_ih = dz_flat.t() @ x.reshape(T * B, -1)
        grad_x = (dz_flat @ weight_ih).view_as(x)
        return grad_x, dh, dc, grad_weight_ih, grad_weight_hh, dz_flat.sum(0)


def lstm_layer_bptt(x: Tensor, h: Tensor, c: Tensor, weight_ih: Tensor, weight_hh: Tensor,
                    bias: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Drop-in replacement for model.lstm_layer (batch-major in and out) with the hand-written
    backward pass."""
    hs, h, c = LSTMFunction.apply(x.transpose(0, 1).contiguous(), h, c, weight_ih, weight_hh, bias)
    return hs.transpose(0, 1), h, c
