"""``python app.py`` as a process: it starts without touching the store until it serves, trains
a default model only into an empty store, says in one line why a store cannot be used, and
ends its own training run as KILLED (checkpoint kept) when it is told to stop.
"""

from __future__ import annotations

import shutil
import signal
import sqlite3

import pytest

from conftest import (
    cli,
    client_of,
    free_port,
    sqlite_uri,
    start_app,
    wait_until,
)
from training.checkpoints import LAST_FILE
from training.runs import get_run, list_runs
from training.store import local_artifact_dir
from ui import limits


def one_line_refusal(done) -> str:
    """app.py's exit on a store it cannot use: status 1 and one line, no traceback."""
    assert done.returncode == 1, done.stdout[-2000:] + done.stderr[-2000:]
    assert "Traceback" not in done.stderr + done.stdout
    (line,) = [line for line in done.stderr.splitlines() if line.startswith("app.py:")]
    return line


def test_building_the_app_opens_no_store(tmp_path):
    store = tmp_path / "never" / "mlflow.db"
    done = cli("-c", "import app, ui; ui.build_demo()", uri=f"sqlite:///{store}", timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    assert not store.parent.exists()


def test_an_empty_store_gets_a_default_model_first(temp_store, capsys):
    import app

    app.ensure_runs(steps=10)
    (name,) = list_runs()["name"]
    assert name == app.DEFAULT_RUN_NAME
    assert "training a small default model" in capsys.readouterr().out


def test_a_store_with_runs_is_served_as_it_is(demo_store, tmp_path, monkeypatch, capsys):
    import app

    shutil.copytree(demo_store["store"], tmp_path / "store")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", sqlite_uri(tmp_path / "store"))
    app.ensure_runs(steps=10)
    assert set(list_runs()["run_id"]) == {demo_store["seed"], demo_store["windows"]}
    assert "2 run(s) in" in capsys.readouterr().out


def test_a_corrupt_store_is_one_line(tmp_path):
    db = tmp_path / "mlflow.db"
    db.write_bytes(b"this is not a database" * 100)
    line = one_line_refusal(cli("app.py", uri=f"sqlite:///{db}", timeout=180))
    assert "is damaged" in line and "restore it" in line


def test_a_locked_store_is_one_line(tmp_path):
    db = tmp_path / "mlflow.db"
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("CREATE TABLE t (x)")
    holder.execute("PRAGMA locking_mode = EXCLUSIVE")
    holder.execute("BEGIN EXCLUSIVE")  # another process is writing and never lets go
    try:
        line = one_line_refusal(cli("app.py", uri=f"sqlite:///{db}", timeout=180))
    finally:
        holder.close()
    assert "cannot be used" in line


@pytest.mark.slow
def test_sigterm_ends_the_apps_training_run_killed(demo_store, tmp_path, monkeypatch):
    shutil.copytree(demo_store["store"], tmp_path / "store")
    uri = sqlite_uri(tmp_path / "store")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    port = free_port()
    server = start_app(uri, port)
    try:
        client = client_of(server, port)
        client.submit(None, "windows", limits.MAX_STEPS, 16, 0.0, 0.01, "sigterm-me", 500,
                      api_name="/train")

        def training_run():
            runs = list_runs()
            logged = runs[(runs["name"] == "sigterm-me") & (runs["steps"] > 0)]
            return logged["run_id"].iloc[0] if len(logged) else None

        run_id = wait_until(training_run, 240, "a logged step")
        server.send_signal(signal.SIGTERM)
        output, _ = server.communicate(timeout=90)
    finally:
        if server.poll() is None:
            server.kill()
            server.communicate()
    assert server.returncode == 0, output[-2000:]
    assert f"training run {run_id} ended KILLED; its last checkpoint is of step" in output
    assert get_run(run_id).info.status == "KILLED"
    assert (local_artifact_dir(run_id) / LAST_FILE).exists()
