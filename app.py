"""The Space's entry point: open the run store, build the Gradio app (ui/), serve it.

    python app.py            # http://127.0.0.1:7860 (GRADIO_SERVER_NAME / _PORT, MLFLOW_TRACKING_URI)

When the store has no runs, a small default model is trained first, so the app has one to show.
"""

from __future__ import annotations

import os
import signal
import sys

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import torch  # noqa: E402

import ui  # noqa: E402
from training import runs  # noqa: E402
from training.config import DEFAULT_CORPUS, TrainConfig  # noqa: E402
from training.store import StoreError, tracking_uri  # noqa: E402
from training.tracking import train_run  # noqa: E402
from ui import training_job  # noqa: E402

DEFAULT_RUN_NAME = "demo-windows-default"
# Each request's model work runs on one core: a word's small matrix products gain nothing from
# a second, and two requests at once (ui.limits.COMPUTE_SLOT) keep both busy.
SERVE_THREADS = 1


def ensure_runs(steps: int = 300) -> None:
    """Train a small default model when the store is empty, so the app has something to show."""
    listed = runs.list_runs()
    if not listed.empty:
        print(f"{len(listed)} run(s) in {tracking_uri()}")
        return
    print(f"The store {tracking_uri()} has no runs: training a small default model "
          f"({DEFAULT_RUN_NAME}: windows recipe, {DEFAULT_CORPUS.name}, {steps} steps) first…")
    config = TrainConfig.for_recipe("windows", steps=steps, embed_dim=64, hidden_size=64)
    print(f"trained run {train_run(config, run_name=DEFAULT_RUN_NAME)}")


def _sigterm_as_ctrl_c(signum, frame):
    raise KeyboardInterrupt  # Gradio's launch() stops the server on it, as on Ctrl-C


def main() -> int:
    try:
        ensure_runs()
    except StoreError as err:  # locked, corrupt, unreachable: one line, no traceback
        print(f"app.py: {err}", file=sys.stderr)
        return 1
    signal.signal(signal.SIGTERM, _sigterm_as_ctrl_c)
    torch.set_num_threads(SERVE_THREADS)  # threads started from now on (the request workers)
    try:
        ui.launch(ui.build_demo(), server_name=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"))
    finally:  # Ctrl-C or SIGTERM: stop a training run in progress, then say how it ended
        run_id = training_job.stop_for_shutdown()
        if run_id:
            print(f"app.py: {training_job.how_it_ended(run_id)}", flush=True)
            # The run is ended and its checkpoint on disk; the threads the training started
            # (torch's, MLflow's) can abort the interpreter's own shutdown, so skip it.
            os._exit(0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
