"""Choosing the windows recipe's schedule and regularizers on the TUNING text only.

    python -m bench.tune schedule|regularizers|generalize|vocabulary [--seconds 25] [--only N]

Every setting trains on corpus/lighthouse_keeper.txt (last 10% held out) for the same CPU-time
budget as bench.heldout measures (``time.thread_time()``, one torch thread) and prints its best
validation perplexity and steps. The held-out texts of bench.heldout are never read here, so the
settings chosen from this table are fair to test on them.
"""

from __future__ import annotations

import argparse
import math

import torch

from bench.heldout import AWD, RECOMMENDED, classic, ours
from bench.table import print_table
from lstm_core.text import read_text
from training.config import DEFAULT_CORPUS

# SGD at lr 20; how fast and how far the learning rate is cut when validation stalls.
SCHEDULES = {
    "patience 1, x0.25, no floor (old default)": dict(lr_patience=1, lr_factor=0.25, lr_min=0.0),
    "patience 2, x0.25, floor 1": dict(lr_patience=2, lr_factor=0.25, lr_min=1.0),
    "patience 2, x0.5, floor 1": dict(lr_patience=2, lr_factor=0.5, lr_min=1.0),
    "patience 3, x0.5, floor 2": dict(lr_patience=3, lr_factor=0.5, lr_min=2.0),
    "patience 1, x0.5, floor 2": dict(lr_patience=1, lr_factor=0.5, lr_min=2.0),
    "patience 4, x0.25, floor 1": dict(lr_patience=4, lr_factor=0.25, lr_min=1.0),
}
# Regularizer strengths around the AWD-LSTM values, scaled for a one-layer 128-unit model: one
# change at a time from a first set, then the two best changes combined.
FIRST_SET = dict(dropout=0.4, locked_dropout=True, embed_dropout=0.1, weight_drop=0.5,
                 ar=2.0, tar=1.0, optimizer="ntasgd", lr_patience=2)
REGULARIZERS = {
    "first set (dropout 0.4, embed 0.1, weight drop 0.5, AR 2, TAR 1, NT-ASGD)": FIRST_SET,
    "dropout 0.5": {**FIRST_SET, "dropout": 0.5},
    "dropout 0.65": {**FIRST_SET, "dropout": 0.65},
    "weight drop 0.3": {**FIRST_SET, "weight_drop": 0.3},
    "embed dropout 0.05": {**FIRST_SET, "embed_dropout": 0.05},
    "embed dropout 0.15": {**FIRST_SET, "embed_dropout": 0.15},
    "no AR/TAR": {**FIRST_SET, "ar": 0.0, "tar": 0.0},
    "SGD, schedule instead of NT-ASGD": {**FIRST_SET, "optimizer": "sgd"},
    "windows defaults, no AWD (dropout 0.4)": {},
    "dropout 0.65, weight drop 0.3, AR 1, TAR 0.5 (bench.heldout.AWD)": AWD,
    "same, embed dropout 0.05, no AR/TAR": {**AWD, "embed_dropout": 0.05, "ar": 0.0,
                                            "tar": 0.0},
}
# Tuning knobs: evaluation granularity, capacity, batch shape, lr and the unigram output bias,
# each from the windows defaults and from the AWD regularizers. None = the classic recipe
# (bench.heldout.classic), the yardstick on the tuning text too.
E5 = dict(eval_interval=5)
AWD5 = {**AWD, **E5}  # the AWD regularizers (bench.heldout.AWD)
GENERALIZE = {
    "classic nn.LSTM (the yardstick)": None,
    "windows defaults (eval every 25 steps)": {},
    "windows defaults, eval every 5": E5,
    "windows defaults, eval every 5, unigram bias": {**E5, "unigram_bias": True},
    "AWD set, eval every 5": {**AWD, **E5},
    "AWD set, eval every 5, unigram bias": {**AWD, **E5, "unigram_bias": True},
    "defaults, eval 5, unigram, hidden 64": {**E5, "unigram_bias": True, "hidden_size": 64,
                                             "embed_dim": 64},
    "AWD, eval 5, unigram, hidden 64": {**AWD, **E5, "unigram_bias": True,
                                        "hidden_size": 64, "embed_dim": 64},
    "defaults, eval 5, unigram, lr 10": {**E5, "unigram_bias": True, "lr": 10.0},
    "defaults, eval 5, unigram, batch 20 x seq 35": {**E5, "unigram_bias": True,
                                                     "batch_size": 20, "seq_len": 35},
    "defaults, eval 5, unigram, backend torch": {**E5, "unigram_bias": True, "backend": "torch"},
    "defaults, eval 5, unigram, dropout 0.5": {**E5, "unigram_bias": True, "dropout": 0.5},
    "AWD, eval 5, label smoothing 0.1": {**AWD5, "label_smoothing": 0.1},
    "AWD, eval 5, label smoothing 0.2": {**AWD5, "label_smoothing": 0.2},
    "defaults, eval 5, label smoothing 0.1": {**E5, "label_smoothing": 0.1},
    "AWD, eval every 10": {**AWD, "eval_interval": 10},
    "AWD, eval 5, lr 10": {**AWD5, "lr": 10.0},
    "AWD, eval 5, seq_len 16": {**AWD5, "seq_len": 16},
    "AWD, eval 5, backend torch": {**AWD5, "backend": "torch"},
    "AWD, eval 5, hidden 96": {**AWD5, "hidden_size": 96, "embed_dim": 96},
    # The best single changes above (seq_len 16, label smoothing 0.1, hidden 96), combined:
    "AWD, eval 5, seq_len 16, label smoothing 0.1": {**AWD5, "seq_len": 16,
                                                     "label_smoothing": 0.1},
    "same, hidden 96": {**AWD5, "seq_len": 16, "label_smoothing": 0.1, "hidden_size": 96,
                        "embed_dim": 96},
    "AWD, eval 5, seq_len 16, label smoothing 0.05": {**AWD5, "seq_len": 16,
                                                      "label_smoothing": 0.05},
    "AWD, eval 5, seq_len 8, label smoothing 0.1": {**AWD5, "seq_len": 8,
                                                    "label_smoothing": 0.1},
    "AWD, eval 5, seq_len 16, label smoothing 0.1, batch 16": {**AWD5, "seq_len": 16,
                                                               "label_smoothing": 0.1,
                                                               "batch_size": 16},
    "AWD, eval 2, seq_len 16, label smoothing 0.1": {**AWD, "eval_interval": 2,
                                                     "seq_len": 16, "label_smoothing": 0.1},
    # Around label smoothing 0.1: more capacity, more dropout, the unigram start, bigger batches.
    "AWD, eval 5, label smoothing 0.1, hidden 256": {**AWD5, "label_smoothing": 0.1,
                                                     "hidden_size": 256, "embed_dim": 256},
    "AWD, eval 5, label smoothing 0.1, dropout 0.75": {**AWD5, "label_smoothing": 0.1,
                                                       "dropout": 0.75},
    "AWD, eval 5, label smoothing 0.1, unigram bias": {**AWD5, "label_smoothing": 0.1,
                                                       "unigram_bias": True},
    "AWD, eval 5, label smoothing 0.1, batch 64": {**AWD5, "label_smoothing": 0.1,
                                                   "batch_size": 64},
}
# The vocabulary's min_count (words rarer in the training part read <unk>), for both sides on
# the same ids: the classic recipe (marked "classic") and the recommended one (bench.heldout).
VOCABULARY = {f"{side}, min_count {n}": {"classic": True, "min_count": n} if side == "classic"
              else {**RECOMMENDED, "min_count": n}
              for n in (1, 2, 3) for side in ("classic", "recommended")}
GRIDS = {"schedule": SCHEDULES, "regularizers": REGULARIZERS, "generalize": GENERALIZE,
         "vocabulary": VOCABULARY}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("grid", choices=sorted(GRIDS))
    parser.add_argument("--seconds", type=float, default=25, help="CPU seconds per setting")
    parser.add_argument("--only", type=int, nargs="*", help="run only these rows (0-based)")
    parser.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE",
                        help="overrides applied to every row (e.g. lr_patience=2)")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args(argv)
    if not 1 <= args.seconds <= 600:
        parser.error("--seconds must be from 1 to 600")
    torch.set_num_threads(1)
    common = {k: _parse(v) for k, v in (item.split("=", 1) for item in args.set)}
    text = read_text(DEFAULT_CORPUS)
    rows = [("setting", "CPU-time budget", "lighthouse_keeper: val ppl (steps)")]
    for i, (name, overrides) in enumerate(GRIDS[args.grid].items()):
        if args.only and i not in args.only:
            continue
        if overrides is None or overrides.get("classic"):
            score = classic(text, args.seconds, min_count=(overrides or {}).get("min_count", 1))
        else:
            score = ours(text, args.seconds, **{**overrides, **common})
        rows.append((name, f"{args.seconds:.0f} CPU s", f"{math.exp(score.loss):.1f} ({score.steps})"))
        print(f"done: {rows[-1]}", flush=True)
    print_table(rows, args.markdown)
    return 0


def _parse(value: str):
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return {"True": True, "False": False}.get(value, value)


if __name__ == "__main__":
    raise SystemExit(main())
