"""The long-range task: test accuracy on the last word against the distance k, for the three
cells at equal parameter counts and several forget biases, each point at its best learning rate.

    python -m bench.longrange [--k 5 10 20 40 80] [--forget-bias 0 1 3] [--seeds 0 1]
                              [--steps 4000] [--markdown]

Each point runs ``lstm_core.longrange.search_lr``: the learning rates of ``--lrs`` in turn, each
run stopping once its validation accuracy reaches 99% or at the ``--steps`` cap; the first that
solves the validation set is kept, else the best on it. The table gives the test accuracy of
the kept run per seed (test sequences drawn apart from the training and validation ones), its
rate and steps, and the CPU seconds of the whole search, all seeds (on one thread, the
seconds an idle machine takes; a shared machine's wall clock says more about its load). As in ``python -m training.longrange``, a
curve (cell, forget bias, seed) stops at the first k it fails. The plain RNN has no forget gate,
so it trains once per k. Nothing is logged to MLflow. One torch thread: these models are a few
thousand weights, too small for a second one to help.
"""

from __future__ import annotations

import argparse
import dataclasses
import platform

import torch

from bench.table import print_table
from lstm_core.cells import CELLS
from lstm_core.longrange import LRS, SOLVED, TaskConfig, search_lr
from training.longrange import grid_configs, series_key


def label(config: TaskConfig) -> str:
    bias = "" if config.cell == "rnn" else f", forget bias {config.forget_bias:g}"
    return f"{config.cell}{bias} ({config.model_config().hidden_size})"


def measure(configs: list[TaskConfig], lrs: tuple[float, ...]) -> dict[str, dict]:
    """label -> k -> one result line per seed (None where the curve stopped before)."""
    table, failed = {}, set()
    for config in configs:
        cell = table.setdefault(label(config), {}).setdefault(config.k, {})
        if series_key(config) in failed:
            cell[config.seed] = None
            continue
        result, tries = search_lr(config, lrs, SOLVED)
        cell[config.seed] = (result, sum(t["cpu_seconds"] for t in tries))
        if result.final_validation < SOLVED:
            failed.add(series_key(config))
        print(f"done: {label(config)} k={config.k} seed {config.seed}: {result.final_accuracy:.2f}"
              f" at lr {result.lr:g}, {cell[config.seed][1]:.1f} CPU s, tried " + ", ".join(
                  f"{t['lr']:g} (val {t['val_accuracy']:.2f}, {t['steps']} steps)" for t in tries),
              flush=True)
    return table


def show(by_seed: dict, seeds: list[int]) -> str:
    ran = [by_seed[s] for s in seeds if by_seed.get(s)]
    if not ran:
        return "skipped"
    acc = " / ".join(f"{by_seed[s][0].final_accuracy:.2f}" if by_seed.get(s) else "skip"
                     for s in seeds)
    lrs = "/".join(f"{r.lr:g}" for r, _ in ran)
    steps = "/".join(str(r.steps) for r, _ in ran)
    return f"{acc} (lr {lrs}, {steps} steps, {sum(s for _, s in ran):.1f} s)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", nargs="+", type=int, default=[5, 10, 20, 40, 80])
    parser.add_argument("--cell", nargs="+", default=list(CELLS), choices=list(CELLS))
    parser.add_argument("--forget-bias", nargs="+", type=float, default=[0.0, 1.0, 3.0])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--lrs", nargs="+", type=float, default=list(LRS))
    parser.add_argument("--steps", type=int, default=TaskConfig().steps, help="the step cap")
    parser.add_argument("--markdown", action="store_true", help="print a markdown table")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    try:
        base = dataclasses.replace(TaskConfig(), steps=args.steps)
        configs = grid_configs({"k": args.k, "cell": args.cell, "forget_bias": args.forget_bias,
                                "seed": args.seeds}, base)
    except ValueError as err:
        parser.error(str(err))
    configs.sort(key=lambda c: (c.cell, c.forget_bias, c.k, c.seed))  # seeds side by side
    table = measure(configs, tuple(args.lrs))
    ks = sorted(set(args.k))
    rows = [("cell (hidden)", *[f"k = {k}" for k in ks])]
    rows += [(name, *[show(by_k.get(k, {}), args.seeds) for k in ks]) for name, by_k in table.items()]
    print_table(rows, args.markdown)
    print(f"\ntest accuracy per seed ({' / '.join(map(str, args.seeds))}) on {base.eval_size} "
          f"sequences (chance {base.chance:.3f}); learning rates tried in the order "
          f"{', '.join(f'{lr:g}' for lr in args.lrs)}, each run at most {args.steps} Adam steps "
          f"of {base.batch_size}, stopped once {SOLVED:.0%} of {base.eval_size} validation "
          f"sequences are right; machine: {platform.platform()}, 1 thread, torch "
          f"{torch.__version__}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
