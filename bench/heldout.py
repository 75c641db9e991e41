"""Held-out perplexity at equal training time: the generalizing recipe against the classic one.

    python -m bench.heldout [--seconds 60] [--ablation-seconds 30] [--text NAME ...] [--ablation-only] [--markdown]

The classic recipe is PyTorch's word_language_model example: an nn.LSTM language model read in
sequential chunks with the state carried, plain SGD at lr 20, gradient clipping at 0.25, dropout
0.2, and the learning rate divided by 4 whenever validation loss stops improving. The
recommended recipe is the windows recipe with the AWD-LSTM regularizers (Merity et al. 2017) on
our own cell. Both are measured on texts no setting was chosen on: the write-up's essay
(../shared/corpus/the_spike.txt, when present) and corpus/persuasion_ch1-2.txt (Jane Austen,
public domain, see corpus/README.md). Same tokenizer, same split (train on the first 90%, the
best validation perplexity on the last 10%), same budget. The budget is each side's own CPU time
(``time.thread_time()``, torch on one thread), not wall-clock time: on a shared machine other
people's jobs slow one side's wall clock but not its CPU seconds, so both sides get the same
amount of computation wherever and whenever they run. Evaluations count against the budget.
The ablation rows remove one regularizer at a time from the recommended recipe.

Both sides read the same ids: the vocabulary comes from the training part only (words seen
fewer than ``min_count`` times there, and held-out words it lacks, read <unk>), as Penn Treebank
and WikiText fix theirs from the training split, and <unk> counts as one word. Each cell also
splits the held-out tail in two: vocabulary words, and <unk>. ``--markdown`` prints it as
"ppl (steps; known ppl, <unk> nats)".
"""

from __future__ import annotations

import argparse
import contextlib
import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from bench.table import print_table
from lstm_core.data import SequentialBatches
from lstm_core.model import LSTMLanguageModel, ModelConfig
from lstm_core.text import read_text
from lstm_core.vocab import UNK_ID
from training.config import SPIKE, TrainConfig
from training.loop import Corpus, Trainer, evaluate, token_losses

ROOT = Path(__file__).resolve().parents[1]
TEXTS = {"the_spike.txt": SPIKE,
         "persuasion_ch1-2.txt": ROOT / "corpus" / "persuasion_ch1-2.txt"}
# The recommended generalizing recipe, on top of the windows recipe's defaults: the best AWD
# setting of `python -m bench.tune regularizers` on corpus/lighthouse_keeper.txt, then the best
# of `python -m bench.tune generalize` (an evaluation every 5 steps, windows of 16 tokens: the
# best mean of two seeds; README).
AWD = dict(dropout=0.65, locked_dropout=True, embed_dropout=0.1, weight_drop=0.3,
           ar=1.0, tar=0.5, optimizer="ntasgd", lr_patience=2)
RECOMMENDED = {**AWD, "eval_interval": 5, "seq_len": 16}
ABLATIONS = {
    "(nothing removed: the recommended recipe at the ablation budget)": {},
    "- locked dropout (a fresh mask per step)": dict(locked_dropout=False),
    "- embedding dropout": dict(embed_dropout=0.0),
    "- weight drop": dict(weight_drop=0.0),
    "- AR and TAR": dict(ar=0.0, tar=0.0),
    "- NT-ASGD (SGD with the windows schedule)": dict(optimizer="sgd"),
    "- the finer evaluation (every 25 steps, the windows default)": dict(eval_interval=25),
    "- the shorter windows (seq_len 32, the windows default)": dict(seq_len=32),
    "+ label smoothing 0.1 (runner-up, not chosen)": dict(label_smoothing=0.1),
}


@dataclass
class Score:
    """One recipe on one text: the best checkpoint's held-out figures, split by word kind."""

    loss: float  # mean held-out loss (nats per token) of the best checkpoint, <unk> one word
    steps: int
    known_ppl: float  # perplexity on held-out tokens that are vocabulary words
    unk_nats: float  # mean loss on held-out tokens that read <unk> (nan if none)
    unk_share: float  # the share of held-out tokens that read <unk>

    def cell(self) -> str:
        return (f"{math.exp(self.loss):.1f} ({self.steps}; known {self.known_ppl:.1f}, "
                f"<unk> {self.unk_nats:.2f})")


def split_scores(model: LSTMLanguageModel, corpus: Corpus, seq_len: int, steps: int) -> Score:
    """Held-out loss as ``evaluate`` reads it, split by whether each target is a vocabulary
    word or <unk> (a held-out word the training part lacks, or one rare there)."""
    losses = token_losses(model, corpus.val_ids, seq_len, torch.device("cpu"))
    unk = corpus.val_ids[1:] == UNK_ID
    unk_nats = losses[unk].mean().item() if unk.any() else math.nan
    return Score(losses.mean().item(), steps, math.exp(losses[~unk].mean().item()), unk_nats,
                 unk.float().mean().item())


def cpu_deadline(seconds: float):
    """A should_stop() that turns True once this thread has used ``seconds`` of CPU time."""
    deadline = time.thread_time() + seconds
    return lambda: time.thread_time() > deadline


def ours(text: str, seconds: float, **overrides) -> Score:
    """The best checkpoint of the windows recipe (with overrides) within the CPU budget."""
    overrides = {"steps": 10**6, "early_stop_patience": 0, **overrides}
    config = TrainConfig.for_recipe("windows", memorization_sample=0, **overrides)
    trainer = Trainer(config, text)
    best: dict = {}
    trainer.run(should_stop=cpu_deadline(seconds),
                on_checkpoint=lambda name, checkpoint: best.update(checkpoint) if name == "best" else None)
    # Score the steps since the last evaluation too (classic() evaluates after its last epoch).
    with trainer.average.swapped_in() if trainer.average else contextlib.nullcontext():
        final = evaluate(trainer.model, trainer.corpus.val_ids, config.seq_len, trainer.device)
        if final < trainer.best_val:
            best = trainer.checkpoint()
    trainer.model.load_state_dict(best["state_dict"])
    return split_scores(trainer.model, trainer.corpus, config.seq_len, trainer.step)


def classic(text: str, seconds: float, hidden: int = 128, bptt: int = 35, batch: int = 20,
            min_count: int = TrainConfig.min_count) -> Score:
    """word_language_model's recipe on an nn.LSTM with exactly our tokenizer, split and
    vocabulary (the same ids for both sides)."""
    corpus = Corpus.from_text(text, TrainConfig(val_fraction=0.1, min_count=min_count))
    torch.manual_seed(1337)
    model = LSTMLanguageModel(ModelConfig(len(corpus.vocab), hidden, hidden, dropout=0.2,
                                          backend="torch"))
    lr, best, best_weights, step, out_of_time = 20.0, math.inf, None, 0, cpu_deadline(seconds)
    chunks = SequentialBatches(corpus.train_ids, batch, bptt)
    while not out_of_time():
        model.train()
        state = None
        for x, y in chunks:  # one epoch, the state carried (and detached) chunk to chunk
            if out_of_time():  # checked per chunk, as ours is per step: no epoch runs over
                break
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
            best, best_weights = val, {k: v.clone() for k, v in model.state_dict().items()}
        else:
            lr /= 4.0  # anneal when validation stops improving
    model.load_state_dict(best_weights)
    return split_scores(model, corpus, bptt, step)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60, help="training budget per recipe")
    parser.add_argument("--ablation-seconds", type=float, default=30,
                        help="budget per ablation row (0 = no ablation)")
    parser.add_argument("--text", choices=sorted(TEXTS), nargs="*",
                        help="only these texts (CPU-time budgets make separate processes fair)")
    parser.add_argument("--ablation-only", action="store_true",
                        help="only the ablation rows (run the headline rows in another process)")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args(argv)
    if not (1 <= args.seconds <= 3600 and 0 <= args.ablation_seconds <= 3600):
        parser.error("--seconds must be from 1 to 3600 and --ablation-seconds from 0 to 3600")
    torch.set_num_threads(1)  # so thread_time() is all of a side's computation
    texts = {name: read_text(path) for name, path in TEXTS.items()
             if path.exists() and (not args.text or name in args.text)}
    results: dict[str, list[Score]] = {}
    recipes = [("recommended (windows + AWD, eval every 5, seq_len 16)", args.seconds, RECOMMENDED),
               ("classic nn.LSTM (SGD lr 20, clip 0.25, anneal /4)", args.seconds, None),
               ("windows recipe defaults (dropout 0.4, no AWD)", args.seconds, {})]
    if args.ablation_only:
        recipes = []
    if args.ablation_seconds > 0:
        recipes += [(name, args.ablation_seconds, {**RECOMMENDED, **change})
                    for name, change in ABLATIONS.items()]
    for name, seconds, overrides in recipes:
        results[name] = [classic(text, seconds) if overrides is None else
                         ours(text, seconds, **overrides) for text in texts.values()]
        print(f"done: {name}: {[score.cell() for score in results[name]]}", flush=True)
    # Every recipe splits a text the same way: the shares come from the first one run, if any.
    shares = [f" ({score.unk_share:.0%} <unk>)" for score in next(iter(results.values()), [])]
    rows = [("recipe", "CPU-time budget") + tuple(
        f"{name}{share}: val ppl (steps; known ppl, <unk> nats)"
        for name, share in zip(texts, shares or [""] * len(texts), strict=True))]
    rows += [(name, f"{seconds:.0f} CPU s", *(score.cell() for score in results[name]))
             for name, seconds, _ in recipes]
    print_table(rows, args.markdown)
    if args.ablation_only:
        return 0
    recommended, classic_scores = list(results.values())[:2]
    pairs = list(zip(texts, recommended, classic_scores, strict=True))
    ratios = ", ".join(f"{name} {math.exp(a.loss - b.loss):.3f}" for name, a, b in pairs)
    print(f"\nrecommended / classic perplexity (below 0.90 = at least 10% better): {ratios}")
    known = ", ".join(f"{name} {a.known_ppl / b.known_ppl:.3f}" for name, a, b in pairs)
    print(f"the same on the held-out tokens that are vocabulary words: {known}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
