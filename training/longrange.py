"""The long-range task as MLflow runs: ``python -m training.longrange``.

    python -m training.longrange --cell lstm gru rnn --k 5 10 20 40 80 --forget-bias 1 0 3

Every (cell, k, forget bias) of the grid is one child run of the task (lstm_core/longrange.py)
under one parent run, at equal parameter counts: the params ``task``, ``k``, ``cell`` and
``forget_bias`` (``none`` for the plain RNN, which has no such gate: it trains once whatever
the list), the stepped metric ``accuracy`` (the held-out accuracy on the last word, every
``--eval-interval`` steps), and ``longrange.json``: the accuracy history, the gradient flow of
the trained model on held-out sequences and, once it solved the task, its keep gate (the
LSTM's forget gate, the GRU's update gate) over one solved sequence. No model is logged: these
runs feed charts only. A run stops early once its accuracy reaches ``SOLVED``.

``stored_results()`` reads the finished runs back, one row per (cell, k, forget bias), newest
first: the data of the app's "Why an LSTM" tab.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import signal
import sys
from dataclasses import fields

import pandas as pd
import torch

from lstm_core.longrange import (
    TASK,
    TaskConfig,
    gate_trace,
    held_out,
    solved_sequence,
    task_gradient_flow,
    train_task,
)
from training.store import StoreError, artifact_path, end_active_run, mlflow, open_store, writing

SOLVED = 0.99  # held-out accuracy at which a run counts as solved and stops training
RESULT_FILE = "longrange.json"
FLOW_SEQUENCES = 64  # held-out sequences the gradient flow is averaged over
MAX_RUNS = 40  # a bound on the grid
RESULT_COLUMNS = ["run_id", "cell", "k", "forget_bias", "accuracy", "seconds", "steps",
                  "parameters", "hidden_size"]
# The committed sweep (training/demo.py): the three cells over k at forget bias 1 (the
# default), 0 and 3 (the plain RNN, which has none, once).
DEMO_GRID = {"k": [5, 10, 20, 40, 80], "cell": ["lstm", "gru", "rnn"],
             "forget_bias": [1.0, 0.0, 3.0]}


def grid_configs(values: dict[str, list], base: TaskConfig | None = None) -> list[TaskConfig]:
    """One TaskConfig per (forget bias, cell, k); a plain RNN once per k, since it has no
    forget gate to set. ValueError for an empty list or a grid larger than MAX_RUNS."""
    base = base or TaskConfig()
    if not all(values.get(name) for name in ("k", "cell", "forget_bias")):
        raise ValueError("the grid needs at least one k, one cell and one forget bias")
    configs, seen = [], set()
    for bias in values["forget_bias"]:
        for cell in values["cell"]:
            for k in values["k"]:
                key = (cell, k, None if cell == "rnn" else bias)
                if key not in seen:
                    seen.add(key)
                    configs.append(dataclasses.replace(base, k=k, cell=cell, forget_bias=bias))
    if len(configs) > MAX_RUNS:
        raise ValueError(f"the grid has {len(configs)} runs; at most {MAX_RUNS} are allowed")
    return configs


def run_params(config: TaskConfig) -> dict:
    model = config.model_config()
    params = {**dataclasses.asdict(config), "task": TASK, "hidden_size": model.hidden_size,
              "vocab_size": config.vocab_size, "chance": config.chance}
    if config.cell == "rnn":
        params["forget_bias"] = "none"  # no forget gate: the setting does not apply
    return params


def train_child(config: TaskConfig, on_line=print) -> str:
    """Train one grid point as an MLflow run (nested under the active run, if any)."""
    parent = mlflow.active_run()
    experiment_id = parent.info.experiment_id if parent else open_store()
    name = f"longrange: {config.cell} k={config.k}" + (
        "" if config.cell == "rnn" else f" forget bias {config.forget_bias:g}")
    with writing("start a run"):
        run = mlflow.start_run(run_name=name, experiment_id=experiment_id,
                               nested=parent is not None)
    try:
        mlflow.log_params(run_params(config))
        mlflow.set_tags({"task": TASK, "cell": config.cell})
        result = train_task(config, on_eval=lambda step, acc: mlflow.log_metric(
            "accuracy", acc, step=step), should_stop=None, solved_at=SOLVED)
        inputs, targets = held_out(config)
        solved = solved_sequence(result.model, inputs, targets)
        summary = {"accuracy": result.accuracy, "seconds": result.seconds,
                   "parameters": result.model.num_parameters(),
                   "gradient_flow": task_gradient_flow(result.model, inputs[:FLOW_SEQUENCES],
                                                       targets[:FLOW_SEQUENCES]),
                   "gate": (gate_trace(result.model, solved)
                            if solved is not None and result.final_accuracy >= SOLVED else None)}
        mlflow.log_metrics({"final_accuracy": result.final_accuracy, "seconds": result.seconds,
                            "parameters": float(summary["parameters"])},
                           step=result.accuracy[-1][0])
        mlflow.log_dict(summary, RESULT_FILE)
    except BaseException:
        end_active_run("KILLED")
        raise
    unclosed = end_active_run("FINISHED")
    if unclosed:
        raise StoreError(f"run {run.info.run_id} trained but could not be closed: {unclosed}")
    on_line(f"{config.cell} k={config.k} forget_bias={config.forget_bias:g}: accuracy "
            f"{result.final_accuracy:.2f} at step {result.accuracy[-1][0]} "
            f"({result.seconds:.1f} s), run {run.info.run_id}")
    return run.info.run_id


def run_grid(values: dict[str, list], base: TaskConfig | None = None, name: str = "longrange",
             on_line=print) -> str:
    """Train every grid point as a child of one parent run; returns the parent's run id."""
    configs = grid_configs(values, base)  # refused before the store is touched
    experiment_id = open_store()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # models of a few thousand weights: a second thread only waits
    with writing("start a run"):
        parent = mlflow.start_run(run_name=name, experiment_id=experiment_id)
    try:
        mlflow.set_tags({"sweep": "parent", "task": TASK})  # a sweep's parent: listed nowhere
        mlflow.log_params({f"grid.{k}": " ".join(map(str, v)) for k, v in values.items()})
        for config in configs:
            train_child(config, on_line)
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
    """Finished runs of the task, one row per (cell, k, forget bias), the newest of each:
    RESULT_COLUMNS, forget_bias None for the plain RNN."""
    experiment_id = open_store()
    runs = mlflow.search_runs(experiment_ids=[experiment_id],
                              filter_string=f"params.task = '{TASK}' and status = 'FINISHED'",
                              order_by=["start_time DESC"])
    if runs.empty or "metrics.final_accuracy" not in runs:
        return pd.DataFrame(columns=RESULT_COLUMNS)
    bias = runs["params.forget_bias"].map(lambda v: None if v == "none" else float(v))
    table = pd.DataFrame({
        "run_id": runs["run_id"], "cell": runs["params.cell"],
        "k": runs["params.k"].astype(int), "forget_bias": bias,
        "accuracy": runs["metrics.final_accuracy"], "seconds": runs["metrics.seconds"],
        "steps": runs["params.steps"].astype(int), "parameters": runs["metrics.parameters"],
        "hidden_size": runs["params.hidden_size"].astype(int)}, columns=RESULT_COLUMNS)
    key = pd.Series([f"{c} {k} {b}" for c, k, b in zip(table["cell"], table["k"],
                                                       table["forget_bias"], strict=True)],
                    index=table.index)
    return table[~key.duplicated()].sort_values(["cell", "k"]).reset_index(drop=True)


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
    for f in fields(TaskConfig):
        if f.name not in ("k", "cell", "forget_bias"):
            parser.add_argument("--" + f.name.replace("_", "-"), type=type(f.default),
                                default=f.default, help=f"(default: {f.default})")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    values = {"k": args.k, "cell": args.cell, "forget_bias": args.forget_bias}
    try:
        base = TaskConfig(**{f.name: getattr(args, f.name) for f in fields(TaskConfig)
                             if f.name not in values})
        parent = run_grid(values, base, args.name, lambda line: print(line, flush=True))
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
