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
import signal
import sys
from dataclasses import fields

import pandas as pd

from lstm_core.text import read_text
from training.config import TrainConfig, add_config_flags
from training.store import StoreError, end_active_run, mlflow, open_store, writing

MAX_RUNS = 24  # a bound on the grid: each child is a full training run
# The settings a sweep varies: flag name -> (TrainConfig field, value type).
GRID = {"recipe": str, "dropout": float, "weight_drop": float, "embed_dropout": float,
        "steps": int, "canary_repeats": int}
POINT_COLUMNS = ["run_id", "name", "recipe", "corpus", "params", "held_out_perplexity",
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

    overrides: settings shared by every child, on top of each child's recipe defaults. The
    corpus and every point's config are checked before the parent run is created. Ctrl-C or
    SIGTERM end the child in training and the parent KILLED, then raise ``Interrupted``.
    """
    from training.tracking import Interrupted, signals_stop_between_steps, train_run  # heavy

    points = grid_points(values)
    configs = checked_configs(points, overrides or {})
    experiment_id = open_store()
    with writing("start a run"):
        parent = mlflow.start_run(run_name=name, experiment_id=experiment_id)
    try:
        with writing("record the sweep"):
            mlflow.set_tag("sweep", "parent")
            mlflow.log_params({f"grid.{k}": " ".join(map(str, v)) for k, v in values.items() if v})
        # A signal between two children stops the sweep before the next (one during a child
        # is that child's: it stops between two steps, then raises Interrupted).
        with signals_stop_between_steps() as signals:
            for point, config in zip(points, configs, strict=True):
                if signals:
                    raise Interrupted(signals[0])
                label = " ".join(f"{k}={v}" for k, v in point.items())
                run_id = train_run(config, run_name=f"{name}: {label}", on_log=lambda line: None)
                on_child(f"{label}: {run_id}")
    except KeyboardInterrupt as err:  # the child in training, if any, has ended KILLED
        end_active_run("KILLED")
        raise Interrupted(getattr(err, "signum", signal.SIGINT), parent.info.run_id) from None
    except Exception:
        end_active_run("FAILED")
        raise
    unclosed = end_active_run("FINISHED")
    if unclosed:
        raise StoreError(f"The sweep's runs are trained, but its parent run "
                         f"{parent.info.run_id} could not be closed: {unclosed}")
    return parent.info.run_id


def checked_configs(points: list[dict], overrides: dict) -> list[TrainConfig]:
    """Each grid point's config, refused (one line naming the point) when it or its text would
    fail a child (its corpus, its model, its batches): before the first child trains."""
    from training.loop import check_config

    configs, texts, corpora = [], {}, {}
    for point in points:
        label = " ".join(f"{k}={v}" for k, v in point.items())
        try:
            config = TrainConfig.for_recipe(point.get("recipe", "windows"), **{
                **overrides, **{k: v for k, v in point.items() if k != "recipe"}})
            if config.corpus not in texts:
                texts[config.corpus] = read_text(config.corpus)
            key = (config.corpus, config.tokenizer, config.min_count, config.max_vocab,
                   config.val_fraction, config.canary_repeats, config.canary_digits,
                   config.canary_seed)  # what the corpus's vocabulary and split depend on
            corpora[key] = check_config(config, texts[config.corpus], corpora.get(key))
        except ValueError as err:
            raise ValueError(f"grid point {label}: {err}") from None
        configs.append(config)
    return configs


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
        "corpus": column("tags.corpus_name", ""),
        "params": [{key[7:]: row[key] for key in param_keys} for _, row in runs.iterrows()],
        # Both axes from the weights model.pt holds: the held-out loss of that checkpoint (its
        # best_val_loss) and the extractable memorization measured on it at the end.
        "held_out_perplexity": column("metrics.best_val_loss").map(
            lambda loss: math.exp(min(loss, 50.0)) if math.isfinite(loss) else math.nan),
        "extractable_memorization": column("metrics.extractable_memorization"),
        "parent_run_id": column("tags.mlflow.parentRunId", None),
    }, columns=POINT_COLUMNS).reset_index(drop=True)


# The canary lab's regularizer settings (the app's choices, bench.canary's rows, the demo's).
CANARY_REGULARIZERS = {
    "none": dict(dropout=0.0, weight_drop=0.0),
    "dropout 0.4": dict(dropout=0.4, weight_drop=0.0),
    "weight drop 0.5": dict(dropout=0.0, weight_drop=0.5),
    "dropout 0.4 + weight drop 0.5": dict(dropout=0.4, weight_drop=0.5),
}
CANARY_COLUMNS = ["run_id", "name", "repeats", "regularizer", "steps", "exposure", "rank",
                  "space", "extracted", "canary", "held_out_perplexity"]


def regularizer_name(params: dict) -> str:
    """A run's dropout and weight drop as the canary lab names them ("none", "dropout 0.4")."""
    dropout, weight_drop = (float(params.get(k) or 0) for k in ("dropout", "weight_drop"))
    parts = []
    if dropout:
        parts.append(f"dropout {dropout:g}")
    if weight_drop:
        parts.append(f"weight drop {weight_drop:g}")
    return " + ".join(parts) or "none"


def canary_points() -> pd.DataFrame:
    """One row per finished run that planted a canary: its repetitions, regularizer, and its
    saved model's exposure (bits), rank among the ``space`` of secrets, whether greedy
    decoding writes the secret (1/0), the canary's text, its held-out perplexity."""
    runs = mlflow.search_runs(experiment_ids=[open_store()], order_by=["start_time ASC"])
    if runs.empty or "tags.canary" not in runs or "metrics.canary_exposure" not in runs:
        return pd.DataFrame(columns=CANARY_COLUMNS)
    runs = runs[(runs["status"] == "FINISHED") & runs["tags.canary"].notna()
                & runs["metrics.canary_exposure"].notna()]
    best = runs.get("metrics.best_val_loss", pd.Series(math.nan, index=runs.index))
    return pd.DataFrame({
        "run_id": runs["run_id"], "name": runs["tags.mlflow.runName"],
        "repeats": runs["params.canary_repeats"].astype(int),
        "regularizer": [regularizer_name({"dropout": d, "weight_drop": w}) for d, w in
                        zip(runs["params.dropout"], runs["params.weight_drop"], strict=True)],
        "steps": runs["metrics.step"].fillna(0).astype(int),
        "exposure": runs["metrics.canary_exposure"], "rank": runs["metrics.canary_rank"],
        "space": [10 ** int(d) for d in runs["params.canary_digits"]],
        "extracted": runs["metrics.canary_extracted"], "canary": runs["tags.canary"],
        "held_out_perplexity": best.map(lambda v: math.exp(min(v, 50.0))),
    }, columns=CANARY_COLUMNS).reset_index(drop=True)


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
    except KeyboardInterrupt as err:  # tracking.Interrupted: Ctrl-C or SIGTERM
        signum, parent = getattr(err, "signum", signal.SIGINT), getattr(err, "run_id", None)
        what = (f"the sweep's parent run {parent} and the child in training, if any, are marked "
                "KILLED (a child with its last checkpoint)" if parent
                else "before the sweep's parent run was created")
        print(f"\ninterrupted ({signal.Signals(signum).name}): {what}", file=sys.stderr)
        return 128 + signum
    except (ValueError, OSError) as err:  # OSError: a corpus that is missing or a folder
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"run_id={parent_id}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
