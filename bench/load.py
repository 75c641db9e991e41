"""Load: many concurrent gradio_client callers against the app, with one training job mixed in.

    python -m bench.load [--callers 16] [--calls 25] [--markdown]

Starts `python app.py` on 127.0.0.1 with a temporary copy of the project store (so the training
job does not add a run to mlruns/), waits until it serves, then runs `callers` threads that each
make `calls` /generate requests while one /train request trains a small model. Reports errors
(the target is zero), latency percentiles and throughput, and how long the app took to serve.
Traffic goes to loopback only; every loop is bounded.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench.table import print_table

ROOT = Path(__file__).resolve().parents[1]
SEEDS = ["the lamp", "i was", "the sea", "the keeper", "in the"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_app(store: Path, port: int) -> tuple[subprocess.Popen, float]:
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{store / 'mlflow.db'}",
           "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(port),
           "GRADIO_ANALYTICS_ENABLED": "False"}
    started = time.perf_counter()
    app = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = started + 120
    while time.perf_counter() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return app, time.perf_counter() - started
        except OSError:
            assert app.poll() is None, "the app exited during start-up"
            time.sleep(0.2)
    app.kill()
    raise RuntimeError("the app did not start within 120 s")


def caller(url: str, run_id: str, calls: int, index: int, latencies: list, errors: list) -> None:
    from gradio_client import Client

    client = Client(url, verbose=False)
    for k in range(calls):
        started = time.perf_counter()
        try:
            result = client.predict(run_id, SEEDS[(index + k) % len(SEEDS)], 30, 0.8, 0, 1.0,
                                    index * 1000 + k, api_name="/generate")
            assert isinstance(result[0], str) and len(result[0].split()) >= 20
            latencies.append(time.perf_counter() - started)
        except Exception as err:  # every failure is counted and reported, none stops the run
            errors.append(f"{type(err).__name__}: {err}"[:200])


def trainer(url: str, outcome: dict) -> None:
    from gradio_client import Client

    started = time.perf_counter()
    try:
        Client(url, verbose=False).predict(None, "windows", 100, 32, 0.3, 0.005, "load-test",
                                           api_name="/train")
        outcome["seconds"] = time.perf_counter() - started
    except Exception as err:  # reported in the table
        outcome["error"] = f"{type(err).__name__}: {err}"[:200]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--callers", type=int, default=16)
    parser.add_argument("--calls", type=int, default=25)
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args(argv)
    os.environ["MLFLOW_TRACKING_URI"] = ""
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "mlruns"
        shutil.copytree(ROOT / "mlruns", store)
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{store / 'mlflow.db'}"
        from training.registry import list_runs

        runs = list_runs()
        run_id = runs.loc[runs["name"] == "demo-windows", "run_id"].iloc[0]
        port = free_port()
        app, startup = start_app(store, port)
        url = f"http://127.0.0.1:{port}/"
        latencies, errors, training = [], [], {}
        try:
            threads = [threading.Thread(target=trainer, args=(url, training))]
            threads += [threading.Thread(target=caller, args=(url, run_id, args.calls, i,
                                                              latencies, errors))
                        for i in range(args.callers)]
            started = time.perf_counter()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=900)
            wall = time.perf_counter() - started
        finally:
            app.terminate()
            app.wait(timeout=30)
    total = args.callers * args.calls
    quantiles = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [float("nan")] * 99
    rows = [
        ("app serving after launch", f"{startup:.1f} s", "<= 10 s"),
        ("/generate calls (30 words each)", f"{total} from {args.callers} callers", ""),
        ("errors", str(len(errors)), "0"),
        ("latency p50", f"{quantiles[49] * 1000:.0f} ms", ""),
        ("latency p95", f"{quantiles[94] * 1000:.0f} ms", ""),
        ("throughput", f"{len(latencies) / wall:.1f} generations/s", ""),
        ("training job (100 steps) alongside", training.get("error") or
         f"{training.get('seconds', float('nan')):.1f} s", "completes"),
    ]
    print_table([("measure", "value", "target"), *rows], args.markdown)
    for err in errors[:5]:
        print("error:", err)
    return 0 if not errors and "error" not in training else 1


if __name__ == "__main__":
    raise SystemExit(main())
