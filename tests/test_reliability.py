"""Issue #10 on the trainer side: bounded work, no run left in limbo, no traceback."""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time

import pytest
import torch
from mlflow.tracking import MlflowClient

from conftest import ROOT, SEED
from lstm_core.generate import SamplingConfig, pick_next, stream_ids
from lstm_core.memorization import greedy_continue
from lstm_core.text import read_text
from lstm_core.vocab import UNK_ID, Vocabulary
from training import store
from training.__main__ import main as train_main
from training.checkpoints import LAST_FILE, MODEL_FILE, load_checkpoint
from training.config import TrainConfig
from training.generate import main as generate_main
from training.loop import Corpus, StepResult, Trainer
from training.runs import HEARTBEAT_TAG, HOST_TAG, PID_TAG, get_run, list_runs, load_run
from training.store import StoreError, artifact_path, local_artifact_dir, open_store
from training.tracking import format_number, train_run
from ui.generate_tab import generate

TINY = dict(steps=10, eval_interval=5, hidden_size=8, embed_dim=8, batch_size=4)
QUIET = lambda line: None  # noqa: E731


def error_lines(stderr: str) -> list[str]:
    """stderr's error lines and traceback lines (not the progress bar, not MLflow's INFO)."""
    return [line for line in stderr.splitlines()
            if line.startswith("error:") or "Traceback" in line or line.startswith("  File ")]


# ---- bounded work --------------------------------------------------------------------------


def test_vocabulary_cap_keeps_the_most_frequent_words():
    vocab = Vocabulary.build("a a a b b c d d d d".split(), max_size=2)
    assert vocab.words == ["d", "a"]
    corpus = Corpus.from_text("the lamp the sea the lamp a b c d e f g h", TrainConfig(max_vocab=2,
                                                                                      val_fraction=0))
    assert corpus.vocab.words == ["the", "lamp"]
    assert corpus.train_ids.tolist().count(UNK_ID) == 9  # sea, a .. h


def test_vocabulary_cap_is_a_run_param(temp_store):
    run_id = train_run(TrainConfig(**TINY, max_vocab=50), on_log=QUIET)
    params = get_run(run_id).data.params
    assert params["max_vocab"] == "50" and params["vocab_size"] == "52"  # + <pad>, <unk>


@pytest.mark.parametrize("flags,message", [
    (["--batch-size", "100000000"], "batch_size must be from 1 to 8192"),
    (["--batch-size", "4096", "--seq-len", "4096"], "batch_size x seq_len"),
    (["--corpus", "/dev/zero"], "larger than the 20,000,000-byte limit"),
    (["--memorization-prefix", "0"], "memorization_prefix must be at least 1"),
    (["--max-vocab", "-1"], "max_vocab"),
])
def test_unbounded_flags_are_refused_before_training(flags, message, temp_store, capsys):
    assert train_main(flags) == 2
    err = capsys.readouterr().err
    assert message in err and len(error_lines(err)) == 1, err
    assert list_runs().empty  # refused before a run was created


def test_a_corpus_is_read_only_up_to_the_cap(tmp_path):
    big = tmp_path / "big.txt"
    big.write_bytes(b"word " * 30)
    with pytest.raises(ValueError, match="larger than the 100-byte limit"):
        read_text(big, max_bytes=100)
    assert read_text(big, max_bytes=150).startswith("word")


def test_an_unreachable_tracking_server_says_so_in_one_line(monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")
    started = time.monotonic()
    with pytest.raises(StoreError) as err:
        open_store()
    message = str(err.value)
    assert "127.0.0.1:9" in message and "MLFLOW_HTTP_REQUEST_MAX_RETRIES" in message
    assert "\n" not in message
    # MLflow's own defaults (7 retries, 120 s timeout) took minutes; ours are a few seconds.
    assert int(os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"]) <= 2
    print(f"gave up after {time.monotonic() - started:.1f} s")


# ---- stopping: stop_event, SIGTERM, a full disk ---------------------------------------------


def test_stop_event_ends_the_run_killed_with_its_checkpoint(temp_store):
    stop = threading.Event()

    def on_step(step, total, loss):
        if step == 7:
            stop.set()

    run_id = train_run(TrainConfig(**{**TINY, "steps": 40}), on_step=on_step, stop_event=stop,
                       on_log=QUIET)
    assert get_run(run_id).info.status == "KILLED"
    last = load_checkpoint(artifact_path(run_id, LAST_FILE))
    assert last["step"] == 7  # the steps since the last log (at 5) are kept too
    assert artifact_path(run_id, MODEL_FILE).exists()
    assert list_runs().loc[0, "status"] == "KILLED"


def test_sigterm_ends_a_cli_run_as_killed_with_its_checkpoint(temp_store):
    proc = subprocess.Popen(
        [sys.executable, "-m", "training", "--steps", "100000", "--eval-interval", "5",
         "--hidden-size", "8", "--embed-dim", "8", "--batch-size", "4", "--early-stop-patience", "0"],
        cwd=ROOT, env={**os.environ, "PYTHONUNBUFFERED": "1"}, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 180
        for line in proc.stdout:
            if line.startswith("step 10/"):
                break
            assert time.time() < deadline, "training never logged"
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, stderr
    assert "interrupted (SIGTERM)" in stderr and "Traceback" not in stderr
    table = list_runs()
    assert list(table["status"]) == ["KILLED"]
    last = load_checkpoint(artifact_path(table.loc[0, "run_id"], LAST_FILE))
    assert last["step"] >= 10


def test_a_full_disk_fails_the_run_in_one_line_and_leaves_no_partial_file(temp_store, monkeypatch,
                                                                          capsys):
    real_save = torch.save

    def save_then_fill_the_disk(obj, path, *args, **kwargs):
        real_save(obj, path, *args, **kwargs)  # half a file is on disk when the write fails
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr("training.tracking.torch.save", save_then_fill_the_disk)
    assert train_main(["--steps", "10", "--eval-interval", "5", "--hidden-size", "8",
                       "--embed-dim", "8"]) == 2
    err = capsys.readouterr().err
    assert "No space left on device" in err and len(error_lines(err)) == 1, err
    run_id = list_runs().loc[0, "run_id"]
    assert get_run(run_id).info.status == "FAILED"
    folder = local_artifact_dir(run_id)
    assert not [p.name for p in folder.iterdir() if p.name.endswith(".partial")]


# ---- liveness: interrupted runs, refused resumes ----------------------------------------------


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _running_run(tags: dict[str, str]) -> str:
    """A run left RUNNING, as a training process leaves it until it ends."""
    experiment_id = open_store()
    return MlflowClient().create_run(experiment_id, tags=tags).info.run_id


def _process_tags(pid: int, host: str | None = None, heartbeat: float | None = None) -> dict:
    return {HOST_TAG: host or socket.gethostname(), PID_TAG: str(pid),
            HEARTBEAT_TAG: f"{heartbeat or time.time():.0f}"}


def test_running_runs_whose_process_is_gone_show_as_interrupted(temp_store):
    hour_ago = time.time() - 3600
    runs = {
        "dead process here": (_process_tags(_dead_pid()), "INTERRUPTED"),
        "live process here": (_process_tags(os.getppid(), heartbeat=hour_ago), "RUNNING"),
        "our pid, not training": (_process_tags(os.getpid()), "INTERRUPTED"),
        "elsewhere, fresh heartbeat": (_process_tags(1, "other-host"), "RUNNING"),
        "elsewhere, stale heartbeat": (_process_tags(1, "other-host", hour_ago), "INTERRUPTED"),
    }
    ids = {name: _running_run(tags) for name, (tags, _) in runs.items()}
    table = list_runs().set_index("run_id")
    for name, (_, expected) in runs.items():
        assert table.loc[ids[name], "status"] == expected, name


def test_resuming_a_run_that_is_still_training_is_refused(temp_store):
    run_id = _running_run(_process_tags(os.getppid()))  # a live process on this host
    with pytest.raises(ValueError, match="still training"):
        train_run(resume=run_id, on_log=QUIET)


def test_resume_of_a_run_killed_before_its_first_checkpoint_says_so(temp_store):
    run_id = _running_run(_process_tags(_dead_pid()))  # SIGKILL before any step was logged
    with pytest.raises(ValueError, match="stopped before its first checkpoint") as err:
        train_run(resume=run_id, on_log=QUIET)
    assert "deleted" not in str(err.value)
    with pytest.raises(ValueError, match="stopped before its first checkpoint"):
        load_run(run_id)


def test_resume_of_a_run_shipped_without_last_pt_says_so(temp_store):
    run_id = train_run(TrainConfig(**TINY), on_log=QUIET)
    artifact_path(run_id, LAST_FILE).unlink()  # as the demo runs ship
    with pytest.raises(ValueError, match="keeps only model.pt") as err:
        train_run(resume=run_id, steps=20, on_log=QUIET)
    assert "deleted" not in str(err.value)


def test_a_stale_working_copy_of_the_store_is_moved_aside_not_deleted(demo_store, tmp_path,
                                                                     monkeypatch, capsys):
    committed, working = tmp_path / "mlruns", tmp_path / ".mlruns-local"
    shutil.copytree(demo_store["store"], committed)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setattr(store, "COMMITTED_STORE", committed)
    monkeypatch.setattr(store, "WORKING_STORE", working)
    monkeypatch.setattr(store, "PROJECT_STORE", working / "mlflow.db")
    monkeypatch.setattr(store, "_CHECKED_COMMITTED", None)
    assert len(list_runs()) == 2 and (working / store.COPIED_FROM).exists()
    (working / "my-notes.txt").write_text("a user's file", encoding="utf-8")
    list_runs()
    assert (working / "my-notes.txt").exists()  # unchanged committed store: the copy is kept
    with sqlite3.connect(committed / "mlflow.db") as conn:  # a pull brings a newer store
        conn.execute("CREATE TABLE pulled (x)")
    capsys.readouterr()
    assert len(list_runs()) == 2
    (aside,) = tmp_path.glob(".mlruns-local.stale-*")
    assert (aside / "my-notes.txt").exists() and not (working / "my-notes.txt").exists()
    assert aside.name in capsys.readouterr().out


# ---- malformed checkpoints ----------------------------------------------------------------------


@pytest.fixture
def trained_checkpoint(temp_store):
    run_id = train_run(TrainConfig(**TINY), on_log=QUIET)
    path = artifact_path(run_id, LAST_FILE)
    return run_id, path, torch.load(path, weights_only=True)


def _extra_key(ckpt):
    ckpt["model_config"]["surprise"] = 1


def _wrong_vocab(ckpt):
    ckpt["vocab"]["words"] = ckpt["vocab"]["words"][:-3]
    ckpt["vocab"]["counts"] = ckpt["vocab"]["counts"][:-3]


def _no_optimizer(ckpt):
    del ckpt["optimizer"]


@pytest.mark.parametrize("damage,message", [
    (_extra_key, "surprise"), (_wrong_vocab, "vocabulary"), (_no_optimizer, "lacks optimizer"),
])
def test_malformed_checkpoints_give_one_line(trained_checkpoint, damage, message, capsys):
    run_id, path, checkpoint = trained_checkpoint
    damage(checkpoint)
    torch.save(checkpoint, path)
    assert train_main(["--resume", run_id, "--steps", "20"]) == 2
    err = capsys.readouterr().err
    assert message in err and len(error_lines(err)) == 1, err


# ---- sampling and measuring ---------------------------------------------------------------------


@pytest.mark.parametrize("temperature", [1e-40, 1e-300, 5e-324])
def test_tiny_temperatures_sample_the_greedy_choice(temperature):
    logits = torch.randn(3, 50)
    picked = pick_next(logits, temperature, generator=torch.Generator().manual_seed(0))
    assert picked.tolist() == pick_next(logits, 0.0).tolist()


def test_tiny_temperature_on_the_cli(use_demo_store, capsys):
    run_id = use_demo_store["windows"]
    assert generate_main(["--run", run_id, "--prompt", "the", "--temperature", "1e-40",
                          "--length", "10", "--json"]) == 0
    tiny = json.loads(capsys.readouterr().out)
    assert generate_main(["--run", run_id, "--prompt", "the", "--length", "10", "--json"]) == 0
    assert tiny["tokens"] == json.loads(capsys.readouterr().out)["tokens"]


def test_tiny_temperature_in_the_app(use_demo_store):
    run_id = use_demo_store["windows"]
    tiny = list(generate(run_id, "the", 10, 1e-300, 0, 1.0, 0))[-1][0]
    greedy = list(generate(run_id, "the", 10, 0.0, 0, 1.0, 0))[-1][0]
    assert tiny == greedy


def test_cli_and_app_measure_the_same_generated_words(use_demo_store, capsys):
    run_id = use_demo_store["windows"]
    prompt = SEED  # a prompt copied from the source (every word in the vocabulary)
    assert generate_main(["--run", run_id, "--prompt", prompt, "--length", "30", "--json"]) == 0
    cli = json.loads(capsys.readouterr().out)
    out = list(generate(run_id, prompt, 30, 0.0, 0, 1.0, 0))[-1]
    text, headline, novelty = out[0], out[2], out[4]
    assert cli["text"] == text
    assert f"{cli['copied_4gram_fraction']:.0%} of the generated 4-grams" in headline
    assert re.search(rf"Longest verbatim run: \*\*{cli['longest_copied_span']} words", headline)
    assert {n: round(v, 3) for n, v in cli["novelty"].items()} == dict(
        zip(novelty["n"], novelty["novel share"], strict=True))
    for span in cli["copied_spans"]:  # spans index the tokens, and lie in the generated part
        assert span["start"] >= cli["prompt_tokens"]


def test_generation_and_greedy_continue_share_one_decoding_loop(use_memorizer):
    model = load_run(use_memorizer["run_id"]).model  # every word kept: no <unk> to learn
    prompt = [5, 6, 7]
    greedy = greedy_continue(model, torch.tensor([prompt]), 12)[0].tolist()
    streamed = list(stream_ids(model, prompt, SamplingConfig(max_new_tokens=12)))
    assert UNK_ID not in greedy  # its text has no <unk>, so both loops choose alike
    assert streamed == greedy


# ---- the trainer's own interface ----------------------------------------------------------------


def test_train_step_advances_the_step_and_returns_a_named_result():
    trainer = Trainer(TrainConfig(**TINY), read_text(ROOT / "corpus" / "lighthouse_keeper.txt"))
    result = trainer.train_step()
    assert isinstance(result, StepResult) and trainer.step == 1
    assert result.tokens == 4 * 32 and result.loss > 0 and len(result.state) == 2
    trainer.train_step(result.state)
    assert trainer.step == 2


def test_format_number_has_one_rule_for_log_lines_and_tables():
    assert [format_number(v) for v in (1234.56, 0.123456, 20.0, 3, None, float("nan"), "x")] == [
        "1235", "0.1235", "20", "3", "—", "—", "—"]

