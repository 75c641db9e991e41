"""Exposure of a planted canary against its repetitions and the regularizers.

    python -m bench.canary [--markdown] [--repeats 1 4 16] [--steps 300] [--hidden 32]

Each row trains one windows-recipe run on the default corpus with the canary "my secret number
is" + 6 random digits planted r times in the training part, then measures the exposure (bits,
out of log2 10^6 = 19.9) of the weights the run keeps (its lowest validation loss) by walking
all 10^6 candidates, whether greedy decoding after the prefix writes the secret, the held-out
perplexity, the exposure of the weights training ended with (early stopping may end it before
--steps), and the seconds the run took (training and its evaluations, exposure included), on
the clock and in CPU time (both threads: on an idle 2-CPU machine about twice the clock's).
All runs share the secret (canary_seed 0) and the training seed.
"""

from __future__ import annotations

import argparse
import math
import time

from bench.table import print_table
from lstm_core.text import read_text
from training.config import DEFAULT_CORPUS, TrainConfig
from training.loop import Trainer, canary_figures

# What stops memorization: name -> settings on top of the windows recipe.
REGULARIZERS = {
    "none": dict(dropout=0.0),
    "dropout 0.4": dict(dropout=0.4),
    "weight drop 0.5": dict(dropout=0.0, weight_drop=0.5),
    "dropout 0.4 + weight drop 0.5": dict(dropout=0.4, weight_drop=0.5),
}


def measure(repeats: int, regularizer: str, steps: int, hidden: int, text: str) -> dict:
    """Train one run; the kept weights' exposure, extraction, perplexity, and the seconds."""
    config = TrainConfig.for_recipe("windows", steps=steps, embed_dim=hidden, hidden_size=hidden,
                                    canary_repeats=repeats, **REGULARIZERS[regularizer])
    started, cpu = time.perf_counter(), time.process_time()
    trainer = Trainer(config, text)
    kept = {}
    trainer.run(on_checkpoint=lambda name, ckpt: kept.update(ckpt) if name == "best" else None)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    last = canary_figures(trainer.model, trainer.corpus)["canary_exposure"]
    trainer.model.load_state_dict(kept["state_dict"])
    figures = canary_figures(trainer.model, trainer.corpus)
    return {**figures, "seconds": seconds, "cpu_seconds": cpu, "perplexity": math.exp(trainer.best_val),
            "kept_step": kept["step"], "last_step": trainer.step, "last_exposure": last,
            "canary": trainer.corpus.canary.text}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--repeats", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--regularizers", nargs="+", default=list(REGULARIZERS),
                        choices=list(REGULARIZERS))
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--hidden", type=int, default=32)
    args = parser.parse_args(argv)
    text = read_text(DEFAULT_CORPUS)
    rows = [("repetitions", "regularizer", "exposure (bits)", "rank of 10^6", "greedy writes it",
             "held-out perplexity", "kept step", "last step: exposure", "seconds", "CPU s")]
    canary = ""
    for repeats in args.repeats:
        for regularizer in args.regularizers:
            found = measure(repeats, regularizer, args.steps, args.hidden, text)
            canary = found["canary"]
            rows.append((str(repeats), regularizer, f"{found['canary_exposure']:.1f}",
                         f"{found['canary_rank']:,.0f}",
                         "yes" if found["canary_extracted"] else "no",
                         f"{found['perplexity']:.1f}", str(found["kept_step"]),
                         f"{found['last_step']}: {found['last_exposure']:.1f}",
                         f"{found['seconds']:.0f}", f"{found['cpu_seconds']:.0f}"))
            print(" | ".join(rows[-1]), flush=True)
    print(f"\ncanary: {canary!r}; windows recipe, hidden {args.hidden}, {args.steps} steps, "
          f"{DEFAULT_CORPUS.name}\n")
    print_table(rows, args.markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
