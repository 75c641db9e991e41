"""Training runs land in MLflow complete, load back, resume, survive Ctrl-C and a moved store."""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch
from mlflow.tracking import MlflowClient

from conftest import PROJECT_CORPUS, ROOT
from lstm_core.generate import SamplingConfig, encode_prompt, generate_ids
from lstm_core.text import tokenize
from lstm_core.vocab import UNK, UNK_ID
from training.checkpoints import LAST_FILE, load_checkpoint
from training.config import TrainConfig
from training.loop import Corpus
from training.runs import list_runs, load_run, metric_history
from training.store import artifact_path, local_artifact_dir, sha256_text
from training.tracking import train_run

QUIET = dict(on_log=lambda line: None)


def small_config(**overrides) -> TrainConfig:
    values = dict(steps=20, eval_interval=10, embed_dim=16, hidden_size=16, batch_size=8, seq_len=16)
    values.update(overrides)
    return TrainConfig.for_recipe(values.pop("recipe", "windows"), **values)


def run_cli(args, env_uri, **kwargs):
    env = {**os.environ, "MLFLOW_TRACKING_URI": env_uri}
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300, **kwargs)


def test_run_logs_params_metrics_tags_and_artifacts(temp_store):
    run_id = train_run(small_config(), run_name="unit", **QUIET)
    run = MlflowClient().get_run(run_id)
    assert run.info.status == "FINISHED" and run.info.run_name == "unit"
    params = run.data.params
    assert params["recipe"] == "windows" and params["optimizer"] == "sgd" and params["lr"] == "20.0"
    assert params["model.hidden_size"] == "16" and int(params["vocab_size"]) > 100
    history = MlflowClient().get_metric_history(run_id, "train_loss")
    assert [m.step for m in history] == [10, 20]
    for key in ("val_loss", "val_perplexity", "lr", "grad_norm", "tokens_per_sec",
                "extractable_memorization", "sample_copied_4gram_fraction", "val_unk_rate",
                "train_unk_rate"):
        assert key in run.data.metrics, key
    text = PROJECT_CORPUS.read_text(encoding="utf-8")
    assert run.data.tags["corpus_sha256"] == sha256_text(text)
    assert run.data.tags["corpus_name"] == "lighthouse_keeper.txt"
    assert run.data.tags["backend"] == "scratch"
    folder = local_artifact_dir(run_id)
    assert str(folder).startswith(str(temp_store))  # artifacts live inside the store folder
    names = {p.name for p in folder.iterdir()}
    assert {"model.pt", "last.pt", "source.txt", "config.json", "vocab.json"} <= names
    assert (folder / "source.txt").read_text(encoding="utf-8") == text
    checkpoint = torch.load(folder / "last.pt", weights_only=True)
    assert checkpoint["step"] == 20 and checkpoint["train_config"]["steps"] == 20
    assert "optimizer" in checkpoint and "optimizer" not in torch.load(folder / "model.pt", weights_only=True)
    assert json.loads((folder / "config.json").read_text())["model.embed_dim"] == 16


def test_no_held_out_word_enters_the_vocabulary_of_a_run_that_holds_text_out():
    # The last paragraph's words appear nowhere else: held out, they must read <unk>.
    head = "the cat sat on the mat . the dog sat on the log . " * 20
    tail = "zebras quietly graze near distant hills . the cat sat ."
    corpus = Corpus.from_text(head + tail, TrainConfig(val_fraction=0.1))
    val_words = set(corpus.vocab.decode(corpus.val_ids.tolist()))
    assert "zebras" not in corpus.vocab and "hills" not in corpus.vocab
    assert UNK in val_words and "cat" in val_words
    training_words = set(tokenize(head + tail, "words")[:len(corpus.train_ids)])
    assert set(corpus.vocab.words) <= training_words
    rates = corpus.unk_rates()  # the six new words of the tail, nothing of the training part
    assert rates["val_unk_rate"] == pytest.approx(6 / len(corpus.val_ids))
    assert rates["train_unk_rate"] == 0


def test_min_count_teaches_unk_from_the_training_part_and_the_seed_recipe_keeps_every_word():
    text = "rare words once . " + "a b a b a c . " * 30
    corpus = Corpus.from_text(text, TrainConfig(val_fraction=0.1, min_count=2))
    assert "rare" not in corpus.vocab and (corpus.train_ids == UNK_ID).any()  # <unk> is trained
    seed = Corpus.from_text(text, TrainConfig.for_recipe("seed"))  # nothing held out
    assert {"rare", "words", "once"} <= set(seed.vocab.words) and len(seed.val_ids) == 0
    with pytest.raises(ValueError, match="min_count"):
        TrainConfig(min_count=0)


def test_run_loads_back_and_generates(temp_store):
    run_id = train_run(small_config(), **QUIET)
    loaded = load_run(run_id)
    assert loaded.step == 20 and loaded.vocab.scheme == "words"
    ids = generate_ids(loaded.model, encode_prompt("the lamp", loaded.vocab),
                       SamplingConfig(max_new_tokens=10))
    assert len(ids) == 12
    table = list_runs()
    assert list(table["run_id"]) == [run_id] and table.loc[0, "steps"] == 20
    curves = metric_history(run_id)
    assert set(curves["metric"]) == {"train_loss", "val_loss"} and len(curves) == 4


def test_resume_continues_the_same_trajectory(temp_store):
    straight = train_run(small_config(steps=40), **QUIET)
    first = train_run(small_config(steps=20), **QUIET)
    resumed = train_run(resume=first, steps=40, **QUIET)
    assert resumed == first
    client = MlflowClient()
    steps = [m.step for m in client.get_metric_history(first, "train_loss")]
    assert steps == [10, 20, 30, 40]
    assert client.get_run(first).info.status == "FINISHED"
    # Model, optimizer, sampler and dropout RNG are all restored, so the resumed run follows
    # the uninterrupted one exactly.
    a = [m.value for m in client.get_metric_history(straight, "train_loss")]
    b = [m.value for m in client.get_metric_history(first, "train_loss")]
    assert b == pytest.approx(a, rel=1e-5)
    with pytest.raises(ValueError, match="already reached step 40"):
        train_run(resume=first, **QUIET)


def test_ctrl_c_leaves_a_killed_run_with_a_loadable_checkpoint(temp_store):
    uri = os.environ["MLFLOW_TRACKING_URI"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "training", "--steps", "100000", "--eval-interval", "5",
         "--hidden-size", "16", "--embed-dim", "16", "--batch-size", "4", "--early-stop-patience", "0"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 120
        for line in proc.stdout:  # wait for two log lines: checkpoints exist by then
            if line.startswith("step 10/"):
                break
            assert time.time() < deadline, "training never logged"
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, stderr
    assert "KILLED" in stderr
    os.environ["MLFLOW_TRACKING_URI"] = uri
    table = list_runs()
    assert list(table["status"]) == ["KILLED"]
    run_id = table.loc[0, "run_id"]
    checkpoint = load_checkpoint(artifact_path(run_id, LAST_FILE))
    assert checkpoint["step"] >= 10
    load_run(run_id)  # the best-so-far model is usable too


def test_a_moved_store_still_loads_and_new_runs_land_inside_it(tmp_path, monkeypatch):
    old = tmp_path / "old" / "mlruns"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{old / 'mlflow.db'}")
    run_id = train_run(small_config(steps=10), **QUIET)
    new = tmp_path / "clone" / "elsewhere" / "mlruns"
    shutil.copytree(old, new)
    shutil.rmtree(old)
    load_run.cache_clear()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{new / 'mlflow.db'}")
    loaded = load_run(run_id)
    assert loaded.source_text.startswith(PROJECT_CORPUS.read_text(encoding="utf-8")[:50])
    assert str(local_artifact_dir(run_id)).startswith(str(new))
    second = train_run(small_config(steps=10), **QUIET)
    assert str(local_artifact_dir(second)).startswith(str(new))
    assert len(list_runs()) == 2


def test_missing_and_corrupt_artifacts_give_clear_errors(temp_store):
    run_id = train_run(small_config(steps=10), **QUIET)
    folder = local_artifact_dir(run_id)
    with pytest.raises(ValueError, match="no run with id"):
        load_run("0123456789abcdef0123456789abcdef")
    (folder / "model.pt").write_bytes((folder / "model.pt").read_bytes()[:100])  # truncated
    load_run.cache_clear()
    with pytest.raises(ValueError, match="truncated, corrupt"):
        load_run(run_id)
    (folder / "model.pt").unlink()  # no model.pt: the weights of last.pt, saying so
    assert "last.pt" in load_run(run_id).note
    load_run.cache_clear()
    (folder / "last.pt").unlink()
    with pytest.raises(ValueError, match="missing"):
        load_run(run_id)


def test_a_pickled_object_in_a_checkpoint_is_refused(tmp_path):
    class Sneaky:
        def __reduce__(self):
            return (os.system, ("echo pwned > " + str(tmp_path / "pwned"),))

    path = tmp_path / "evil.pt"
    torch.save({"model_config": {}, "state_dict": {}, "vocab": Sneaky()}, path)
    with pytest.raises(ValueError, match="cannot be loaded safely"):
        load_checkpoint(path)
    assert not (tmp_path / "pwned").exists()


def test_cli_prints_run_id_last_and_generate_json(temp_store):
    uri = os.environ["MLFLOW_TRACKING_URI"]
    result = run_cli(["-m", "training", "--corpus", str(PROJECT_CORPUS), "--steps", "6",
                      "--eval-interval", "3", "--hidden-size", "16", "--embed-dim", "16",
                      "--recipe", "windows", "--seed", "3", "--backend", "torch"], uri)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[0].startswith("step 3/6 | train_loss")
    assert lines[-1].startswith("run_id=")
    run_id = lines[-1].removeprefix("run_id=")
    out = run_cli(["-m", "training.generate", "--run", run_id, "--prompt", "the lamp",
                   "--length", "8", "--json"], uri)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert {"text", "tokens", "novelty", "copied_4gram_fraction", "longest_copied_span"} <= report.keys()
    assert report["tokens"][:2] == ["the", "lamp"] and len(report["tokens"]) == 10
    assert set(report["novelty"]) == {str(n) for n in range(1, 9)}
    bad = run_cli(["-m", "training.generate", "--run", run_id, "--prompt", "the zorblax"], uri)
    assert bad.returncode == 2 and "zorblax" in bad.stderr
    missing = run_cli(["-m", "training", "--corpus", "no/such/file.txt", "--steps", "2"], uri)
    assert missing.returncode == 2 and "error:" in missing.stderr


def test_cli_help_lists_every_config_field():
    result = subprocess.run([sys.executable, "-m", "training", "--help"], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    for flag in ("--corpus", "--recipe", "--steps", "--seed", "--backend", "--dropout", "--resume"):
        assert flag in result.stdout


def test_schedule_keeps_a_learning_rate_floor_and_stops_early_naming_the_step():
    from training.loop import Trainer
    from training.tracking import saved_model_note

    # Random words: nothing to learn beyond their frequencies, so validation soon stalls.
    rng = random.Random(0)
    text = " ".join(rng.choice([f"w{i}" for i in range(40)]) for _ in range(1500))
    config = small_config(steps=200, eval_interval=2, lr=20.0, lr_patience=1, lr_factor=0.25,
                          lr_min=2.0, early_stop_patience=4, memorization_sample=0)
    trainer = Trainer(config, text)
    logged, saved = [], {}
    trainer.run(on_log=lambda step, metrics: logged.append((step, dict(metrics))),
                on_checkpoint=lambda name, checkpoint: saved.update({name: checkpoint}))
    # model.pt's own figures are those of its step (they once were the previous evaluation's).
    assert saved["best"]["step"] == trainer.best_step
    assert saved["best"]["metrics"]["val_loss"] == trainer.best_val
    rates = [trainer.optimizer.param_groups[0]["lr"]] + [m["lr"] for _, m in logged]
    assert min(rates) == pytest.approx(2.0)  # the floor was reached, and never passed
    assert trainer.step < config.steps  # early stopping ended it
    assert trainer.step == trainer.best_step + 4 * config.eval_interval
    assert logged[-1][1]["best_step"] == trainer.best_step
    note = saved_model_note(trainer)
    assert note.startswith(f"model.pt holds step {trainer.best_step} of {trainer.step}")
    assert "stopped early" in note


def test_windows_defaults_keep_learning():
    """The windows recipe's schedule has a floor and stops when validation stops improving."""
    config = TrainConfig.for_recipe("windows")
    assert 0 < config.lr_min < config.lr
    assert config.early_stop_patience > 0
    assert config.lr_patience >= 2  # one noisy evaluation is no plateau


def test_unigram_bias_starts_the_model_at_the_word_frequencies():
    """unigram_bias=True: before any step the model predicts the training text's word frequencies
    (its validation loss is the unigram cross-entropy, well below the uniform log V)."""
    import math

    from training.config import add_config_flags
    from training.loop import Trainer, evaluate

    # A skewed text: "a" is half of it, so a uniform start is far from its frequencies.
    rng = random.Random(0)
    text = " ".join(rng.choice(["a"] * 20 + [f"w{i}" for i in range(20)]) for _ in range(2000))
    plain, unigram = (Trainer(small_config(unigram_bias=flag, memorization_sample=0), text)
                      for flag in (False, True))
    ids, vocab_size = unigram.corpus.train_ids, len(unigram.corpus.vocab)
    counts = torch.bincount(ids, minlength=vocab_size).float()
    expected = torch.log((counts + 1) / (counts.sum() + vocab_size))
    assert torch.allclose(unigram.model.out_bias, expected)
    assert torch.all(plain.model.out_bias == 0)  # off by default: the uniform start
    losses = [evaluate(t.model, t.corpus.val_ids, 16, t.device) for t in (plain, unigram)]
    unigram_entropy = -(counts / counts.sum() * expected).sum().item()
    assert losses[0] == pytest.approx(math.log(vocab_size), abs=0.05)
    assert losses[1] == pytest.approx(unigram_entropy, abs=0.1)
    assert losses[1] < losses[0] - 0.3
    assert unigram.config.to_dict()["unigram_bias"] is True  # logged with the other params
    parser = argparse.ArgumentParser()
    add_config_flags(parser)
    assert parser.parse_args(["--unigram-bias"]).unigram_bias is True
