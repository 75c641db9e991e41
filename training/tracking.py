"""One training run, tracked in MLflow: params, stepped metrics, tags, checkpoints, source text.

Ctrl-C, SIGTERM or a caller's stop_event end the run as KILLED and an exception as FAILED, each
with its last checkpoint saved (checkpoints are written after every log interval, atomically).
A heartbeat in the run's tags lets ``registry.list_runs`` tell a live run from a dead one. ``resume`` continues a run on
the same step axis with its optimizer state restored.
"""

from __future__ import annotations

import json
import math
import signal
import threading
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

import mlflow
import torch

from lstm_core.generate import SamplingConfig, stream_ids
from lstm_core.memorization import analyze, extractable_memorization
from lstm_core.text import read_text
from training import registry
from training.config import TrainConfig
from training.distributed import is_main_process
from training.loop import Trainer

SAMPLE_LENGTH = 100  # tokens in the greedy sample whose novelty is logged at the end


def _log_line(step: int, total: int, metrics: dict[str, float]) -> str:
    return " | ".join([f"step {step}/{total}"] + [f"{k} {format_number(v)}" for k, v in metrics.items()])


def format_number(value) -> str:
    """A metric or param for people: whole and large numbers without decimals, others to 4
    significant digits, "—" for a missing value (None, NaN, or anything not a number)."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        return "—"
    if math.isnan(value):
        return "—"
    return f"{value:.0f}" if value.is_integer() or abs(value) >= 1000 else f"{value:.4g}"


def _save_checkpoint(run_id: str, name: str, checkpoint: dict) -> None:
    # model.pt (best weights) leaves out the optimizer: it is for using the model, not resuming.
    if name == "best":
        checkpoint = {k: v for k, v in checkpoint.items() if k not in ("optimizer", "scheduler")}
    filename = registry.MODEL_FILE if name == "best" else registry.LAST_FILE
    registry.save_artifact_file(run_id, filename, lambda path: torch.save(checkpoint, path))


def _log_final_figures(run_id: str, trainer: Trainer) -> dict[str, float]:
    """Memorization of the finished model: extractable rate and a greedy sample's novelty."""
    best = registry.load_checkpoint(registry.artifact_path(run_id, registry.MODEL_FILE))
    model, vocab = registry.model_from_checkpoint(best)
    source_ids = torch.cat([trainer.corpus.train_ids, trainer.corpus.val_ids])
    cfg = trainer.config
    figures = {}
    if len(trainer.corpus.train_ids) >= cfg.memorization_prefix + cfg.memorization_suffix:
        figures["extractable_memorization"] = extractable_memorization(
            model, trainer.corpus.train_ids, cfg.memorization_prefix, cfg.memorization_suffix)
    prompt = source_ids[:1].tolist()
    sample = list(stream_ids(model, prompt, SamplingConfig(max_new_tokens=SAMPLE_LENGTH)))
    report = analyze(vocab.decode(sample), vocab.decode(source_ids.tolist()))  # generated words only
    figures["sample_copied_4gram_fraction"] = report.copied_4gram_fraction
    figures["sample_longest_copied_span"] = float(report.longest_copied_span)
    for n in (1, 2, 4, 8):
        if n in report.novelty:
            figures[f"sample_novelty_{n}"] = report.novelty[n]
    mlflow.log_metrics(figures, step=trainer.step)
    return figures


class Interrupted(KeyboardInterrupt):
    """Ctrl-C (SIGINT) or SIGTERM stopped a run between steps; it ended KILLED, checkpoint saved."""

    def __init__(self, signum: int = signal.SIGINT):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@contextmanager
def _signals_stop_between_steps():
    """While training, Ctrl-C (SIGINT) or SIGTERM sets a flag that the loop checks after each step.

    Interrupting at an arbitrary point could land inside an MLflow write and leave the store
    locked; stopping between steps always leaves it consistent. A second signal interrupts at
    once. Outside the main thread (the app trains in a worker thread) nothing changes: the app
    passes a stop_event instead. Yields a list that receives the signal numbers caught.
    """
    caught: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield caught
        return

    def handler(signum, frame):
        if caught:
            raise Interrupted(signum)
        caught.append(signum)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield caught
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _load_resume(run_id: str, steps: int | None) -> tuple[TrainConfig, str, dict]:
    """The config, text and last checkpoint of a run to continue; refuses a run still training."""
    run = registry.get_run(run_id)  # a clear error for an unknown id
    if registry.is_alive(run):
        raise ValueError(f"Run {run_id} is still training (process {registry.run_process(run)}); "
                         "wait for it to end, or stop it, before resuming it")
    checkpoint = registry.load_resume_checkpoint(run)
    config = TrainConfig.from_dict(checkpoint["train_config"])
    if steps is not None:
        config.steps = steps
    text = registry.artifact_path(run_id, registry.SOURCE_FILE).read_text(encoding="utf-8")
    if checkpoint["step"] >= config.steps:
        raise ValueError(f"Run {run_id} already reached step {checkpoint['step']}; "
                         f"pass --steps above that to train it further")
    return config, text, checkpoint


def _end_killed(run_id: str, trainer: Trainer) -> None:
    _save_checkpoint(run_id, "last", trainer.checkpoint())
    mlflow.end_run(status="KILLED")


def _end_failed(run_id: str, trainer: Trainer) -> None:
    """Keep what can be kept, but never let a second error (a full disk) hide the first."""
    if trainer.step > 0:
        try:
            _save_checkpoint(run_id, "last", trainer.checkpoint())
        except registry.StoreError:
            pass
    mlflow.end_run(status="FAILED")


def train_run(
    config: TrainConfig | None = None,
    *,
    run_name: str | None = None,
    resume: str | None = None,
    steps: int | None = None,
    text: str | None = None,
    corpus_name: str | None = None,
    on_step: Callable[[int, int, float], None] | None = None,
    on_log: Callable[[str], None] = print,
    stop_event: threading.Event | None = None,
) -> str:
    """Train (or resume) one run into the MLflow store and return its run id ("" on ranks > 0).

    text/corpus_name let a caller (the app) pass an uploaded text instead of config.corpus.
    on_step(step, total, loss) is called every step (for progress bars); on_log(line) once per
    log interval with the same numbers that go to MLflow. Setting stop_event stops training
    between steps: the last checkpoint is saved, the run ends KILLED and its id is returned.
    Ctrl-C or SIGTERM (main thread only) do the same, then raise ``Interrupted``.
    """
    # Under torchrun only rank 0 creates or changes the store; the others at most read from it.
    experiment_id = registry.open_store() if is_main_process() or resume else None
    checkpoint = None
    if resume:
        config, text, checkpoint = _load_resume(resume, steps)
    if config is None:
        raise ValueError("train_run needs a config or a run to resume")
    if text is None:
        text = read_text(config.corpus)
    trainer = Trainer(config, text, checkpoint)  # validates the text before a run is created
    if not trainer.world.is_main:  # under torchrun, only rank 0 logs and writes checkpoints
        trainer.run()
        return ""

    with mlflow.start_run(run_id=resume, run_name=None if resume else run_name,
                          experiment_id=experiment_id) as active:
        run_id = active.info.run_id
        heartbeat = registry.Heartbeat(run_id)  # so a run whose process died shows as interrupted
        if not resume:
            _log_run_setup(run_id, config, trainer, text, corpus_name)

        def log(step, metrics):
            mlflow.log_metrics({**metrics, "step": float(step)}, step=step)
            on_log(_log_line(step, config.steps, metrics))

        def step_done(step, loss):
            heartbeat.beat()
            if on_step:
                on_step(step, config.steps, loss)

        stopped_by_caller = []

        def should_stop():
            if stop_event is not None and stop_event.is_set():
                stopped_by_caller.append(True)
            return bool(signals or stopped_by_caller)

        try:
            with _signals_stop_between_steps() as signals:
                trainer.run(on_log=log, on_step=step_done, should_stop=should_stop,
                            on_checkpoint=lambda name, ckpt: _save_checkpoint(run_id, name, ckpt))
            if signals:
                raise Interrupted(signals[0])
            if stopped_by_caller:
                _end_killed(run_id, trainer)
                on_log(f"stopped at step {trainer.step}: the run is KILLED, its checkpoint saved")
                return run_id
            figures = _log_final_figures(run_id, trainer)
            on_log(" | ".join(f"{k} {format_number(v)}" for k, v in figures.items()))
        except KeyboardInterrupt:
            _end_killed(run_id, trainer)
            raise
        except Exception:
            _end_failed(run_id, trainer)
            raise
        finally:
            heartbeat.stop()
    return run_id


def _log_run_setup(run_id, config: TrainConfig, trainer: Trainer, text: str, corpus_name) -> None:
    """Params, tags and the files that make the run reproducible, logged once at the start."""
    model_config = trainer.model.config.to_dict()
    params = {**config.to_dict(), **{f"model.{k}": v for k, v in model_config.items()}}
    params["vocab_size"] = len(trainer.corpus.vocab)
    params["train_tokens"] = len(trainer.corpus.train_ids)
    params["val_tokens"] = len(trainer.corpus.val_ids)
    params["world_size"] = trainer.world.size
    mlflow.log_params(params)
    mlflow.set_tags({
        "corpus_name": corpus_name or Path(config.corpus).name,
        "corpus_sha256": registry.sha256_text(text),
        "recipe": config.recipe,
        "backend": config.backend,
        "tokenizer": config.tokenizer,
        "torch_version": torch.__version__,
    })
    registry.save_artifact_file(run_id, registry.SOURCE_FILE,
                                lambda p: p.write_text(text, encoding="utf-8"))
    registry.save_artifact_file(run_id, "config.json",
                                lambda p: p.write_text(json.dumps(params, indent=2), encoding="utf-8"))
    registry.save_artifact_file(run_id, "vocab.json", trainer.corpus.vocab.save_json)

