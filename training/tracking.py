"""One training run, tracked in MLflow: params, stepped metrics, tags, checkpoints, source text.

Ctrl-C ends the run as KILLED and an exception as FAILED, each with its last checkpoint saved
(checkpoints are written after every log interval, atomically). ``resume`` continues a run on
the same step axis with its optimizer state restored.
"""

from __future__ import annotations

import dataclasses
import json
import signal
import threading
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

import mlflow
import torch

from lstm_core.generate import SamplingConfig, generate_ids
from lstm_core.memorization import analyze, extractable_memorization
from lstm_core.text import read_text
from training import registry
from training.config import TrainConfig
from training.distributed import is_main_process
from training.loop import Trainer

SAMPLE_LENGTH = 100  # tokens in the greedy sample whose novelty is logged at the end


def _log_line(step: int, total: int, metrics: dict[str, float]) -> str:
    return " | ".join([f"step {step}/{total}"] + [f"{k} {_fmt(v)}" for k, v in metrics.items()])


def _fmt(value: float) -> str:
    return f"{value:.0f}" if abs(value) >= 1000 else f"{value:.4g}"


def _save_checkpoint(run_id: str, name: str, checkpoint: dict) -> None:
    # model.pt (best weights) leaves out the optimizer: it is for using the model, not resuming.
    if name == "best":
        checkpoint = {k: v for k, v in checkpoint.items() if k not in ("optimizer", "scheduler")}
    filename = registry.MODEL_FILE if name == "best" else registry.LAST_FILE
    registry.save_artifact_file(run_id, filename, lambda path: torch.save(checkpoint, path))


def _log_final_figures(run_id: str, trainer: Trainer, model_id: str) -> dict[str, float]:
    """Memorization of the finished model: extractable rate and a greedy sample's novelty.

    They and the validation figures of the model's own step are linked to the logged MLflow
    model (``model_id``), so `mlflow ui`'s Models tab lists each model with them.
    """
    best = registry.load_checkpoint(registry.artifact_path(run_id, registry.MODEL_FILE))
    model, vocab = registry.model_from_checkpoint(best)
    source_ids = torch.cat([trainer.corpus.train_ids, trainer.corpus.val_ids])
    cfg = trainer.config
    figures = {}
    if len(trainer.corpus.train_ids) >= cfg.memorization_prefix + cfg.memorization_suffix:
        figures["extractable_memorization"] = extractable_memorization(
            model, trainer.corpus.train_ids, cfg.memorization_prefix, cfg.memorization_suffix)
    prompt = source_ids[:1].tolist()
    sample = generate_ids(model, prompt, SamplingConfig(max_new_tokens=SAMPLE_LENGTH))
    report = analyze(vocab.decode(sample), vocab.decode(source_ids.tolist()))
    figures["sample_copied_4gram_fraction"] = report.copied_4gram_fraction
    figures["sample_longest_copied_span"] = float(report.longest_copied_span)
    for n in (1, 2, 4, 8):
        if n in report.novelty:
            figures[f"sample_novelty_{n}"] = report.novelty[n]
    mlflow.log_metrics(figures, step=trainer.step, model_id=model_id)
    # The same values the run logged at the model's step, linked to the model as well.
    validation = {k: v for k, v in best.get("metrics", {}).items() if k in ("val_loss", "val_perplexity")}
    if validation:
        mlflow.log_metrics(validation, step=best["step"], model_id=model_id)
    return {**figures, **validation}


def describe_run(config: TrainConfig, corpus_name: str, steps: int, figures: dict) -> str:
    """One line for `mlflow ui`'s description: recipe, corpus, steps and what the run shows."""
    shown = [f"{k.replace('_', ' ')} {_fmt(figures[k])}" for k in
             ("val_loss", "extractable_memorization", "sample_copied_4gram_fraction") if k in figures]
    return (f"{config.recipe} recipe on {corpus_name}, {steps} steps, dropout {config.dropout}, "
            f"{config.optimizer}: " + ", ".join(shown))


@contextmanager
def _ctrl_c_stops_between_steps():
    """While training, Ctrl-C (SIGINT) sets a flag that the loop checks after each step.

    Interrupting at an arbitrary point could land inside an MLflow write and leave the store
    locked; stopping between steps always leaves it consistent. A second Ctrl-C interrupts at
    once. Outside the main thread (the app trains in a worker thread) nothing changes.
    """
    interrupted = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield interrupted
        return

    def handler(signum, frame):
        if interrupted.is_set():
            raise KeyboardInterrupt
        interrupted.set()

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield interrupted
    finally:
        signal.signal(signal.SIGINT, previous)


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
) -> str:
    """Train (or resume) one run into the MLflow store and return its run id ("" on ranks > 0).

    text/corpus_name let a caller (the app) pass an uploaded text instead of config.corpus.
    on_step(step, total, loss) is called every step (for progress bars); on_log(line) once per
    log interval with the same numbers that go to MLflow.
    """
    # Under torchrun only rank 0 creates or changes the store; the others at most read from it.
    experiment_id = registry.open_store() if is_main_process() or resume else None
    checkpoint = None
    if resume:
        registry.get_run(resume)  # a clear error for an unknown id
        checkpoint = registry.load_checkpoint(registry.artifact_path(resume, registry.LAST_FILE))
        config = TrainConfig.from_dict(checkpoint["train_config"])
        if steps is not None:
            config.steps = steps
        text = registry.artifact_path(resume, registry.SOURCE_FILE).read_text(encoding="utf-8")
        if checkpoint["step"] >= config.steps:
            raise ValueError(f"Run {resume} already reached step {checkpoint['step']}; "
                             f"pass --steps above that to train it further")
    if config is None:
        raise ValueError("train_run needs a config or a run to resume")
    source = _dataset_source(config.corpus, text)
    if text is None:
        text = read_text(config.corpus)
    # Logged (params, checkpoints) relative to the project, never as this machine's folder.
    config = dataclasses.replace(config, corpus=registry.project_relative(config.corpus))
    trainer = Trainer(config, text, checkpoint)  # validates the text before a run is created
    if not trainer.world.is_main:  # under torchrun, only rank 0 logs and writes checkpoints
        trainer.run()
        return ""

    with mlflow.start_run(run_id=resume, run_name=None if resume else run_name,
                          experiment_id=experiment_id) as active:
        run_id = active.info.run_id
        if not resume:
            _log_run_setup(run_id, config, trainer, text, corpus_name)
            registry.log_text_dataset(text, source, corpus_name or Path(config.corpus).name)

        def log(step, metrics):
            mlflow.log_metrics({**metrics, "step": float(step)}, step=step)
            on_log(_log_line(step, config.steps, metrics))

        try:
            with _ctrl_c_stops_between_steps() as interrupted:
                trainer.run(
                    on_log=log,
                    on_checkpoint=lambda name, ckpt: _save_checkpoint(run_id, name, ckpt),
                    on_step=(lambda step, loss: on_step(step, config.steps, loss)) if on_step else
                    (lambda step, loss: None),
                    should_stop=lambda: interrupted.is_set(),
                )
            if interrupted.is_set():
                raise KeyboardInterrupt
            words = trainer.corpus.vocab.decode(trainer.corpus.train_ids[:100].tolist())
            first_word = next((w for w in words if w.isalpha()), words[0])
            model_id = registry.log_run_model(run_id, example_prompt=first_word)
            figures = _log_final_figures(run_id, trainer, model_id)
            mlflow.set_tag("mlflow.note.content",
                           describe_run(config, corpus_name or Path(config.corpus).name,
                                        trainer.step, figures))
            on_log(" | ".join(f"{k} {_fmt(v)}" for k, v in figures.items()))
        except KeyboardInterrupt:
            _save_checkpoint(run_id, "last", trainer.checkpoint())
            mlflow.end_run(status="KILLED")
            raise
        except Exception:
            if trainer.step > 0:
                _save_checkpoint(run_id, "last", trainer.checkpoint())
            mlflow.end_run(status="FAILED")
            raise
    return run_id


def _dataset_source(corpus: str, text: str | None) -> str:
    """Where the training text came from: its path (relative to the project) or "upload"."""
    path = Path(corpus)
    if text is None or (path.is_file() and read_text(path) == text):
        return registry.project_relative(path)
    return "upload"


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

