"""Shared fixtures. Every test that touches MLflow uses a temporary store, never mlruns/."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from training.config import SPIKE  # noqa: F401  (tests import it from here)

torch.set_num_threads(2)
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

ROOT = Path(__file__).resolve().parent.parent
PROJECT_CORPUS = ROOT / "corpus" / "lighthouse_keeper.txt"


@pytest.fixture
def temp_store(tmp_path, monkeypatch):
    """A fresh, empty SQLite store for one test."""
    uri = f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return tmp_path / "store"


@pytest.fixture(scope="session")
def demo_store(tmp_path_factory):
    """A store holding two small runs on the project corpus, one per recipe, trained once.

    Returns {"store": folder, "uri": tracking URI, "seed": run_id, "windows": run_id}. Tests
    that use it set MLFLOW_TRACKING_URI to store["uri"] (the ``use_demo_store`` fixture does).
    """
    from training.config import TrainConfig
    from training.tracking import train_run

    folder = tmp_path_factory.mktemp("demo_store")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    previous = os.environ.get("MLFLOW_TRACKING_URI")
    os.environ["MLFLOW_TRACKING_URI"] = uri
    try:
        quiet = lambda line: None  # noqa: E731
        seed = train_run(TrainConfig.for_recipe("seed", tokenizer="words", steps=30, batch_size=32,
                                                embed_dim=32, hidden_size=32, val_fraction=0.1,
                                                eval_interval=15),
                         run_name="test-seed", on_log=quiet)
        windows = train_run(TrainConfig.for_recipe("windows", steps=60, embed_dim=32, hidden_size=32,
                                                   eval_interval=20),
                            run_name="test-windows", on_log=quiet)
    finally:
        if previous is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = previous
    return {"store": folder, "uri": uri, "seed": seed, "windows": windows}


@pytest.fixture
def use_demo_store(demo_store, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", demo_store["uri"])
    return demo_store
