"""The LSTM language model, written out gate by gate on raw parameters.

Shapes used in comments: B = batch, T = time steps, E = embedding size, H = hidden size,
V = vocabulary size, L = number of LSTM layers.

The recurrence has three interchangeable backends holding the *same* parameters:

- ``autograd``: ``lstm_layer`` below, the LSTM equations in plain tensor code, differentiated by
  autograd (the lesson, and the reference the tests compare everything against);
- ``scratch`` (the default): the same equations with the backward pass written by hand
  (lstm_core/bptt.py), which saves only what the chain rule needs and runs faster on a CPU;
- ``torch``: the same weights handed to PyTorch's fused ``nn.LSTM`` kernel (the yardstick).

Everything else (embedding, dropout, output projection, loss) is shared, so switching backends
changes nothing but speed. The tests check that both give the same numbers.

``cell`` swaps the LSTM for a plain tanh RNN or a GRU (lstm_core/cells.py), on the same embedding,
output layer and ``forward`` contract. Those two have no hand-written backward: for them the
``scratch`` backend means ``autograd``.

Which function runs a layer is looked up once, in ``LAYERS`` by (cell, backend), when the model is
built or its backend is set; ``run_lstm`` then calls it for every layer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import partial

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lstm_core.bptt import lstm_layer_bptt
from lstm_core.cells import CELLS, GATE_BLOCKS, RECORDED, TORCH_MODULES, gru_layer, rnn_layer
from lstm_core.regularizers import (
    activation_penalty,
    embedding_dropout,
    locked_dropout,
    temporal_activation_penalty,
    weight_drop,
)

BACKENDS = ("scratch", "autograd", "torch")

# An LSTM state is the pair (h, c), each of shape (L, B, H), the layout nn.LSTM uses. A GRU or a
# plain RNN has no cell state: its state is (h,). Either way state[0] is h.
State = tuple[Tensor, ...]


@dataclass
class ModelConfig:
    vocab_size: int  # number of token ids, reserved <pad> and <unk> included
    embed_dim: int = 128  # size of each word vector (the write-up used 128)
    hidden_size: int = 128  # size of h and c (the write-up used 128)
    num_layers: int = 1  # stacked LSTM layers; layer l+1 reads layer l's h
    dropout: float = 0.0  # dropout on embeddings, between layers and before the output layer
    tie_weights: bool = False  # share the embedding matrix with the output layer (needs E == H)
    backend: str = "scratch"  # "scratch" (hand-written backward), "autograd" or "torch" (nn.LSTM)
    cell: str = "lstm"  # "lstm", "gru" or "rnn" (plain tanh): the recurrent layer
    # The AWD-LSTM regularizers (lstm_core/regularizers.py), all off by default:
    locked_dropout: bool = False  # one dropout mask per sequence, the same at every time step
    embed_dropout: float = 0.0  # drop whole words from the embedding matrix (input lookup only)
    weight_drop: float = 0.0  # DropConnect on each layer's W_hh, one mask per forward call
    ar: float = 0.0  # activation regularization: ar * mean(h^2) added to the training loss
    tar: float = 0.0  # temporal AR: tar * mean((h_t - h_{t-1})^2) added to the training loss
    label_smoothing: float = 0.0  # training loss only: this share of each target spread over all words
    forget_bias: float = 1.0  # initial bias of the LSTM's forget gate (the GRU's update gate)

    def __post_init__(self) -> None:
        if self.vocab_size < 3:
            raise ValueError(f"vocab_size must be at least 3 (two reserved ids + a word), got {self.vocab_size}")
        if min(self.embed_dim, self.hidden_size, self.num_layers) < 1:
            raise ValueError("embed_dim, hidden_size and num_layers must all be positive")
        for name in ("dropout", "embed_dropout", "weight_drop"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if not (0.0 <= self.ar <= 100.0 and 0.0 <= self.tar <= 100.0):
            raise ValueError(f"ar and tar must be in [0, 100], got {self.ar} and {self.tar}")
        if self.tie_weights and self.embed_dim != self.hidden_size:
            raise ValueError(
                f"tie_weights needs embed_dim == hidden_size (got {self.embed_dim} and "
                f"{self.hidden_size}): the output layer reuses the embedding matrix"
            )
        if not -10.0 <= self.forget_bias <= 10.0:  # sigmoid(10) is 0.99995: nothing beyond
            raise ValueError(f"forget_bias must be from -10 to 10, got {self.forget_bias}")
        if self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {self.backend!r}")
        if self.cell not in CELLS:
            raise ValueError(f"cell must be one of {CELLS}, got {self.cell!r}")
        if self.cell != "lstm" and self.backend == "scratch":
            self.backend = "autograd"  # only the LSTM has a hand-written backward

    def to_dict(self) -> dict:
        return asdict(self)


# ----------------------------------------------------------------------------------------------
# The cell: one LSTM layer over a whole sequence


def lstm_layer(
    x: Tensor, h: Tensor, c: Tensor, weight_ih: Tensor, weight_hh: Tensor, bias: Tensor,
    record: dict[str, list[Tensor]] | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """Run one LSTM layer over ``x`` (B, T, In) from state ``h``, ``c`` (B, H).

    The weights stack the four gates' blocks in PyTorch's order: input, forget, cell
    candidate, output. Returns all hidden states (B, T, H) and the final ``h``, ``c``.
    If ``record`` is a dict, the gate activations and states of every step are appended to it.
    """
    # The input's contribution to the gates does not depend on h, so compute it for every
    # step in one big matmul instead of T small ones.
    x_gates = x @ weight_ih.T + bias  # (B, T, 4H)
    outputs = []
    # unbind gives T views at once; slicing x_gates[:, t] per step would make backward
    # accumulate a full-size gradient for every slice (quadratic in T).
    for x_t in x_gates.unbind(1):  # x_t: (B, 4H)
        gates = x_t + h @ weight_hh.T  # all four gates in one recurrent matmul, (B, 4H)
        i, f, g, o = gates.chunk(4, dim=1)  # each (B, H)
        i = torch.sigmoid(i)  # input gate: how much of the candidate to write
        f = torch.sigmoid(f)  # forget gate: how much of the old cell to keep
        g = torch.tanh(g)  # candidate values to write into the cell
        o = torch.sigmoid(o)  # output gate: how much of the cell to expose as h
        c = f * c + i * g  # c_t = f_t * c_{t-1} + i_t * g_t
        h = o * torch.tanh(c)  # h_t = o_t * tanh(c_t)
        outputs.append(h)
        if record is not None:
            for name, value in (("input", i), ("forget", f), ("candidate", g),
                                ("output", o), ("cell", c), ("hidden", h)):
                record[name].append(value.detach())
    return torch.stack(outputs, dim=1), h, c


# ----------------------------------------------------------------------------------------------
# The layer functions: one per (cell, backend), all with one signature
#
#   layer_fn(x (B, T, In), state, weights) -> (all h (B, T, H), new state)
#
# state is one layer's (h, c), or (h,) for a GRU or plain RNN, each (B, H); weights is
# ``LSTMLanguageModel.layer_weights(layer)``, its W_hh masked by weight drop in training.

LayerFn = Callable[[Tensor, State, tuple[Tensor, ...]], tuple[Tensor, State]]


def readable_lstm(x: Tensor, state: State, weights: tuple[Tensor, ...], record=None):
    out, h, c = lstm_layer(x, *state, *weights, record=record)
    return out, (h, c)


def scratch_lstm(x: Tensor, state: State, weights: tuple[Tensor, ...]):
    # Without gradients (generation, evaluation) there is no backward pass to save anything for,
    # so the readable cell runs: the same equations, without the saved tensors it would not use.
    if not torch.is_grad_enabled():
        return readable_lstm(x, state, weights)
    out, h, c = lstm_layer_bptt(x, *state, *weights)
    return out, (h, c)


def readable_gru(x: Tensor, state: State, weights: tuple[Tensor, ...], record=None):
    out, h = gru_layer(x, *state, *weights, record=record)
    return out, (h,)


def readable_rnn(x: Tensor, state: State, weights: tuple[Tensor, ...], record=None):
    out, h = rnn_layer(x, *state, *weights, record=record)
    return out, (h,)


def torch_layer(shell: nn.Module, x: Tensor, state: State, weights: tuple[Tensor, ...]):
    """The same layer through PyTorch's fused kernel: ``shell`` (nn.LSTM, nn.GRU or nn.RNN, whose
    own weights are never used) runs on this model's parameters via functional_call."""
    weight_ih, weight_hh, bias, *bias_hn = weights
    # PyTorch keeps two biases that are only ever added, so ours goes in one and zeros in the
    # other; only the GRU candidate's b_hn, inside r * (...), is a recurrent bias of its own.
    bias_hh = torch.zeros_like(bias)
    if bias_hn:
        bias_hh = torch.cat([bias_hh[: -bias_hn[0].numel()], bias_hn[0]])
    params = {"weight_ih_l0": weight_ih, "weight_hh_l0": weight_hh,
              "bias_ih_l0": bias, "bias_hh_l0": bias_hh}
    hx = tuple(s.unsqueeze(0).contiguous() for s in state)  # (1, B, H) each
    out, final = torch.func.functional_call(shell, params, (x, hx if len(hx) == 2 else hx[0]))
    final = final if isinstance(final, tuple) else (final,)  # nn.LSTM returns (h, c)
    return out, tuple(s[0] for s in final)


# The readable cells are the "autograd" backend (and the only ones that can record their gates);
# only the LSTM has a hand-written backward, so "scratch" means "autograd" for the others. The
# "torch" entry takes the layer's nn module first: ``set_backend`` binds it.
LAYERS = {
    ("lstm", "autograd"): readable_lstm, ("lstm", "scratch"): scratch_lstm,
    ("gru", "autograd"): readable_gru, ("gru", "scratch"): readable_gru,
    ("rnn", "autograd"): readable_rnn, ("rnn", "scratch"): readable_rnn,
    **{(cell, "torch"): torch_layer for cell in CELLS},
}


# ----------------------------------------------------------------------------------------------
# The language model


class LSTMLanguageModel(nn.Module):
    """Embedding -> L LSTM layers -> linear layer to vocabulary logits.

    ``forward(idx, targets=None, state=None)`` serves training, evaluation and generation.
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        E, H, V = config.embed_dim, config.hidden_size, config.vocab_size
        self.embedding = nn.Parameter(torch.empty(V, E))
        # Per layer l: weight_ih_l (4H, In), weight_hh_l (4H, H), bias_l (4H,) for the LSTM's four
        # gates (3H for the GRU's three blocks, H for the plain RNN).
        # One bias per layer is enough: nn.LSTM's two biases are only ever added together.
        G = GATE_BLOCKS[config.cell]
        for layer in range(config.num_layers):
            in_size = E if layer == 0 else H
            self.register_parameter(f"weight_ih_l{layer}", nn.Parameter(torch.empty(G * H, in_size)))
            self.register_parameter(f"weight_hh_l{layer}", nn.Parameter(torch.empty(G * H, H)))
            self.register_parameter(f"bias_l{layer}", nn.Parameter(torch.empty(G * H)))
            if config.cell == "gru":  # the candidate's recurrent bias sits inside r * (...)
                self.register_parameter(f"bias_hn_l{layer}", nn.Parameter(torch.empty(H)))
        # With tied weights the output layer reuses the embedding matrix (Press & Wolf 2017).
        self.out_weight = None if config.tie_weights else nn.Parameter(torch.empty(V, H))
        self.out_bias = nn.Parameter(torch.empty(V))
        self.reset_parameters()
        self.last_penalty = 0.0  # the AR/TAR part of the last training loss, for logging
        # Shells for the "torch" backend: nn.LSTM modules whose own weights are never used (our
        # parameters are passed in on every call). A plain list keeps them out of
        # .parameters() and the state_dict.
        self._torch_shells = [TORCH_MODULES[config.cell](E if layer == 0 else H, H, batch_first=True)
                              for layer in range(config.num_layers)]
        self.set_backend(config.backend)  # chooses self.layer_fns

    def reset_parameters(self) -> None:
        H = self.config.hidden_size
        if self.config.tie_weights:
            # The matrix also produces the logits: keep it small so the first predictions are
            # near uniform (PyTorch's word_language_model example does the same).
            nn.init.uniform_(self.embedding, -0.1, 0.1)
        else:
            # Unit-variance word vectors, as nn.Embedding and the write-up: the gates then see a
            # strong input signal from the first step, and the seed recipe learns much faster.
            nn.init.normal_(self.embedding)
        for layer in range(self.config.num_layers):
            for name in ("weight_ih", "weight_hh"):
                weight = getattr(self, f"{name}_l{layer}")
                for block in weight.data.split(H, dim=0):  # Xavier-uniform per gate block
                    nn.init.xavier_uniform_(block)
            bias = getattr(self, f"bias_l{layer}")
            nn.init.zeros_(bias)
            # A forget-gate bias of 1 (the default) keeps the cell's memory open early in
            # training (Gers et al. 2000, Jozefowicz et al. 2015); the other gates start at 0. In
            # a GRU this block is the update gate z, whose bias does the same (keep the old h); a
            # plain RNN has no such block.
            nn.init.constant_(bias.data[H : 2 * H], self.config.forget_bias)
            if self.config.cell == "gru":
                nn.init.zeros_(getattr(self, f"bias_hn_l{layer}"))
        if self.out_weight is not None:
            nn.init.xavier_uniform_(self.out_weight)
        nn.init.zeros_(self.out_bias)

    def init_output_bias_to_unigram(self, token_ids: Tensor) -> None:
        """Set the output bias to the log unigram frequencies of ``token_ids`` (add-one smoothed).

        With small output weights (tied, uniform +-0.1) the first predictions are then the text's
        word frequencies instead of uniform: the model need not spend its first steps learning them.
        """
        counts = torch.bincount(token_ids.flatten().cpu(), minlength=self.config.vocab_size).float()
        with torch.no_grad():
            self.out_bias.copy_(torch.log((counts + 1.0) / (counts.sum() + counts.numel())))

    # -- parameters by layer -------------------------------------------------------------------

    def layer_weights(self, layer: int) -> tuple[Tensor, ...]:
        """(weight_ih, weight_hh, bias) of one layer; a GRU's ends with bias_hn too."""
        extra = (getattr(self, f"bias_hn_l{layer}"),) if self.config.cell == "gru" else ()
        return (getattr(self, f"weight_ih_l{layer}"), getattr(self, f"weight_hh_l{layer}"),
                getattr(self, f"bias_l{layer}"), *extra)

    @property
    def output_weight(self) -> Tensor:
        return self.embedding if self.out_weight is None else self.out_weight

    def set_backend(self, backend: str) -> None:
        """Switch the recurrence between backends; the parameters stay the same.

        The layer functions are chosen here, once, so that a forward call just runs them.
        """
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        self.config.backend = backend
        fn = LAYERS[self.config.cell, backend]
        self.layer_fns: list[LayerFn] = [partial(fn, shell) if backend == "torch" else fn
                                         for shell in self._torch_shells]

    def forward_weights(self, layer: int) -> tuple[Tensor, ...]:
        """``layer_weights(layer)`` as this forward call uses them: in training, with weight
        drop's mask on W_hh, so that every backend gets the very same masked matrix."""
        weight_ih, weight_hh, *rest = self.layer_weights(layer)
        if self.training and self.config.weight_drop:
            weight_hh = weight_drop(weight_hh, self.config.weight_drop)
        return (weight_ih, weight_hh, *rest)

    # -- state ---------------------------------------------------------------------------------

    def initial_state(self, batch_size: int) -> State:
        """Zero (h, c), each (L, B, H); (h,) alone for a GRU or plain RNN."""
        shape = (self.config.num_layers, batch_size, self.config.hidden_size)
        zeros = self.embedding.new_zeros(shape)
        return (zeros, zeros.clone()) if self.config.cell == "lstm" else (zeros,)

    # -- forward -------------------------------------------------------------------------------

    def forward(
        self, idx: Tensor, targets: Tensor | None = None, state: State | None = None,
        last_only: bool = False,
    ) -> tuple[Tensor, Tensor | None, State]:
        """Logits for the next token after every position of ``idx`` (B, T).

        targets: (B, T) ids to score at every position, or (B,) ids to score at the last
            position only (the write-up's prefix -> next-word pairs). Loss is mean cross-entropy.
        state: (h, c) ((h,) for a GRU or RNN) carried over from a previous call, or None for zeros.
        last_only: compute logits for the last position only (generation needs no more).
        Returns logits (B, T, V), or (B, 1, V) when only the last position is kept; the loss
        (None without targets; in training mode it includes the AR/TAR penalties, whose value
        is kept in ``self.last_penalty``); the new state (h, c), or (h,).
        """
        if idx.dim() != 2:
            raise ValueError(f"idx must be (batch, time), got shape {tuple(idx.shape)}")
        if targets is not None and targets.dim() == 1:
            last_only = True
        hidden, state = self.run_lstm(idx, state)  # (B, T, H)
        if last_only:
            hidden = hidden[:, -1:]  # (B, 1, H): project only the positions we need
        dropped = self.dropout(hidden)
        logits = F.linear(dropped, self.output_weight, self.out_bias)  # (B, T', V)
        loss = None
        if targets is not None:
            # Smoothing keeps some probability on every word, the ones the training text never
            # shows as targets included; evaluation always scores the plain cross-entropy.
            smoothing = self.config.label_smoothing if self.training else 0.0
            loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1),
                                   label_smoothing=smoothing)
            if self.training and (self.config.ar or self.config.tar):
                penalty = (activation_penalty(dropped, self.config.ar)
                           + temporal_activation_penalty(hidden, self.config.tar))
                self.last_penalty = penalty.item()
                loss = loss + penalty
        return logits, loss, state

    def run_lstm(self, idx: Tensor, state: State | None = None,
                 layer_fns: list[LayerFn] | None = None) -> tuple[Tensor, State]:
        """Embed ``idx`` (B, T) and run every layer; returns the top layer's h (B, T, H) and the
        new state. ``layer_fns`` replaces ``self.layer_fns`` for this call (``inspect`` does)."""
        if state is None:
            state = self.initial_state(idx.size(0))
        embedding = self.embedding
        if self.training:  # whole words dropped, for this batch's input lookup only
            embedding = embedding_dropout(embedding, self.config.embed_dropout)
        x = self.dropout(F.embedding(idx, embedding))  # (B, T, E)
        finals = []
        for layer, layer_fn in enumerate(layer_fns or self.layer_fns):
            if layer > 0:
                x = self.dropout(x)  # dropout between stacked layers
            x, final = layer_fn(x, tuple(s[layer] for s in state), self.forward_weights(layer))
            finals.append(final)  # (h, c) or (h,), each (B, H)
        return x, tuple(torch.stack(s) for s in zip(*finals, strict=True))  # each (L, B, H)

    def dropout(self, x: Tensor) -> Tensor:
        """Dropout on a (B, T, D) tensor: a fresh mask per step, or one per sequence (locked).
        Evaluation and generation drop nothing, so they skip the call altogether."""
        if not self.training:
            return x
        if self.config.locked_dropout:
            return locked_dropout(x, self.config.dropout)
        return F.dropout(x, self.config.dropout)

    # -- inspection ----------------------------------------------------------------------------

    @torch.inference_mode()
    def inspect(self, idx: Tensor, state: State | None = None) -> dict[str, Tensor]:
        """Gate activations and states at every step, for a (1, T) or (T,) sequence.

        Returns {"input", "forget", "candidate", "output", "cell", "hidden"} for an LSTM,
        {"reset", "update", "candidate", "hidden"} for a GRU, {"hidden"} for a plain RNN; each
        (L, T, H), computed with the readable autograd cell (neither the hand-written backward
        nor the fused kernel keeps its gates).
        """
        if idx.dim() == 1:
            idx = idx.unsqueeze(0)
        if idx.size(0) != 1:
            raise ValueError("inspect takes a single sequence")
        record: dict[str, list[Tensor]] = {name: [] for name in RECORDED[self.config.cell]}
        readable = partial(LAYERS[self.config.cell, "autograd"], record=record)
        was_training = self.training
        self.eval()
        try:
            self.run_lstm(idx, state, layer_fns=[readable] * self.config.num_layers)
        finally:
            self.train(was_training)
        T, L = idx.size(1), self.config.num_layers
        # record[name] holds L*T tensors (1, H), layer-major.
        return {name: torch.cat(values).reshape(L, T, -1) for name, values in record.items()}

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
