"""The long-range task as MLflow runs: ``python -m training.longrange``.

    python -m training.longrange --cell lstm gru rnn --k 5 10 20 40 80 --forget-bias 1 0 3

Every (cell, k, forget bias, seed) of the grid is one child run of the task
(lstm_core/longrange.py) under one parent run, at equal parameter counts. Each point tries the
learning rates of ``--lrs`` (``lstm_core.longrange.search_lr``: the first that solves the
validation set, else the best on it) and only the chosen one becomes the run: the params
``task``, ``k``, ``cell``, ``forget_bias`` (``none`` for the plain RNN, which has no such gate:
it trains once whatever the list), ``lr`` (the chosen rate) and ``lrs`` (the grid); the stepped
metrics ``accuracy`` (on the test sequences, every ``--eval-interval`` steps) and
``val_accuracy``; for every rate tried ``search_val_accuracy_lr_<lr>`` and
``search_steps_lr_<lr>``; and ``longrange.json``: the accuracy history, the search, the
gradient flow of the trained model on test sequences and, once it solved the task, its keep
gate (the LSTM's forget gate, the GRU's update gate) over one solved sequence. No model is
logged: these runs feed charts only.

``stored_results()`` reads the finished runs back, one row per (cell, k, forget bias, seed),
the newest of each: the data of the app's "Why an LSTM" tab.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import signal
import sys
import time
from dataclasses import fields

import pandas as pd
import torch

from lstm_core.longrange import (
    LRS,
    SOLVED,
    TASK,
    TaskConfig,
    gate_trace,
    held_out,
    search_lr,
    solved_sequence,
    task_gradient_flow,
)
from training.store import StoreError, artifact_path, end_active_run, mlflow, open_store, writing

RESULT_FILE = "longrange.json"
FLOW_SEQUENCES = 64  # held-out sequences the gradient flow is averaged over
MAX_RUNS = 40  # a bound on the grid
RESULT_COLUMNS = ["run_id", "cell", "k", "forget_bias", "seed", "accuracy", "val_accuracy",
                  "lr", "steps", "max_steps", "seconds", "parameters", "hidden_size"]
# The committed sweep (training/demo.py): the three cells over k at forget bias 1 (the
# default) and 3 (the plain RNN, which has none, once), one seed. It stops at k = 40 to keep
# the demo rebuild short: a point that fails costs three runs to the step cap.
DEMO_GRID = {"k": [5, 10, 20, 40], "cell": ["lstm", "gru", "rnn"], "forget_bias": [1.0, 3.0]}


def grid_configs(values: dict[str, list], base: TaskConfig | None = None) -> list[TaskConfig]:
    """One TaskConfig per (seed, forget bias, cell, k); a plain RNN once per k and seed, since
    it has no forget gate to set. ``values["seed"]`` defaults to the base's seed. ValueError
    for an empty list or a grid larger than MAX_RUNS."""
    base = base or TaskConfig()
    if not all(values.get(name) for name in ("k", "cell", "forget_bias")):
        raise ValueError("the grid needs at least one k, one cell and one forget bias")
    configs, seen = [], set()
    for seed in values.get("seed") or [base.seed]:
        for bias in values["forget_bias"]:
            for cell in values["cell"]:
                for k in sorted(values["k"]):
                    key = (cell, k, None if cell == "rnn" else bias, seed)
                    if key not in seen:
                        seen.add(key)
                        configs.append(dataclasses.replace(base, k=k, cell=cell,
                                                           forget_bias=bias, seed=seed))
    if len(configs) > MAX_RUNS:
        raise ValueError(f"the grid has {len(configs)} runs; at most {MAX_RUNS} are allowed")
    return configs


def series_key(config: TaskConfig) -> tuple:
    """The curve a grid point belongs to: its cell, forget bias (none for the RNN) and seed.
    Once a curve fails a k at every learning rate, the grid skips its larger k: a longer
    distance is only harder, and a failing point costs a run to the cap per rate."""
    return config.cell, None if config.cell == "rnn" else config.forget_bias, config.seed


def run_params(config: TaskConfig, lrs: tuple[float, ...]) -> dict:
    model = config.model_config()
    params = {**dataclasses.asdict(config), "task": TASK, "hidden_size": model.hidden_size,
              "vocab_size": config.vocab_size, "chance": config.chance,
              "lrs": " ".join(f"{lr:g}" for lr in lrs), "solved_at": SOLVED}
    if config.cell == "rnn":
        params["forget_bias"] = "none"  # no forget gate: the setting does not apply
    return params


def _log_search(result, tries: list[dict]) -> None:
    """The chosen run's curves (test and validation accuracy, stepped) and, per rate tried,
    its final validation accuracy and steps."""
    now = int(time.time() * 1000)

    def Metric(key, value, _, step):  # noqa: N802 - one MLflow metric, logged now
        return mlflow.entities.Metric(key, value, now, step)

    metrics = [Metric("accuracy", acc, 0, step) for step, acc in result.accuracy]
    metrics += [Metric("val_accuracy", acc, 0, step) for step, acc in result.validation]
    for t in tries:
        metrics += [Metric(f"search_val_accuracy_lr_{t['lr']:g}", t["val_accuracy"], 0, 0),
                    Metric(f"search_steps_lr_{t['lr']:g}", float(t["steps"]), 0, 0)]
    seconds = sum(t["seconds"] for t in tries)
    metrics += [Metric(name, value, 0, result.steps) for name, value in (
        ("final_accuracy", result.final_accuracy), ("final_val_accuracy", result.final_validation),
        ("steps_trained", float(result.steps)), ("seconds", seconds),
        ("cpu_seconds", sum(t["cpu_seconds"] for t in tries)),
        ("parameters", float(result.model.num_parameters())))]
    with writing("log the run's metrics"):
        mlflow.MlflowClient().log_batch(mlflow.active_run().info.run_id, metrics=metrics)


def train_child(config: TaskConfig, lrs: tuple[float, ...] = LRS, on_line=print
                ) -> tuple[str, bool]:
    """Train one grid point (its learning-rate search) as an MLflow run, nested under the
    active run if any; the run is the chosen rate's. Returns its id and whether it solved the
    validation set."""
    parent = mlflow.active_run()
    experiment_id = parent.info.experiment_id if parent else open_store()
    name = f"longrange: {config.cell} k={config.k}" + (
        "" if config.cell == "rnn" else f" forget bias {config.forget_bias:g}") + (
        f" seed {config.seed}" if config.seed else "")
    with writing("start a run"):
        run = mlflow.start_run(run_name=name, experiment_id=experiment_id,
                               nested=parent is not None)
    try:
        mlflow.set_tags({"task": TASK, "cell": config.cell})
        result, tries = search_lr(config, lrs, SOLVED)
        mlflow.log_params(run_params(dataclasses.replace(config, lr=result.lr), lrs))
        inputs, targets = held_out(config)
        solved = solved_sequence(result.model, inputs, targets)
        summary = {"accuracy": result.accuracy, "validation": result.validation,
                   "search": tries, "parameters": result.model.num_parameters(),
                   "gradient_flow": task_gradient_flow(result.model, inputs[:FLOW_SEQUENCES],
                                                       targets[:FLOW_SEQUENCES]),
                   "gate": (gate_trace(result.model, solved)
                            if solved is not None and result.final_validation >= SOLVED
                            else None)}
        _log_search(result, tries)
        mlflow.log_dict(summary, RESULT_FILE)
    except BaseException:
        end_active_run("KILLED")
        raise
    unclosed = end_active_run("FINISHED")
    if unclosed:
        raise StoreError(f"run {run.info.run_id} trained but could not be closed: {unclosed}")
    bias = "" if config.cell == "rnn" else f" forget_bias={config.forget_bias:g}"
    on_line(f"{config.cell} k={config.k}{bias} seed={config.seed}: test accuracy "
            f"{result.final_accuracy:.2f} at lr {result.lr:g}, step {result.steps} (lrs tried: "
            + ", ".join(f"{t['lr']:g} val {t['val_accuracy']:.2f}" for t in tries)
            + f"; {sum(t['seconds'] for t in tries):.1f} s), run {run.info.run_id}")
    return run.info.run_id, result.final_validation >= SOLVED


def run_grid(values: dict[str, list], base: TaskConfig | None = None, name: str = "longrange",
             on_line=print, lrs: tuple[float, ...] = LRS) -> str:
    """Train every grid point as a child of one parent run, each curve up to the first k it
    fails (``series_key``); returns the parent's run id."""
    configs = grid_configs(values, base)  # refused before the store is touched
    experiment_id = open_store()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # models of a few thousand weights: a second thread only waits
    with writing("start a run"):
        parent = mlflow.start_run(run_name=name, experiment_id=experiment_id)
    try:
        mlflow.set_tags({"sweep": "parent", "task": TASK})  # a sweep's parent: listed nowhere
        mlflow.log_params({f"grid.{k}": " ".join(map(str, v)) for k, v in values.items()}
                          | {"grid.lrs": " ".join(f"{lr:g}" for lr in lrs)})
        failed = set()
        for config in configs:
            if series_key(config) in failed:
                on_line(f"{config.cell} k={config.k}: skipped (failed a smaller k)")
                continue
            if not train_child(config, lrs, on_line)[1]:
                failed.add(series_key(config))
    except KeyboardInterrupt:
        end_active_run("KILLED")
        raise
    except Exception:
        end_active_run("FAILED")
        raise
    finally:
        torch.set_num_threads(threads)
    unclosed = end_active_run("FINISHED")
    if unclosed:
        raise StoreError(f"the grid trained, but its parent run could not be closed: {unclosed}")
    return parent.info.run_id


def stored_results() -> pd.DataFrame:
    """Finished runs of the task, one row per (cell, k, forget bias, seed), the newest of each:
    RESULT_COLUMNS, forget_bias None for the plain RNN; ``accuracy`` on the test sequences,
    ``val_accuracy`` on the validation ones (solved: at least SOLVED); ``steps`` it trained,
    ``max_steps`` its cap, ``seconds`` its whole learning-rate search."""
    experiment_id = open_store()
    runs = mlflow.search_runs(experiment_ids=[experiment_id],
                              filter_string=f"params.task = '{TASK}' and status = 'FINISHED'",
                              order_by=["start_time DESC"])
    if runs.empty or "metrics.steps_trained" not in runs:
        return pd.DataFrame(columns=RESULT_COLUMNS)
    runs = runs.dropna(subset=["metrics.steps_trained"])  # runs of an older layout are left out
    bias = runs["params.forget_bias"].map(lambda v: None if v == "none" else float(v))
    table = pd.DataFrame({
        "run_id": runs["run_id"], "cell": runs["params.cell"],
        "k": runs["params.k"].astype(int), "forget_bias": bias,
        "seed": runs["params.seed"].astype(int), "accuracy": runs["metrics.final_accuracy"],
        "val_accuracy": runs["metrics.final_val_accuracy"],
        "lr": runs["params.lr"].astype(float), "steps": runs["metrics.steps_trained"].astype(int),
        "max_steps": runs["params.steps"].astype(int), "seconds": runs["metrics.seconds"],
        "parameters": runs["metrics.parameters"],
        "hidden_size": runs["params.hidden_size"].astype(int)}, columns=RESULT_COLUMNS)
    key = pd.Series([f"{c} {k} {b} {s}" for c, k, b, s in zip(
        table["cell"], table["k"], table["forget_bias"], table["seed"], strict=True)],
        index=table.index)
    return table[~key.duplicated()].sort_values(["cell", "k", "seed"]).reset_index(drop=True)


def run_result(run_id: str) -> dict:
    """A run's longrange.json: accuracy history, gradient flow, keep gate (or None)."""
    return json.loads(artifact_path(run_id, RESULT_FILE).read_text(encoding="utf-8"))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m training.longrange",
        description="Train the long-range task for a grid of cells, distances k and forget "
                    "biases, as nested MLflow runs under one parent run.")
    parser.add_argument("--name", default="longrange", help="the parent run's name")
    parser.add_argument("--cell", nargs="+", default=["lstm", "gru", "rnn"],
                        choices=["lstm", "gru", "rnn"])
    parser.add_argument("--k", nargs="+", type=int, default=DEMO_GRID["k"],
                        help="distances: distractor words between the first word and the query")
    parser.add_argument("--forget-bias", nargs="+", type=float, default=[1.0])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0],
                        help="one run per seed (weights and training sequences)")
    parser.add_argument("--lrs", nargs="+", type=float, default=list(LRS),
                        help="the learning rates each point tries, in order (default: %(default)s)")
    for f in fields(TaskConfig):
        if f.name not in ("k", "cell", "forget_bias", "seed", "lr"):
            parser.add_argument("--" + f.name.replace("_", "-"), type=type(f.default),
                                default=f.default, help=f"(default: {f.default})")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    values = {"k": args.k, "cell": args.cell, "forget_bias": args.forget_bias,
              "seed": args.seeds}
    try:
        if not args.lrs or not all(0 < lr <= 1 for lr in args.lrs):
            raise ValueError("--lrs takes learning rates from 0 (excluded) to 1")
        base = TaskConfig(**{f.name: getattr(args, f.name) for f in fields(TaskConfig)
                             if f.name in vars(args) and f.name not in values})
        parent = run_grid(values, base, args.name, lambda line: print(line, flush=True),
                          tuple(args.lrs))
    except KeyboardInterrupt:
        print("\ninterrupted: the run in training and the parent are marked KILLED",
              file=sys.stderr)
        return 128 + signal.SIGINT
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"run_id={parent}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
