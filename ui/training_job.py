"""The one training the app runs at a time, in a worker thread: who may stop it, its time
limit, the run it tags as the app's, and the pruning of old app runs when it ends."""

from __future__ import annotations

import threading
import time

import torch
from mlflow import MlflowClient

from training import runs
from training.checkpoints import LAST_FILE, MODEL_FILE, load_checkpoint
from training.config import TrainConfig
from training.store import StoreError, artifact_path, one_line, public, store_reason
from training.tracking import train_run
from ui import limits

APP_TAG = "trained_in_app"  # set to "true" on runs the app trained: only those are ever pruned
BUSY = "A training run is already in progress, try again in a minute."
SHUTDOWN_WAIT_S = 20  # on shutdown, how long to wait for a training run to end as KILLED
ENDED_TAG = "ended_because"  # set on a run the app had to end itself at shutdown, mid-step
# Serving pins each request to one core (app.py); a training run keeps every core it found.
TRAIN_THREADS = torch.get_num_threads()


class TrainingJob:
    """The training in progress: its thread, its stop switch, who started it, what it logs."""

    def __init__(self, session: str | None, seconds: float):
        self.session = session  # the browser session (or API client) allowed to stop it
        self.stop = threading.Event()  # set by Stop, the time limit or shutdown
        self.deadline = time.monotonic() + seconds
        self.stopped_because = ""
        self.thread: threading.Thread | None = None
        self.run_id: str | None = None
        self.step, self.loss = 0, float("nan")
        self.lines: list[str] = []  # the training log, as the CLI prints it
        self.error: Exception | None = None
        # Each evaluation's figures and greedy sample, for the Train tab's live curves.
        self.evals: list[tuple[int, dict[str, float], str]] = []

    def on_eval(self, step: int, metrics: dict[str, float], sample: str) -> None:
        self.evals.append((step, dict(metrics), sample))

    def on_step(self, step: int, total: int, loss: float) -> None:
        if time.monotonic() > self.deadline and not self.stop.is_set():
            self.stopped_because = f"the app's time limit of {limits.MAX_TRAIN_SECONDS // 60} minutes"
            self.stop.set()
        self.step, self.loss = step, loss


_LOCK = threading.Lock()  # one training at a time on a shared machine
_JOB: TrainingJob | None = None  # the training in progress, if any (set under _LOCK)


def start(config: TrainConfig, text: str, corpus_name: str, run_name: str,
          session: str | None, owner: str = "") -> TrainingJob:
    """Start training in a worker thread, or refuse at once if one is in progress. A run with
    an ``owner`` is private: only that owner's page lists, loads or shows it."""
    global _JOB
    if not _LOCK.acquire(blocking=False):
        raise limits.refusal(BUSY)
    _JOB = job = TrainingJob(session, limits.MAX_TRAIN_SECONDS)
    job.thread = threading.Thread(target=_work, daemon=True,
                                  args=(job, config, text, corpus_name, run_name, owner))
    job.thread.start()  # the worker releases the lock when done, even if the page goes away
    return job


def _work(job: TrainingJob, config: TrainConfig, text: str, corpus_name: str,
          run_name: str, owner: str) -> None:
    """The worker thread: train the run tagged as the app's, then prune old app runs."""
    global _JOB
    torch.set_num_threads(TRAIN_THREADS)  # this thread's own setting
    try:
        job.run_id = train_run(
            config, run_name=run_name, text=text, corpus_name=corpus_name,
            tags={APP_TAG: "true", **({runs.OWNER_TAG: owner} if owner else {})}, on_start=lambda run_id: setattr(job, "run_id", run_id),
            on_log=job.lines.append, on_step=job.on_step, on_eval=job.on_eval,
            stop_event=job.stop)
        _prune(job)
    except Exception as err:  # shown by the Train event as one line
        job.error = err
    finally:
        _JOB = None
        _LOCK.release()


def _prune(job: TrainingJob) -> None:
    """Delete the oldest app runs. A store that refuses leaves them, and the run just trained
    is still done: the log says so instead of the training failing."""
    try:
        removed = runs.prune_runs(APP_TAG, "true", limits.KEEP_APP_RUNS)
    except StoreError as err:
        job.lines.append(f"older app runs were not removed: {public(one_line(err, 300))}")
        return
    if removed:
        job.lines.append(f"removed {len(removed)} older app run(s): the app keeps the "
                         f"newest {limits.KEEP_APP_RUNS}")


def failure_message(err: Exception) -> str:
    """The one line the Train tab shows for a training that ended in an error. A store that
    cannot be used (read-only, full, damaged) is said as itself, by name, never by path."""
    if isinstance(err, StoreError):
        return public(one_line(err, 400))
    return f"Training failed: {public(one_line(err))}"


def stop(session: str | None) -> str:
    """Stop the training in progress between two steps; the run ends KILLED, checkpoint saved."""
    job = _JOB
    if job is None:
        raise limits.refusal("No training is in progress.")
    if job.session != session:
        raise limits.refusal("Only the page that started this training can stop it; it ends by "
                       f"itself within {limits.MAX_TRAIN_SECONDS // 60} minutes.")
    job.stopped_because = "Stop was pressed"
    job.stop.set()
    return "Stopping after the current step…"


def stop_for_shutdown(wait_s: float = SHUTDOWN_WAIT_S) -> str | None:
    """When the app shuts down: stop its training run between two steps and wait ``wait_s``
    for it to end KILLED with a fresh checkpoint. A step can take longer than that; the run is
    then ended here, as what it has: KILLED with its last checkpoint, or FAILED without one
    (a KILLED run always has a checkpoint). Returns the run id, None if nothing was training
    (``how_it_ended`` says what happened to it)."""
    job = _JOB
    if job is None or job.thread is None:
        return None
    job.stopped_because = "the app shut down"
    job.stop.set()
    job.thread.join(wait_s)
    if job.thread.is_alive() and job.run_id:
        _end_mid_step(job.run_id)
    return job.run_id


def checkpoint_step(run_id: str) -> int | None:
    """The step of the run's latest checkpoint (last.pt, else model.pt), None if it has none."""
    for name in (LAST_FILE, MODEL_FILE):
        try:
            path = artifact_path(run_id, name)
            if path.exists():
                return int(load_checkpoint(path)["step"])
        except Exception:  # unreadable or half there: not a checkpoint to count on
            continue
    return None


def _end_mid_step(run_id: str) -> None:
    """End a run whose step outlasted the shutdown wait, in the state its files allow."""
    step = checkpoint_step(run_id)
    if step is None:
        status, why = "FAILED", ("the app shut down during a step, before the run's first "
                                 "checkpoint: nothing of it can be loaded or resumed")
    else:
        status, why = "KILLED", (f"the app shut down during a step; the run keeps its last "
                                 f"checkpoint, of step {step}")
    try:
        client = MlflowClient()
        client.set_tag(run_id, ENDED_TAG, why)
        client.set_terminated(run_id, status)
    except Exception as err:
        if store_reason(err) is None:
            raise  # a bug, not the store: let it show


def how_it_ended(run_id: str) -> str:
    """One line on how a run stopped at shutdown ended, read back from the store."""
    try:
        run = runs.get_run(run_id)
    except Exception as err:
        return f"training run {run_id}: the store could not say how it ended ({one_line(err)})"
    status, step = run.info.status, checkpoint_step(run_id)
    kept = f"its last checkpoint is of step {step}" if step is not None else "it has no checkpoint"
    if status == "RUNNING":
        return (f"training run {run_id} could not be ended in the store, so it stays RUNNING "
                f"(listed as INTERRUPTED once the app has exited); {kept}")
    return f"training run {run_id} ended {status}; {kept}"
