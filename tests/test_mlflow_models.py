"""Runs as MLflow models: pyfunc, linked figures, dataset input, registering, serving, references."""

from __future__ import annotations

import json
import math
import os
import shlex
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import mlflow
import pandas as pd
import pytest
import torch

from conftest import PROJECT_CORPUS, ROOT
from lstm_core.generate import SamplingConfig
from training import generate, store
from training.checkpoints import LAST_FILE
from training.config import TrainConfig
from training.models import register_run_model, run_model_id
from training.register import main as register_main
from training.register import parse_target
from training.runs import list_runs, load_run, registered_models, resolve_run_id
from training.store import EXPERIMENT, KNOWN_SCHEMAS, StoreError, open_store, sha256_text
from training.tracking import train_run

QUIET = {"on_log": lambda line: None}
MLFLOW_CLI = shutil.which("mlflow", path=os.path.dirname(sys.executable))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_up(process: subprocess.Popen, url: str, timeout: float = 180) -> None:
    deadline = time.time() + timeout
    while True:
        try:
            if urllib.request.urlopen(url, timeout=2).status == 200:
                return
        except OSError:
            pass
        assert process.poll() is None, f"the server exited with {process.returncode}"
        assert time.time() < deadline, f"{url} did not answer in {timeout} s"
        time.sleep(0.5)


def model_uri(run_id: str) -> str:
    return f"models:/{run_model_id(run_id)}"


# ----------------------------------------------------------------------------------------------
# The logged model


def test_pyfunc_predict_equals_what_the_cli_prints(use_demo_store, capsys):
    model = mlflow.pyfunc.load_model(model_uri(use_demo_store["seed"]))
    texts = model.predict(pd.DataFrame({"prompt": ["the lamp", "the sea"]}))
    assert generate.main(["--run", use_demo_store["seed"], "--prompt", "the lamp"]) == 0
    assert texts[0] == capsys.readouterr().out.rstrip("\n")
    assert texts[0].startswith("the lamp") and len(texts) == 2
    # Optional columns; an empty cell (NaN) takes the CLI default, as an absent column does.
    rows = pd.DataFrame({"prompt": ["the lamp", "the lamp"], "length": [5, math.nan],
                         "temperature": [1.0, math.nan], "top_k": [3, math.nan],
                         "top_p": [0.9, math.nan], "seed": [7, math.nan]})
    short, default = model.predict(rows)
    assert default == texts[0]
    expected = generate.generate_report(use_demo_store["seed"], "the lamp", SamplingConfig(
        max_new_tokens=5, temperature=1.0, top_k=3, top_p=0.9, seed=7))["text"]
    assert short == expected and len(short.split()) <= 7
    with pytest.raises(Exception, match="length must be a whole number"):
        model.predict(pd.DataFrame({"prompt": ["the lamp"], "length": [2.5]}))


def test_the_model_ships_a_weights_only_checkpoint_code_and_pinned_requirements(use_demo_store):
    folder = Path(mlflow.artifacts.download_artifacts(model_uri(use_demo_store["windows"])))
    checkpoint = torch.load(folder / "artifacts" / "model.pt", weights_only=True)
    assert {"model_config", "state_dict", "vocab"} <= checkpoint.keys()
    assert "optimizer" not in checkpoint
    assert not list(folder.rglob("*.pkl")), "nothing pickled"
    assert (folder / "code" / "lstm_core" / "model.py").exists()
    assert "torch==2.13.0" in (folder / "requirements.txt").read_text().split()
    signature = json.loads(mlflow.models.Model.load(folder).signature.to_dict()["inputs"])
    assert [c["name"] for c in signature] == ["prompt", "length", "temperature", "top_k", "top_p",
                                              "seed"]


def test_final_figures_are_linked_to_the_logged_model(use_demo_store):
    experiment = mlflow.get_experiment_by_name(EXPERIMENT)
    models = mlflow.search_logged_models(experiment_ids=[experiment.experiment_id],
                                         output_format="list")
    by_run = {m.source_run_id: m for m in models}
    assert set(by_run) == {use_demo_store["seed"], use_demo_store["windows"]}
    linked = {m.key: m.value for m in by_run[use_demo_store["windows"]].metrics}
    assert {"val_loss", "val_perplexity", "extractable_memorization",
            "sample_copied_4gram_fraction", "sample_longest_copied_span"} <= linked.keys()
    run = mlflow.get_run(use_demo_store["windows"])
    assert linked["val_loss"] == pytest.approx(run.data.metrics["best_val_loss"])


def test_the_text_is_a_dataset_and_the_run_is_described(use_demo_store):
    run = mlflow.get_run(use_demo_store["seed"])
    (dataset_input,) = run.inputs.dataset_inputs
    text = PROJECT_CORPUS.read_text(encoding="utf-8")
    assert dataset_input.dataset.digest == sha256_text(text)[:36]
    assert run.data.tags["corpus_sha256"] == sha256_text(text)
    assert json.loads(dataset_input.dataset.source) == {"uri": "corpus/lighthouse_keeper.txt"}
    assert run.data.params["corpus"] == "corpus/lighthouse_keeper.txt"  # not this machine's path
    assert run.data.tags["mlflow.note.content"].startswith("seed recipe on lighthouse_keeper.txt")
    experiment = mlflow.get_experiment_by_name(EXPERIMENT)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"


def test_an_uploaded_text_is_logged_as_upload(temp_store):
    run_id = train_run(TrainConfig.for_recipe("windows", steps=2, embed_dim=8, hidden_size=8,
                                              batch_size=4, seq_len=4),
                       text="the lamp turns and the light goes round. " * 30,
                       corpus_name="mine.txt", **QUIET)
    (dataset_input,) = mlflow.get_run(run_id).inputs.dataset_inputs
    assert json.loads(dataset_input.dataset.source) == {"uri": "upload"}
    assert dataset_input.dataset.name == "mine.txt"


# ----------------------------------------------------------------------------------------------
# References a user types, and registered models


def test_register_then_generate_by_alias(use_demo_store, capsys):
    assert register_main([use_demo_store["seed"][:8], "testlight@reciter"]) == 0
    assert "models:/testlight@reciter" in capsys.readouterr().out
    assert ("testlight@reciter", "models:/testlight@reciter") in registered_models()
    for ref in ("models:/testlight@reciter", "models:/testlight/1"):
        assert generate.main(["--model", ref, "--prompt", "the lamp", "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["run_id"] == use_demo_store["seed"]
    assert resolve_run_id("testlight@reciter") == use_demo_store["seed"]
    model = mlflow.pyfunc.load_model("models:/testlight@reciter")
    assert model.predict(pd.DataFrame({"prompt": ["the lamp"]}))[0].startswith("the lamp")
    assert generate.main(["--model", "models:/testlight@nobody", "--prompt", "the lamp"]) == 2
    assert "testlight@reciter" in capsys.readouterr().err
    assert generate.main(["--model", "testlight", "--prompt", "the lamp"]) == 2
    assert "models:/ URI" in capsys.readouterr().err


@pytest.mark.parametrize("target", ["bad name", "x@latest", "x@v2", "a" * 65, "@alias"])
def test_register_rejects_bad_targets(target):
    with pytest.raises(ValueError):
        parse_target(target)


def test_run_accepts_a_unique_prefix_or_name_and_lists_ambiguous_ones(use_demo_store, capsys):
    seed = use_demo_store["seed"]
    for ref in (seed, seed[:8], "test-seed"):
        assert generate.main(["--run", ref, "--prompt", "the lamp", "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["run_id"] == seed
    assert generate.main(["--run", "no-such-run", "--prompt", "the lamp"]) == 2
    assert "no run with id 'no-such-run' (nor one whose id starts" in capsys.readouterr().err


def test_an_ambiguous_prefix_or_name_lists_the_candidates(temp_store):
    experiment_id = open_store()
    runs = []
    while len({r[:1] for r in runs}) == len(runs):  # until two ids share a first character
        with mlflow.start_run(experiment_id=experiment_id, run_name="twin") as run:
            runs.append(run.info.run_id)
    first = runs[-1][0]
    with pytest.raises(ValueError, match=f"'{first}' matches [2-9] runs: .*twin"):
        resolve_run_id(first)
    with pytest.raises(ValueError, match=f"'twin' matches {len(runs)} runs"):
        resolve_run_id("twin")
    assert resolve_run_id(runs[0]) == runs[0]


def test_training_prints_a_paste_ready_generate_line_before_run_id(temp_store, capsys):
    from training.__main__ import main as train_main

    assert train_main(["--steps", "2", "--embed-dim", "8", "--hidden-size", "8", "--batch-size",
                       "4", "--seq-len", "4", "--eval-interval", "1"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-1].startswith("run_id=")
    command = shlex.split(lines[-2].split(": ", 1)[1])
    assert command[:3] == ["python", "-m", "training.generate"]
    args = command[3:]
    assert args[0] == "--run" and args[2] == "--prompt"
    assert generate.main(args + ["--json"]) == 0
    assert json.loads(capsys.readouterr().out)["run_id"] == lines[-1].removeprefix("run_id=")


# ----------------------------------------------------------------------------------------------
# Serving, a tracking server, the committed store


@pytest.mark.slow
def test_mlflow_models_serve_answers_invocations(use_demo_store):
    uri = model_uri(use_demo_store["seed"])
    port = free_port()
    # The server runs `uvicorn` by name: the environment's bin folder must be on PATH.
    env = {**os.environ, "MLFLOW_TRACKING_URI": use_demo_store["uri"],
           "PATH": os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")])}
    server = subprocess.Popen([MLFLOW_CLI, "models", "serve", "-m", uri, "--env-manager", "local",
                               "--host", "127.0.0.1", "-p", str(port)], cwd=ROOT, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until_up(server, f"http://127.0.0.1:{port}/ping")
        rows = [{"prompt": "the lamp", "length": 6}, {"prompt": "the lamp"}]  # 2nd: defaults
        body = json.dumps({"dataframe_records": rows}).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", data=body,
                                         headers={"Content-Type": "application/json"})
        answer = json.loads(urllib.request.urlopen(request, timeout=60).read())
    finally:
        server.terminate()
        server.wait(timeout=30)
    model = mlflow.pyfunc.load_model(uri)
    expected = (model.predict(pd.DataFrame({"prompt": ["the lamp"], "length": [6]}))
                + model.predict(pd.DataFrame({"prompt": ["the lamp"]})))
    assert answer == {"predictions": expected}


@pytest.mark.slow
def test_a_tracking_server_trains_registers_and_loads_by_uri(tmp_path, monkeypatch):
    port = free_port()
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    env.pop("MLFLOW_TRACKING_URI", None)
    server = subprocess.Popen(
        [MLFLOW_CLI, "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
         "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}",
         "--artifacts-destination", str(tmp_path / "server-artifacts")],
        cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until_up(server, f"http://127.0.0.1:{port}/health")
        monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{port}")
        run_id = train_run(TrainConfig.for_recipe("windows", steps=4, eval_interval=2,
                                                  embed_dim=16, hidden_size=16, batch_size=8),
                           run_name="served", **QUIET)
        register_run_model("served", "served-model", "champion")
        frame = pd.DataFrame({"prompt": ["the lamp"], "length": [3]})
        by_id = mlflow.pyfunc.load_model(model_uri(run_id)).predict(frame)
        by_alias = mlflow.pyfunc.load_model("models:/served-model@champion").predict(frame)
        assert by_id == by_alias and by_id[0].startswith("the lamp")
        assert resolve_run_id("served-model@champion") == run_id
        assert list((tmp_path / "server-artifacts").rglob("MLmodel"))  # stored by the server
    finally:
        server.terminate()
        server.wait(timeout=30)


def text_cells(db: Path):
    """Every text value in every table of a SQLite file (opened read-only)."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        for (table,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table'"):
            for row in conn.execute(f"SELECT * FROM {table}"):
                yield from (cell for cell in row if isinstance(cell, str))


def test_the_committed_store_names_no_folder_of_the_machine_that_built_it():
    db = store.COMMITTED_STORE / "mlflow.db"
    if not db.exists():
        pytest.skip("no committed store")
    absolute = [cell for cell in text_cells(db) if cell.startswith("/") or "file:/" in cell
                or str(ROOT) in cell]
    assert absolute == []
    assert b"/work/" not in db.read_bytes() and str(ROOT).encode() not in db.read_bytes()
    aliases = {label for label, _ in registered_aliases(db)}
    assert {"lighthouse@reciter", "lighthouse@generalizer"} <= aliases


def registered_aliases(db: Path):
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return [(f"{name}@{alias}", version) for alias, version, name in
                conn.execute("SELECT alias, version, name FROM registered_model_aliases")]


def test_relocating_a_store_of_unknown_schema_fails_loudly(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'a' / 'mlflow.db'}")
    open_store()
    with sqlite3.connect(tmp_path / "a" / "mlflow.db") as conn:
        (revision,) = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    # MLflow's current schema is one the relocation was checked against.
    assert revision in KNOWN_SCHEMAS, f"new MLflow schema {revision}: see KNOWN_SCHEMAS"
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    with sqlite3.connect(tmp_path / "b" / "mlflow.db") as conn:
        conn.execute("UPDATE alembic_version SET version_num = 'future0000'")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'b' / 'mlflow.db'}")
    with pytest.raises(StoreError, match="schema revision future0000"):
        open_store()


CLONE_SCRIPT = """
import mlflow, pandas as pd
from training import store
from training.runs import list_runs, load_run, resolve_run_id
from training.config import TrainConfig
from training.tracking import train_run
store.open_store()
runs = list_runs()
assert {"demo-seed", "demo-windows"} <= set(runs["name"]), runs
seed = resolve_run_id("lighthouse@reciter")
assert load_run(seed).name == "demo-seed"
assert mlflow.artifacts.list_artifacts(run_id=seed), "the UI would show no artifacts"
text = mlflow.pyfunc.load_model("models:/lighthouse@generalizer").predict(
    pd.DataFrame({"prompt": ["the lamp"], "length": [3]}))[0]
assert text.startswith("the lamp"), text
new = train_run(TrainConfig.for_recipe("windows", steps=2, embed_dim=8, hidden_size=8,
                                       batch_size=4, seq_len=4), on_log=lambda line: None)
assert str(store.local_artifact_dir(new)).startswith(str(store.WORKING_STORE))
print("clone ok")
"""


@pytest.mark.slow
def test_a_fresh_clone_stays_clean(tmp_path):
    if not (ROOT / ".git").exists() or not (store.COMMITTED_STORE / "mlflow.db").exists():
        pytest.skip("needs a git checkout with the committed store")
    if subprocess.run(["git", "status", "--porcelain", "mlruns"], cwd=ROOT, capture_output=True,
                      text=True).stdout:
        pytest.skip("mlruns/ has uncommitted changes: the clone would not have them")
    clone = tmp_path / "somewhere else" / "clone"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    result = subprocess.run([sys.executable, "-c", CLONE_SCRIPT], cwd=clone, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "clone ok" in result.stdout
    status = subprocess.run(["git", "status", "--porcelain"], cwd=clone, capture_output=True,
                            text=True, check=True).stdout
    assert status == ""
    assert (clone / ".mlruns-local" / "mlflow.db").exists()


@pytest.mark.slow
def test_the_demo_recipe_builds_a_relative_store_that_loads_anywhere(tmp_path, monkeypatch):
    from training import demo

    tiny = dict(steps=4, eval_interval=2, embed_dim=8, hidden_size=8, batch_size=4, seq_len=4)
    monkeypatch.setattr(demo, "DEMO_RUNS", {
        "demo-seed": TrainConfig.for_recipe("seed", tokenizer="words", val_fraction=0.1, **tiny),
        "demo-windows": TrainConfig.for_recipe("windows", **tiny)})
    monkeypatch.setattr(demo, "DEMO_SWEEP", {"dropout": [0.0, 0.4]})
    monkeypatch.setattr(demo, "SWEEP_SETTINGS", tiny)
    monkeypatch.setattr(demo, "CELL_RUNS", {f"demo-{c}": TrainConfig.for_recipe(
        "windows", cell=c, **tiny) for c in ("gru", "rnn")})
    monkeypatch.setattr(demo, "DEMO_CANARY", {"canary_repeats": [4]})
    monkeypatch.setattr(demo, "CANARY_SETTINGS", {**tiny, "canary_digits": 2})
    monkeypatch.setattr(demo, "train_longrange_runs", lambda: None)  # tests/test_longrange.py
    monkeypatch.setattr(store, "COMMITTED_STORE", tmp_path / "mlruns")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "unused")  # demo.main sets it; restored after
    assert demo.main() == 0
    built = tmp_path / "mlruns"
    absolute = [c for c in text_cells(built / "mlflow.db") if c.startswith("/") or "file:/" in c]
    assert absolute == []
    for mlmodel in built.rglob("MLmodel"):
        assert str(ROOT) not in mlmodel.read_text() and "/tmp" not in mlmodel.read_text()
    copy = tmp_path / "elsewhere" / "store"
    shutil.copytree(built, copy)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{copy / 'mlflow.db'}")
    load_run.cache_clear()
    seed = resolve_run_id("lighthouse@reciter")
    assert load_run(seed).name == "demo-seed"
    assert "recites" in mlflow.get_run(seed).data.tags["mlflow.note.content"]
    runs = list_runs()  # the map's sweep and the other cells, demo-windows the newest
    assert {"demo-gru", "demo-rnn"} <= set(runs["name"])
    assert "demo-sweep" not in set(runs["name"])  # the sweep's parent holds no model
    assert runs["name"].iloc[0] == "demo-windows"
    assert set(runs["cell"]) == {"lstm", "gru", "rnn"}
    from training.sweep import sweep_points

    (parent,) = mlflow.search_runs(
        filter_string="tags.sweep = 'parent' and tags.mlflow.runName = 'demo-sweep'",
        search_all_experiments=True, output_format="list")
    assert len(sweep_points(parent.info.run_id)) == 2
    assert not list(built.rglob(LAST_FILE))  # no optimizer states in the committed store
    canary = runs[runs["name"].str.startswith("demo-canary")]
    assert len(canary) == 1 and canary["chart_only"].all()  # kept for its chart, no model
    text = mlflow.pyfunc.load_model("models:/lighthouse@generalizer").predict(
        pd.DataFrame({"prompt": ["the"], "length": [2]}))[0]
    assert text.startswith("the")
