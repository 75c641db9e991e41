"""The one training the app runs at a time, in a worker thread: who may stop it, its time
limit, the run it tags as the app's, and the pruning of old app runs when it ends."""

from __future__ import annotations

import threading
import time

import torch

from training import runs
from training.config import TrainConfig
from training.tracking import train_run
from ui import limits

APP_TAG = "trained_in_app"  # set to "true" on runs the app trained: only those are ever pruned
BUSY = "A training run is already in progress, try again in a minute."
SHUTDOWN_WAIT_S = 20  # on shutdown, how long to wait for a training run to end as KILLED
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
            on_log=job.lines.append, on_step=job.on_step, stop_event=job.stop)
        removed = runs.prune_runs(APP_TAG, "true", limits.KEEP_APP_RUNS)
        if removed:
            job.lines.append(f"removed {len(removed)} older app run(s): the app keeps the "
                             f"newest {limits.KEEP_APP_RUNS}")
    except Exception as err:  # shown by the Train event as one line
        job.error = err
    finally:
        _JOB = None
        _LOCK.release()


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
    """When the app shuts down: end its training run as KILLED (checkpoint saved) and wait."""
    job = _JOB
    if job is None or job.thread is None:
        return None
    job.stopped_because = "the app shut down"
    job.stop.set()
    job.thread.join(wait_s)
    return job.run_id
