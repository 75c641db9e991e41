"""Held-out perplexity at equal training time: our windows defaults against the classic recipe.

    python -m bench.heldout [--seconds 30] [--markdown]

The classic recipe is PyTorch's word_language_model example: an nn.LSTM language model read in
sequential chunks with the state carried, plain SGD at lr 20, gradient clipping at 0.25, and the
learning rate divided by 4 whenever validation loss stops improving. The windows defaults were
chosen on corpus/lighthouse_keeper.txt; this measures both on a text they were not tuned on
(../shared/corpus/the_spike.txt when present): train on the first 90%, report the best
validation perplexity on the last 10% reached within the same wall-clock budget.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import torch

from bench.table import print_table
from lstm_core.data import SequentialBatches
from lstm_core.model import LSTMLanguageModel, ModelConfig
from lstm_core.text import read_text
from training.config import SPIKE, TrainConfig
from training.loop import Corpus, Trainer, evaluate

ROOT = Path(__file__).resolve().parents[1]


def ours(text: str, seconds: float) -> tuple[float, int]:
    """Best validation loss of the windows recipe's defaults within the budget."""
    trainer = Trainer(TrainConfig.for_recipe("windows", steps=10**6), text)
    best, state, started = math.inf, None, time.perf_counter()
    while time.perf_counter() - started < seconds:
        for _ in range(trainer.config.eval_interval):
            state = trainer.train_step(state).state
        val = evaluate(trainer.model, trainer.corpus.val_ids, 32, torch.device("cpu"))
        best = min(best, val)
        trainer.scheduler.step(val)
    return best, trainer.step


def classic(text: str, seconds: float, hidden: int = 128, bptt: int = 35, batch: int = 20) -> tuple[float, int]:
    """word_language_model's recipe on an nn.LSTM with the same vocabulary and split."""
    corpus = Corpus.from_text(text, TrainConfig(val_fraction=0.1))
    torch.manual_seed(1337)
    model = LSTMLanguageModel(ModelConfig(len(corpus.vocab), hidden, hidden, dropout=0.2,
                                          backend="torch"))
    lr, best, step, started = 20.0, math.inf, 0, time.perf_counter()
    chunks = SequentialBatches(corpus.train_ids, batch, bptt)
    while time.perf_counter() - started < seconds:
        model.train()
        state = None
        for x, y in chunks:  # one epoch, the state carried (and detached) chunk to chunk
            _, loss, state = model(x, y, state)
            state = tuple(s.detach() for s in state)
            model.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 0.25)
            with torch.no_grad():
                for p in model.parameters():
                    p.add_(p.grad, alpha=-lr)
            step += 1
        val = evaluate(model, corpus.val_ids, bptt, torch.device("cpu"))
        if val < best:
            best = val
        else:
            lr /= 4.0  # anneal when validation stops improving
    return best, step


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30, help="training budget per recipe")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    path = SPIKE if SPIKE.exists() else ROOT / "corpus" / "lighthouse_keeper.txt"
    text = read_text(path)
    results = {"windows recipe defaults": ours(text, args.seconds),
               "classic nn.LSTM (SGD lr 20, clip 0.25, anneal /4)": classic(text, args.seconds)}
    rows = [("recipe", f"best val perplexity in {args.seconds:.0f} s", "steps")]
    rows += [(name, f"{math.exp(loss):.1f}", str(steps)) for name, (loss, steps) in results.items()]
    (a, _), (b, _) = results.values()
    print_table(rows, args.markdown)
    print(f"\ntext: {path.name} (held-out last 10%); ours / classic perplexity: "
          f"{math.exp(a) / math.exp(b):.2f} (below 1 = ours better)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
