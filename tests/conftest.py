"""Shared fixtures and helpers. Every test that touches MLflow uses a temporary store, never mlruns/.

Stores trained once per session: ``demo_store`` (a seed and a windows run on the project
corpus), ``registered`` (a copy of it whose seed run's model is lighthouse@reciter) and
``memorizer`` (a run that recites its short training text). ``launched(uri)`` serves the app
in this process; ``client`` is one gradio_client against it per module. The subprocess helpers
start ``python app.py`` or a CLI and wait for it.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch

from training.config import DEFAULT_CORPUS, SPIKE  # noqa: F401  (tests import SPIKE from here)

torch.set_num_threads(2)
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

ROOT = Path(__file__).resolve().parent.parent
PROJECT_CORPUS = ROOT / "corpus" / "lighthouse_keeper.txt"
SEED = "i went out to the skerrow light"  # the corpus's first sentence, from its 5th word (each word occurs twice or more)
FIRST_WORDS = " ".join(DEFAULT_CORPUS.read_text(encoding="utf-8").split()[:200])
RECITER = "models:/lighthouse@reciter"  # the registered store's seed run
QUIET = lambda line: None  # noqa: E731


@contextmanager
def tracking(uri: str):
    """MLFLOW_TRACKING_URI set to uri inside the block, restored after."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", uri)
        yield


def sqlite_uri(folder: Path) -> str:
    return f"sqlite:///{folder / 'mlflow.db'}"


def clear_run_caches() -> None:
    """Forget loaded runs (keyed by run id: a copied store holds the same ids)."""
    from training.runs import load_run
    from ui.flow_tab import untrained_flows
    from ui.report import short_id

    load_run.cache_clear()
    short_id.cache_clear()
    untrained_flows.cache_clear()


# ---- stores --------------------------------------------------------------------------------

@pytest.fixture
def temp_store(tmp_path, monkeypatch):
    """A fresh, empty SQLite store for one test."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", sqlite_uri(tmp_path / "store"))
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
    with tracking(sqlite_uri(folder)):
        seed = train_run(TrainConfig.for_recipe("seed", tokenizer="words", steps=30, batch_size=32,
                                                embed_dim=32, hidden_size=32, val_fraction=0.1,
                                                eval_interval=15),
                         run_name="test-seed", on_log=QUIET)
        windows = train_run(TrainConfig.for_recipe("windows", steps=60, embed_dim=32,
                                                   hidden_size=32, eval_interval=20),
                            run_name="test-windows", on_log=QUIET)
    return {"store": folder, "uri": sqlite_uri(folder), "seed": seed, "windows": windows}


@pytest.fixture
def use_demo_store(demo_store, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", demo_store["uri"])
    return demo_store


@pytest.fixture(scope="session")
def registered(demo_store, tmp_path_factory):
    """A copy of the demo store whose seed run's model is registered as lighthouse@reciter."""
    from training.models import register_run_model

    folder = tmp_path_factory.mktemp("registered") / "store"
    shutil.copytree(demo_store["store"], folder)
    with tracking(sqlite_uri(folder)):
        register_run_model(demo_store["seed"], "lighthouse", "reciter")
    return {**demo_store, "store": folder, "uri": sqlite_uri(folder)}


@pytest.fixture
def use_registered(registered, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", registered["uri"])
    clear_run_caches()
    yield registered
    clear_run_caches()


@pytest.fixture(scope="session")
def memorizer(tmp_path_factory):
    """A run that recites its short training text (the corpus's first 200 words): no dropout,
    nothing held out, every word kept. Named demo-…, so the app selects it. {"uri", "store",
    "run_id"}."""
    from training.config import TrainConfig
    from training.tracking import train_run

    folder = tmp_path_factory.mktemp("memorizer")
    config = TrainConfig.for_recipe("windows", steps=100, dropout=0.0, embed_dim=32,
                                    hidden_size=32, val_fraction=0.0, eval_interval=100,
                                    optimizer="adam", lr=0.01, batch_size=16, min_count=1)
    with tracking(sqlite_uri(folder)):
        run_id = train_run(config, run_name="demo-memorizer", text=FIRST_WORDS,
                           corpus_name="first-200-words", on_log=QUIET)
    return {"uri": sqlite_uri(folder), "store": folder, "run_id": run_id}


@pytest.fixture
def use_memorizer(memorizer, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", memorizer["uri"])
    return memorizer


# ---- the app in this process ----------------------------------------------------------------

@contextmanager
def launched(uri: str):
    """The app served on loopback against the store at uri; yields its URL."""
    import ui

    with tracking(uri):
        demo = ui.build_demo()
        try:
            ui.launch(demo, prevent_thread_lock=True, server_name="127.0.0.1", quiet=True)
            yield demo.local_url
        finally:
            demo.close()


@pytest.fixture(scope="module")
def client(registered):
    """A gradio_client of the app served against the registered store (one per module)."""
    from gradio_client import Client

    with launched(registered["uri"]) as url:
        yield Client(url, verbose=False)


# ---- subprocesses -----------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(condition, timeout: float, what: str):
    """condition()'s first truthy value, polled every half second, or an AssertionError."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = condition()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


def cli(*args, uri: str | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """``python *args`` in the project folder (a store of uri's if given), run to its end."""
    env = dict(os.environ)
    if uri:
        env["MLFLOW_TRACKING_URI"] = uri
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


def start_app(uri: str, port: int) -> subprocess.Popen:
    """``python app.py`` serving the store at uri on a loopback port; output in .stdout."""
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "GRADIO_SERVER_PORT": str(port),
           "GRADIO_SERVER_NAME": "127.0.0.1", "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def client_of(server: subprocess.Popen, port: int, timeout: float = 180):
    """A gradio_client of a started app once it serves (an AssertionError if it exits first)."""
    from gradio_client import Client

    def serving():
        assert server.poll() is None, f"app.py exited: {server.stdout.read()[-2000:]}"
        try:
            return Client(f"http://127.0.0.1:{port}/", verbose=False)
        except Exception:  # not serving yet
            return None

    return wait_until(serving, timeout, "app.py to serve")
