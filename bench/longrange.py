"""The long-range task: accuracy on the last word against the distance k, for the three cells
at equal parameter counts and forget biases 0, 1 and 3, with the seconds each run took.

    python -m bench.longrange [--k 5 10 20 40 80] [--forget-bias 0 1 3] [--markdown]

Each cell trains the task of lstm_core/longrange.py with the settings of ``TaskConfig`` (the
ones ``python -m training.longrange`` and the committed runs use), stopping once its held-out
accuracy reaches 99%. The plain RNN has no forget gate, so it trains once per k. Nothing is
logged to MLflow. One torch thread: these models are a few thousand weights, too small for a
second one to help.
"""

from __future__ import annotations

import argparse
import platform

import torch

from bench.table import print_table
from lstm_core.cells import CELLS
from lstm_core.longrange import TaskConfig, train_task
from training.longrange import DEMO_GRID, SOLVED, grid_configs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", nargs="+", type=int, default=DEMO_GRID["k"])
    parser.add_argument("--forget-bias", nargs="+", type=float, default=[0.0, 1.0, 3.0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--markdown", action="store_true", help="print a markdown table")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    try:
        configs = grid_configs({"k": args.k, "cell": list(CELLS), "forget_bias": args.forget_bias},
                               TaskConfig(seed=args.seed))
    except ValueError as err:
        parser.error(str(err))
    cells = {}
    for config in configs:
        result = train_task(config, solved_at=SOLVED)
        label = (config.cell if config.cell == "rnn"
                 else f"{config.cell}, forget bias {config.forget_bias:g}")
        step = result.accuracy[-1][0]
        cells.setdefault(label, {})[config.k] = (f"{result.final_accuracy:.2f} "
                                                 f"({step} steps, {result.seconds:.1f} s)")
        print(f"done: {label} k={config.k}", flush=True)
    base = TaskConfig()
    sizes = {cell: TaskConfig(cell=cell).model_config().hidden_size for cell in CELLS}
    rows = [("cell (hidden)", *[f"k = {k}" for k in args.k])]
    for label, by_k in cells.items():
        cell = label.split(",")[0]
        rows.append((f"{label} ({sizes[cell]})", *[by_k[k] for k in args.k]))
    print_table(rows, args.markdown)
    print(f"\naccuracy on {base.eval_size} held-out sequences (chance {base.chance:.3f}), at "
          f"most {base.steps} Adam steps of {base.batch_size}, lr {base.lr}, seed {args.seed}; "
          f"machine: {platform.platform()}, 1 thread, torch {torch.__version__}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
