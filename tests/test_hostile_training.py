"""A hostile tester on the training side: every refusal or failure is one line, nothing is lost.

Each test names the fault it guards: a seed-recipe step that grew with the longest paragraph,
a stop that did not always end KILLED, a full or read-only or damaged store, ``--resume`` by
prefix, a sweep that failed late, unbounded model sizes and prompts, a slow app training, and
``training.register`` blaming the wrong cause.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import sqlite3
import subprocess
import threading

import pandas as pd
import pytest
import sqlalchemy.exc
import torch
from mlflow.exceptions import MlflowException

from conftest import FIRST_WORDS, PROJECT_CORPUS, QUIET, SPIKE, cli, sqlite_uri, tracking
from lstm_core.data import prefix_pairs
from lstm_core.text import read_text
from lstm_core.vocab import Vocabulary
from training import store
from training.__main__ import build_parser
from training.__main__ import main as train_main
from training.checkpoints import LAST_FILE, load_checkpoint
from training.config import TrainConfig
from training.generate import main as generate_main
from training.loop import Corpus, Trainer
from training.register import main as register_main
from training.runs import get_run
from training.store import StoreError, artifact_path, local_artifact_dir, open_store
from training.sweep import main as sweep_main
from training.tracking import train_run

TINY = dict(steps=4, eval_interval=2, hidden_size=8, embed_dim=8, batch_size=4,
            memorization_sample=8)
TINY_FLAGS = ["--steps", "4", "--eval-interval", "2", "--hidden-size", "8", "--embed-dim", "8",
              "--batch-size", "4"]


def error_lines(stderr: str) -> list[str]:
    """stderr's error lines and traceback lines (not the progress bar, not MLflow's INFO)."""
    return [line for line in stderr.splitlines()
            if line.startswith(("error:", "interrupted")) or "Traceback" in line
            or line.startswith("  File ")]


def all_runs() -> pd.DataFrame:
    """Every run of the store, sweep parents included, with its status."""
    import mlflow

    return mlflow.search_runs(experiment_ids=[open_store()])


def stopped_run(steps_done: int = 2, steps: int = 8) -> str:
    """A run stopped by its caller after steps_done of steps (KILLED, checkpoint saved)."""
    stop = threading.Event()

    def on_step(step, total, loss):
        if step == steps_done:
            stop.set()

    return train_run(TrainConfig(**{**TINY, "steps": steps}), run_name="stopped",
                     on_step=on_step, stop_event=stop, on_log=QUIET)


# ---- 1. the seed recipe's longest prefix is bounded ------------------------------------------


def test_a_long_paragraph_is_cut_to_max_prefix_words_in_the_seed_recipe():
    words = PROJECT_CORPUS.read_text(encoding="utf-8").split()
    one_line = " ".join(words[:3000])  # one 3,000-word paragraph: prefixes up to 2,999 words
    config = TrainConfig.for_recipe("seed", max_prefix=64, **TINY)
    trainer = Trainer(config, one_line)
    x, y, _ = trainer.batches.next()
    assert x.shape == (config.batch_size, 64)  # a step reads 64 words a row, not 2,999
    assert len(trainer.batches.targets) == len(trainer.corpus.train_ids) - 1  # no target lost
    # The last pair: the 64 words before the last word, which is its target.
    ids = trainer.corpus.train_ids
    assert trainer.batches.inputs[-1].tolist() == ids[-65:-1].tolist()
    assert trainer.batches.targets[-1].item() == ids[-1].item()
    assert "--max-prefix" in build_parser().format_help()


@pytest.mark.parametrize("path", [PROJECT_CORPUS, SPIKE], ids=["project corpus", "the essay"])
def test_the_seed_recipe_is_unchanged_on_texts_with_short_paragraphs(path):
    if not path.exists():
        pytest.skip(f"{path} is not here")
    config = TrainConfig.for_recipe("seed", tokenizer="words")
    corpus = Corpus.from_text(read_text(path), config)
    trainer_pairs = Trainer(config, read_text(path)).batches
    x, y = prefix_pairs(corpus.train_paragraphs())  # the write-up's pairs, uncut
    assert x.shape[1] <= config.max_prefix
    assert torch.equal(trainer_pairs.inputs, x) and torch.equal(trainer_pairs.targets, y)


# ---- 2. a run stopped between steps always ends KILLED with its checkpoint --------------------


def test_ctrl_c_during_a_runs_setup_ends_it_killed_with_its_checkpoint(temp_store, monkeypatch):
    import training.tracking as tracking

    real = tracking.log_text_dataset

    def ctrl_c_while_logging_the_dataset(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGINT)  # the run exists; no step has run yet
        return real(*args, **kwargs)

    monkeypatch.setattr(tracking, "log_text_dataset", ctrl_c_while_logging_the_dataset)
    with pytest.raises(KeyboardInterrupt) as raised:
        train_run(TrainConfig(**TINY), on_log=QUIET)
    (run_id,) = all_runs()["run_id"]
    assert getattr(raised.value, "run_id", None) == run_id
    assert get_run(run_id).info.status == "KILLED"  # was FAILED
    assert load_checkpoint(artifact_path(run_id, LAST_FILE))["step"] == 0


def test_a_stopped_run_reads_killed_only_once_its_checkpoint_is_saved(temp_store):
    run_id = stopped_run(steps_done=3)
    assert get_run(run_id[:8]).info.status == "KILLED"  # what a caller that stopped it reads
    assert load_checkpoint(artifact_path(run_id, LAST_FILE))["step"] == 3


# ---- 3. a full disk ------------------------------------------------------------------------------


def torch_save_filling_the_disk(monkeypatch):
    """torch.save as it fails on a full disk: half a file written, then RuntimeError."""
    import training.tracking as tracking

    real_save = torch.save

    def save(obj, path, *args, **kwargs):
        real_save(obj, path, *args, **kwargs)
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 576 vs 534")

    monkeypatch.setattr(tracking.torch, "save", save)


def test_torch_save_failing_on_a_full_disk_fails_the_run_in_one_line(temp_store, monkeypatch,
                                                                     capsys):
    torch_save_filling_the_disk(monkeypatch)
    assert train_main(TINY_FLAGS) == 2
    err = capsys.readouterr().err
    assert "Could not write" in err and "ended FAILED" in err and len(error_lines(err)) == 1, err
    (run_id,) = all_runs()["run_id"]
    assert get_run(run_id).info.status == "FAILED"
    assert not [p.name for p in local_artifact_dir(run_id).iterdir() if p.name.endswith(".partial")]


def test_a_run_that_cannot_be_closed_on_a_full_disk_says_so_in_one_line(temp_store, monkeypatch,
                                                                        capsys):
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    torch_save_filling_the_disk(monkeypatch)

    def database_full(*args, **kwargs):  # what MLflow raises with its database on that disk
        cause = sqlalchemy.exc.OperationalError(
            "UPDATE runs", {}, sqlite3.OperationalError("database or disk is full"))
        raise MlflowException(str(cause)) from cause

    monkeypatch.setattr(SqlAlchemyStore, "update_run_info", database_full)
    assert train_main(TINY_FLAGS) == 2
    err = capsys.readouterr().err
    assert "could not be closed" in err and "database or disk is full" in err, err
    assert "stays RUNNING" in err and len(error_lines(err)) == 1, err


# ---- 4. a read-only store ------------------------------------------------------------------------


def readonly_sqlite(monkeypatch, operation: str, registry: bool = False):
    """MLflow's SQL store refusing ``operation`` as it does on a read-only database file."""
    from mlflow.store.model_registry.sqlalchemy_store import SqlAlchemyStore as Registry
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore as Tracking

    def readonly(*args, **kwargs):
        cause = sqlalchemy.exc.OperationalError(
            "INSERT", {}, sqlite3.OperationalError("attempt to write a readonly database"))
        raise MlflowException(str(cause)) from cause

    monkeypatch.setattr(Registry if registry else Tracking, operation, readonly)


def test_training_into_a_read_only_store_is_one_line(temp_store, monkeypatch, capsys):
    open_store()
    readonly_sqlite(monkeypatch, "create_run")
    assert train_main(TINY_FLAGS) == 2
    err = capsys.readouterr().err
    assert "cannot start a run: attempt to write a readonly database" in err, err
    assert len(error_lines(err)) == 1 and "SQL" not in err, err


def test_logging_into_a_store_turned_read_only_fails_the_run_in_one_line(temp_store, monkeypatch,
                                                                         capsys):
    open_store()
    readonly_sqlite(monkeypatch, "log_batch")
    assert train_main(TINY_FLAGS) == 2
    err = capsys.readouterr().err
    assert "cannot record the run: attempt to write a readonly database" in err, err
    assert len(error_lines(err)) == 1, err


def test_registering_into_a_read_only_store_is_one_line(temp_store, monkeypatch, capsys):
    run_id = train_run(TrainConfig(**TINY), on_log=QUIET)
    readonly_sqlite(monkeypatch, "create_registered_model", registry=True)
    assert register_main([run_id[:8], "lamp@keeper"]) == 2
    err = capsys.readouterr().err
    assert "cannot register a model: attempt to write a readonly database" in err, err
    assert len(error_lines(err)) == 1, err


def test_a_really_read_only_database_file_is_one_line(temp_store):
    run_id = train_run(TrainConfig(**TINY), on_log=QUIET)
    db = temp_store / "mlflow.db"
    # Root writes through file modes: only an immutable file is read-only to it.
    if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(db)],
                                                        capture_output=True).returncode:
        pytest.skip("chattr +i is not available here")
    try:  # fresh processes, as a person runs them (this one holds a writable connection)
        trained = cli("-m", "training", *TINY_FLAGS, uri=sqlite_uri(temp_store))
        registered = cli("-m", "training.register", run_id[:8], "lamp@keeper",
                         uri=sqlite_uri(temp_store))
    finally:
        subprocess.run(["chattr", "-i", str(db)], check=True)
    for result, doing in ((trained, "start a run"), (registered, "register a model")):
        assert result.returncode == 2, result.stderr
        assert f"cannot {doing}: attempt to write a readonly database" in result.stderr
        assert len(error_lines(result.stderr)) == 1 and "SQL" not in result.stderr, result.stderr


# ---- 5. a damaged database -------------------------------------------------------------------


def test_a_damaged_database_is_refused_when_opened_and_kept(temp_store, monkeypatch, capsys):
    run_id = train_run(TrainConfig(**TINY), on_log=QUIET)
    db = temp_store / "mlflow.db"
    size = db.stat().st_size
    rng = random.Random(1)
    with open(db, "r+b") as f:  # 4 KB overwritten mid-file
        f.seek(size // 2 // 4096 * 4096)
        f.write(bytes(rng.getrandbits(8) for _ in range(4096)))
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA quick_check").fetchone()[0] != "ok"
    monkeypatch.setattr(store, "_CHECKED_FILES", set())  # as a fresh process finds it
    with pytest.raises(StoreError, match="damaged") as err:
        open_store()
    assert "restore it" in str(err.value) and "\n" not in str(err.value)
    assert generate_main(["--run", run_id, "--prompt", "the"]) == 2
    assert train_main(TINY_FLAGS) == 2
    err = capsys.readouterr().err
    assert err.count("is damaged (") == 2 and len(error_lines(err)) == 2, err
    assert db.stat().st_size == size  # never deleted, never changed


# ---- 6. --resume takes a prefix or a name ------------------------------------------------------


@pytest.mark.parametrize("reference", ["prefix", "name"])
def test_resume_takes_an_id_prefix_or_a_run_name(temp_store, reference, capsys):
    run_id = stopped_run(steps_done=2, steps=6)
    given = run_id[:8] if reference == "prefix" else "stopped"
    assert train_main(["--resume", given, "--steps", "6"]) == 0, capsys.readouterr().err
    assert f"run_id={run_id}" in capsys.readouterr().out
    assert get_run(run_id).info.status == "FINISHED"
    assert load_checkpoint(artifact_path(run_id, LAST_FILE))["step"] == 6


# ---- 7. the sweep checks before it starts, and stops KILLED ----------------------------------


@pytest.mark.parametrize("corpus", ["missing.txt", "."], ids=["missing", "a directory"])
def test_a_sweep_of_a_bad_corpus_is_refused_before_its_parent_run(temp_store, tmp_path, corpus,
                                                                  capsys):
    code = sweep_main(["--dropout", "0", "0.1", "--corpus", str(tmp_path / corpus), *TINY_FLAGS])
    err = capsys.readouterr().err
    assert code == 2 and len(error_lines(err)) == 1, err
    assert all_runs().empty  # no empty FAILED parent


def test_a_bad_grid_value_is_refused_before_any_run_trains(temp_store, capsys):
    code = sweep_main(["--dropout", "0", "1.5", *TINY_FLAGS])
    err = capsys.readouterr().err
    assert code == 2 and "dropout=1.5" in err and "dropout must be in [0, 1)" in err, err
    assert len(error_lines(err)) == 1 and all_runs().empty


def test_a_grid_point_whose_batches_cannot_be_cut_is_refused_before_any_run(temp_store, capsys):
    code = sweep_main(["--recipe", "windows", "seed", "--seq-len", "4000", *TINY_FLAGS])
    err = capsys.readouterr().err
    assert code == 2 and "recipe=windows" in err and "seq_len" in err, err
    assert all_runs().empty


def test_ctrl_c_in_a_sweep_ends_child_and_parent_killed_in_one_line(temp_store, monkeypatch,
                                                                    capsys):
    import training.loop as loop

    real_step, steps = loop.Trainer.train_step, []

    def step_then_ctrl_c(self, state=None):
        steps.append(1)
        if len(steps) == 2:  # during the first child
            os.kill(os.getpid(), signal.SIGINT)
        return real_step(self, state)

    monkeypatch.setattr(loop.Trainer, "train_step", step_then_ctrl_c)
    try:
        code = sweep_main(["--dropout", "0", "0.1", *TINY_FLAGS])
    except KeyboardInterrupt:
        code = "KeyboardInterrupt escaped"
    err = capsys.readouterr().err
    assert code == 128 + signal.SIGINT and len(error_lines(err)) == 1, err
    statuses = dict(zip(all_runs()["tags.mlflow.runName"], all_runs()["status"], strict=True))
    assert statuses == {"sweep": "KILLED", "sweep: dropout=0.0 steps=4": "KILLED"}, statuses


def test_ctrl_c_between_two_sweep_children_ends_the_parent_killed(temp_store, monkeypatch):
    from training.sweep import run_sweep

    def first_child_done(line):
        os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(KeyboardInterrupt):
        run_sweep({"dropout": [0.0, 0.1]}, TINY, on_child=first_child_done)
    statuses = dict(zip(all_runs()["tags.mlflow.runName"], all_runs()["status"], strict=True))
    assert statuses == {"sweep": "KILLED", "sweep: dropout=0.0": "FINISHED"}, statuses


# ---- 8. bounded model sizes ----------------------------------------------------------------------


@pytest.mark.parametrize("values,message", [
    (dict(hidden_size=50000), "hidden_size must be positive and at most 8192"),
    (dict(embed_dim=1_000_000), "embed_dim must be positive and at most 8192"),
    (dict(num_layers=5000), "num_layers must be positive and at most 16"),
    (dict(hidden_size=8192, embed_dim=8192, num_layers=4), "parameters"),
    (dict(max_vocab=0, hidden_size=8192, embed_dim=8192, num_layers=1), "parameters"),
])
def test_model_sizes_are_bounded_in_the_config(values, message):
    with pytest.raises(ValueError, match=message) as err:
        TrainConfig(**values)
    assert "\n" not in str(err.value)


def test_a_vocabulary_too_big_for_the_model_is_refused_before_allocating(temp_store):
    from training.config import MAX_PARAMETERS, check_model_size, parameter_count

    # 0 = no cap, as documented: every word of the text is kept
    text = " ".join(f"w{i}" for i in range(30_000))
    config = TrainConfig(max_vocab=0, embed_dim=4096, hidden_size=4096, tie_weights=False,
                         val_fraction=0, min_count=1)
    assert parameter_count(config, 30_002) > MAX_PARAMETERS  # the config alone is fine
    with pytest.raises(ValueError, match="max_vocab"):
        check_model_size(config, 30_002)
    with pytest.raises(ValueError, match="30,002 word ids"):
        Trainer(config, text)
    assert all_runs().empty


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("tie", [True, False])
def test_the_parameter_estimate_is_the_models_count(cell, tie):
    from lstm_core.model import LSTMLanguageModel
    from training.config import parameter_count
    from training.loop import model_config_for

    config = TrainConfig(cell=cell, tie_weights=tie, embed_dim=12, hidden_size=12, num_layers=2)
    model = LSTMLanguageModel(model_config_for(config, 57))
    assert parameter_count(config, 57) == model.num_parameters()


def test_oversized_flags_are_one_line_and_create_no_run(temp_store, capsys):
    from training import config as config_module

    assert hasattr(config_module, "MAX_WIDTH"), "no bound on hidden_size: it would allocate 40 GB"
    assert train_main(["--hidden-size", "50000"]) == 2
    err = capsys.readouterr().err
    assert "hidden_size must be positive and at most 8192" in err and len(error_lines(err)) == 1, err
    assert all_runs().empty


# ---- 9. the served model bounds a request as the app does ----------------------------------


@pytest.fixture(scope="module")
def served():
    """The pyfunc model of training/mlflow_model.py around a small random model."""
    from lstm_core.model import LSTMLanguageModel, ModelConfig
    from training.mlflow_model import LSTMTextGenerator

    generator = LSTMTextGenerator()
    generator.vocab = Vocabulary.build("the lamp turns and the light goes round".split())
    torch.manual_seed(0)
    generator.model = LSTMLanguageModel(ModelConfig(vocab_size=len(generator.vocab),
                                                    embed_dim=8, hidden_size=8)).eval()
    return generator


@pytest.mark.parametrize("frame,message", [
    ({"prompt": [" ".join(["the lamp"] * 101)]}, "prompt has 202 words; the limit is 200"),
    ({"prompt": ["the" + " " * 2000]}, "2,003 characters long; the limit is 2,000"),
    ({"prompt": ["the"], "length": [401]}, "length must be from 1 to 400"),
    ({"prompt": ["the"] * 17}, "17 rows; the limit is 16"),
])
def test_a_served_request_is_bounded_like_the_apps(served, frame, message):
    with pytest.raises(ValueError, match=message) as err:
        served.predict(None, pd.DataFrame(frame))
    assert "\n" not in str(err.value)


def test_a_served_request_within_the_bounds_is_answered(served):
    prompt = " ".join(["the lamp"] * 100)  # 200 words, 1,799 characters
    (text,) = served.predict(None, pd.DataFrame({"prompt": [prompt], "length": [400]}))
    assert text.startswith("the lamp") and len(text.split()) == 600


def test_the_serving_bounds_match_the_apps():
    from training import mlflow_model
    from ui import limits

    assert mlflow_model.MAX_PROMPT_WORDS == limits.MAX_PROMPT_WORDS
    assert mlflow_model.MAX_PROMPT_CHARS == limits.MAX_PROMPT_WORDS * limits.CHARS_PER_WORD
    assert mlflow_model.MAX_LENGTH == limits.MAX_LENGTH


# ---- 10. an app training's evaluation and final figures are bounded ------------------------


def test_validation_reads_at_most_eval_tokens_in_rows():
    from lstm_core.model import LSTMLanguageModel, ModelConfig
    from training.loop import EVAL_ROWS, evaluate, token_losses

    torch.manual_seed(0)
    model = LSTMLanguageModel(ModelConfig(vocab_size=50, embed_dim=8, hidden_size=8))
    ids = torch.randint(2, 50, (30_000,))
    shapes = []
    real_forward = model.forward
    model.forward = lambda x, *args, **kwargs: shapes.append(tuple(x.shape)) or \
        real_forward(x, *args, **kwargs)
    cpu = torch.device("cpu")
    loss = evaluate(model, ids, 32, cpu, max_tokens=8192)
    assert sum(rows * width for rows, width in shapes) <= 8192
    assert max(rows for rows, _ in shapes) == EVAL_ROWS and len(shapes) <= 8  # not 128 chunks
    assert loss == pytest.approx(token_losses(model, ids[:8192], 32, cpu, EVAL_ROWS).mean().item())
    short = ids[:500]  # a tail shorter than two rows is read as before: one row, in order
    assert evaluate(model, short, 32, cpu) == pytest.approx(
        token_losses(model, short, 32, cpu).double().mean().item())
    assert TrainConfig().eval_tokens == 8192 and "--eval-tokens" in build_parser().format_help()


def test_final_memorization_is_bounded_and_measured_once_for_the_same_weights(temp_store,
                                                                              monkeypatch):
    import training.tracking as tracking

    calls, real = [], tracking.extractable_memorization

    def record(*args, **kwargs):
        calls.append(kwargs.get("max_windows", 2000))
        return real(*args, **kwargs)

    monkeypatch.setattr(tracking, "extractable_memorization", record)
    words = [f"w{i % 3000}" for i in range(12_000)]  # 750 windows of 16 words
    text = "\n\n".join(" ".join(words[i:i + 100]) for i in range(0, len(words), 100))
    train_run(TrainConfig.for_recipe("seed", tokenizer="words", **TINY), text=text,
              corpus_name="long", on_log=QUIET)
    assert calls == [tracking.FINAL_MEMORIZATION_WINDOWS] == [256]  # seed: one set of weights


# ---- 11. registering a KILLED run says why it has no model -----------------------------------


def test_registering_a_killed_run_says_it_was_stopped_not_that_it_is_old(temp_store, capsys):
    run_id = stopped_run(steps_done=2)
    assert register_main([run_id[:8], "lamp@keeper"]) == 2
    err = capsys.readouterr().err
    assert "KILLED at step 2" in err and f"--resume {run_id[:8]}" in err, err
    assert "trained before" not in err and len(error_lines(err)) == 1, err


# ---- the app's shutdown says how its training run really ended --------------------------------

@pytest.fixture(scope="module")
def shutdown_store(tmp_path_factory):
    """One store for the shutdown tests (creating a SQLite store takes seconds)."""
    uri = sqlite_uri(tmp_path_factory.mktemp("shutdown"))
    with tracking(uri):
        open_store()
    return uri


@pytest.fixture
def step_held_at(shutdown_store, monkeypatch):
    """step_held_at(n): an app training whose step n (checkpoints every 2 steps) lasts until
    ``step_held_at.gate`` is set: a step longer than the app's wait at shutdown. Drained after."""
    from ui import training_job

    monkeypatch.setenv("MLFLOW_TRACKING_URI", shutdown_store)
    gate, jobs = threading.Event(), []

    def start(n: int):
        def on_step(job, step, total, loss):
            job.step = step
            if step == n:
                gate.wait(60)

        monkeypatch.setattr(training_job.TrainingJob, "on_step", on_step)
        job = training_job.start(TrainConfig(**{**TINY, "steps": 50}), FIRST_WORDS, "first",
                                 "held", session="a")
        jobs.append(job)
        wait_until_true(lambda: job.step == n, 120)
        return job

    start.gate = gate
    yield start
    gate.set()
    for job in jobs:
        job.thread.join(60)


def wait_until_true(condition, timeout: float) -> None:
    import time

    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.05)


def test_shutdown_during_a_step_before_any_checkpoint_ends_the_run_failed(step_held_at):
    from ui import training_job

    job = step_held_at(1)
    assert training_job.stop_for_shutdown(wait_s=0.2) == job.run_id
    assert job.thread.is_alive()  # the step outlasted the wait
    run = get_run(job.run_id)
    assert run.info.status == "FAILED"  # not KILLED: a KILLED run always has a checkpoint
    assert "before the run's first checkpoint" in run.data.tags[training_job.ENDED_TAG]
    said = training_job.how_it_ended(job.run_id)
    assert said == f"training run {job.run_id} ended FAILED; it has no checkpoint"


def test_shutdown_during_a_later_step_ends_the_run_killed_with_the_checkpoint_it_has(step_held_at):
    from ui import training_job

    job = step_held_at(3)  # the checkpoint of step 2 is saved
    training_job.stop_for_shutdown(wait_s=0.2)
    assert get_run(job.run_id).info.status == "KILLED"
    assert training_job.how_it_ended(job.run_id) == (
        f"training run {job.run_id} ended KILLED; its last checkpoint is of step 2")


def test_shutdown_between_steps_reads_the_runs_own_end(step_held_at):
    from ui import training_job

    job = step_held_at(3)
    step_held_at.gate.set()  # the step ends within the wait: the run stops between two steps
    training_job.stop_for_shutdown(wait_s=60)
    assert not job.thread.is_alive()
    assert training_job.how_it_ended(job.run_id) == (
        f"training run {job.run_id} ended KILLED; its last checkpoint is of step 3")


# ---- the Train tab shows a store that cannot be used as one line, by name -----------------------

def test_a_damaged_store_reached_through_a_symlink_is_named_not_pathed(tmp_path, monkeypatch):
    from ui import training_job

    real = tmp_path / "real-folder"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)
    db = tmp_path / "link" / "mlflow.db"
    db.write_bytes(b"SQLite format 3\x00" + b"\xff" * 8192)  # a header, then garbage
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{db}")
    with pytest.raises(StoreError) as raised:
        open_store()
    shown = training_job.failure_message(raised.value)
    assert str(tmp_path) not in shown and "real-folder" not in shown
    assert shown.startswith("The MLflow store link/mlflow.db is damaged")
    assert "\n" not in shown and not shown.endswith("…") and "Training failed" not in shown
