"""The write-up's method, re-implemented as a baseline for benchmarks. Not used by the project.

This module reproduces, for measurement only, the code of the blog post the project follows
("LSTM From Scratch", Agrim Paneru, 2025; see /work/shared/seed/lstm-from-scratch-writeup.md).
It is written afresh but keeps the post's behaviour, including the parts the project changed,
because those are what the benchmarks compare against:

- four separate gate matrices ``Wf``, ``Wi``, ``Wc``, ``Wo``, each applied to ``cat([x_t, h_t])``,
  so every time step does four small matmuls and a concatenation;
- the input is sliced per step with ``x[:, t, :]`` (the backward pass of each slice writes a
  full-size gradient, so it grows with the square of the sequence length);
- the output layer runs at every step, although only the last step's output is returned;
- training: random batches of 128 prefix -> next-word pairs, pre-padded with id 0 to the
  longest prefix, cross-entropy on the last step, Adam at lr 0.005, and the final (h, c) of one
  batch carried (detached) into the next, unrelated batch;
- generation (``generate_sequence``): for every new word the whole sequence so far is pre-padded
  (or cut) to ``max_len`` = 55 tokens and the model is run over all of it again, starting from
  the state the previous run ended in, with autograd on (the post uses no ``torch.no_grad``).

Nothing in ``lstm_core``, ``training`` or the app imports this file; ``bench/core.py`` does.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# ----------------------------------------------------------------------------------------------
# Data: prefix -> next-word pairs, pre-padded with 0


def make_training_pairs(paragraphs: list[list[int]]) -> tuple[list[list[int]], list[int]]:
    """The post's pairs: prefixes ``p[:i]`` for i in 1 .. len(p) - 2, each with target ``p[i]``.

    (The post's ``range(1, len(sequence) - 1)`` never uses a paragraph's last word as a target.)
    """
    inputs, targets = [], []
    for sequence in paragraphs:
        for i in range(1, len(sequence) - 1):
            inputs.append(sequence[:i])
            targets.append(sequence[i])
    return inputs, targets


def pre_pad(sequences: list[list[int]], max_len: int) -> Tensor:
    """Left-pad each sequence with 0 up to ``max_len``, or keep only its last ``max_len`` ids."""
    rows = []
    for seq in sequences:
        if len(seq) < max_len:
            rows.append([0] * (max_len - len(seq)) + list(seq))
        else:
            rows.append(list(seq[-max_len:]))
    return torch.tensor(rows)


def build_dataset(paragraphs: list[list[int]]) -> tuple[Tensor, Tensor, int]:
    """X (N, max_len, 1) pre-padded to the longest prefix, Y (N,), and max_len."""
    inputs, targets = make_training_pairs(paragraphs)
    max_len = max(len(seq) for seq in inputs)
    return pre_pad(inputs, max_len).unsqueeze(-1), torch.tensor(targets), max_len


# ----------------------------------------------------------------------------------------------
# The model: plain tensors with requires_grad, one matrix per gate


class WriteupLSTM:
    """The post's ``LSTM`` class: embedding, four gate matrices over [x_t, h_t], output layer."""

    def __init__(self, vocab_size: int, embedding_dim: int, hidden_size: int, output_size: int):
        self.hidden_size = hidden_size
        in_size = embedding_dim + hidden_size
        self.embedding = torch.randn(vocab_size, embedding_dim, requires_grad=True)
        self.Wf = torch.randn(hidden_size, in_size, requires_grad=True)  # forget gate
        self.bf = torch.zeros(hidden_size, requires_grad=True)
        self.Wi = torch.randn(hidden_size, in_size, requires_grad=True)  # input gate
        self.bi = torch.zeros(hidden_size, requires_grad=True)
        self.Wc = torch.randn(hidden_size, in_size, requires_grad=True)  # candidate
        self.bc = torch.zeros(hidden_size, requires_grad=True)
        self.Wo = torch.randn(hidden_size, in_size, requires_grad=True)  # output gate
        self.bo = torch.zeros(hidden_size, requires_grad=True)
        self.Wv = torch.randn(output_size, hidden_size, requires_grad=True)  # output layer
        self.bv = torch.zeros(output_size, requires_grad=True)
        for weight in (self.Wf, self.Wi, self.Wc, self.Wo, self.Wv):
            nn.init.xavier_uniform_(weight)  # the embedding stays standard normal, as in the post

    def parameters(self) -> list[Tensor]:
        return [self.Wf, self.bf, self.Wi, self.bi, self.Wc, self.bc, self.Wo, self.bo,
                self.Wv, self.bv, self.embedding]

    def forward(self, x: Tensor, init_states: tuple[Tensor, Tensor] | None = None):
        """x: (B, T, 1) ids. Returns the last step's logits (B, V) and the final (h, c)."""
        x = self.embedding[x.squeeze(dim=-1)]  # (B, T, E)
        batch_size, seq_len, _ = x.size()
        if init_states is None:
            h_t = torch.zeros(batch_size, self.hidden_size, requires_grad=True)
            c_t = torch.zeros(batch_size, self.hidden_size, requires_grad=True)
        else:
            h_t, c_t = init_states
        for t in range(seq_len):
            x_t = x[:, t, :]  # (B, E), one slice per step
            z_t = torch.cat([x_t, h_t], dim=1)  # (B, E + H)
            f_t = torch.sigmoid(z_t @ self.Wf.t() + self.bf)
            i_t = torch.sigmoid(z_t @ self.Wi.t() + self.bi)
            candidate = torch.tanh(z_t @ self.Wc.t() + self.bc)
            o_t = torch.sigmoid(z_t @ self.Wo.t() + self.bo)
            c_t = c_t * f_t + candidate * i_t
            h_t = o_t * torch.tanh(c_t)
            y_t = h_t @ self.Wv.t() + self.bv  # computed at every step, only the last is kept
        return y_t, (h_t, c_t)


# ----------------------------------------------------------------------------------------------
# Training: the body of the post's loop


def train_step(model: WriteupLSTM, optimizer: torch.optim.Optimizer, X: Tensor, Y: Tensor,
               hidden_state: tuple[Tensor, Tensor] | None, batch_size: int = 128,
               generator: torch.Generator | None = None):
    """One iteration of the post's loop; returns (loss value, state to carry into the next)."""
    batch_indices = torch.randint(0, X.shape[0], (batch_size,), generator=generator)
    outputs, hidden_state = model.forward(X[batch_indices], init_states=hidden_state)
    h_t, c_t = hidden_state
    hidden_state = (h_t.detach(), c_t.detach())  # carried into the next (unrelated) batch
    loss = F.cross_entropy(outputs, Y[batch_indices])
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.item(), hidden_state  # the post prints the loss every iteration


def make_optimizer(model: WriteupLSTM, lr: float = 0.005) -> torch.optim.Optimizer:
    return torch.optim.Adam(model.parameters(), lr=lr)


# ----------------------------------------------------------------------------------------------
# Generation: re-run the whole padded sequence for every new word


def generate_sequence_ids(model: WriteupLSTM, seed_indices: list[int], sequence_length: int,
                          max_len: int = 55, sample: bool = False,
                          generator: torch.Generator | None = None) -> list[int]:
    """The post's ``generate_sequence`` on ids: the seed followed by ``sequence_length`` ids.

    Greedy (argmax) by default, as in the post; ``sample=True`` is its commented-out
    ``torch.multinomial`` line.
    """
    generated = list(seed_indices)
    hidden_state = None
    for _ in range(sequence_length):
        padded_input = pre_pad([generated], max_len).unsqueeze(-1)  # (1, max_len, 1)
        output, hidden_state = model.forward(padded_input, hidden_state)  # state carried over
        next_token_prob = torch.softmax(output, dim=-1)  # (1, V)
        if sample:
            next_token_idx = torch.multinomial(next_token_prob, 1, generator=generator).item()
        else:
            next_token_idx = torch.argmax(next_token_prob).item()
        generated.append(next_token_idx)
    return generated


def generate_sequence(model: WriteupLSTM, seed_string: str, char2idx: dict[str, int],
                      idx2char: dict[int, str], sequence_length: int, max_len: int = 55) -> str:
    """The post's signature: words in (unknown words dropped), words out, space-joined."""
    seed_indices = [char2idx[word] for word in seed_string.split(" ") if word in char2idx]
    ids = generate_sequence_ids(model, seed_indices, sequence_length, max_len)
    return " ".join(idx2char[i] for i in ids)
