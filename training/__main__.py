"""Command line: ``python -m training --corpus PATH [--recipe seed|windows] [...]``.

Prints one line per log interval and, last, ``run_id=<id>``.
"""

from __future__ import annotations

import argparse
import shlex
import signal
import sys

from tqdm import tqdm

from training.config import add_config_flags, config_from_args
from training.distributed import is_main_process


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m training",
        description="Train the word-level LSTM on a text and log the run to MLflow "
                    "(MLFLOW_TRACKING_URI, or the project store in mlruns/).")
    parser.add_argument("--run-name", default=None, help="a name for the MLflow run")
    parser.add_argument("--resume", metavar="RUN_ID", default=None,
                        help="continue this run from its last checkpoint (its own config and "
                             "text; --steps may raise the total)")
    add_config_flags(parser)
    return parser


def _first_words(run_id: str, count: int = 2) -> str:
    """The first words of the run's training text: a prompt the model is sure to know."""
    from training.runs import load_run

    words = [t for t in load_run(run_id).source_tokens[:50] if t.isalpha()]
    return " ".join(words[:count])


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # Imported here so that --help answers at once, without loading MLflow and torch.
    from training.tracking import train_run

    started = []  # the run's id, once it exists
    try:
        config = None if args.resume else config_from_args(args)
        total = args.steps if args.resume else config.steps
        with tqdm(total=total, desc="training", unit="step", file=sys.stderr,
                  dynamic_ncols=True, mininterval=0.5,
                  disable=not is_main_process()) as bar:
            def on_step(step, steps, loss):
                bar.total = steps
                bar.n = step
                bar.set_postfix(loss=f"{loss:.3f}", refresh=False)
                bar.refresh() if step == steps else bar.update(0)

            run_id = train_run(config, run_name=args.run_name, resume=args.resume,
                               steps=args.steps if args.resume else None, on_step=on_step,
                               on_log=tqdm.write, on_start=started.append)
    except KeyboardInterrupt as err:  # Ctrl-C or SIGTERM (tracking.Interrupted)
        signum = getattr(err, "signum", signal.SIGINT)
        what = (f"run {started[0]} is marked KILLED and its last checkpoint is saved" if started
                else "no run was created")
        print(f"\ninterrupted ({signal.Signals(signum).name}): {what}", file=sys.stderr)
        return 128 + signum
    except (ValueError, FileNotFoundError, IsADirectoryError, PermissionError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if run_id:  # under torchrun only rank 0 has one
        print(f"sample it: python -m training.generate --run {run_id[:8]} --prompt {shlex.quote(_first_words(run_id))}")
        print(f"run_id={run_id}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
