"""Training in the app, its functions called directly: the Train tab's checks (upload, settings,
cost, run name) and the one training job at a time (busy, stop, time limit, who may stop it,
pruning old app runs, shutdown). Every test uses a temporary store.
"""

from __future__ import annotations

from types import SimpleNamespace

import gradio as gr
import pytest

from conftest import FIRST_WORDS, QUIET, wait_until
from training.checkpoints import LAST_FILE, MODEL_FILE
from training.config import DEFAULT_CORPUS, TrainConfig
from training.runs import get_run, list_runs, run_samples
from training.store import local_artifact_dir
from ui import limits, training_job
from ui.runs import run_choices
from ui.train_tab import (
    check_cost,
    check_run_name,
    read_upload,
    recipe_defaults,
    stop_training,
    train,
    train_config,
)

UNIQUE = " ".join(f"w{i}" for i in range(50_000))  # every word new


def page(session: str) -> SimpleNamespace:
    """A request from the browser page (or API client) with this session."""
    return SimpleNamespace(session_hash=session)


def upload(tmp_path, text: str = FIRST_WORDS, name: str = "story.txt") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def status_of(run_id: str) -> str:
    return get_run(run_id).info.status


@pytest.fixture
def running(temp_store):
    """A long training started by the page of session "a"; stopped and drained after the test."""
    events = train(None, "windows", limits.MAX_STEPS, 16, 0.0, 0.01, "long", request=page("a"))
    next(events)  # the job is started
    job = training_job._JOB
    wait_until(lambda: job.run_id and job.step > 0, 120, "a first step")
    yield SimpleNamespace(events=events, job=job)
    job.stop.set()
    list(events)
    job.thread.join(60)


# ---- the Train tab's checks ------------------------------------------------------------------

@pytest.mark.parametrize("content, message", [
    (b"", "empty"),
    (b"   \n\n  ", "empty"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00", "binary"),
    (b"caf\xe9 au lait", "UTF-8"),
])
def test_an_unusable_upload_is_a_clear_error(tmp_path, content, message):
    path = tmp_path / "corpus.txt"
    path.write_bytes(content)
    with pytest.raises(gr.Error, match=message):
        read_upload(str(path))


def test_an_upload_over_the_size_limit_is_refused_and_none_means_the_default_corpus(
        tmp_path, monkeypatch):
    monkeypatch.setattr(limits, "MAX_UPLOAD_BYTES", 100)
    with pytest.raises(gr.Error, match="big.txt is larger than 0.0001 MB"):
        read_upload(upload(tmp_path, "word " * 100, "big.txt"))
    text, name = read_upload(None)
    assert name == DEFAULT_CORPUS.name and text.startswith("I was twenty-three")


@pytest.mark.parametrize("args, message", [
    (("nope", 100, 64, 0.3, 0.005), "Recipe must be one of"),
    (("windows", 0, 64, 0.3, 0.005), "Steps"),
    (("windows", 5000, 64, 0.3, 0.005), "Steps must be a whole number from 10 to 2000"),
    (("windows", "lots", 64, 0.3, 0.005), "Steps"),
    (("windows", 100, 4096, 0.3, 0.005), "Hidden size"),
    (("windows", 100, 64, 1.5, 0.005), "Dropout"),
    (("windows", 100, 64, 0.3, -1), "Learning rate"),
    (("windows", 100, 64, 0.3, 1.0, 10), "Vocabulary cap"),
    (("windows", 100, 64, 0.3, 1.0, limits.MAX_APP_VOCAB + 1), "Vocabulary cap"),
    (("windows", 100, 64, 0.3, 1.0, None), "Vocabulary cap"),
    (("windows", 100, 32, 0.3, 1.0, 500, "transformer"), "Cell"),
    (("windows", 100, 32, 0.3, 1.0, 500, "lstm", "rmsprop"), "Optimizer"),
    (("windows", 100, 32, 0.3, 1.0, 500, "lstm", None, 0.95), "Weight drop"),
    (("windows", 100, 32, 0.3, 1.0, 500, "lstm", None, 0.0, "yes"), "Locked dropout"),
    (("windows", 100, 32, 0.3, 1.0, 500, "lstm", None, 0.0, False, 0.9), "Embedding dropout"),
    (("windows", 100, 32, 0.3, 1.0, 500, "lstm", None, 0.0, False, 0.0, -1), "AR"),
    (("windows", 100, 32, 0.3, 1.0, 500, "lstm", None, 0.0, False, 0.0, 0.0, float("nan")),
     "TAR"),
])
def test_every_training_setting_is_bounded(args, message):
    with pytest.raises(gr.Error, match=message):
        train_config(*args)


def test_the_settings_make_the_runs_config():
    config = train_config("windows", 100, 32, 0.3, 1.0, 500, "gru", "ntasgd", 0.5, True,
                          0.1, 2.0, 1.0)
    assert (config.steps, config.hidden_size, config.max_vocab, config.cell, config.optimizer,
            config.weight_drop, config.locked_dropout, config.embed_dropout, config.ar,
            config.tar) == (100, 32, 500, "gru", "ntasgd", 0.5, True, 0.1, 2.0, 1.0)
    assert train_config("seed", 100, 32, 0.0, 0.005).optimizer == "adam"  # the recipe's own
    assert train_config("windows", 100, 32, 0.3, 1.0, 500, "rnn", "").optimizer == "sgd"


def test_picking_a_recipe_offers_its_own_settings_and_memorize_a_size_that_recites():
    seed = TrainConfig.for_recipe("seed")
    dropout, lr, name, optimizer, hidden, steps, vocab, tokenizer = recipe_defaults("seed")
    assert (dropout, lr, optimizer, tokenizer) == (seed.dropout, seed.lr, seed.optimizer, "seed")
    assert name.placeholder == "app-seed"
    dropout, lr, _, optimizer, hidden, steps, vocab, tokenizer = recipe_defaults("memorize")
    assert (dropout, optimizer, hidden, vocab) == (0.0, "adam", 256, limits.MAX_APP_VOCAB)
    memorize = train_config("memorize", steps, hidden, dropout, lr, vocab)
    assert memorize.val_fraction == 0 and memorize.early_stop_patience == 0
    assert memorize.min_count == 1  # every word kept: it is to be recited


def test_the_arithmetic_of_a_run_has_a_ceiling_that_lets_memorize_recite():
    big = train_config("windows", limits.MAX_STEPS, limits.MAX_HIDDEN, 0.3, 1.0,
                       limits.MAX_APP_VOCAB)
    with pytest.raises(gr.Error, match="too big for the app"):
        check_cost(big, UNIQUE)
    text = DEFAULT_CORPUS.read_text(encoding="utf-8")
    for recipe in ("windows", "seed"):
        check_cost(train_config(recipe, 300, 64, 0.4, 20.0), text)  # the tab's defaults
    # The memorize preset on a 5,000-word text (the default corpus, half again as long).
    _, lr, _, _, hidden, steps, vocab, _ = recipe_defaults("memorize")
    longer = text + "\n\n" + " ".join(text.split()[:1800])
    assert len(longer.split()) > 5000
    assert check_cost(train_config("memorize", steps, hidden, 0.0, lr, vocab), longer) > 500_000
    # The seed recipe pays for its longest prefix: one 7,000-word line costs far more a step.
    line = " ".join(f"w{i % 3000}" for i in range(7000))
    with pytest.raises(gr.Error, match="too big for the app"):
        check_cost(train_config("seed", 2000, 128, 0.0, 0.005), line)


def test_the_vocabulary_cap_bounds_the_cost_however_many_words_the_text_has():
    capped = train_config("windows", 10, 16, 0.0, 1.0, 100)
    hundred = " ".join(f"w{i}" for i in range(100))
    assert check_cost(capped, UNIQUE) == check_cost(capped, hundred)


def test_the_cost_counts_each_cells_own_parameters():
    text = DEFAULT_CORPUS.read_text(encoding="utf-8")
    lstm, gru, rnn = (check_cost(train_config("windows", 100, 64, 0.3, 1.0, 500, cell), text)
                      for cell in ("lstm", "gru", "rnn"))
    recurrent = 2 * 64 * 64  # one gate's input and hidden weights
    assert lstm - rnn >= 3 * recurrent and gru - rnn >= 2 * recurrent


def test_run_names_are_bounded_and_demo_names_reserved():
    assert check_run_name("  my   run ", "windows") == "my run"
    assert check_run_name("", "seed") == "app-seed"
    with pytest.raises(gr.Error, match="demo-"):
        check_run_name("demo-windows", "windows")
    with pytest.raises(gr.Error, match="at most"):
        check_run_name("x" * (limits.MAX_RUN_NAME + 1), "windows")
    with pytest.raises(gr.Error, match="must be text"):
        check_run_name(["x"], "windows")


# ---- the training job ----------------------------------------------------------------------------

def test_train_logs_a_run_and_selects_it(temp_store, tmp_path):
    *_, last = train(upload(tmp_path), "windows", 20, 16, 0.0, 0.01, "app-test")
    run, table, compare, notice, status, log, plot, samples = last
    runs = list_runs()
    assert list(runs["name"]) == ["app-test"] and run.value == runs["run_id"].iloc[0]
    assert runs["corpus"].iloc[0] == "story.txt" and not notice.visible
    assert "step 20/20" in log and status.startswith("Done: run")
    assert not training_job._LOCK.locked()
    # What the learner watched: the curves so far and a sample per evaluation, newest first,
    # the same samples the run logged to MLflow.
    lines = [line for line in plot.axes[0].get_lines() if line.get_label() == "train loss"]
    assert list(lines[0].get_xdata()) == [10, 20]
    newest = samples.split("\n")[2]  # the first sample listed, after the heading
    assert newest.startswith(("- **step 20**", "- **steps 10–20**"))
    assert [step for step, _ in run_samples(run.value)] == [10, 20]


def test_a_failed_training_says_why_and_frees_the_app_for_the_next(temp_store, tmp_path):
    with pytest.raises(gr.Error, match="Training failed"):
        list(train(upload(tmp_path, "hi"), "windows", 10, 16, 0.0, 0.01))  # too short to learn
    assert not training_job._LOCK.locked()


def test_one_training_at_a_time(running):
    with pytest.raises(gr.Error, match="already in progress"):
        list(train(None, "windows", 10, 16, 0.0, 0.01, request=page("b")))
    assert not running.job.stop.is_set()


def test_only_the_page_that_started_a_training_may_stop_it(running):
    with pytest.raises(gr.Error, match="Only the page that started"):
        stop_training(page("b"))
    assert not running.job.stop.is_set()
    assert stop_training(page("a")) == "Stopping after the current step…"
    assert running.job.stop.is_set()


def test_stop_ends_the_run_killed_with_its_checkpoint_and_lists_it(running):
    stop_training(page("a"))
    *_, last = running.events
    assert last[4].startswith("Stopped (Stop was pressed)")
    run_id = running.job.run_id
    assert status_of(run_id) == "KILLED"
    assert (local_artifact_dir(run_id) / LAST_FILE).exists()
    assert get_run(run_id).data.tags[training_job.APP_TAG] == "true"
    assert not training_job._LOCK.locked() and training_job._JOB is None
    labels = {r: label for label, r in run_choices(list_runs())}
    assert "· killed ·" in labels[run_id]  # listed in the picker, with its status
    with pytest.raises(gr.Error, match="No training is in progress"):
        stop_training(page("a"))


def test_the_time_limit_stops_the_run(temp_store, tmp_path, monkeypatch):
    monkeypatch.setattr(limits, "MAX_TRAIN_SECONDS", 0)
    *_, last = train(upload(tmp_path), "windows", 500, 16, 0.0, 0.01, "slow")
    assert "time limit" in last[4]
    assert status_of(list_runs()["run_id"].iloc[0]) == "KILLED"


@pytest.mark.slow
def test_old_app_runs_are_pruned_oldest_first_never_other_runs(temp_store, tmp_path, monkeypatch):
    from training.tracking import train_run

    cli = train_run(TrainConfig.for_recipe("windows", steps=10, embed_dim=16, hidden_size=16,
                                           eval_interval=10),
                    run_name="demo-cli", text=FIRST_WORDS, on_log=QUIET)
    monkeypatch.setattr(limits, "KEEP_APP_RUNS", 2)
    trained = []
    for k in range(3):
        *_, last = train(upload(tmp_path), "windows", 10, 16, 0.0, 0.01, f"app-{k}")
        trained.append(last[0].value)
    assert set(list_runs()["run_id"]) == {cli, trained[1], trained[2]}
    assert not (local_artifact_dir(cli).parent.parent / trained[0]).exists()  # its files too
    assert (local_artifact_dir(cli) / MODEL_FILE).exists()
    assert "removed 1 older app run" in last[5]


def test_shutdown_with_no_training_does_nothing():
    assert training_job._JOB is None
    assert training_job.stop_for_shutdown(wait_s=0) is None


def test_shutdown_ends_a_training_in_progress_killed(running):
    assert training_job.stop_for_shutdown() == running.job.run_id
    assert not running.job.thread.is_alive() and "shut down" in running.job.stopped_because
    assert status_of(running.job.run_id) == "KILLED"
    assert (local_artifact_dir(running.job.run_id) / LAST_FILE).exists()
