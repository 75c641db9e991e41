"""Past one process: torchrun data parallelism and a shared MLflow tracking server."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
from mlflow.tracking import MlflowClient

from conftest import ROOT
from lstm_core.generate import SamplingConfig, encode_prompt, generate_ids
from training.config import TrainConfig
from training.runs import get_run, list_runs, load_run, metric_history
from training.store import local_artifact_dir, open_store
from training.tracking import train_run

# Small and dropout-free, so two processes and one can follow the same trajectory exactly.
TINY = ["--steps", "6", "--eval-interval", "2", "--batch-size", "8", "--dropout", "0",
        "--hidden-size", "16", "--embed-dim", "16", "--seed", "11"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def losses(run_id: str) -> list[float]:
    open_store()  # points MLflow at this test's store (another test may have moved it)
    return [m.value for m in MlflowClient().get_metric_history(run_id, "train_loss")]


def test_two_processes_match_one_with_the_same_global_batch(temp_store):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    torchrun = shutil.which("torchrun", path=os.path.dirname(sys.executable))
    two = subprocess.run([torchrun, "--standalone", "--nproc_per_node", "2", "-m", "training", *TINY],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert two.returncode == 0, two.stderr[-3000:]
    run_ids = [line.removeprefix("run_id=") for line in two.stdout.splitlines()
               if line.startswith("run_id=")]
    assert len(run_ids) == 1, "only rank 0 may create a run"
    one = subprocess.run([sys.executable, "-m", "training", *TINY], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=300)
    assert one.returncode == 0, one.stderr[-3000:]
    single = one.stdout.strip().splitlines()[-1].removeprefix("run_id=")
    assert get_run(run_ids[0]).data.params["world_size"] == "2"
    assert get_run(single).data.params["world_size"] == "1"
    # Gradients averaged over two halves of a batch equal the gradient of the whole batch, up to
    # float32 summation order.
    assert losses(run_ids[0]) == pytest.approx(losses(single), rel=1e-4)
    assert len(list_runs()) == 2


def test_a_batch_that_does_not_split_evenly_is_refused():
    from training.distributed import World
    from training.loop import Batches, Corpus

    config = TrainConfig(batch_size=5)
    corpus = Corpus.from_text("the lamp turns and the light goes round. " * 20, config)
    with pytest.raises(ValueError, match="divide evenly"):
        Batches(corpus, config, generator=None, world=World(rank=0, size=2))


@pytest.fixture
def tracking_server(tmp_path, monkeypatch):
    port = free_port()
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    env.pop("MLFLOW_TRACKING_URI", None)
    mlflow_cli = shutil.which("mlflow", path=os.path.dirname(sys.executable))
    server = subprocess.Popen(
        [mlflow_cli, "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
         "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}",
         "--artifacts-destination", str(tmp_path / "server-artifacts")],
        cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 90
        while True:
            try:
                if urllib.request.urlopen(f"{url}/health", timeout=2).read() == b"OK":
                    break
            except OSError:
                pass
            assert server.poll() is None, "mlflow server exited"
            assert time.time() < deadline, "mlflow server did not start in 90 s"
            time.sleep(0.5)
        monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
        yield tmp_path
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_training_into_a_tracking_server_and_reading_it_back(tracking_server):
    config = TrainConfig.for_recipe("windows", steps=10, eval_interval=5, embed_dim=16,
                                    hidden_size=16, batch_size=8)
    run_id = train_run(config, run_name="served", on_log=lambda line: None)
    assert local_artifact_dir(run_id) is None  # artifacts go through the server
    stored = list((tracking_server / "server-artifacts").rglob("model.pt"))
    # The run's own checkpoint, and its copy inside the logged MLflow model.
    assert len([p for p in stored if run_id in p.parts]) == 1
    assert len([p for p in stored if "models" in p.parts]) == 1
    table = list_runs()
    assert list(table["name"]) == ["served"] and table.loc[0, "steps"] == 10
    loaded = load_run(run_id)
    ids = generate_ids(loaded.model, encode_prompt("the lamp", loaded.vocab),
                       SamplingConfig(max_new_tokens=5))
    assert len(ids) == 7
    assert len(metric_history(run_id)) == 4
