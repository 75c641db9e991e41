"""Scale: throughput and peak memory of training as the text grows (10 KB, 1 MB, 5 MB).

    python -m bench.scale [--markdown] [--steps 30]

Each measurement runs in a fresh child process so its peak resident memory (ru_maxrss) is its
own. Texts are made by repeating the project corpus with its paragraphs shuffled, so the
vocabulary stays realistic while the token count grows. For the windows recipe, memory should
grow linearly (the token ids) on top of a fixed cost (Python, torch, the model); the seed
recipe's prefix pairs grow with words x longest paragraph, and it refuses what would not fit.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import time
from pathlib import Path

from bench.table import print_table

ROOT = Path(__file__).resolve().parents[1]
SIZES = {"10 KB": 10_000, "1 MB": 1_000_000, "5 MB": 5_000_000}


def make_text(n_bytes: int, seed: int = 0) -> str:
    paragraphs = (ROOT / "corpus" / "lighthouse_keeper.txt").read_text(encoding="utf-8").splitlines()
    rng, out, size = random.Random(seed), [], 0
    while size < n_bytes:
        para = rng.choice(paragraphs)
        out.append(para)
        size += len(para.encode("utf-8")) + 1
    return "\n".join(out)[:n_bytes]


def child(recipe: str, n_bytes: int, steps: int) -> dict:
    """Runs in the child process: build the data, train a few steps, report."""
    import torch

    from training.config import TrainConfig
    from training.loop import Trainer

    torch.set_num_threads(2)
    text = make_text(n_bytes)
    config = TrainConfig.for_recipe(recipe, steps=steps, eval_interval=steps, val_fraction=0.01
                                    if recipe == "windows" else 0.0)
    started = time.perf_counter()
    try:
        trainer = Trainer(config, text)
    except ValueError as err:
        return {"refused": str(err).split(";")[0][:90]}
    setup = time.perf_counter() - started
    tokens, started = 0, time.perf_counter()
    state = None
    for _ in range(steps):
        result = trainer.train_step(state)
        tokens, state = tokens + result.tokens, result.state
    elapsed = time.perf_counter() - started
    return {"tokens": len(trainer.corpus.train_ids), "vocab": len(trainer.corpus.vocab),
            "setup_s": setup, "tokens_per_s": tokens / elapsed,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def measure(recipe: str, n_bytes: int, steps: int) -> dict:
    code = ("import json, sys; from bench.scale import child; "
            f"print(json.dumps(child({recipe!r}, {n_bytes}, {steps})))")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                            text=True, timeout=900)
    if result.returncode != 0:
        return {"refused": f"failed: {result.stderr.strip().splitlines()[-1][:90]}"}
    return json.loads(result.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--steps", type=int, default=30, help="training steps per measurement")
    args = parser.parse_args(argv)
    rows = [("recipe", "text", "train tokens", "vocabulary", "data setup s", "tokens/s",
             "peak RSS MB")]
    for recipe in ("windows", "seed"):
        for label, n_bytes in SIZES.items():
            r = measure(recipe, n_bytes, args.steps)
            if "refused" in r:
                rows.append((recipe, label, "-", "-", "-", "-", f"refused: {r['refused']}"))
            else:
                rows.append((recipe, label, f"{r['tokens']:,}", f"{r['vocab']:,}",
                             f"{r['setup_s']:.1f}", f"{r['tokens_per_s']:,.0f}",
                             f"{r['peak_rss_mb']:.0f}"))
            print(f"measured {recipe} {label}", file=sys.stderr)
    print_table(rows, args.markdown)
    print("\ntokens/s counts the targets scored per second (windows: every position; seed: one "
          "per prefix pair).")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
