"""An overfitting map: train a grid of settings as nested MLflow runs under one parent run.

    python -m training.sweep --recipe seed windows --dropout 0 0.4 --weight-drop 0 0.5 --steps 300

Every combination of the listed values is one child run (trained exactly as ``python -m
training`` would); every other TrainConfig flag sets the same value for all of them. The
command prints each child's run id as it finishes and, last, ``run_id=<parent id>``.
``sweep_points()`` turns the finished runs into one row per run (held-out perplexity,
memorization, params): the data of the app's overfitting map.
"""

from __future__ import annotations

import argparse
import itertools
import math
import sys
from dataclasses import fields

import mlflow
import pandas as pd

from training.config import TrainConfig, add_config_flags
from training.store import open_store

MAX_RUNS = 24  # a bound on the grid: each child is a full training run
# The settings a sweep varies: flag name -> (TrainConfig field, value type).
GRID = {"recipe": str, "dropout": float, "weight_drop": float, "embed_dropout": float,
        "steps": int}
POINT_COLUMNS = ["run_id", "name", "recipe", "params", "held_out_perplexity",
                 "extractable_memorization", "parent_run_id"]


def grid_points(values: dict[str, list]) -> list[dict]:
    """Every combination of the listed values, as a list of {field: value} dicts."""
    names = [name for name, options in values.items() if options]
    count = math.prod(len(values[name]) for name in names)
    if count > MAX_RUNS:
        sizes = " x ".join(f"{len(values[name])} {name}" for name in names)
        raise ValueError(f"the grid has {count} runs ({sizes}); at most {MAX_RUNS} are allowed")
    return [dict(zip(names, combo, strict=True))
            for combo in itertools.product(*(values[name] for name in names))]


def run_sweep(values: dict[str, list], overrides: dict | None = None, name: str = "sweep",
              on_child=print) -> str:
    """Train every grid point as a child of one parent run; returns the parent's run id.

    overrides: settings shared by every child, on top of each child's recipe defaults.
    """
    from training.tracking import train_run  # heavy imports only once a sweep really runs

    points = grid_points(values)
    # Every config is built (and so validated) before the first run starts.
    configs = [TrainConfig.for_recipe(point.get("recipe", "windows"), **{**(overrides or {}), **{
        k: v for k, v in point.items() if k != "recipe"}}) for point in points]
    experiment_id = open_store()
    with mlflow.start_run(run_name=name, experiment_id=experiment_id) as parent:
        mlflow.set_tag("sweep", "parent")
        mlflow.log_params({f"grid.{k}": " ".join(map(str, v)) for k, v in values.items() if v})
        for point, config in zip(points, configs, strict=True):
            label = " ".join(f"{k}={v}" for k, v in point.items())
            run_id = train_run(config, run_name=f"{name}: {label}", on_log=lambda line: None)
            on_child(f"{label}: {run_id}")
    return parent.info.run_id


def sweep_points(parent_run_id: str | None = None) -> pd.DataFrame:
    """One row per finished run (the children of one sweep, or every run that is not a sweep
    parent): run_id, name, recipe, params (dict), held-out perplexity (the best validation
    loss, exponentiated), extractable_memorization of the saved model, parent_run_id."""
    experiment_id = open_store()
    query = f"tags.mlflow.parentRunId = '{parent_run_id}'" if parent_run_id else ""
    runs = mlflow.search_runs(experiment_ids=[experiment_id], filter_string=query,
                              order_by=["start_time ASC"])
    if runs.empty:
        return pd.DataFrame(columns=POINT_COLUMNS)
    if "tags.sweep" in runs:
        runs = runs[runs["tags.sweep"] != "parent"]
    runs = runs[runs["status"] == "FINISHED"]

    def column(key, default=math.nan):
        return runs[key] if key in runs else pd.Series([default] * len(runs), index=runs.index)

    param_keys = [c for c in runs.columns if c.startswith("params.") and "." not in c[7:]]
    return pd.DataFrame({
        "run_id": runs["run_id"],
        "name": column("tags.mlflow.runName", ""),
        "recipe": column("params.recipe", ""),
        "params": [{key[7:]: row[key] for key in param_keys} for _, row in runs.iterrows()],
        "held_out_perplexity": column("metrics.best_val_loss").map(
            lambda loss: math.exp(min(loss, 50.0)) if math.isfinite(loss) else math.nan),
        "extractable_memorization": column("metrics.extractable_memorization"),
        "parent_run_id": column("tags.mlflow.parentRunId", None),
    }, columns=POINT_COLUMNS).reset_index(drop=True)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m training.sweep",
        description="Train a grid of settings as nested MLflow runs under one parent run.")
    parser.add_argument("--name", default="sweep", help="the parent run's name")
    for field, kind in GRID.items():
        parser.add_argument("--" + field.replace("_", "-"), type=kind, nargs="+", default=[],
                            metavar=field.upper(), help=f"values of {field} to try")
    add_config_flags(parser, skip=tuple(GRID))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    values = {field: getattr(args, field) for field in GRID}
    overrides = {f.name: getattr(args, f.name) for f in fields(TrainConfig)
                 if f.name not in GRID and getattr(args, f.name) is not None}
    try:
        parent_id = run_sweep(values, overrides, args.name)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"run_id={parent_id}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
