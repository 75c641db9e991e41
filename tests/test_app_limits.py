"""The app on a public machine: bounded work per caller, no run left in limbo, clear errors.

Issue #10, app side. Every test uses a temporary store (never mlruns/).
"""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import gradio as gr
import pytest

import app
from training import registry
from training.config import DEFAULT_CORPUS, TrainConfig

ROOT = Path(__file__).resolve().parent.parent
PROMPT = "i was twenty-three when"
FIRST_WORDS = " ".join(DEFAULT_CORPUS.read_text(encoding="utf-8").split()[:200])


def tiny_upload(tmp_path: Path, text: str = FIRST_WORDS) -> str:
    path = tmp_path / "story.txt"
    path.write_text(text, encoding="utf-8")
    return str(path)


def run_status(run_id: str) -> str:
    return registry.get_run(run_id).info.status


# ---- #10.2: prompt length -----------------------------------------------------------------------

@pytest.mark.parametrize("call", ["generate", "temperature_sweep", "gate_heatmap"])
def test_huge_prompt_is_refused_before_any_work(use_demo_store, call):
    run_id = use_demo_store["windows"]
    huge = "the " * 400_000  # 1.6 MB
    fn = {"generate": lambda t: list(app.generate(run_id, t, 10)),
          "temperature_sweep": lambda t: app.temperature_sweep(run_id, t, 10),
          "gate_heatmap": lambda t: app.gate_heatmap(run_id, t)}[call]
    with pytest.raises(gr.Error, match="characters long; the limit is"):
        fn(huge)
    too_many = "a " * (app.MAX_PROMPT_WORDS + app.MAX_LENGTH + 1)  # under the character limit
    with pytest.raises(gr.Error, match="words; the limit is"):
        fn(too_many)


def test_prompt_limits_are_one_check():
    assert app.check_prompt("the lamp") == "the lamp"
    assert app.check_prompt(None) == ""
    with pytest.raises(gr.Error, match=f"limit is {app.MAX_PROMPT_WORDS} words"):
        app.check_prompt("a " * (app.MAX_PROMPT_WORDS + 1))


# ---- #10.3: the queue -----------------------------------------------------------------------------

def test_queue_is_bounded_and_every_heavy_event_has_a_concurrency_limit(temp_store):
    demo = app.build_demo()
    try:
        app.launch(demo, prevent_thread_lock=True, server_name="127.0.0.1", quiet=True)
        assert demo._queue.max_size == app.QUEUE_MAX_SIZE
        named = {fn.api_name: fn for fn in demo.fns.values() if fn.api_name}
        for name in ("generate", "temperature_sweep", "gates", "compare_runs", "loss_curves"):
            assert named[name].concurrency_limit == app.COMPUTE_SLOT["concurrency_limit"], name
            assert named[name].concurrency_id == "compute", name
        assert named["train"].concurrency_limit is not None
    finally:
        demo.close()


# ---- #10.1: bounded training ----------------------------------------------------------------------

def test_vocabulary_cap_is_a_bounded_control():
    assert app.train_config("windows", 100, 64, 0.3, 1.0, 500).max_vocab == 500
    for bad in (0, 10, app.MAX_APP_VOCAB + 1, "lots", None):
        with pytest.raises(gr.Error, match="Vocabulary cap"):
            app.train_config("windows", 100, 64, 0.3, 1.0, bad)


def test_parameters_times_steps_has_a_ceiling():
    unique = " ".join(f"w{i}" for i in range(50_000))  # every word new, as in the upload
    big = app.train_config("windows", app.MAX_STEPS, app.MAX_HIDDEN, 0.3, 1.0, app.MAX_APP_VOCAB)
    with pytest.raises(gr.Error, match="too big for the app"):
        app.check_cost(big, unique)
    default = app.train_config("windows", 300, 64, 0.4, 20.0)
    params = app.check_cost(default, DEFAULT_CORPUS.read_text(encoding="utf-8"))
    assert 10_000 < params * default.steps <= app.MAX_PARAM_STEPS
    # The vocabulary cap bounds the count however many distinct words the text has.
    capped = app.train_config("windows", 10, 16, 0.0, 1.0, 100)
    assert app.check_cost(capped, unique) == app.model_parameters(capped, 102)


def test_stop_ends_the_run_killed_with_its_checkpoint(temp_store, tmp_path):
    outputs = app.train(tiny_upload(tmp_path), "windows", app.MAX_STEPS, 16, 0.0, 0.01, "long")
    seen = []
    for out in outputs:
        seen.append(out)
        if "step 0/" not in str(out[4]) and app._JOB is not None and app._JOB.run_id:
            assert app.stop_training() == "Stopping after the current step…"
            break
    seen.extend(outputs)
    status = seen[-1][4]
    assert status.startswith("Stopped (Stop was pressed)")
    (run_id,) = registry.list_runs()["run_id"]
    assert run_status(run_id) == "KILLED"
    assert (registry.local_artifact_dir(run_id) / registry.LAST_FILE).exists()
    assert registry.get_run(run_id).data.tags[app.APP_TAG] == "true"
    assert not app._TRAIN_LOCK.locked() and app._JOB is None
    labels = dict((r, label) for label, r in app.run_choices(registry.list_runs()))
    assert "· killed ·" in labels[run_id]  # listed in the picker, with its status


def test_time_limit_stops_the_run(temp_store, tmp_path, monkeypatch):
    monkeypatch.setattr(app, "MAX_TRAIN_SECONDS", 0)
    *_, last = app.train(tiny_upload(tmp_path), "windows", 500, 16, 0.0, 0.01, "slow")
    assert "time limit" in last[4]
    assert run_status(registry.list_runs()["run_id"].iloc[0]) == "KILLED"


def test_only_the_starting_session_may_stop(monkeypatch):
    monkeypatch.setattr(app, "_JOB", app.TrainingJob("session-a", 60))
    with pytest.raises(gr.Error, match="Only the page that started"):
        app.stop_training(SimpleNamespace(session_hash="session-b"))
    assert not app._JOB.stop.is_set()
    app.stop_training(SimpleNamespace(session_hash="session-a"))
    assert app._JOB.stop.is_set()
    monkeypatch.setattr(app, "_JOB", None)
    with pytest.raises(gr.Error, match="No training"):
        app.stop_training()


def test_run_names_are_bounded_and_demo_names_reserved():
    assert app.check_run_name("  my   run ", "windows") == "my run"
    assert app.check_run_name("", "seed") == "app-seed"
    with pytest.raises(gr.Error, match="demo-"):
        app.check_run_name("demo-windows", "windows")
    with pytest.raises(gr.Error, match="at most"):
        app.check_run_name("x" * (app.MAX_RUN_NAME + 1), "windows")


@pytest.mark.slow
def test_old_app_runs_are_pruned_oldest_first_never_demo_runs(temp_store, tmp_path, monkeypatch):
    from training.tracking import train_run

    cli = train_run(TrainConfig.for_recipe("windows", steps=10, embed_dim=16, hidden_size=16,
                                           eval_interval=10),
                    run_name="demo-cli", text=FIRST_WORDS, on_log=lambda line: None)
    monkeypatch.setattr(app, "KEEP_APP_RUNS", 2)
    trained = []
    for k in range(3):
        *_, last = app.train(tiny_upload(tmp_path), "windows", 10, 16, 0.0, 0.01, f"app-{k}")
        trained.append(last[0].value)
    runs = registry.list_runs()
    assert set(runs["run_id"]) == {cli, trained[1], trained[2]}
    assert not (registry.local_artifact_dir(cli).parent.parent / trained[0]).exists()
    assert (registry.local_artifact_dir(cli) / registry.MODEL_FILE).exists()
    assert "removed 1 older app run" in last[5]


# ---- #10.4: the app ends its own training when it shuts down ---------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_app(uri: str, port: int) -> subprocess.Popen:
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "GRADIO_SERVER_PORT": str(port),
           "GRADIO_SERVER_NAME": "127.0.0.1"}
    return subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def wait_until(condition, timeout: float, what: str):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = condition()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.slow
def test_sigterm_ends_the_apps_training_run_killed(demo_store, tmp_path, monkeypatch):
    import shutil

    from gradio_client import Client

    shutil.copytree(demo_store["store"], tmp_path / "store")
    uri = f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    port = free_port()
    server = start_app(uri, port)
    try:
        client = wait_until(lambda: _client(Client, port), 120, "the app to serve")
        client.submit(None, "windows", app.MAX_STEPS, 16, 0.0, 0.01, "sigterm-me", 500,
                      api_name="/train")

        def training_run():
            runs = registry.list_runs()
            running = runs[(runs["name"] == "sigterm-me") & (runs["steps"] > 0)]
            return running["run_id"].iloc[0] if len(running) else None

        run_id = wait_until(training_run, 240, "a logged step")
        server.send_signal(signal.SIGTERM)
        output, _ = server.communicate(timeout=60)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    assert f"stopped training run {run_id}" in output
    assert run_status(run_id) == "KILLED"
    assert (registry.local_artifact_dir(run_id) / registry.LAST_FILE).exists()


def _client(client_class, port: int):
    try:
        return client_class(f"http://127.0.0.1:{port}/", verbose=False)
    except Exception:  # not serving yet
        return None


# ---- #10.9: one line, not a traceback --------------------------------------------------------------

def test_app_py_on_a_corrupt_store_prints_one_line(tmp_path):
    db = tmp_path / "mlflow.db"
    db.write_bytes(b"this is not a database" * 100)
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{db}"}
    done = subprocess.run([sys.executable, "app.py"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=180)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr + done.stdout
    lines = [line for line in done.stderr.splitlines() if line.startswith("app.py:")]
    assert len(lines) == 1 and "cannot be used" in lines[0]


def test_app_py_on_a_locked_store_prints_one_line(tmp_path):
    db = tmp_path / "mlflow.db"
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("CREATE TABLE t (x)")
    holder.execute("PRAGMA locking_mode = EXCLUSIVE")
    holder.execute("BEGIN EXCLUSIVE")
    try:
        env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{db}"}
        done = subprocess.run([sys.executable, "app.py"], cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=180)
    finally:
        holder.close()
    assert done.returncode == 1, done.stdout[-500:]
    assert "Traceback" not in done.stderr + done.stdout
    assert "cannot be used" in done.stderr


@pytest.fixture(scope="module")
def client(demo_store):
    from gradio_client import Client

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", demo_store["uri"])
        demo = app.build_demo()
        try:
            app.launch(demo, prevent_thread_lock=True, server_name="127.0.0.1", quiet=True)
            yield Client(demo.local_url, verbose=False)
        finally:
            demo.close()


@pytest.mark.parametrize("position, value, message", [
    (2, "many", "Length must be a number, got 'many'"),
    (2, None, "Length must be a number, got None"),
    (3, "hot", "Temperature must be a number"),
    (4, [1], "Top-k must be a number"),
    (6, "x", "Random seed must be a number"),
])
def test_client_gets_a_clear_line_for_non_numbers(client, demo_store, position, value, message):
    from gradio_client.exceptions import AppError

    args = [demo_store["windows"], PROMPT, 20, 0.0, 0, 1.0, 0]
    args[position] = value
    with pytest.raises(AppError, match=message):
        client.predict(*args, api_name="/generate")


def test_gradios_monitoring_page_is_off(client):
    # Its summary of our traffic was public, and rebuilding it cost every event 5-19 ms.
    import urllib.error
    import urllib.request

    with pytest.raises(urllib.error.HTTPError, match="403"):
        urllib.request.urlopen(client.src.rstrip("/") + "/monitoring/summary", timeout=30)
    assert int(os.environ["GRADIO_ANALYTICS_CACHE_FREQUENCY"]) >= 10**9


def test_client_gets_a_clear_line_for_nan_and_strings_elsewhere(client, demo_store):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="Unit must be a number"):
        client.predict(demo_store["windows"], PROMPT, 1, "abc", api_name="/gates")
    with pytest.raises(AppError, match="Steps must be a number"):
        client.predict(None, "windows", "lots", 16, 0.0, 0.01, "", 500, api_name="/train")
    with pytest.raises(gr.Error, match="Length must be a whole number from 1 to 400, got nan"):
        list(app.generate(demo_store["windows"], PROMPT, float("nan")))


# ---- #10.10: what remote callers see ---------------------------------------------------------------

def test_errors_show_the_store_name_and_escape_what_they_echo(client, demo_store):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError) as caught:
        client.predict("<img src=x onerror=alert(1)>", PROMPT, 20, 0.0, 0, 1.0, 0,
                       api_name="/generate")
    message = str(caught.value)
    assert "<img" not in message and "&lt;img" in message
    assert str(demo_store["store"]) not in message
    assert f"{demo_store['store'].name}/mlflow.db" in message
    with pytest.raises(AppError) as caught:
        client.predict(demo_store["windows"], "the <b>zorblax</b>", 20, 0.0, 0, 1.0, 0,
                       api_name="/generate")
    assert "<b>" not in str(caught.value) and "zorblax" in str(caught.value)


# ---- #10.13, #10.14, issue #12 item 3 --------------------------------------------------------------

def test_gates_use_the_librarys_unknown_word_check(use_demo_store):
    from lstm_core.generate import encode_prompt

    loaded = app.load(use_demo_store["windows"])
    with pytest.raises(ValueError) as library:
        encode_prompt("the zorblax", loaded.vocab)
    with pytest.raises(gr.Error) as shown:
        app.gate_heatmap(use_demo_store["windows"], "the zorblax")
    assert shown.value.message == str(library.value)


def test_loss_note_states_the_runs_own_memorization_lengths(use_demo_store, monkeypatch):
    real = registry.get_run(use_demo_store["windows"])
    params = {**real.data.params, "memorization_prefix": "5", "memorization_suffix": "7"}
    fake = SimpleNamespace(info=real.info, data=SimpleNamespace(
        params=params, metrics={**real.data.metrics, "extractable_memorization": 0.5}))
    monkeypatch.setattr(app.registry, "get_run", lambda run_id: fake)
    note = app.loss_curves(use_demo_store["windows"])[1]
    assert "given 5 words, the next 7" in note


def test_about_is_built_from_the_demo_configs(monkeypatch):
    from training import demo as demo_runs
    from ui import about_tab

    changed = TrainConfig.for_recipe("seed", tokenizer="words", val_fraction=0.1, steps=777)
    monkeypatch.setitem(demo_runs.DEMO_RUNS, "demo-seed", changed)
    assert "777 steps" in about_tab.demo_runs_text()


def test_about_says_where_runs_are_kept(monkeypatch, tmp_path):
    from ui import about_tab

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    local = about_tab.store_text()
    assert "`mlruns/mlflow.db`" in local and "vanish" in local and "secret" in local
    assert str(tmp_path) not in local
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert "kept there" in about_tab.store_text()


def test_shutdown_with_no_training_is_a_no_op():
    assert app._JOB is None
    assert app.stop_training_for_shutdown(wait_s=0) is None


def test_shutdown_stops_a_training_in_progress(monkeypatch):
    job = app.TrainingJob(None, 60)
    job.run_id = "r1"
    job.thread = threading.Thread(target=job.stop.wait, args=(30,))
    job.thread.start()
    monkeypatch.setattr(app, "_JOB", job)
    assert app.stop_training_for_shutdown(wait_s=10) == "r1"
    assert job.stop.is_set() and not job.thread.is_alive()
    assert "shut down" in job.stopped_because


def test_picker_lists_stopped_and_interrupted_runs_with_their_status():
    import pandas as pd

    runs = pd.DataFrame({"run_id": ["a" * 32, "b" * 32, "c" * 32, "d" * 32],
                         "name": ["done", "stopped", "died", "live"],
                         "recipe": ["windows"] * 4, "val_loss": [5.0] * 4,
                         "status": ["FINISHED", "KILLED", "INTERRUPTED", "RUNNING"]})
    labels = [label for label, _ in app.run_choices(runs)]
    # No cell column (a run table from before #14): every run is an LSTM.
    assert labels == ["done · windows · lstm · val loss 5.00 · aaaaaaaa",
                      "stopped · windows · lstm · val loss 5.00 · killed · bbbbbbbb",
                      "died · windows · lstm · val loss 5.00 · interrupted · cccccccc"]
