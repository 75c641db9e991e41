"""A long-range task, generated: remember the first word of a sequence across k distractors.

Each sequence is one of ``signals`` words, then k words drawn from ``distractors`` other
words, then a query mark; the target after the mark is the first word again:

    s  d d d ... d  ?   ->  s         (k distractors between s and ?)

Only the first word tells what to answer, so a model that cannot carry it k steps is at
chance (1 / signals), whatever it does with the distractors. The loss (and the accuracy) is on
that last prediction only. The task is small on purpose: a vocabulary of a few dozen ids and
models of a few thousand weights train in seconds on a CPU, so the three cells can be compared
over a range of k at equal parameter counts (``lstm_core.gradient_flow.equal_size_configs``).

Measured the way papers compare cells: each run trains at one learning rate and stops once
its accuracy on a validation set reaches ``SOLVED``; ``search_lr`` tries the small grid ``LRS``
and keeps the best on that validation set; the accuracy reported is on test sequences drawn
apart from both the training and the validation sequences.

Also here: ``task_gradient_flow`` (how much of the last step's gradient reaches each earlier
word, on this task: the first word's is the one that carries the answer) and ``gate_trace``
(the LSTM's forget gate, or the GRU's update gate, at every step of one sequence).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from lstm_core.cells import CELLS
from lstm_core.gradient_flow import equal_size_configs, gradient_flow
from lstm_core.model import LSTMLanguageModel, ModelConfig

TASK = "copy-first"  # the task's name, logged as the param ``task``
# The gate whose value near 1 keeps the state: the LSTM's forget gate, the GRU's update gate.
KEEP_GATE = {"lstm": "forget", "gru": "update"}
SOLVED = 0.99  # validation accuracy at which a run counts as solved and stops training
# The learning rates each point tries, in this order (``search_lr``).
LRS = (0.01, 0.003, 0.03)
# Seeds of the sequence sets that are never trained on, offset from the training seed.
TEST_SEED, VALIDATION_SEED = 10_000, 20_000


@dataclass(frozen=True)
class TaskConfig:
    k: int = 20  # distractor words between the word to remember and the query mark
    cell: str = "lstm"  # "lstm", "gru" or "rnn": the recurrent layer
    forget_bias: float = 1.0  # initial bias of the LSTM's forget gate (the GRU's update gate)
    signals: int = 8  # words that may come first (chance accuracy is 1 / signals)
    distractors: int = 16  # words that fill the k steps between
    lstm_hidden: int = 32  # the LSTM's hidden size; the GRU and RNN get the same parameter count
    embed_dim: int = 16  # word vector size, the same for every cell
    steps: int = 4000  # the cap on Adam steps (a run stops earlier once solved)
    batch_size: int = 64  # sequences per step
    lr: float = 0.01  # Adam's learning rate
    grad_clip: float = 1.0  # clip the gradient norm to this (0 = no clipping)
    eval_interval: int = 50  # steps between accuracy measurements
    eval_size: int = 512  # sequences in the validation set, and in the test set
    seed: int = 0  # seeds the weights and the training sequences

    def __post_init__(self) -> None:
        checks = [
            (1 <= self.k <= 1000, "k must be from 1 to 1000"),
            (self.cell in CELLS, f"cell must be one of {CELLS}"),
            (-10 <= self.forget_bias <= 10, "forget_bias must be from -10 to 10"),
            (2 <= self.signals <= 100 and 1 <= self.distractors <= 1000,
             "signals must be from 2 to 100 and distractors from 1 to 1000"),
            (1 <= self.lstm_hidden <= 512 and 1 <= self.embed_dim <= 512,
             "lstm_hidden and embed_dim must be from 1 to 512"),
            (1 <= self.steps <= 100_000 and 1 <= self.batch_size <= 4096, "steps or batch_size out of range"),
            (self.lr > 0 and self.grad_clip >= 0, "lr must be positive and grad_clip >= 0"),
            (self.eval_interval >= 1 and 1 <= self.eval_size <= 100_000,
             "eval_interval must be positive and eval_size from 1 to 100000"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)

    @property
    def vocab_size(self) -> int:
        return self.signals + self.distractors + 1  # the last id is the query mark

    @property
    def chance(self) -> float:
        return 1.0 / self.signals

    def model_config(self) -> ModelConfig:
        """The model of this cell at the parameter count of an LSTM of ``lstm_hidden``."""
        base = ModelConfig(vocab_size=self.vocab_size, embed_dim=self.embed_dim,
                           hidden_size=self.lstm_hidden, forget_bias=self.forget_bias)
        return equal_size_configs(base, (self.cell,))[self.cell]


def sequences(config: TaskConfig, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """n sequences of the task: inputs (n, k + 2) and targets (n,), the first word of each."""
    first = torch.randint(config.signals, (n, 1), generator=generator)
    between = config.signals + torch.randint(config.distractors, (n, config.k), generator=generator)
    query = torch.full((n, 1), config.vocab_size - 1)
    return torch.cat([first, between, query], dim=1), first[:, 0]


def held_out(config: TaskConfig) -> tuple[Tensor, Tensor]:
    """The test sequences, whose accuracy is reported: drawn from a seed of their own, never
    trained on nor used to pick anything (with 16 distractors and k >= 5 a repeat of a training
    sequence is about one in a million)."""
    return sequences(config, config.eval_size,
                     torch.Generator().manual_seed(TEST_SEED + config.seed))


def validation(config: TaskConfig) -> tuple[Tensor, Tensor]:
    """The validation sequences: they stop a solved run and pick its learning rate."""
    return sequences(config, config.eval_size,
                     torch.Generator().manual_seed(VALIDATION_SEED + config.seed))


@torch.no_grad()
def accuracy(model: LSTMLanguageModel, inputs: Tensor, targets: Tensor) -> float:
    """The share of sequences whose last prediction (argmax) is their first word."""
    was_training = model.training
    model.eval()
    try:
        logits, _, _ = model(inputs, last_only=True)
    finally:
        model.train(was_training)
    return (logits[:, -1].argmax(-1) == targets).float().mean().item()


@dataclass
class TaskResult:
    model: LSTMLanguageModel
    accuracy: list[tuple[int, float]]  # (step, test accuracy), from step 0
    validation: list[tuple[int, float]]  # (step, validation accuracy), the same steps
    seconds: float  # training time, evaluations included
    lr: float = 0.0  # the learning rate it trained at
    cpu_seconds: float = 0.0  # this process's CPU time for it: the seconds of an idle machine

    @property
    def final_accuracy(self) -> float:
        return self.accuracy[-1][1]

    @property
    def final_validation(self) -> float:
        return self.validation[-1][1]

    @property
    def steps(self) -> int:
        """The steps it trained (the cap, or fewer once solved)."""
        return self.accuracy[-1][0]


def train_task(config: TaskConfig, on_eval: Callable[[int, float], None] | None = None,
               should_stop: Callable[[], bool] | None = None,
               solved_at: float | None = None) -> TaskResult:
    """Train one cell on the task with Adam at ``config.lr``; every ``eval_interval`` steps the
    test accuracy goes to ``on_eval(step, accuracy)``. Training ends early once the validation
    accuracy reaches ``solved_at`` (a solved task has nothing left to show), or when
    ``should_stop()`` is true. The test sequences decide nothing: they are only reported.

    Every cell runs on the ``torch`` backend here (the fused kernels, on this model's own
    weights: tests/test_model.py and tests/test_cells.py check they compute the same numbers),
    so that a grid over k trains in minutes; the model is handed back on the readable cell.
    """
    started, cpu_started = time.perf_counter(), time.process_time()
    torch.manual_seed(config.seed)
    model = LSTMLanguageModel(dataclasses.replace(config.model_config(), backend="torch"))
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    generator = torch.Generator().manual_seed(config.seed)
    test, valid = held_out(config), validation(config)
    history, checked = [], []

    def evaluate(step):
        history.append((step, accuracy(model, *test)))
        checked.append((step, accuracy(model, *valid)))
        if on_eval:
            on_eval(*history[-1])

    evaluate(0)
    for step in range(1, config.steps + 1):
        inputs, targets = sequences(config, config.batch_size, generator)
        _, loss, _ = model(inputs, targets)  # targets (B,): the loss of the last step only
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if config.grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        if step % config.eval_interval == 0 or step == config.steps:
            evaluate(step)
            if solved_at is not None and checked[-1][1] >= solved_at:
                break
        if should_stop and should_stop():
            break
    model.set_backend("autograd")  # the readable cell, for inspecting and gradient flow
    return TaskResult(model, history, checked, time.perf_counter() - started, config.lr,
                      time.process_time() - cpu_started)


def search_lr(config: TaskConfig, lrs: tuple[float, ...] = LRS, solved_at: float = SOLVED,
              should_stop: Callable[[], bool] | None = None) -> tuple[TaskResult, list[dict]]:
    """Train ``config`` at each learning rate of ``lrs`` in turn and keep the best on the
    validation set: the first that solves it (a later one could only tie, and trying it costs
    a run to the cap when it does not), otherwise the highest final validation accuracy (the
    earlier on a tie). Returns that run and one line per rate tried: lr, validation and test
    accuracy, steps, seconds."""
    if not lrs:
        raise ValueError("the learning-rate grid is empty")
    best, tries = None, []
    for lr in lrs:
        result = train_task(dataclasses.replace(config, lr=lr), should_stop=should_stop,
                            solved_at=solved_at)
        tries.append({"lr": lr, "val_accuracy": result.final_validation,
                      "accuracy": result.final_accuracy, "steps": result.steps,
                      "seconds": result.seconds, "cpu_seconds": result.cpu_seconds})
        if best is None or result.final_validation > best.final_validation:
            best = result
        if result.final_validation >= solved_at or (should_stop and should_stop()):
            break
    return best, tries


def task_gradient_flow(model: LSTMLanguageModel, inputs: Tensor, targets: Tensor) -> dict:
    """``gradient_flow`` of the last step's loss on task sequences: distance 0 is the query
    mark, distance k + 1 the first word, the one the answer depends on."""
    return gradient_flow(model, torch.cat([inputs, targets[:, None]], dim=1))


def gate_trace(model: LSTMLanguageModel, sequence: Tensor) -> dict | None:
    """The keep gate (LSTM forget, GRU update) at every step of one sequence (k + 2,), first
    layer: its mean over all units, and the unit whose mean over the k distractor steps is
    highest. None for a plain RNN, which has no such gate."""
    name = KEEP_GATE.get(model.config.cell)
    if name is None:
        return None
    gate = model.inspect(sequence)[name][0]  # (T, H)
    over_distractors = gate[1:-1].mean(0)  # (H,): each unit's mean over the k distractors
    unit = int(over_distractors.argmax())
    return {"gate": name, "mean": gate.mean(1).tolist(), "unit": unit,
            "top_unit": gate[:, unit].tolist(),
            "mean_over_distractors": over_distractors.mean().item(),
            "top_unit_over_distractors": over_distractors[unit].item()}


def solved_sequence(model: LSTMLanguageModel, inputs: Tensor, targets: Tensor) -> Tensor | None:
    """The first held-out sequence the model answers right, or None."""
    with torch.no_grad():
        model.eval()
        right = model(inputs, last_only=True)[0][:, -1].argmax(-1) == targets
    index = right.nonzero()
    return inputs[int(index[0])] if len(index) else None

