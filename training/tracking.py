"""One training run, tracked in MLflow: params, stepped metrics, tags, checkpoints, source text.

Ctrl-C, SIGTERM or a caller's stop_event end the run as KILLED and an exception as FAILED, each
with its last checkpoint saved (checkpoints are written after every log interval, atomically).
A heartbeat in the run's tags lets ``training.runs.list_runs`` tell a live run from a dead one.
``resume`` continues a run on the same step axis with its optimizer state restored.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import signal
import threading
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn

import mlflow
import torch

from lstm_core.generate import SamplingConfig, stream_ids
from lstm_core.gradient_flow import gradient_flow
from lstm_core.memorization import analyze, extractable_memorization
from lstm_core.text import layout_notice, read_text
from training.checkpoints import (
    LAST_FILE,
    MODEL_FILE,
    SOURCE_FILE,
    load_checkpoint,
    load_resume_checkpoint,
    model_from_checkpoint,
)
from training.config import TrainConfig
from training.distributed import is_main_process
from training.loop import Trainer, canary_figures
from training.models import log_run_model, log_text_dataset
from training.runs import (
    SAMPLES_FILE,
    Heartbeat,
    get_run,
    is_alive,
    resolve_run_id,
    run_process,
)
from training.store import (
    StoreError,
    artifact_path,
    end_active_run,
    one_line,
    open_store,
    project_relative,
    save_artifact_file,
    sha256_text,
    store_error,
    writing,
)

SAMPLE_LENGTH = 100  # tokens in the greedy sample whose novelty is logged at the end
# Passages tested for extractable memorization at the end, spread evenly over the text: the
# project's corpora have about 200, a 2 MB upload 15,000 (all of them took half a minute).
FINAL_MEMORIZATION_WINDOWS = 256
FLOW_PASSAGES, FLOW_LENGTH = 8, 60  # gradient flow: passages of the text, words read in each
GRADIENT_FLOW_FILE = "gradient_flow.json"


def _log_line(step: int, total: int, metrics: dict[str, float]) -> str:
    """One evaluation for people: the kept weights' figures (best_*) go to MLflow, not here."""
    shown = {k: v for k, v in metrics.items() if not k.startswith("best_") or k == "best_step"}
    return " | ".join([f"step {step}/{total}"] + [f"{k} {format_number(v)}" for k, v in shown.items()])


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
        checkpoint = {k: v for k, v in checkpoint.items() if k not in ("optimizer", "scheduler", "ntasgd")}
    filename = MODEL_FILE if name == "best" else LAST_FILE
    save_artifact_file(run_id, filename, lambda path: torch.save(checkpoint, path))


def _log_final_figures(run_id: str, trainer: Trainer, model_id: str) -> dict[str, float]:
    """Memorization of the finished model: extractable rate and a greedy sample's novelty.

    They and the validation figures of the model's own step are linked to the logged MLflow
    model (``model_id``), so `mlflow ui`'s Models tab lists each model with them.
    """
    best = load_checkpoint(artifact_path(run_id, MODEL_FILE))
    model, vocab = model_from_checkpoint(best)
    source_ids = torch.cat([trainer.corpus.train_ids, trainer.corpus.val_ids])
    cfg = trainer.config
    figures = {}
    if len(trainer.corpus.train_ids) >= cfg.memorization_prefix + cfg.memorization_suffix:
        # The saved (best) model and the weights training ended with: the gap between the two
        # is what keeping the best checkpoint saved from recitation. The same weights (the
        # seed recipe's, or a best at the last step) are measured once.
        def rate(which):
            return extractable_memorization(
                which, trainer.corpus.train_ids, cfg.memorization_prefix, cfg.memorization_suffix,
                max_windows=FINAL_MEMORIZATION_WINDOWS)

        figures["extractable_memorization"] = rate(model)
        same = best["step"] == trainer.step and trainer.average is None
        figures["extractable_memorization_last"] = (figures["extractable_memorization"] if same
                                                    else rate(trainer.model))
    prompt = source_ids[:1].tolist()
    sample = list(stream_ids(model, prompt, SamplingConfig(max_new_tokens=SAMPLE_LENGTH)))
    report = analyze(vocab.decode(sample), vocab.decode(source_ids.tolist()))  # generated words only
    figures["sample_copied_4gram_fraction"] = report.copied_4gram_fraction
    figures["sample_longest_copied_span"] = float(report.longest_copied_span)
    for n in (1, 2, 4, 8):
        if n in report.novelty:
            figures[f"sample_novelty_{n}"] = report.novelty[n]
    if trainer.corpus.canary is not None:  # the saved model's exposure, every candidate walked
        figures.update(canary_figures(model, trainer.corpus))
    mlflow.log_metrics(figures, step=trainer.step, model_id=model_id)
    _log_gradient_flow(run_id, model, source_ids)
    # The same values the run logged at the model's step, linked to the model as well.
    validation = {k: v for k, v in best.get("metrics", {}).items() if k in ("val_loss", "val_perplexity")}
    if validation:
        mlflow.log_metrics(validation, step=best["step"], model_id=model_id)
    return {**figures, **validation}


def describe_run(config: TrainConfig, corpus_name: str, steps: int, figures: dict) -> str:
    """One line for `mlflow ui`'s description: recipe, corpus, steps and what the run shows."""
    shown = [f"{k.replace('_', ' ')} {format_number(figures[k])}" for k in
             ("val_loss", "extractable_memorization", "sample_copied_4gram_fraction") if k in figures]
    return (f"{config.recipe} recipe on {corpus_name}, {steps} steps, dropout {config.dropout}, "
            f"{config.optimizer}: " + ", ".join(shown))


def flow_passages(ids: torch.Tensor) -> torch.Tensor | None:
    """The passages gradient flow is measured on: FLOW_PASSAGES passages of FLOW_LENGTH words
    (fewer in a short text) spread evenly over ``ids``, each with the word after it. None when
    ``ids`` holds fewer than two words."""
    length = min(FLOW_LENGTH, len(ids) - 1)
    if length < 1:
        return None
    starts = torch.linspace(0, len(ids) - length - 1, FLOW_PASSAGES).long().unique()
    return torch.stack([ids[s : s + length + 1] for s in starts])


def _log_gradient_flow(run_id: str, model, source_ids: torch.Tensor) -> None:
    """gradient_flow.json ({"distance", "grad_norm"}, 1 at distance 0) and its plot, of the
    finished model on passages spread evenly over the text."""
    passages = flow_passages(source_ids)
    if passages is None:
        return
    flow = gradient_flow(model, passages)
    cell = model.config.cell
    save_artifact_file(run_id, GRADIENT_FLOW_FILE,
                       lambda p: p.write_text(json.dumps(flow), encoding="utf-8"))
    figure = flow_figure({cell: (flow, "C0", "-")}, f"gradient flow ({cell})", size=(5, 3.2))
    save_artifact_file(run_id, "gradient_flow.png", lambda p: figure.savefig(p, format="png"))


def flow_figure(curves: dict[str, tuple[dict, str, str]], title: str, *,
                size: tuple[float, float] = (9, 3.8)):
    """Gradient-flow curves on a log scale: label -> (flow with "distance" and "grad_norm",
    a matplotlib color, a line style)."""
    from matplotlib.figure import Figure  # no pyplot: no global state, safe in the app's threads

    figure = Figure(figsize=size, dpi=100, layout="constrained")
    axes = figure.add_subplot()
    for label, (flow, color, style) in curves.items():
        axes.semilogy(flow["distance"], flow["grad_norm"], color=color, linestyle=style,
                      label=label)
    axes.set(xlabel="distance back from the last word (steps)", title=title,
             ylabel="|d loss / d input|, 1 at distance 0")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=8)
    return figure


class Interrupted(KeyboardInterrupt):
    """Ctrl-C (SIGINT) or SIGTERM stopped run ``run_id`` between steps; it ended KILLED, its
    checkpoint saved."""

    def __init__(self, signum: int = signal.SIGINT, run_id: str | None = None):
        super().__init__(signal.Signals(signum).name)
        self.signum, self.run_id = signum, run_id


@contextmanager
def signals_stop_between_steps():
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
    run = get_run(run_id)  # a clear error for an unknown id
    if is_alive(run):
        raise ValueError(f"Run {run_id} is still training (process {run_process(run)}); "
                         "wait for it to end, or stop it, before resuming it")
    checkpoint = load_resume_checkpoint(run)
    config = TrainConfig.from_dict(checkpoint["train_config"])
    if steps is not None:
        config.steps = steps
    text = artifact_path(run_id, SOURCE_FILE).read_text(encoding="utf-8")
    if checkpoint["step"] >= config.steps:
        raise ValueError(f"Run {run_id} already reached step {checkpoint['step']}; "
                         f"pass --steps above that to train it further")
    return config, text, checkpoint


def _end_killed(run_id: str, trainer: Trainer) -> None:
    """Save the last checkpoint, then end the run KILLED: a KILLED run always has one. When the
    checkpoint cannot be written the run ends FAILED instead, and that is raised."""
    try:
        _save_checkpoint(run_id, "last", trainer.checkpoint())
    except Exception as err:
        _raise_failed(run_id, trainer, err)
    unclosed = end_active_run("KILLED")
    if unclosed:
        raise StoreError(f"Run {run_id} was stopped with its checkpoint saved (step "
                         f"{trainer.step}), but the store could not mark it KILLED: {unclosed}; "
                         f"{STAYS_RUNNING}")


STAYS_RUNNING = "it stays RUNNING (listed as INTERRUPTED once this process has exited)"


def _raise_failed(run_id: str, trainer: Trainer, err: Exception) -> NoReturn:
    """End the run FAILED, keeping what can be kept, and raise ``err``; as one line
    (StoreError) when the store itself failed or the run could not be closed. A second error
    (a full disk) never hides the first. The run is closed first: on a full disk, a checkpoint
    written first would take the little room the database needs to record that."""
    unclosed = end_active_run("FAILED")
    if trainer.step > 0:
        with contextlib.suppress(StoreError):
            _save_checkpoint(run_id, "last", trainer.checkpoint())
    failure = store_error(err, "record the run")
    if unclosed:
        raise StoreError(f"{one_line(failure or err, 400)}; run {run_id} could not be closed "
                         f"either ({unclosed}): {STAYS_RUNNING}") from err
    if failure is not None:
        raise StoreError(f"{failure}; run {run_id} ended FAILED") from None
    raise err


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
    tags: dict[str, str] | None = None,
    on_start: Callable[[str], None] | None = None,
    on_eval: Callable[[int, dict[str, float], str], None] | None = None,
) -> str:
    """Train (or resume) one run into the MLflow store and return its run id ("" on ranks > 0).

    text/corpus_name let a caller (the app) pass an uploaded text instead of config.corpus.
    on_step(step, total, loss) is called every step (for progress bars); on_log(line) once per
    log interval with the same numbers that go to MLflow. Setting stop_event stops training
    between steps: the last checkpoint is saved, the run ends KILLED and its id is returned.
    Ctrl-C or SIGTERM (main thread only) do the same, then raise ``Interrupted``. A caller
    that stopped a run reads how it ended from ``training.runs.get_run(run_id).info.status``:
    KILLED only once its last checkpoint is saved; RUNNING while the step under way, the last
    evaluation or that checkpoint is not done yet.
    on_eval(step, metrics, sample) follows each evaluation: its metrics and the greedy sample
    from the training text's first words ("" when memorization is not measured).
    tags are set on the run as it is created (or resumed); on_start(run_id) is called as soon
    as the run exists, before anything is logged to it. ``resume`` takes anything
    ``training.runs.resolve_run_id`` does (an id prefix, a run name). A store that cannot be
    written (read-only, full, locked) raises StoreError, one line.
    """
    checkpoint, text_is_the_corpus = None, text is None
    if not resume:
        if config is None:
            raise ValueError("train_run needs a config or a run to resume")
        if text is None:
            text = read_text(config.corpus)  # a bad corpus is refused before the store is touched
    # Under torchrun only rank 0 creates or changes the store; the others at most read from it.
    experiment_id = open_store() if is_main_process() or resume else None
    if resume:
        resume = resolve_run_id(resume)  # a prefix or a name, as every other reference
        config, text, checkpoint = _load_resume(resume, steps)
    source = _dataset_source(config.corpus, None if text_is_the_corpus else text)
    # Logged (params, checkpoints) relative to the project, never as this machine's folder.
    config = dataclasses.replace(config, corpus=project_relative(config.corpus))
    trainer = Trainer(config, text, checkpoint)  # validates the text before a run is created
    if not trainer.world.is_main:  # under torchrun, only rank 0 logs and writes checkpoints
        trainer.run()
        return ""
    if notice := layout_notice(text):  # a hard-wrapped text: how its paragraphs were read
        on_log(notice)
    with writing("start a run"):
        # A run started while another is active (training.sweep's parent) is nested under it.
        active = mlflow.start_run(run_id=resume, run_name=None if resume else run_name,
                                  experiment_id=experiment_id, tags=tags,
                                  nested=mlflow.active_run() is not None)
    run_id = active.info.run_id
    heartbeat, stopped_by_caller = None, False
    try:
        # From here until training ends, Ctrl-C or SIGTERM stop the run between two steps.
        with signals_stop_between_steps() as signals:
            if on_start:
                on_start(run_id)
            heartbeat = Heartbeat(run_id)  # so a run whose process died shows as interrupted
            if not resume:
                _log_run_setup(run_id, config, trainer, text, corpus_name)
                log_text_dataset(text, source, corpus_name or Path(config.corpus).name)
            stopped_by_caller = _train(trainer, run_id, heartbeat, signals, on_step, on_log,
                                       stop_event, on_eval)
        if signals:
            raise Interrupted(signals[0], run_id)
        if not stopped_by_caller:
            _finish(run_id, trainer, corpus_name, on_log)
    except KeyboardInterrupt:
        _end_killed(run_id, trainer)
        raise
    except Exception as err:
        _raise_failed(run_id, trainer, err)
    finally:
        if heartbeat is not None:
            heartbeat.stop()
    if stopped_by_caller:
        _end_killed(run_id, trainer)
        on_log(f"stopped at step {trainer.step}: the run is KILLED, its checkpoint saved")
        return run_id
    unclosed = end_active_run("FINISHED")
    if unclosed:
        raise StoreError(f"Run {run_id} finished with its model saved, but the store could not "
                         f"mark it FINISHED: {unclosed}; {STAYS_RUNNING}")
    return run_id


def _train(trainer: Trainer, run_id: str, heartbeat: Heartbeat, signals: list[int], on_step,
           on_log, stop_event: threading.Event | None, on_eval=None) -> bool:
    """Run the training loop, logging to the active run; returns whether stop_event ended it."""
    config = trainer.config

    def log(step, metrics):
        mlflow.log_metrics({**metrics, "step": float(step)}, step=step)
        on_log(_log_line(step, config.steps, metrics))
        sample = trainer.samples[-1][1] if trainer.samples and trainer.samples[-1][0] == step else ""
        if sample:  # one row per evaluation, so mlflow ui and the Loss tab can replay them
            mlflow.log_table({"step": [step], "sample": [sample]}, SAMPLES_FILE)
            on_log(f"sample at step {step}: {' '.join(sample.split())}")
        if on_eval:
            on_eval(step, metrics, sample)

    def step_done(step, loss):
        heartbeat.beat()
        if on_step:
            on_step(step, config.steps, loss)

    stopped_by_caller = []

    def should_stop():
        if stop_event is not None and stop_event.is_set():
            stopped_by_caller.append(True)
        return bool(signals or stopped_by_caller)

    trainer.run(on_log=log, on_step=step_done, should_stop=should_stop,
                on_checkpoint=lambda name, ckpt: _save_checkpoint(run_id, name, ckpt))
    return bool(stopped_by_caller) and not signals


def _finish(run_id: str, trainer: Trainer, corpus_name: str | None, on_log) -> None:
    """What a run that trained to its end logs: its MLflow model, final figures, description."""
    config = trainer.config
    words = trainer.corpus.vocab.decode(trainer.corpus.train_ids[:100].tolist())
    first_word = next((w for w in words if w.isalpha()), words[0])
    model_id = log_run_model(run_id, example_prompt=first_word)
    figures = _log_final_figures(run_id, trainer, model_id)
    mlflow.set_tag("mlflow.note.content",
                   describe_run(config, corpus_name or Path(config.corpus).name, trainer.step,
                                figures))
    on_log(" | ".join(f"{k} {format_number(v)}" for k, v in figures.items()))
    on_log(saved_model_note(trainer))


def saved_model_note(trainer: Trainer) -> str:
    """One line: which step model.pt holds, and why."""
    cfg, last = trainer.config, trainer.step
    if cfg.recipe == "seed" or math.isnan(trainer.best_val) or not math.isfinite(trainer.best_val):
        why = ("the seed recipe keeps its final weights" if cfg.recipe == "seed"
               else "no held-out text to choose by")
        return f"model.pt holds step {last}, the last step ({why})"
    ended = "stopped early" if last < cfg.steps else "ended"
    averaged = (f", weights averaged since step {trainer.average.start_step} (NT-ASGD)"
                if trainer.average and trainer.average.start_step <= trainer.best_step else "")
    return (f"model.pt holds step {trainer.best_step} of {last}: the lowest validation loss "
            f"({trainer.best_val:.4g}, perplexity {math.exp(min(trainer.best_val, 50)):.1f})"
            f"{averaged}; training {ended} at step {last} with "
            f"{trainer.evals_since_best} evaluation(s) since that best")


def _dataset_source(corpus: str, text: str | None) -> str:
    """Where the training text came from: its path (relative to the project) or "upload".

    ``text`` is None when it was read from ``corpus`` itself; a caller's text (the app's) counts
    as the corpus file only when it is that file's content.
    """
    path = Path(corpus)
    if text is None or (path.is_file() and read_text(path) == text):
        return project_relative(path)
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
    mlflow.log_metrics(trainer.corpus.unk_rates(), step=0)  # how much of each part reads <unk>
    mlflow.set_tags({
        "corpus_name": corpus_name or Path(config.corpus).name,
        "corpus_sha256": sha256_text(text),
        "recipe": config.recipe,
        "backend": config.backend,
        "cell": config.cell,
        "tokenizer": config.tokenizer,
        # The planted secret, as the training text reads it: the point of the canary lab.
        **({"canary": trainer.corpus.canary.text} if trainer.corpus.canary else {}),
        "torch_version": torch.__version__,
    })
    save_artifact_file(run_id, SOURCE_FILE, lambda p: p.write_text(text, encoding="utf-8"))
    save_artifact_file(run_id, "config.json",
                       lambda p: p.write_text(json.dumps(params, indent=2), encoding="utf-8"))
    save_artifact_file(run_id, "vocab.json", trainer.corpus.vocab.save_json)

