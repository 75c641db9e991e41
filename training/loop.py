"""The training loop. It knows nothing about MLflow: it reports through callbacks.

Two recipes share the model, the optimizer and the validation code:

- ``seed``: the write-up's method. Each step draws ``batch_size`` random prefix -> next-word
  pairs, pre-padded to the longest prefix, and scores only the word after each prefix. Each
  batch starts from a zero state (the write-up carried one random batch's state into the next,
  unrelated batch). A prefix longer than ``max_prefix`` words keeps only its last ones, so one
  long paragraph cannot make every step read thousands of words.
- ``windows``: each step scores every position of ``batch_size`` contiguous windows, so one step
  learns from ``batch_size x seq_len`` targets instead of ``batch_size``. With
  ``window_order="sequential"`` the windows are consecutive chunks of fixed rows and the state
  is carried (detached) from one chunk to the next.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor

from lstm_core import canary as canaries
from lstm_core.data import (
    SequentialBatches,
    first_known_window,
    prefix_pairs,
    random_windows,
    split_at,
    split_point,
)
from lstm_core.generate import SamplingConfig, generate_ids
from lstm_core.memorization import extractable_memorization
from lstm_core.model import LSTMLanguageModel, ModelConfig
from lstm_core.text import PARAGRAPH, detokenize, tokenize
from lstm_core.vocab import UNK_ID, Vocabulary
from training.config import TrainConfig, check_model_size
from training.distributed import World, init_world, wrap
from training.ntasgd import WeightAverage

CHECKPOINT_FORMAT = 1
PAIR_ELEMENTS = 50_000_000  # seed recipe: the most ids all prefix pairs together may hold
SAMPLE_TOKENS = 24  # words of the greedy sample taken at each evaluation
EVAL_ROW_TOKENS, EVAL_ROWS = 512, 16  # validation: a long tail is read in up to 16 rows of 512+


@dataclass
class Corpus:
    """The training text turned into ids, split into a training part and a held-out tail."""

    text: str
    vocab: Vocabulary
    train_ids: Tensor  # (N_train,)
    val_ids: Tensor  # (N_val,), possibly empty
    canary: canaries.Canary | None = None  # planted in the training part (config.canary_repeats)

    @classmethod
    def from_text(cls, text: str, config: TrainConfig, vocab: Vocabulary | None = None) -> Corpus:
        tokens = tokenize(text, config.tokenizer)
        if len(tokens) < 3:
            raise ValueError(
                f"The text has only {len(tokens)} token(s); a language model needs at least a "
                "few sentences to learn from.")
        n_train = split_point(len(tokens), config.val_fraction)
        canary = None
        if config.canary_repeats:  # planted in the training part only: the tail stays unseen
            canary = canaries.make_canary(config.canary_digits, config.canary_seed)
            planted = canaries.plant(tokens[:n_train], canary, config.canary_repeats,
                                     config.canary_seed)
            tokens, n_train = planted + tokens[n_train:], len(planted)
        # The vocabulary comes from the training part only, as language-model benchmarks fix
        # theirs from the training split: a held-out word the training part lacks reads <unk>,
        # and the model learns how likely <unk> is from the training part's own rare words
        # (those seen fewer than min_count times). Nothing held out: the whole text.
        if vocab is None:
            vocab = Vocabulary.build(tokens[:n_train], min_count=config.min_count,
                                     scheme=config.tokenizer, max_size=config.max_vocab)
        if canary is not None:  # every candidate secret needs its digits in the vocabulary
            vocab = canaries.with_words(vocab, canary.words + canaries.DIGITS)
        ids = torch.tensor(vocab.encode(tokens, unknown="unk"), dtype=torch.long)
        return cls(text, vocab, ids[:n_train], ids[n_train:], canary)

    def unk_rates(self) -> dict[str, float]:
        """The share of the training and of the held-out tokens that read <unk>."""
        rates = {"train_unk_rate": (self.train_ids == UNK_ID).float().mean().item()}
        if len(self.val_ids):
            rates["val_unk_rate"] = (self.val_ids == UNK_ID).float().mean().item()
        return rates

    def train_paragraphs(self) -> list[list[int]]:
        """The training ids cut at paragraph breaks (the seed recipe's unit)."""
        paragraph_id = self.vocab.token_to_id(PARAGRAPH) if PARAGRAPH in self.vocab else None
        return split_at(self.train_ids, paragraph_id)


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for, but PyTorch sees no CUDA GPU here")
    return torch.device(name)


def model_config_for(config: TrainConfig, vocab_size: int) -> ModelConfig:
    return ModelConfig(
        vocab_size=vocab_size, embed_dim=config.embed_dim, hidden_size=config.hidden_size,
        num_layers=config.num_layers, dropout=config.dropout,
        tie_weights=config.tie_weights and config.embed_dim == config.hidden_size,
        backend=config.backend, cell=config.cell, locked_dropout=config.locked_dropout,
        embed_dropout=config.embed_dropout, weight_drop=config.weight_drop, ar=config.ar,
        tar=config.tar, label_smoothing=config.label_smoothing, forget_bias=config.forget_bias)


def check_config(config: TrainConfig, text: str, corpus: Corpus | None = None) -> Corpus:
    """Refuse (ValueError) what ``Trainer(config, text)`` would refuse, without building the
    model: the device, the text, the model's size and settings, the batches. Returns the
    corpus (pass it back for another config with the same tokenizer and vocabulary)."""
    pick_device(config.device)
    corpus = corpus or Corpus.from_text(text, config)
    check_model_size(config, len(corpus.vocab))
    model_config_for(config, len(corpus.vocab))  # ModelConfig's own checks
    Batches(corpus, config, torch.Generator())
    return corpus


class Batches:
    """Endless training batches for a recipe: each call returns (x, targets, carry_state).

    Under data parallelism every rank draws the same global batch and keeps its own rows.
    """

    def __init__(self, corpus: Corpus, config: TrainConfig, generator: torch.Generator,
                 world: World | None = None):
        world = world or World()
        self.config, self.generator, self.world = config, generator, world
        if config.batch_size % world.size:
            raise ValueError(f"batch_size {config.batch_size} must divide evenly among "
                             f"{world.size} processes")
        if config.recipe == "seed":
            self.inputs, self.targets = bounded_prefix_pairs(corpus.train_paragraphs(),
                                                             config.max_prefix)
        elif config.window_order == "sequential":
            self.chunks = SequentialBatches(corpus.train_ids, config.batch_size, config.seq_len)
            self._iter = iter(self.chunks)
        else:
            self.train_ids = corpus.train_ids
            # Fail now, with random_windows' clear message, rather than at the first step.
            random_windows(self.train_ids, 1, config.seq_len, generator=torch.Generator())

    def next(self) -> tuple[Tensor, Tensor, bool]:
        x, y, carry = self._next_global()
        return self.world.shard(x), self.world.shard(y), carry

    def _next_global(self) -> tuple[Tensor, Tensor, bool]:
        config = self.config
        if config.recipe == "seed":
            rows = torch.randint(0, len(self.targets), (config.batch_size,), generator=self.generator)
            return self.inputs[rows], self.targets[rows], False
        if config.window_order == "sequential":
            try:
                x, y = next(self._iter)
                return x, y, True
            except StopIteration:  # a new pass over the text starts from a zero state
                self._iter = iter(self.chunks)
                x, y = next(self._iter)
                return x, y, False
        x, y = random_windows(self.train_ids, config.batch_size, config.seq_len, self.generator)
        return x, y, False


def bounded_prefix_pairs(paragraphs: list[list[int]], max_prefix: int) -> tuple[Tensor, Tensor]:
    """``lstm_core.data.prefix_pairs`` with every prefix cut to its last ``max_prefix`` words.

    The first ``max_prefix`` targets of a paragraph see their whole prefix (prefix_pairs of the
    paragraph's head); each later target sees the window of ``max_prefix`` words before it::

        paragraph 5 6 7 8 9, max_prefix 2:
        x = [[pad, 5], [5, 6],   (the head 5 6 7)     y = [6, 7,
             [6, 7], [7, 8]]     (the windows)             8, 9]

    With no paragraph longer than max_prefix + 1 words this is prefix_pairs itself. Returns
    ``x`` (N, min(longest prefix, max_prefix)) and ``y`` (N,).
    """
    longest = max((len(p) - 1 for p in paragraphs), default=0)
    pairs = sum(max(len(p) - 1, 0) for p in paragraphs)
    if pairs * min(longest, max_prefix) > PAIR_ELEMENTS:
        raise ValueError(
            f"prefix pairs would need {pairs:,} x {min(longest, max_prefix):,} ids (more than "
            f"{PAIR_ELEMENTS:,}): the seed recipe gives every word a row of its prefix; use the "
            "windows recipe for a text this long, or a smaller max_prefix")
    x, y = prefix_pairs([p[: max_prefix + 1] for p in paragraphs])
    windows = [torch.tensor(p).unfold(0, max_prefix + 1, 1)[1:] for p in paragraphs
               if len(p) > max_prefix + 1]  # each (len(p) - max_prefix - 1, max_prefix + 1)
    if windows:
        rows = torch.cat(windows)
        x, y = torch.cat([x, rows[:, :-1]]), torch.cat([y, rows[:, -1]])
    return x, y


@torch.inference_mode()
def token_losses(model: LSTMLanguageModel, ids: Tensor, seq_len: int,
                 device: torch.device, rows: int = 1) -> Tensor:
    """The next-token loss at every position of ``ids`` (on the CPU), read in order with the
    state carried throughout, in eval mode. ``rows`` > 1 cuts ``ids`` into that many rows read
    side by side (``SequentialBatches``), each carrying its own state: fewer, wider steps."""
    was_training = model.training
    model.eval()
    losses, state = [], None
    for x, y in SequentialBatches(ids, batch_size=rows, seq_len=max(seq_len, 64)):
        logits, _, state = model(x.to(device), state=state)
        losses.append(torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.size(-1)), y.to(device).reshape(-1),
            reduction="none").detach().cpu())
    model.train(was_training)
    return torch.cat(losses)


def evaluate(model: LSTMLanguageModel, ids: Tensor, seq_len: int, device: torch.device,
             max_tokens: int = 0) -> float:
    """Mean next-token loss over ``ids`` (its first ``max_tokens``, unless 0), read in order
    with the state carried throughout.

    ``ids`` of two rows of EVAL_ROW_TOKENS or more are read as up to EVAL_ROWS rows side by
    side, each carrying its own state: the same figure but for each row's first words, in a
    fraction of the time (read one word at a time, a long tail took a minute per eval).
    """
    ids = ids[:max_tokens] if max_tokens else ids
    if len(ids) < 2:
        return math.nan
    rows = max(1, min(EVAL_ROWS, len(ids) // EVAL_ROW_TOKENS))
    return token_losses(model, ids, seq_len, device, rows).double().mean().item()


def on_cpu(value):
    """A copy of a nested dict/list of tensors with every tensor on the CPU, so a checkpoint
    written on a GPU loads on a machine without one."""
    if isinstance(value, Tensor):
        return value.detach().cpu()
    if isinstance(value, dict):
        return {key: on_cpu(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(on_cpu(item) for item in value)
    return value


class Trainer:
    """Owns the model, optimizer and schedule for one run; ``run()`` trains to the end."""

    def __init__(self, config: TrainConfig, text: str, checkpoint: dict | None = None):
        self.config = config
        self.device = pick_device(config.device)
        self.world = init_world(self.device)
        vocab = Vocabulary.from_dict(checkpoint["vocab"]) if checkpoint else None
        self.corpus = Corpus.from_text(text, config, vocab)
        check_model_size(config, len(self.corpus.vocab))  # before a weight is allocated
        torch.manual_seed(config.seed)
        self.model = LSTMLanguageModel(model_config_for(config, len(self.corpus.vocab)))
        if config.unigram_bias:  # a checkpoint, if any, overwrites it below
            self.model.init_output_bias_to_unigram(self.corpus.train_ids)
        self.model.to(self.device)
        optimizer = torch.optim.Adam if config.optimizer == "adam" else torch.optim.SGD  # ntasgd: SGD
        self.optimizer = optimizer(self.model.parameters(), lr=config.lr,
                                   weight_decay=config.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            self.optimizer, factor=config.lr_factor, patience=max(config.lr_patience - 1, 0),
            min_lr=min(config.lr_min, config.lr))  # a floor above a small starting rate (Adam) is no floor
        self.average: WeightAverage | None = None  # NT-ASGD's running average, once triggered
        self.generator = torch.Generator().manual_seed(config.seed)
        self.batches = Batches(self.corpus, config, self.generator, self.world)
        self.train_model = wrap(self.model, self.world)  # DDP when there are several processes
        self.step = 0
        self.best_val = math.inf
        self.evals_since_best = 0
        self.best_step = 0
        self.history: dict[str, float] = {}
        self.kept: dict[str, float] = {}  # the figures of the weights model.pt holds
        self.samples: list[tuple[int, str]] = []  # (step, greedy sample from the cue) per eval
        if checkpoint:
            self._restore(checkpoint)

    # -- checkpoints -----------------------------------------------------------------------

    def checkpoint(self) -> dict:
        """Everything needed to use or resume this run, as tensors and builtins only."""
        return {
            "format": CHECKPOINT_FORMAT,
            "model_config": self.model.config.to_dict(),
            "train_config": self.config.to_dict(),
            "vocab": self.corpus.vocab.to_dict(),
            # clone: on a CPU .cpu() is the live tensor, which NT-ASGD's swap would overwrite
            "state_dict": {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()},
            "optimizer": on_cpu(self.optimizer.state_dict()),  # Adam's moments live on the GPU there
            "scheduler": {k: v for k, v in self.scheduler.state_dict().items()
                          if isinstance(v, (int, float, str, list, type(None)))},
            "generator": self.generator.get_state(),
            "torch_rng": torch.get_rng_state(),  # dropout masks draw from the global generator
            # ... or, on a GPU, from the GPU's own one
            "cuda_rng": torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None,
            "step": self.step,
            "best_val": self.best_val,
            "evals_since_best": self.evals_since_best,
            "best_step": self.best_step,
            "ntasgd": self.average.state_dict() if self.average else None,
            "metrics": dict(self.history),
        }

    def _restore(self, checkpoint: dict) -> None:
        try:
            self.model.load_state_dict(checkpoint["state_dict"])
            self.optimizer.load_state_dict(checkpoint["optimizer"])
            self.scheduler.load_state_dict(checkpoint["scheduler"])
            self.generator.set_state(checkpoint["generator"])
            torch.set_rng_state(checkpoint["torch_rng"])
            if self.device.type == "cuda" and checkpoint.get("cuda_rng") is not None:
                torch.cuda.set_rng_state(checkpoint["cuda_rng"], self.device)
            self.step = int(checkpoint["step"])
            self.best_val = float(checkpoint["best_val"])
            self.evals_since_best = int(checkpoint["evals_since_best"])
            self.best_step = int(checkpoint.get("best_step", 0))
            self.kept = {k: v for k, v in checkpoint.get("metrics", {}).items()
                         if k.startswith("best_")}
            if checkpoint.get("ntasgd"):
                self.average = WeightAverage(self.model, checkpoint["ntasgd"]["start_step"])
                self.average.load_state_dict(checkpoint["ntasgd"])
            self.history = dict(checkpoint["metrics"])
        except (KeyError, TypeError, ValueError, RuntimeError) as err:
            reason = " ".join(str(err).split())[:200] or type(err).__name__
            raise ValueError(f"The checkpoint cannot be resumed: {reason}") from None

    # -- the loop ----------------------------------------------------------------------------

    def train_step(self, state=None) -> StepResult:
        """One optimizer step on the next batch; advances ``self.step``."""
        x, y, carry = self.batches.next()
        x, y = x.to(self.device), y.to(self.device)
        if not carry:
            state = None
        _, loss, state = self.train_model(x, y, state)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        clip = self.config.grad_clip if self.config.grad_clip > 0 else math.inf
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), clip)
        self.optimizer.step()
        if self.average is not None:
            self.average.update()
        self.step += 1
        # Keep the values, drop the graph: the next chunk continues from here without
        # backpropagating into this one.
        state = tuple(s.detach() for s in state)
        # The logged train_loss is the cross-entropy alone (no AR/TAR), comparable with val_loss.
        train_loss = loss.item() - self.model.last_penalty
        return StepResult(self.world.mean(train_loss), grad_norm.item(),
                          y.numel() * self.world.size, state)

    def run(
        self,
        on_log: Callable[[int, dict[str, float]], None] = lambda step, metrics: None,
        on_checkpoint: Callable[[str, dict], None] = lambda name, checkpoint: None,
        on_step: Callable[[int, float], None] = lambda step, loss: None,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> dict[str, float]:
        """Train until ``config.steps`` (or early stopping). Returns the last logged metrics.

        on_log(step, metrics) is called every eval_interval steps and at the end;
        on_checkpoint("last" | "best", checkpoint) after each log; on_step(step, loss) every step;
        should_stop() after every step ends the loop early (Ctrl-C, a Stop button), after one
        last log so the steps since the previous one are checkpointed too.
        """
        self.model.train()
        window = _LogWindow()
        while self.step < self.config.steps and not should_stop():
            result = self.train_step(window.state)
            window.add(result)
            on_step(self.step, result.loss)
            if self.step % self.config.eval_interval == 0 or self.step == self.config.steps:
                if self._log(window, on_log, on_checkpoint):
                    break
                window = _LogWindow(window.state)
        if window.losses:  # stopped between two log intervals
            self._log(window, on_log, on_checkpoint)
        return dict(self.history)

    def _log(self, window: _LogWindow, on_log, on_checkpoint) -> bool:
        """Validate, log, checkpoint; returns True when early stopping says to stop."""
        metrics = window.metrics(self.optimizer.param_groups[0]["lr"])
        # With NT-ASGD averaging, the averaged weights are the model: validate and save those.
        with self.average.swapped_in() if self.average else contextlib.nullcontext():
            val_loss = evaluate(self.model, self.corpus.val_ids, self.config.seq_len, self.device,
                                self.config.eval_tokens)
            improved = self._track_validation(val_loss, metrics)
            metrics.update(self._memorization_figures())
            metrics.update(self._canary_figures())
            # model.pt gets these weights: a new lowest validation loss, or, with nothing held
            # out or for the seed recipe (which keeps its final weights), every evaluation.
            keeps = improved or math.isnan(val_loss) or self.config.recipe == "seed"
            if keeps:
                self.kept = self._kept_figures(metrics)
            metrics.update(self.kept)
            self.history = metrics  # before the checkpoint, which carries this step's figures
            best = self.checkpoint() if keeps else None
        # Checkpoints first: once a step's log line is out, its checkpoint is on disk.
        self._save_checkpoints(best, on_checkpoint)
        on_log(self.step, metrics)
        window.losses.clear()
        patience = self.config.early_stop_patience
        return patience > 0 and self.evals_since_best >= patience

    def _track_validation(self, val_loss: float, metrics: dict[str, float]) -> bool:
        """Add the validation figures, update the best so far and the learning-rate schedule.

        Returns whether this is a new best (False when there is no validation text)."""
        if math.isnan(val_loss):
            return False
        metrics["val_loss"] = val_loss
        metrics["val_perplexity"] = math.exp(min(val_loss, 50.0))
        improved = val_loss < self.best_val
        if improved:
            self.best_val, self.best_step, self.evals_since_best = val_loss, self.step, 0
        else:
            self.evals_since_best += 1
        patience = self.config.lr_patience
        if self.config.optimizer == "ntasgd":  # the learning rate stays; averaging starts
            if self.average is None and patience > 0 and self.evals_since_best >= patience:
                self.average = WeightAverage(self.model, start_step=self.step)
        elif patience > 0:
            self.scheduler.step(val_loss)
        return improved

    def _kept_figures(self, metrics: dict[str, float]) -> dict[str, float]:
        """The figures of the weights model.pt holds (so every summary of a run shows the
        loaded weights' numbers): their step, training and held-out loss, perplexity, memorization."""
        kept = {"best_step": float(self.step)}
        for name in ("train_loss", "val_loss", "val_perplexity", "extractable_memorization"):
            if name in metrics:
                kept[f"best_{name}"] = metrics[name]
        return kept

    def _sample(self) -> str:
        """A greedy continuation of the training text's first words (the same cue at every
        evaluation), so a learner sees gibberish turn into recitation."""
        cue = self._cue()
        ids = generate_ids(self.model, cue, SamplingConfig(max_new_tokens=SAMPLE_TOKENS))
        return detokenize(self.corpus.vocab.decode(ids), self.config.tokenizer)

    def _cue(self) -> list[int]:
        """The sample's cue: the first memorization_prefix training words without <unk> in them
        (a cue a learner can type), else simply the first ones."""
        ids, k = self.corpus.train_ids[:4096], self.config.memorization_prefix
        start = first_known_window(ids, k)
        return ids[start or 0:(start or 0) + k].tolist()

    def _memorization_figures(self) -> dict[str, float]:
        """Memorization on a fixed, evenly spread sample of training passages, and its cost;
        the evaluation's greedy sample (``self.samples``) is taken here, inside that cost."""
        cfg = self.config
        if not cfg.memorization_sample or \
                len(self.corpus.train_ids) < cfg.memorization_prefix + cfg.memorization_suffix:
            return {}
        started = time.perf_counter()
        rate = extractable_memorization(
            self.model, self.corpus.train_ids, cfg.memorization_prefix, cfg.memorization_suffix,
            max_windows=cfg.memorization_sample)
        self.samples.append((self.step, self._sample()))
        return {"extractable_memorization": rate,
                "memorization_seconds": time.perf_counter() - started}

    def _canary_figures(self) -> dict[str, float]:
        """The planted canary's exposure (bits) and whether greedy decoding writes it out,
        for a bounded amount of work (canary.EVAL_BUDGET_ROWS rows, about a validation pass)."""
        if self.corpus.canary is None:
            return {}
        started = time.perf_counter()
        figures = canary_figures(self.model, self.corpus, canaries.EVAL_BUDGET_ROWS)
        return {**figures, "canary_seconds": time.perf_counter() - started}

    def _save_checkpoints(self, best: dict | None, on_checkpoint) -> None:
        """last.pt always; model.pt when ``_log`` found these the weights to keep (``best``,
        taken with NT-ASGD's averaged weights in place): the windows recipe's best-validation
        weights, the seed recipe's (like the write-up's) and a run without held-out text's last.
        """
        on_checkpoint("last", self.checkpoint())
        if best is not None:
            on_checkpoint("best", best)


def canary_figures(model: LSTMLanguageModel, corpus: Corpus,
                   max_rows: float = math.inf) -> dict[str, float]:
    """canary_exposure (bits), canary_rank, canary_exposure_exact (1 when every candidate
    that could outrank the secret was scored, 0 when the rank is estimated from a sample)
    and canary_extracted (1 when greedy decoding after the prefix writes the secret)."""
    context, digits, secret = canaries.canary_ids(corpus.canary, corpus.vocab)
    found = canaries.exposure(model, context, digits, secret, max_rows)
    return {"canary_exposure": found.bits, "canary_rank": found.rank,
            "canary_exposure_exact": float(found.exact),
            "canary_extracted": float(canaries.extracted(model, context, secret))}


class StepResult(NamedTuple):
    """What one training step reports."""

    loss: float  # mean training loss of the batch (over all processes)
    grad_norm: float  # gradient norm before clipping
    tokens: int  # targets scored (over all processes)
    state: tuple[Tensor, Tensor]  # (h, c) after the batch, detached, for the next chunk


class _LogWindow:
    """The steps since the last log line: their losses, gradient norms, tokens and time."""

    def __init__(self, state=None):
        self.state, self.losses, self.norms, self.tokens = state, [], [], 0
        self.started = time.perf_counter()

    def add(self, result: StepResult) -> None:
        self.state = result.state
        self.losses.append(result.loss)
        self.norms.append(result.grad_norm)
        self.tokens += result.tokens

    def metrics(self, lr: float) -> dict[str, float]:
        elapsed = time.perf_counter() - self.started
        return {
            "train_loss": sum(self.losses) / len(self.losses),
            "lr": lr,
            "grad_norm": sum(self.norms) / len(self.norms),
            "tokens_per_sec": self.tokens / max(elapsed, 1e-9),
        }
