"""Load: a classroom at once, against the floor that Gradio itself sets on this machine.

    python -m bench.load [--callers 16] [--calls 25] [--rounds 2] [--markdown]

Starts two servers on 127.0.0.1: `python app.py` with a temporary copy of the project store (so
the training job does not add a run to mlruns/), and a trivial Gradio app that only echoes its
text (the floor: all the work Gradio does per call, none of ours). Both are driven the same way,
`callers` gradio_client threads making `calls` requests each, in interleaved rounds (trivial,
ours, trivial, ours, ...; medians of the rounds reported), with no other work running. Then one
last round drives our app while one /train request trains a small model alongside. Reports
errors (the target is zero), latency percentiles, throughput, and the ratios against the floor
(targets: our throughput >= 80% of the trivial app's, our p95 <= 1.25x its p95). Traffic goes
to loopback only; every loop is bounded.
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
THROUGHPUT_TARGET, P95_TARGET = 0.8, 1.25  # ours / trivial


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serve_echo() -> None:
    """The trivial app: one text box echoed back, Gradio's default queue."""
    import gradio as gr

    with gr.Blocks() as demo:
        text, out = gr.Textbox(), gr.Textbox()
        text.submit(lambda value: value, text, out, api_name="echo")
    demo.queue().launch(server_name="127.0.0.1", quiet=True)


def start_server(command: list[str], env: dict, port: int) -> tuple[subprocess.Popen, float]:
    """Start a server process and wait until its port accepts connections."""
    env = {**env, "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(port),
           "GRADIO_ANALYTICS_ENABLED": "False"}
    started = time.perf_counter()
    server = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    deadline = started + 120
    while time.perf_counter() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return server, time.perf_counter() - started
        except OSError:
            if server.poll() is not None:
                raise RuntimeError(f"{' '.join(command[1:])} exited during start-up") from None
            time.sleep(0.2)
    server.kill()
    raise RuntimeError(f"{' '.join(command[1:])} did not start within 120 s")


def generate_call(run_id: str):
    def call(client, index: int, k: int) -> None:
        result = client.predict(run_id, SEEDS[(index + k) % len(SEEDS)], 30, 0.8, 0, 1.0,
                                index * 1000 + k, api_name="/generate")
        assert isinstance(result[0], str) and len(result[0].split()) >= 20
    return call


def echo_call(client, index: int, k: int) -> None:
    text = SEEDS[(index + k) % len(SEEDS)]
    assert client.predict(text, api_name="/echo") == text


def caller(url: str, call, calls: int, index: int, latencies: list, errors: list) -> None:
    from gradio_client import Client

    client = Client(url, verbose=False)
    for k in range(calls):
        started = time.perf_counter()
        try:
            call(client, index, k)
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


def drive(url: str, call, callers: int, calls: int, training: dict | None = None) -> dict:
    """One round: `callers` threads x `calls` requests (and a /train request when asked)."""
    latencies, errors = [], []
    threads = [threading.Thread(target=caller, args=(url, call, calls, i, latencies, errors))
               for i in range(callers)]
    if training is not None:
        threads.append(threading.Thread(target=trainer, args=(url, training)))
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=900)
    wall = time.perf_counter() - started
    quantiles = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [float("nan")] * 99
    return {"p50": quantiles[49], "p95": quantiles[94], "throughput": len(latencies) / wall,
            "errors": errors}


def median_round(rounds: list[dict]) -> dict:
    merged = {k: statistics.median(r[k] for r in rounds) for k in ("p50", "p95", "throughput")}
    return {**merged, "errors": [e for r in rounds for e in r["errors"]]}


def run_rounds(args, store: Path, run_id: str) -> tuple[dict, dict, dict, dict, dict]:
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{store / 'mlflow.db'}"}
    ours_port, echo_port = free_port(), free_port()
    ours_url, echo_url = f"http://127.0.0.1:{ours_port}/", f"http://127.0.0.1:{echo_port}/"
    servers, startup = [], {}
    try:
        for name, command, port in (("ours", [sys.executable, "app.py"], ours_port),
                                    ("trivial", [sys.executable, "-m", "bench.load", "--serve-echo"],
                                     echo_port)):
            server, startup[name] = start_server(command, env, port)
            servers.append(server)
        drive(ours_url, generate_call(run_id), 1, 2)  # load the model once, outside the clock
        drive(echo_url, echo_call, 1, 2)
        trivial, ours = [], []
        for _ in range(args.rounds):
            trivial.append(drive(echo_url, echo_call, args.callers, args.calls))
            ours.append(drive(ours_url, generate_call(run_id), args.callers, args.calls))
        training = {}
        alongside = drive(ours_url, generate_call(run_id), args.callers, args.calls, training)
    finally:
        for server in servers:
            server.terminate()
            server.wait(timeout=30)
    return startup, median_round(trivial), median_round(ours), alongside, training


def result_rows(args, startup, trivial, ours, alongside, training) -> list[tuple[str, ...]]:
    def row(name, r):
        return (name, str(len(r["errors"])), f"{r['p50'] * 1000:.0f} ms", f"{r['p95'] * 1000:.0f} ms",
                f"{r['throughput']:.1f}/s")

    throughput = ours["throughput"] / trivial["throughput"]
    p95 = ours["p95"] / trivial["p95"]
    train_note = training.get("error") or f"{training.get('seconds', float('nan')):.1f} s"
    return [
        ("measure", "errors", "latency p50", "latency p95", "throughput"),
        row(f"trivial echo app (median of {args.rounds} rounds)", trivial),
        row(f"our /generate, 30 words (median of {args.rounds} rounds)", ours),
        row(f"our /generate with a 100-step /train alongside ({train_note})", alongside),
        ("ours / trivial", f"target 0 ({'pass' if not ours['errors'] else 'miss'})", "",
         f"{p95:.2f}x (target <= {P95_TARGET}x: {'pass' if p95 <= P95_TARGET else 'miss'})",
         f"{throughput:.0%} (target >= {THROUGHPUT_TARGET:.0%}: "
         f"{'pass' if throughput >= THROUGHPUT_TARGET else 'miss'})"),
        ("serving after launch (ours, trivial)", "", "",
         f"{startup['ours']:.1f} s, {startup['trivial']:.1f} s", "target <= 10 s"),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--callers", type=int, default=16, choices=range(1, 65), metavar="1..64")
    parser.add_argument("--calls", type=int, default=25, choices=range(1, 201), metavar="1..200")
    parser.add_argument("--rounds", type=int, default=2, choices=range(1, 11), metavar="1..10")
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--serve-echo", action="store_true", help="run the trivial app (internal)")
    args = parser.parse_args(argv)
    if args.serve_echo:
        serve_echo()
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "mlruns"
        shutil.copytree(ROOT / "mlruns", store)
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{store / 'mlflow.db'}"
        from training.registry import list_runs

        runs = list_runs()
        run_id = runs.loc[runs["name"] == "demo-windows", "run_id"].iloc[0]
        startup, trivial, ours, alongside, training = run_rounds(args, store, run_id)
    print_table(result_rows(args, startup, trivial, ours, alongside, training), args.markdown)
    errors = ours["errors"] + alongside["errors"] + trivial["errors"]
    for err in errors[:5]:
        print("error:", err)
    return 0 if not errors and "error" not in training else 1


if __name__ == "__main__":
    raise SystemExit(main())
