"""The training configuration: one dataclass, turned into CLI flags and logged to MLflow."""

from __future__ import annotations

import argparse
import dataclasses
import math
from dataclasses import dataclass, fields
from pathlib import Path

from lstm_core import canary
from lstm_core.cells import CELLS, GATE_BLOCKS
from lstm_core.model import BACKENDS

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CORPUS = PROJECT_ROOT / "corpus" / "lighthouse_keeper.txt"
# The write-up's essay, kept outside the project (tests and benchmarks skip when it is absent).
SPIKE = PROJECT_ROOT.parent / "shared" / "corpus" / "the_spike.txt"
RECIPES = ("seed", "windows", "memorize")
OPTIMIZERS = ("adam", "sgd", "ntasgd")
MAX_BATCH_SIZE = 8192  # bounds on one step's work, so a typo cannot take all the memory
MAX_SEQ_LEN = 4096
MAX_BATCH_TOKENS = 262_144  # windows recipe: batch_size x seq_len targets in one step
MAX_PREFIX = 8192  # seed recipe: the largest max_prefix (a step reads batch_size x max_prefix words)
MAX_WIDTH = 8192  # embed_dim and hidden_size
MAX_LAYERS = 16
MAX_PARAMETERS = 200_000_000  # weights of one model (800 MB in float32; Adam keeps two more copies)
MAX_STEP_LOGITS = 2**30  # targets x vocabulary scored in one step (4 GiB of float32 logits)
RESERVED_IDS = 2  # <pad> and <unk>: a vocabulary of N words has N + 2 ids


@dataclass
class TrainConfig:
    corpus: str = str(DEFAULT_CORPUS)  # path of the UTF-8 training text
    recipe: str = "windows"  # "seed" (the write-up's prefix pairs), "windows" (every position, held-out tail, best-validation weights) or "memorize" (every position of the whole text, no dropout, Adam: it recites)
    tokenizer: str = "words"  # "seed" (split on spaces, as the write-up) or "words" (punctuation split off)
    steps: int = 400  # optimizer steps (the write-up's "iterations")
    batch_size: int = 32  # sequences per step (seed recipe: prefix pairs per step)
    seq_len: int = 32  # window length in tokens (windows recipe only)
    max_prefix: int = 512  # seed recipe: a prefix longer than this many words is cut to its last max_prefix words, so a step's memory and time stay bounded on a text with long paragraphs (no paragraph of the write-up's essay is longer than 256 words)
    window_order: str = "random"  # "random" windows, or "sequential" chunks carrying the state
    optimizer: str = "sgd"  # "sgd" (plain SGD, as PyTorch's word_language_model), "adam" (the write-up's) or "ntasgd" (SGD, then weight averaging once validation stalls for lr_patience evals)
    lr: float = 20.0  # learning rate (SGD wants a large one; the write-up used Adam at 0.005)
    embed_dim: int = 128  # word vector size
    hidden_size: int = 128  # LSTM state size
    num_layers: int = 1  # stacked LSTM layers
    dropout: float = 0.4  # dropout on embeddings, between layers and before the output layer
    locked_dropout: bool = False  # the same dropout mask at every time step of a sequence (variational)
    embed_dropout: float = 0.0  # drop whole words from the embedding matrix, in [0, 1)
    weight_drop: float = 0.0  # DropConnect on the hidden-to-hidden weights, one mask per batch, in [0, 1)
    ar: float = 0.0  # activation regularization: ar * mean(h^2) added to the loss (0 = off)
    tar: float = 0.0  # temporal activation regularization: tar * mean((h_t - h_(t-1))^2) (0 = off)
    label_smoothing: float = 0.0  # training loss: this share of each target spread over all words, in [0, 1)
    unigram_bias: bool = False  # start the output bias at the training text's log word frequencies (not uniform)
    tie_weights: bool = True  # share embedding and output weights (needs embed_dim == hidden_size)
    weight_decay: float = 0.0  # L2 penalty on every weight, applied by the optimizer (SGD and Adam alike)
    grad_clip: float = 0.25  # clip the gradient norm to this (0 = no clipping)
    val_fraction: float = 0.1  # contiguous tail of the text held out for validation (0 = none)
    eval_interval: int = 25  # steps between validation runs and log lines
    eval_tokens: int = 8192  # validation scores at most this many held-out tokens (the start of the tail), read in rows of 512 side by side, so an eval takes seconds on a long text (0 = all)
    lr_patience: int = 2  # cut the learning rate after this many evals without a new best (0 = never)
    lr_factor: float = 0.5  # what the learning rate is multiplied by when it is cut
    lr_min: float = 1.0  # the learning rate is never cut below this floor (nor raised to it)
    early_stop_patience: int = 4  # stop after this many evals without a new best (0 = never)
    min_count: int = 2  # words seen fewer times in the training part become <unk>, and so do held-out words it lacks: with 2, the words seen once teach the model how often a new word comes (the seed recipe keeps every word)
    max_vocab: int = 10000  # keep only the N most frequent words, the rest become <unk> (0 = no cap)
    backend: str = "scratch"  # "scratch" (hand-written backward), "autograd" (the readable cell) or "torch" (nn.LSTM)
    cell: str = "lstm"  # recurrent cell: "lstm", "gru" or "rnn" (plain tanh); the latter two run backend scratch as autograd
    forget_bias: float = 1.0  # initial bias of the LSTM's forget gate (and of the GRU's update gate), from -10 to 10: 1 keeps the memory open early in training, 0 starts the gate at one half
    device: str = "cpu"  # "cpu", "cuda" or "auto" (cuda when available)
    seed: int = 1337  # seeds weight init and batch sampling
    memorization_prefix: int = 8  # k: tokens of source given to test extractable memorization
    memorization_suffix: int = 8  # m: tokens that must then be reproduced exactly
    memorization_sample: int = 64  # training passages tested for memorization at every eval (0 = off)
    canary_repeats: int = 0  # plant a canary (a fixed prefix, then random digits) this many times at random paragraph starts of the training part, never the held-out tail; its exposure is measured at every eval (0 = off)
    canary_digits: int = 6  # the canary's secret: this many random digits, each a word (up to 6 its rank among all 10^d secrets is exact, above that estimated)
    canary_seed: int = 0  # draws the canary's digits and places, apart from seed: runs with other training seeds or repetitions share one secret

    def __post_init__(self) -> None:
        checks = [
            (self.recipe in RECIPES, f"recipe must be one of {RECIPES}"),
            (self.tokenizer in ("seed", "words"), "tokenizer must be 'seed' or 'words'"),
            (self.window_order in ("random", "sequential"), "window_order must be 'random' or 'sequential'"),
            (self.optimizer in OPTIMIZERS, f"optimizer must be one of {OPTIMIZERS}"),
            (0 <= self.embed_dropout < 1 and 0 <= self.weight_drop < 1,
             "embed_dropout and weight_drop must be in [0, 1)"),
            (0 <= self.ar <= 100 and 0 <= self.tar <= 100, "ar and tar must be in [0, 100]"),
            (0 <= self.label_smoothing < 1, "label_smoothing must be in [0, 1)"),
            (0 <= self.memorization_sample <= 2000, "memorization_sample must be in [0, 2000]"),
            (0 < self.lr_factor < 1, "lr_factor must be between 0 and 1"),
            (self.steps >= 1, "steps must be at least 1"),
            (1 <= self.embed_dim <= MAX_WIDTH, f"embed_dim must be positive and at most {MAX_WIDTH}"),
            (1 <= self.hidden_size <= MAX_WIDTH,
             f"hidden_size must be positive and at most {MAX_WIDTH}"),
            (1 <= self.num_layers <= MAX_LAYERS,
             f"num_layers must be positive and at most {MAX_LAYERS}"),
            (0 <= self.dropout < 1, "dropout must be in [0, 1)"),
            (1 <= self.batch_size <= MAX_BATCH_SIZE, f"batch_size must be from 1 to {MAX_BATCH_SIZE}"),
            (2 <= self.seq_len <= MAX_SEQ_LEN, f"seq_len must be from 2 to {MAX_SEQ_LEN}"),
            (self.recipe == "seed" or self.batch_size * self.seq_len <= MAX_BATCH_TOKENS,
             f"batch_size x seq_len must be at most {MAX_BATCH_TOKENS:,} targets per step"),
            (math.isfinite(self.lr) and self.lr > 0, "lr must be a positive number"),
            (0 <= self.val_fraction <= 0.5, "val_fraction must be between 0 and 0.5"),
            (self.eval_interval >= 1, "eval_interval must be at least 1"),
            (self.eval_tokens >= 0, "eval_tokens must be >= 0 (0 = all)"),
            (1 <= self.max_prefix <= MAX_PREFIX, f"max_prefix must be from 1 to {MAX_PREFIX}"),
            (self.grad_clip >= 0, "grad_clip must be >= 0"),
            (self.max_vocab >= 0, "max_vocab must be >= 0 (0 = no cap)"),
            (1 <= self.min_count <= 1000, "min_count must be from 1 to 1000"),
            (self.memorization_prefix >= 1, "memorization_prefix must be at least 1"),
            (self.memorization_suffix >= 1, "memorization_suffix must be at least 1"),
            (self.device in ("cpu", "cuda", "auto"), "device must be 'cpu', 'cuda' or 'auto'"),
            (self.cell in CELLS, f"cell must be one of {CELLS}, got {self.cell!r}"),
            (math.isfinite(self.lr_min) and self.lr_min >= 0, "lr_min must be a number >= 0"),
            (0 <= self.canary_repeats <= canary.MAX_REPEATS,
             f"canary_repeats must be from 0 to {canary.MAX_REPEATS} (0 = no canary)"),
            (1 <= self.canary_digits <= canary.MAX_DIGITS,
             f"canary_digits must be from 1 to {canary.MAX_DIGITS}"),
            (0 <= self.canary_seed < 2**62, "canary_seed must be a whole number from 0 to 2^62"),
            (math.isfinite(self.forget_bias) and -10 <= self.forget_bias <= 10,
             "forget_bias must be a number from -10 to 10"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)
        # The largest the model can get (the smallest, with no cap); checked again with the
        # real vocabulary once the text is read, before the model is built.
        check_model_size(self, (self.max_vocab or 1) + RESERVED_IDS)
        if self.cell != "lstm" and self.backend == "scratch":
            self.backend = "autograd"  # only the LSTM has a hand-written backward; logged as such

    @classmethod
    def for_recipe(cls, recipe: str = "windows", **overrides) -> TrainConfig:
        """A config with the recipe's own defaults, then the given overrides on top."""
        if recipe not in RECIPES:
            raise ValueError(f"recipe must be one of {RECIPES}, got {recipe!r}")
        values = dict({"seed": SEED_RECIPE, "memorize": MEMORIZE_RECIPE}.get(recipe, {}))
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(recipe=recipe, **values)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})


def parameter_count(config: TrainConfig, vocab_size: int) -> int:
    """The weights of the model this config builds over vocab_size ids, counted without
    allocating them (the layout of lstm_core.model.LSTMLanguageModel)."""
    E, H, V, G = config.embed_dim, config.hidden_size, vocab_size, GATE_BLOCKS[config.cell]
    layers = sum(G * H * ((E if layer == 0 else H) + H + 1) + (H if config.cell == "gru" else 0)
                 for layer in range(config.num_layers))
    tied = config.tie_weights and E == H
    return V * E + layers + (0 if tied else V * H) + V


def step_logits(config: TrainConfig, vocab_size: int) -> int:
    """The logits one training step computes: one per target and vocabulary id."""
    targets = config.batch_size * (1 if config.recipe == "seed" else config.seq_len)
    return targets * vocab_size


def training_flops(config: TrainConfig, vocab_size: int, longest_paragraph: int) -> float:
    """The arithmetic of a whole run, roughly: what its time grows with, not its weights.

    Per step, every position read runs the cell (G gate blocks of H x (input + H)
    multiply-adds per layer) and every target the output layer (V x H); backward costs about
    twice the forward, and a multiply-add is 2 operations. The seed recipe reads its longest
    prefix (cut at max_prefix) for each of its pairs but scores only the last word.
    """
    E, H, G = config.embed_dim, config.hidden_size, GATE_BLOCKS[config.cell]
    cell = sum(G * H * ((E if layer == 0 else H) + H) for layer in range(config.num_layers))
    if config.recipe == "seed":
        positions = config.batch_size * min(max(longest_paragraph, 1), config.max_prefix)
        targets = config.batch_size
    else:
        positions = targets = config.batch_size * config.seq_len
    return 6.0 * config.steps * (positions * cell + targets * vocab_size * H)


def check_model_size(config: TrainConfig, vocab_size: int) -> None:
    """Refuse, before anything is allocated, a model or a step too big for one machine."""
    params = parameter_count(config, vocab_size)
    if params > MAX_PARAMETERS:
        raise ValueError(
            f"the model would have {params:,} parameters ({vocab_size:,} word ids, embed_dim "
            f"{config.embed_dim}, hidden_size {config.hidden_size}, {config.num_layers} layer(s)), "
            f"more than {MAX_PARAMETERS:,}: lower them or max_vocab")
    logits = step_logits(config, vocab_size)
    if logits > MAX_STEP_LOGITS:
        raise ValueError(
            f"one step would score {logits:,} logits (targets x {vocab_size:,} word ids), more "
            f"than {MAX_STEP_LOGITS:,}: lower batch_size, seq_len or max_vocab")


# The write-up's recipe: batches of 128 random prefix -> next-word pairs, loss on the last step
# only, Adam at 0.005, 300 iterations, no dropout, no clipping, no held-out text.
SEED_RECIPE = dict(
    tokenizer="seed", steps=300, batch_size=128, optimizer="adam", lr=0.005, dropout=0.0, tie_weights=False,
    grad_clip=0.0, val_fraction=0.0, lr_patience=0, early_stop_patience=0, min_count=1,
)

# Recite a text of your own: every position of the whole text scored (nothing held out, no
# early stop, no dropout), Adam as in the write-up, a wider state and untied output weights for
# capacity, every word kept (min_count 1). On 2 CPUs it recites a 5,000-word text in a few
# minutes (docs/benchmarks.md, bench.memorize).
MEMORIZE_RECIPE = dict(
    steps=400, optimizer="adam", lr=0.005, dropout=0.0, tie_weights=False, hidden_size=256,
    grad_clip=1.0, val_fraction=0.0, lr_patience=0, early_stop_patience=0, min_count=1,
    eval_interval=50,
)


def add_config_flags(parser: argparse.ArgumentParser, skip: tuple[str, ...] = ()) -> None:
    """One --flag per TrainConfig field (but those in skip), its help text from the field's comment."""
    comments = _field_comments()
    for f in fields(TrainConfig):
        if f.name in skip:
            continue
        flag = "--" + f.name.replace("_", "-")
        default = f.default
        others = "".join(f"; {name} recipe: {preset[f.name]}" for name, preset in
                         (("seed", SEED_RECIPE), ("memorize", MEMORIZE_RECIPE)) if f.name in preset)
        help_text = f"{comments.get(f.name, '')} (default: {default}{others})"
        if isinstance(default, bool):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=help_text)
        else:
            parser.add_argument(flag, type=type(default), default=None, help=help_text,
                                choices=_CHOICES.get(f.name))


_CHOICES = {"recipe": RECIPES, "tokenizer": ("seed", "words"), "window_order": ("random", "sequential"), "optimizer": OPTIMIZERS,
            "backend": BACKENDS, "cell": CELLS, "device": ("cpu", "cuda", "auto")}


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    values = {f.name: getattr(args, f.name) for f in fields(TrainConfig)}
    recipe = values.pop("recipe") or "windows"
    return TrainConfig.for_recipe(recipe, **values)


def _field_comments() -> dict[str, str]:
    """Read each field's inline comment from this file's source, so help text never drifts."""
    comments = {}
    for line in Path(__file__).read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if ":" in stripped and "#" in stripped and not stripped.startswith(("#", "def", "(")):
            name = stripped.split(":", 1)[0]
            if name.isidentifier():
                comments.setdefault(name, stripped.split("#", 1)[1].strip())
    return comments
