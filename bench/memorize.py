"""Time to memorize the write-up's essay: the seed recipe against the windows recipe.

    python -m bench.memorize [--markdown] [--max-seconds 600] [--memorize-text PATH] [--only-app]

First, the memorize recipe exactly as the app's Train tab starts it, on a text of about 5,000
words the project never tuned on: its wall and CPU seconds and whether it recites.

Each recipe trains on ../shared/corpus/the_spike.txt with the write-up's tokenizer until the
mean training loss of the last 10 steps is at most 0.11 (the write-up reached 0.108 after 300
iterations), then greedy generation from "scum" is checked for recitation. The write-up's own
code (bench/writeup_baseline.py, its recipe as written) runs too, to the same loss. All run in
this one process, one after the other, on the same threads.
"""

from __future__ import annotations

import argparse
import platform
import time
from collections import deque
from pathlib import Path

import torch

from bench.table import print_table
from lstm_core.generate import SamplingConfig, encode_prompt, generate_ids
from lstm_core.memorization import analyze, extractable_memorization
from lstm_core.text import read_text, tokenize
from training.config import SPIKE, TrainConfig
from training.loop import Trainer

UNTUNED = Path("/usr/share/common-licenses/GPL-3")
THRESHOLD = 0.11
WINDOW = 10


def time_to_memorize(config: TrainConfig, text: str, max_seconds: float) -> dict:
    """Train until the loss threshold; returns seconds, steps and the recitation figures."""
    trainer = Trainer(config, text)
    recent: deque[float] = deque(maxlen=WINDOW)
    state, started = None, time.perf_counter()
    while True:
        loss, _, _, state = trainer.train_step(state)
        recent.append(loss)
        elapsed = time.perf_counter() - started
        if len(recent) == WINDOW and sum(recent) / WINDOW <= THRESHOLD:
            break
        if elapsed > max_seconds:
            return {"seconds": None, "steps": trainer.step, "loss": sum(recent) / len(recent)}
    vocab = trainer.corpus.vocab
    ids = generate_ids(trainer.model, encode_prompt("scum", vocab), SamplingConfig(max_new_tokens=60))
    report = analyze(vocab.decode(ids), tokenize(text, "seed"))
    return {"seconds": elapsed, "steps": trainer.step, "loss": sum(recent) / WINDOW,
            "copied_4gram_fraction": report.copied_4gram_fraction,
            "longest_copied_span": report.longest_copied_span,
            "sample": " ".join(vocab.decode(ids))[:120]}


def writeup_time_to_loss(text: str, max_seconds: float) -> dict:
    """The write-up's code (its model, pairs and loop, bugs included) to the same loss."""
    from bench import writeup_baseline as wb
    from lstm_core.text import tokenize_paragraphs
    from lstm_core.vocab import Vocabulary

    paragraphs = tokenize_paragraphs(text, "seed")
    vocab = Vocabulary.build([w for p in paragraphs for w in p], scheme="seed")
    X, Y, _ = wb.build_dataset([vocab.encode(p) for p in paragraphs])
    torch.manual_seed(1337)
    model = wb.WriteupLSTM(len(vocab), 128, 128, len(vocab))
    optimizer = wb.make_optimizer(model)
    recent: deque[float] = deque(maxlen=WINDOW)
    state, steps, started = None, 0, time.perf_counter()
    while True:
        loss, state = wb.train_step(model, optimizer, X, Y, state)
        steps += 1
        recent.append(loss)
        elapsed = time.perf_counter() - started
        if len(recent) == WINDOW and sum(recent) / WINDOW <= THRESHOLD:
            return {"seconds": elapsed, "steps": steps, "loss": sum(recent) / WINDOW}
        if elapsed > max_seconds:
            return {"seconds": None, "steps": steps, "loss": sum(recent) / len(recent)}


def app_memorize(path: Path) -> dict:
    """The memorize recipe as the app's Train tab starts it, on a text nobody tuned on: its
    cost check, its time (wall and CPU), its final extractable memorization (every passage
    the final figure tests) and a recital from the cue of a passage in the middle."""
    from ui.train_tab import APP_SIZES, check_cost, train_config

    text = read_text(path)
    hidden, steps, vocab_cap = APP_SIZES["memorize"]
    config = train_config("memorize", steps, hidden, 0.0, TrainConfig.for_recipe("memorize").lr,
                          vocab_cap)
    check_cost(config, text)  # refused here if the app would refuse it
    trainer = Trainer(config, text)
    wall, cpu = time.perf_counter(), time.process_time()
    trainer.run()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    ids = trainer.corpus.train_ids
    rate = extractable_memorization(trainer.model, ids, config.memorization_prefix,
                                    config.memorization_suffix, max_windows=256)
    middle = len(ids) // 2
    cue = ids[middle:middle + config.memorization_prefix].tolist()
    new = generate_ids(trainer.model, cue, SamplingConfig(max_new_tokens=40))[len(cue):]
    expected = ids[middle + len(cue):middle + len(cue) + 40].tolist()
    same = next((i for i, (a, b) in enumerate(zip(new, expected, strict=False)) if a != b),
                len(new))
    return {"words": len(text.split()), "vocab": len(trainer.corpus.vocab), "steps": trainer.step,
            "wall": wall, "cpu": cpu, "memorization": rate, "recited": same}


def print_app_table(path: Path, markdown: bool) -> None:
    r = app_memorize(path)
    rows = [("text", "words", "steps", "wall s", "CPU s", "extractable memorization",
             "words recited from a mid-text cue (of 40)"),
            (path.name, f"{r['words']:,}", str(r["steps"]), f"{r['wall']:.0f}", f"{r['cpu']:.0f}",
             f"{r['memorization']:.3f}", str(r["recited"]))]
    print_table(rows, markdown)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--markdown", action="store_true", help="print a markdown table")
    parser.add_argument("--max-seconds", type=float, default=600, help="give up after this long")
    parser.add_argument("--memorize-text", type=Path, default=UNTUNED,
                        help="the text the app's memorize recipe is measured on (default: the "
                             "GPL-3 licence text Debian ships, 5,644 words nobody tuned on)")
    parser.add_argument("--only-app", action="store_true", help="only the memorize recipe row")
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    if args.memorize_text.exists():
        print_app_table(args.memorize_text, args.markdown)
    else:
        print(f"skipped the memorize recipe: {args.memorize_text} is not here")
    if args.only_app:
        return 0
    if not SPIKE.exists():
        print(f"skipped: {SPIKE} is not here")
        return 0
    text = read_text(SPIKE)
    recipes = {
        "seed (the write-up's recipe)": TrainConfig.for_recipe("seed", steps=10**6),
        "windows, no dropout": TrainConfig.for_recipe(
            "windows", tokenizer="seed", dropout=0.0, val_fraction=0.0, lr_patience=0,
            steps=10**6),
    }
    results = {name: time_to_memorize(cfg, text, args.max_seconds) for name, cfg in recipes.items()}
    results["the write-up's own code"] = writeup_time_to_loss(text, args.max_seconds)
    rows = [("recipe", "seconds to loss <= 0.11", "steps", "copied 4-grams", "longest span")]
    for name, r in results.items():
        seconds = "not reached" if r["seconds"] is None else f"{r['seconds']:.1f}"
        copied = f"{r['copied_4gram_fraction']:.2f}" if "copied_4gram_fraction" in r else "-"
        rows.append((name, seconds, str(r["steps"]), copied, str(r.get("longest_copied_span", "-"))))
    seed, windows, writeup = results.values()
    print_table(rows, args.markdown)
    for name, slow in (("seed recipe", seed), ("write-up's code", writeup)):
        ratio = (f"{slow['seconds'] / windows['seconds']:.1f}x"
                 if slow["seconds"] and windows["seconds"] else "n/a (a run did not reach the loss)")
        print(f"\nwindows recipe speed-up over the {name}: {ratio} (target for the write-up's: 40x)")
    for name, r in results.items():
        if "sample" in r:
            print(f"{name}: {r['sample']}...")
    print(f"machine: {platform.platform()}, {torch.get_num_threads()} threads, torch {torch.__version__}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
