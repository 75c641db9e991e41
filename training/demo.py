"""Rebuild the demo store that ships in mlruns/: ``python -m training.demo``.

Two runs on the project's default corpus, so the app's overfitting comparison means something on
first start:

- ``demo-seed``: the write-up's recipe (prefix pairs, loss on the last word, no dropout). It
  memorizes: greedy generation recites the text. Registered as ``lighthouse@reciter``.
- ``demo-windows``: the default recipe (every position scored, SGD, dropout 0.4, tied weights,
  best-validation checkpoint). It generalizes better: lower validation loss. Registered as
  ``lighthouse@generalizer``.

Beside them, trained first so that ``demo-windows`` stays the newest demo run (the app's default):

- ``demo-sweep``: a small grid (dropout x weight drop, a small hidden size) as nested runs under
  one parent (``training.sweep``), so the app's overfitting map is not empty on first start.
- ``demo-gru`` and ``demo-rnn``: one small run per other cell, so the app's gradient-flow view
  has trained curves of all three cells (the LSTM's is ``demo-windows``).
- ``demo-longrange``, trained first of all: the long-range task of the Why an LSTM tab
  (``training.longrange``), the three cells over k as nested runs, each point the best of a
  small learning-rate grid on a validation set. No language models: the run picker skips them.
- ``demo-canary``: a secret planted once or 16 times, without and with dropout (nested runs),
  for the Canary tab's chart of exposure against repetitions; chart-only, they keep no model.

All use the ``words`` tokenizer and hold out the same last 10% of the text, so their
validation losses are comparable. To keep the committed store small, the demo runs ship their
best weights (model.pt) but not last.pt (the optimizer state that --resume needs).

The runs are trained into a fresh temporary store, which then replaces mlruns/ with every
folder of this machine taken out: artifact locations become relative (``artifacts/...``, which
``training.store.open_store`` points at the working copy's folder), the source path relative to
the project, the user "demo". This file is the single recipe of the committed store.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import sys
import tempfile
from pathlib import Path

from training import store
from training.checkpoints import LAST_FILE, MODEL_FILE
from training.config import PROJECT_ROOT, TrainConfig
from training.models import register_run_model
from training.runs import list_runs

DEMO_RUNS = {
    # The default text is longer than the write-up's essay, so the seed recipe gets 600 steps
    # instead of 300 to memorize it.
    "demo-seed": TrainConfig.for_recipe("seed", tokenizer="words", val_fraction=0.1, steps=600,
                                        eval_interval=25),
    "demo-windows": TrainConfig.for_recipe("windows"),
}
# The overfitting map's first points: every combination, each child a windows-recipe run.
DEMO_SWEEP = {"dropout": [0.0, 0.4], "weight_drop": [0.0, 0.5]}
SWEEP_SETTINGS = dict(steps=300, embed_dim=32, hidden_size=32)  # shared by every sweep run
# The Canary tab's chart: a secret planted once or 16 times, without and with dropout, nested
# under demo-canary. The chart reads only metrics and the canary tag, so these runs keep no
# checkpoint and no MLflow model (the run picker lists them; they cannot be loaded).
DEMO_CANARY = {"canary_repeats": [1, 16], "dropout": [0.0, 0.4]}
CANARY_SETTINGS = dict(steps=200, embed_dim=32, hidden_size=32, canary_digits=6)
CELL_RUNS = {f"demo-{cell}": TrainConfig.for_recipe("windows", cell=cell, embed_dim=64,
                                                    hidden_size=64) for cell in ("gru", "rnn")}
ALIASES = {"demo-seed": ("lighthouse", "reciter"), "demo-windows": ("lighthouse", "generalizer")}
WHAT_IT_SHOWS = {
    "demo-seed": "the write-up's recipe (prefix pairs, Adam, no dropout) memorizes: it recites",
    "demo-windows": "every position scored, SGD, dropout 0.4, best-validation weights: "
                    "lower validation loss, copies less",
    "demo-gru": "a GRU written like the LSTM (two gates, no cell state), for the gradient-flow view",
    "demo-rnn": "a plain tanh RNN, whose gradient fades with distance, for the gradient-flow view",
}


def describe(name: str, run) -> str:
    """The run's one-line description: recipe, corpus, steps, what it shows, its figures."""
    m, p = run.data.metrics, run.data.params
    return (f"{p['recipe']} recipe on {p['corpus']}, {int(m['step'])} steps: {WHAT_IT_SHOWS[name]} "
            f"(val_loss {m['val_loss']:.2f}, extractable memorization "
            f"{m.get('extractable_memorization', float('nan')):.2f}, "
            f"{m['sample_copied_4gram_fraction']:.0%} of a greedy sample's 4-grams copied)")


def _without_last(run_id: str) -> None:
    """Drop last.pt (the optimizer state --resume needs) to keep the committed store small."""
    (store.local_artifact_dir(run_id) / LAST_FILE).unlink(missing_ok=True)


def _chart_only(run_id: str) -> None:
    """Drop a run's checkpoints and its logged MLflow model, keeping metrics, params and tags."""
    import mlflow
    from mlflow.tracking import MlflowClient

    from training.runs import CHART_ONLY_TAG

    MlflowClient().set_tag(run_id, CHART_ONLY_TAG, "true")  # no model: the picker skips it
    folder = store.local_artifact_dir(run_id)
    for name in (MODEL_FILE, LAST_FILE):
        (folder / name).unlink(missing_ok=True)
    run = mlflow.get_run(run_id)
    for model in mlflow.search_logged_models(experiment_ids=[run.info.experiment_id],
                                             filter_string=f"source_run_id = '{run_id}'",
                                             output_format="list"):
        MlflowClient().delete_logged_model(model.model_id)
        # its files: <artifact location>/models/<model id>/artifacts
        shutil.rmtree(store.local_path(model.artifact_location).parent, ignore_errors=True)


def train_canary_runs() -> None:
    """The Canary tab's chart: DEMO_CANARY nested under demo-canary, chart-only runs."""
    from training.sweep import run_sweep, sweep_points

    print(f"training demo-canary ({' x '.join(f'{k} {v}' for k, v in DEMO_CANARY.items())})")
    parent = run_sweep(DEMO_CANARY, CANARY_SETTINGS, name="demo-canary")
    for run_id in sweep_points(parent)["run_id"]:
        _chart_only(run_id)


def train_longrange_runs() -> None:
    """The long-range task for the Why an LSTM tab: ``training.longrange.DEMO_GRID`` (the three
    cells over k, the gated two at two forget biases, one seed, each point's learning-rate
    search) nested under demo-longrange. These runs log metrics and one small JSON each, no
    model."""
    from training.longrange import DEMO_GRID, run_grid

    print(f"training demo-longrange ({' x '.join(f'{k} {v}' for k, v in DEMO_GRID.items())})")
    run_grid(DEMO_GRID, name="demo-longrange")


def train_map_runs() -> None:
    """The sweep (nested runs under demo-sweep) and one run per other cell."""
    import mlflow
    from mlflow.tracking import MlflowClient

    from training.sweep import run_sweep, sweep_points
    from training.tracking import train_run

    print(f"training demo-sweep ({' x '.join(f'{k} {v}' for k, v in DEMO_SWEEP.items())})")
    parent = run_sweep(DEMO_SWEEP, SWEEP_SETTINGS, name="demo-sweep")
    for run_id in sweep_points(parent)["run_id"]:
        _without_last(run_id)
    for name, config in CELL_RUNS.items():
        print(f"training {name} ({config.cell}, {config.steps} steps)")
        run_id = train_run(config, run_name=name)
        _without_last(run_id)
        MlflowClient().set_tag(run_id, "mlflow.note.content", describe(name, mlflow.get_run(run_id)))


def train_demo_runs() -> None:
    """Train, describe and register every demo run into the current (fresh) store."""
    import mlflow
    from mlflow.tracking import MlflowClient

    from training.tracking import train_run

    train_longrange_runs()  # no language models: the run picker never lists them
    train_canary_runs()  # before the language models: the app's default run is the newest
    train_map_runs()  # first: the app's default run is the newest demo run, demo-windows
    for name, config in DEMO_RUNS.items():
        print(f"training {name} ({config.recipe} recipe, {config.steps} steps)")
        run_id = train_run(config, run_name=name)
        _without_last(run_id)
        MlflowClient().set_tag(run_id, "mlflow.note.content", describe(name, mlflow.get_run(run_id)))
        model, alias = ALIASES[name]
        register_run_model(run_id, model, alias)
        print(f"{name}: run_id={run_id}, registered as {model}@{alias}")


def _replacements(build: Path) -> list[tuple[str, str]]:
    """This machine's folders -> what the committed store says instead (relative paths)."""
    artifacts = build.resolve() / "artifacts"
    return [(artifacts.as_uri(), "artifacts"), (str(artifacts), "artifacts"),
            (f"{PROJECT_ROOT}/", ""), (str(PROJECT_ROOT), ".")]


def scrub_model_files(build: Path) -> None:
    """MLflow writes the folders it logged from into each MLmodel file (for information only:
    loading reads the paths relative to the model). Make them relative too."""
    for mlmodel in (build / "artifacts").rglob("MLmodel"):
        text = mlmodel.read_text(encoding="utf-8")
        for old, new in _replacements(build):
            text = text.replace(old, new)
        mlmodel.write_text(text, encoding="utf-8")


def scrub(db: Path, build: Path) -> None:
    """Take every folder of this machine out of the store's text, then compact the file."""
    replacements = _replacements(build)
    with sqlite3.connect(db) as conn:
        tables = [t for (t,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for table in tables:
            for column in conn.execute(f"PRAGMA table_info({table})").fetchall():
                if "CHAR" not in column[2].upper() and "TEXT" not in column[2].upper():
                    continue
                for old, new in replacements:
                    conn.execute(f"UPDATE {table} SET {column[1]} = replace({column[1]}, ?, ?) "
                                 f"WHERE instr({column[1]}, ?) > 0", (old, new, old))
        conn.execute("UPDATE experiments SET artifact_location = 'artifacts/0' "
                     "WHERE experiment_id = 0")
        conn.execute("UPDATE runs SET user_id = 'demo'")
        conn.execute("UPDATE model_versions SET user_id = 'demo'")
        conn.execute("UPDATE tags SET value = 'demo' WHERE key = 'mlflow.user'")
        # The source is this recipe, whatever launched it (python -m, pytest, an IDE).
        conn.execute("UPDATE tags SET value = 'training/demo.py' WHERE key = 'mlflow.source.name'")
        conn.execute("UPDATE logged_model_tags SET tag_value = 'training/demo.py' "
                     "WHERE tag_key = 'mlflow.source.name'")
    with sqlite3.connect(db) as conn:
        conn.execute("VACUUM")  # freed pages could still hold the old text


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="lstm-demo-store-") as tmp:
        build = Path(tmp) / "store"
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{build / 'mlflow.db'}"
        train_demo_runs()
        print(list_runs()[["name", "recipe", "train_loss", "val_loss", "best_val_loss",
                           "sample_copied_4gram_fraction"]].to_string(index=False))
        scrub(build / "mlflow.db", build)
        scrub_model_files(build)
        shutil.rmtree(store.COMMITTED_STORE, ignore_errors=True)
        shutil.copytree(build, store.COMMITTED_STORE)
    print(f"rebuilt {store.COMMITTED_STORE}; delete {store.WORKING_STORE.name}/ to start "
          f"again from it (runs trained since are lost with it)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
