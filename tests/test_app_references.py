"""Runs named the ways people name them: models:/ URIs, id prefixes, run names; the Generate
report's "why" line and CLI line; a run without model.pt; a stale working copy of the store."""

from __future__ import annotations

import re
import shlex
import shutil
import sqlite3

import gradio as gr
import pytest

import app
from training import generate as generate_cli
from training import registry

SEED = "i was twenty-three when"
RECITER = "models:/lighthouse@reciter"


@pytest.fixture(scope="module")
def registered(demo_store, tmp_path_factory):
    """A copy of the demo store whose seed run's model is registered as lighthouse@reciter."""
    folder = tmp_path_factory.mktemp("registered") / "store"
    shutil.copytree(demo_store["store"], folder)
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", uri)
        registry.register_run_model(demo_store["seed"], "lighthouse", "reciter")
    return {**demo_store, "store": folder, "uri": uri}


@pytest.fixture
def use_registered(registered, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", registered["uri"])
    registry.load_run.cache_clear()
    yield registered
    registry.load_run.cache_clear()


def figures_of(reference, length=20):
    return list(app.generate(reference, SEED, length, 0))[-1][2]


def test_picker_lists_registered_models_first(use_registered):
    run = app.refresh_runs()[0]
    assert run.choices[0] == ("lighthouse@reciter", RECITER)
    assert [value for _, value in run.choices[1:]] == [use_registered["windows"],
                                                      use_registered["seed"]]
    assert " · lstm · " in run.choices[1][0]  # each run shows its cell
    assert app.refresh_runs(RECITER)[0].value == RECITER


@pytest.mark.parametrize("reference", [RECITER, "lighthouse@reciter", "test-seed", "prefix"])
def test_every_reference_loads_the_same_run(use_registered, reference):
    seed = use_registered["seed"]
    reference = seed[:8] if reference == "prefix" else reference
    assert app.load(reference).run_id == seed
    assert app.history(reference)["metric"].isin(["train_loss"]).any()
    assert "train_loss" in set(app.loss_curves(reference)[0]["metric"])
    frame = app.compare_runs([reference, use_registered["windows"]])[0]
    assert frame["series"].str.contains("test-seed").any()


def test_unknown_and_ambiguous_references_are_clear_escaped_errors(use_registered):
    with pytest.raises(gr.Error, match="no model models:/lighthouse@&lt;b&gt;"):
        app.load("models:/lighthouse@<b>")
    with pytest.raises(gr.Error, match="There is no run"):
        app.load("no-such-run")
    with pytest.raises(gr.Error, match="nor one whose id starts with it or whose name it is"):
        app.resolve("test-")  # not a whole run name, and a prefix of no id
    with pytest.raises(gr.Error, match="No run selected"):
        app.resolve(" ")


def test_why_line_names_the_recipe_losses_and_step(use_registered):
    figures = figures_of(RECITER)
    why = next(line for line in figures.splitlines() if line.startswith("**Why:**"))
    loaded = app.load(RECITER)
    assert "test-seed · seed recipe · LSTM · dropout" in why
    assert "adam" in why and "train loss" in why and "validation loss" in why
    assert f"weights from step {loaded.step}" in why
    assert "of the generated 4-grams repeat the text's own" in figures
    assert "--model models:/lighthouse@reciter" in figures


def command_of(figures: str) -> list[str]:
    command = re.search(r"```bash\n(.*)\n```", figures).group(1)
    assert command.startswith("python -m training.generate ")
    return shlex.split(command)[3:]


def test_the_shown_cli_line_gives_the_same_text(use_registered, capsys):
    run_id = use_registered["windows"]
    outputs = list(app.generate(run_id, SEED, 25, 0.9, 0, 1.0, 3))[-1]
    argv = command_of(outputs[2])
    assert argv[:2] == ["--run", run_id[:8]]  # the short prefix, which the CLI accepts
    assert generate_cli.main(argv) == 0
    assert capsys.readouterr().out.strip() == outputs[0]


def test_cli_json_reports_self_repetition(use_registered, capsys):
    assert generate_cli.main(["--model", RECITER, "--prompt", SEED, "--json"]) == 0
    out = capsys.readouterr().out
    assert '"self_repeated_4gram_fraction": ' in out and '"copied_4gram_fraction": ' in out


def test_client_generates_with_a_model_uri(registered):
    from gradio_client import Client

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", registered["uri"])
        demo = app.build_demo()
        try:
            app.launch(demo, prevent_thread_lock=True, server_name="127.0.0.1", quiet=True)
            client = Client(demo.local_url, verbose=False)
            result = client.predict(RECITER, SEED, 20, 0.0, 0, 1.0, 0, api_name="/generate")
            assert result[0].startswith(SEED) and len(result[0]) > len(SEED)
            assert "**Why:** test-seed" in result[2]
        finally:
            demo.close()


def test_a_run_without_model_pt_loads_its_last_checkpoint(use_registered, tmp_path, monkeypatch):
    folder = tmp_path / "store"
    shutil.copytree(use_registered["store"], folder)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{folder / 'mlflow.db'}")
    run_id = use_registered["windows"]
    registry.open_store()  # points the copy's artifact locations at its own folder
    artifacts = registry.local_artifact_dir(run_id)
    assert artifacts.is_relative_to(folder)
    (artifacts / registry.MODEL_FILE).unlink()
    registry.load_run.cache_clear()
    loaded = registry.load_run(run_id)
    assert "no model.pt" in loaded.note and "last.pt" in loaded.note
    assert "from last.pt" in figures_of(run_id)  # the why line says which weights these are


def test_a_stale_working_copy_is_moved_aside(demo_store, tmp_path, monkeypatch, capsys):
    committed, working = tmp_path / "mlruns", tmp_path / ".mlruns-local"
    shutil.copytree(demo_store["store"], committed)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setattr(registry, "COMMITTED_STORE", committed)
    monkeypatch.setattr(registry, "WORKING_STORE", working)
    monkeypatch.setattr(registry, "PROJECT_STORE", working / "mlflow.db")
    monkeypatch.setattr(registry, "_CHECKED_COMMITTED", None)
    assert len(registry.list_runs()) == 2 and (working / registry.COPIED_FROM).exists()
    (working / "my-notes.txt").write_text("a user's file", encoding="utf-8")
    registry.list_runs()
    assert (working / "my-notes.txt").exists()  # unchanged committed store: the copy is kept
    with sqlite3.connect(committed / "mlflow.db") as conn:  # a pull brings a newer store
        conn.execute("CREATE TABLE pulled (x)")
    capsys.readouterr()
    assert len(registry.list_runs()) == 2
    (aside,) = tmp_path.glob(".mlruns-local.stale-*")
    assert (aside / "my-notes.txt").exists() and not (working / "my-notes.txt").exists()
    assert aside.name in capsys.readouterr().out
