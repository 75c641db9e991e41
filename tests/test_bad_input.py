"""The catalogue of bad input at the library and CLI layers: a clear message, nothing lost.

The CLIs' main() run in this process; a real process where one matters (SIGKILL, a lock
held by another process).

(The app layer's catalogue is in test_app_functions.py and test_app_client.py.)
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from types import SimpleNamespace

import pytest

from conftest import PROJECT_CORPUS, ROOT, cli
from lstm_core.text import read_text
from training.__main__ import main as train_main
from training.checkpoints import LAST_FILE, load_checkpoint
from training.config import TrainConfig
from training.generate import main as generate_main
from training.loop import Corpus, Trainer
from training.runs import list_runs
from training.store import artifact_path
from training.tracking import train_run

TINY = ["--steps", "4", "--eval-interval", "2", "--hidden-size", "8", "--embed-dim", "8"]


def run_cli(main, *argv, capsys) -> SimpleNamespace:
    """A CLI's main() run in this process (as ``python -m`` runs it, without the start-up):
    its exit status and what it printed. A traceback would escape as the test's own error."""
    try:
        returncode = main(list(argv))
    except SystemExit as exit:  # argparse refusing a flag
        returncode = exit.code
    out = capsys.readouterr()
    return SimpleNamespace(returncode=returncode, stdout=out.out, stderr=out.err)


BAD_FILES = {
    "empty": (b"", "empty"),
    "whitespace": (b"  \n\t\n  ", "empty"),
    "binary": (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary"),
    "latin-1": ("caf\xe9 au lait, s'il vous pla\xeet".encode("latin-1"), "not valid UTF-8"),
    "utf-16": ("the lamp room".encode("utf-16"), "binary"),
}


@pytest.mark.parametrize("name", BAD_FILES)
def test_unusable_corpus_files_are_refused_by_the_library_and_the_cli(name, tmp_path, temp_store,
                                                                      capsys):
    data, message = BAD_FILES[name]
    path = tmp_path / f"{name}.txt"
    path.write_bytes(data)
    with pytest.raises(ValueError, match=message):
        read_text(path)
    result = run_cli(train_main, "--corpus", str(path), *TINY, capsys=capsys)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr
    assert not (temp_store / "artifacts").exists() or not any((temp_store / "artifacts").iterdir())


def test_a_one_word_corpus_is_too_small_to_learn_from():
    with pytest.raises(ValueError, match="only 1 token"):
        Corpus.from_text("lighthouse", TrainConfig())


def test_a_text_shorter_than_a_window_says_what_to_change():
    with pytest.raises(ValueError, match="seq_len"):
        Trainer(TrainConfig(seq_len=64, val_fraction=0.0), "the lamp turns and the light goes round")


@pytest.mark.parametrize("tokenizer", ["seed", "words"])
def test_crlf_text_trains_like_lf_text(tokenizer, tmp_path):
    lf = PROJECT_CORPUS.read_text(encoding="utf-8")[:3000]
    crlf_file = tmp_path / "crlf.txt"
    crlf_file.write_bytes(lf.replace("\n", "\r\n").encode("utf-8"))  # real CRLF bytes on disk
    assert b"\r\n" in crlf_file.read_bytes()
    config = TrainConfig(tokenizer=tokenizer)
    crlf_corpus = Corpus.from_text(read_text(crlf_file), config)
    lf_corpus = Corpus.from_text(lf, config)
    assert crlf_corpus.vocab == lf_corpus.vocab
    assert crlf_corpus.train_ids.tolist() == lf_corpus.train_ids.tolist()


def test_one_huge_line_works_for_windows_and_is_refused_clearly_by_prefix_pairs():
    words = PROJECT_CORPUS.read_text(encoding="utf-8").split()
    one_line = " ".join(words * 40)  # ~130k words, no line break at all
    config = TrainConfig(steps=2, eval_interval=1, hidden_size=8, embed_dim=8)
    Trainer(config, one_line).run()  # windows: memory linear in the text
    with pytest.raises(ValueError, match="windows recipe"):
        Trainer(TrainConfig.for_recipe("seed", hidden_size=8, embed_dim=8), one_line)


@pytest.mark.parametrize("flags,message", [
    (["--steps", "0"], "steps must be at least 1"),
    (["--lr", "-1"], "lr must be a positive number"),
    (["--lr", "nan"], "lr must be a positive number"),
    (["--val-fraction", "0.9"], "val_fraction"),
    (["--dropout", "1.5"], "dropout"),
    (["--embed-dim", "8", "--hidden-size", "0"], "positive"),
])
def test_bad_training_flags_get_one_line_errors(flags, message, temp_store, capsys):
    result = run_cli(train_main, *flags, capsys=capsys)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("args,message", [
    (["--prompt", "zorblax quuxly"], "'zorblax', 'quuxly'"),
    (["--prompt", "   "], "empty"),
    (["--prompt", "the", "--length", "-1"], "length"),
    (["--prompt", "the", "--length", "99999999"], "length"),
    (["--prompt", "the", "--temperature", "-1"], "temperature"),
    (["--prompt", "the", "--temperature", "nan"], "temperature"),
    (["--prompt", "the", "--top-p", "0"], "top_p"),
    (["--prompt", "the", "--top-p", "1.5"], "top_p"),
])
def test_bad_sampling_requests_get_one_line_errors(args, message, use_demo_store, capsys):
    result = run_cli(generate_main, "--run", use_demo_store["windows"], *args, capsys=capsys)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr


def test_length_zero_returns_just_the_prompt(use_demo_store, capsys):
    result = run_cli(generate_main, "--run", use_demo_store["windows"], "--prompt", "the lamp",
                     "--length", "0", capsys=capsys)
    assert result.returncode == 0 and result.stdout.strip() == "the lamp"


def test_an_unknown_run_id_is_named(use_demo_store, capsys):
    result = run_cli(generate_main, "--run", "feedface" * 4, "--prompt", "the", capsys=capsys)
    assert result.returncode == 2 and "no run with id 'feedfacefeedface" in result.stderr


def test_a_missing_store_is_created_empty(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'new' / 'mlflow.db'}")
    assert list_runs().empty


def test_sigkill_mid_run_leaves_a_readable_store_and_a_resumable_checkpoint(temp_store):
    proc = subprocess.Popen(
        [sys.executable, "-m", "training", "--steps", "100000", "--eval-interval", "5",
         "--hidden-size", "16", "--embed-dim", "16", "--batch-size", "4", "--early-stop-patience", "0"],
        cwd=ROOT, env={**os.environ, "PYTHONUNBUFFERED": "1"}, stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL, text=True)
    try:
        deadline = time.time() + 120
        for line in proc.stdout:
            if line.startswith("step 15/"):
                break
            assert time.time() < deadline, "training never logged"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        proc.kill()
    table = list_runs()
    # Never finished, and its process is gone: shown as interrupted, not as still running.
    assert list(table["status"]) == ["INTERRUPTED"]
    run_id = table.loc[0, "run_id"]
    checkpoint = load_checkpoint(artifact_path(run_id, LAST_FILE))
    assert checkpoint["step"] >= 15
    resumed = train_run(resume=run_id, steps=checkpoint["step"] + 5, on_log=lambda line: None)
    assert resumed == run_id
    assert list_runs().loc[0, "status"] == "FINISHED"


def test_a_locked_store_gives_a_clear_error_and_loses_nothing(use_demo_store, tmp_path, monkeypatch):
    import shutil
    import sqlite3

    store = tmp_path / "locked"
    shutil.copytree(use_demo_store["store"], store)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{store / 'mlflow.db'}")
    assert len(list_runs()) == 2
    holder = sqlite3.connect(store / "mlflow.db", timeout=0)
    holder.execute("BEGIN EXCLUSIVE")  # another process is writing and never lets go
    try:
        result = cli("-m", "training", *TINY, uri=os.environ["MLFLOW_TRACKING_URI"], timeout=240)
        assert result.returncode == 2, result.stderr[-2000:]
        assert "cannot be used" in result.stderr and "locked" in result.stderr
        assert "Traceback" not in result.stderr
    finally:
        holder.rollback()
        holder.close()
    assert len(list_runs()) == 2  # both runs still there, nothing half-written
