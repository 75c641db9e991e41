"""Load: a classroom on one Space, against the floor Gradio itself sets on this machine.

    python -m bench.load [--students 30] [--seconds 90] [--app-dir DIR] [--markdown]

Starts two servers on 127.0.0.1: ``python app.py`` on a temporary copy of the project store,
and a trivial Gradio app that only echoes its text (all the work Gradio does per call, none of
ours). Each is driven in turn by the same classroom: ``students`` gradio_client threads, each
clicking Generate (60 words, temperature 0.8, its own seed), reading, and clicking again after
an exponential think time of mean 8 s, for ``seconds``. Reports errors, the latency to the
full text (p50, p95) and the ratio of the two p95s. Targets: 0 errors, our p95 under 1.5 s and
at most 3x the echo app's. ``--app-dir`` drives the app of another checkout (to measure a
change side by side); traffic goes to loopback only and every loop is bounded.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench.table import print_table

ROOT = Path(__file__).resolve().parents[1]
PROMPTS = ["the lamp", "i was", "the sea", "the keeper", "in the"]
THINK_S, WORDS, TEMPERATURE = 8.0, 60, 0.8
P95_LIMIT_S, P95_RATIO = 1.5, 3.0


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


def start_server(command: list[str], cwd: Path, env: dict, port: int) -> subprocess.Popen:
    """Start a server process and wait (at most 120 s) until its port accepts connections."""
    env = {**env, "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(port),
           "GRADIO_ANALYTICS_ENABLED": "False"}
    server = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return server
        except OSError:
            if server.poll() is not None:
                raise RuntimeError(f"{' '.join(command[1:])} exited during start-up") from None
            time.sleep(0.2)
    server.kill()
    raise RuntimeError(f"{' '.join(command[1:])} did not start within 120 s")


def demo_run_id(db: Path, name: str = "demo-windows") -> str:
    """The id of a demo run, read from the store's own table (any version of the app)."""
    with sqlite3.connect(db) as conn:
        row = conn.execute("SELECT run_uuid FROM runs WHERE name = ? AND lifecycle_stage = "
                           "'active' ORDER BY start_time DESC", (name,)).fetchone()
    if row is None:
        raise RuntimeError(f"no run named {name} in {db}")
    return row[0]


def student(url: str, call, until: float, index: int, latencies: list, errors: list) -> None:
    """One student: click, wait for the whole text, read, click again, until the bell."""
    from gradio_client import Client

    rng = random.Random(index)
    client = Client(url, verbose=False)
    time.sleep(rng.uniform(0, THINK_S))  # students do not all click at the same moment
    k = 0
    while time.monotonic() < until:
        started = time.perf_counter()
        try:
            call(client, index, k)
            latencies.append(time.perf_counter() - started)
        except Exception as err:  # every failure is counted and reported, none stops the run
            errors.append(f"{type(err).__name__}: {err}"[:200])
        k += 1
        time.sleep(min(rng.expovariate(1 / THINK_S), max(until - time.monotonic(), 0)))


def classroom(url: str, call, students: int, seconds: float) -> dict:
    latencies, errors = [], []
    until = time.monotonic() + seconds
    threads = [threading.Thread(target=student, args=(url, call, until, i, latencies, errors))
               for i in range(students)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=seconds + 120)
    q = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [float("nan")] * 99
    return {"p50": q[49], "p95": q[94], "calls": len(latencies), "errors": errors}


def generate_call(run_id: str):
    def call(client, index: int, k: int) -> None:
        result = client.predict(run_id, PROMPTS[(index + k) % len(PROMPTS)], WORDS, TEMPERATURE,
                                0, 1.0, index * 1000 + k, api_name="/generate")
        assert isinstance(result[0], str) and len(result[0].split()) >= WORDS // 2
    return call


def echo_call(client, index: int, k: int) -> None:
    text = PROMPTS[(index + k) % len(PROMPTS)]
    assert client.predict(text, api_name="/echo") == text


def measure(args, store: Path) -> tuple[dict, dict]:
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{store / 'mlflow.db'}"}
    run_id = demo_run_id(store / "mlflow.db")
    ours_port, echo_port = free_port(), free_port()
    results = {}
    for name, command, cwd, port, call in (
            ("echo", [sys.executable, "-m", "bench.load", "--serve-echo"], ROOT, echo_port,
             echo_call),
            ("ours", [sys.executable, "app.py"], args.app_dir, ours_port, generate_call(run_id))):
        server = start_server(command, cwd, env, port)
        url = f"http://127.0.0.1:{port}/"
        try:
            classroom(url, call, 1, 0.1)  # load the model once, outside the clock
            results[name] = classroom(url, call, args.students, args.seconds)
        finally:
            server.terminate()
            server.wait(timeout=30)
    return results["echo"], results["ours"]


def result_rows(args, echo: dict, ours: dict) -> list[tuple[str, ...]]:
    def row(name, r):
        return (name, str(r["calls"]), str(len(r["errors"])), f"{r['p50']:.2f} s",
                f"{r['p95']:.2f} s")

    ratio = ours["p95"] / echo["p95"]
    verdict = "pass" if (not ours["errors"] and ours["p95"] <= P95_LIMIT_S
                         and ratio <= P95_RATIO) else "miss"
    return [
        ("app", "calls", "errors", "full text p50", "full text p95"),
        row("trivial echo app", echo),
        row(f"our /generate, {WORDS} words at temperature {TEMPERATURE}", ours),
        (f"ours / echo ({args.students} students, {args.seconds:g} s, think {THINK_S:g} s)", "",
         "target 0", "", f"{ratio:.2f}x (targets <= {P95_RATIO:g}x and <= {P95_LIMIT_S} s: "
                         f"{verdict})"),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=30, choices=range(1, 101),
                        metavar="1..100")
    parser.add_argument("--seconds", type=float, default=90.0)
    parser.add_argument("--app-dir", type=Path, default=ROOT,
                        help="the checkout whose app.py to drive (default: this one)")
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--serve-echo", action="store_true", help="run the trivial app (internal)")
    args = parser.parse_args(argv)
    if args.serve_echo:
        serve_echo()
        return 0
    if not 5 <= args.seconds <= 1800:
        parser.error("--seconds must be from 5 to 1800")
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "mlruns"
        shutil.copytree(args.app_dir / "mlruns", store)
        echo, ours = measure(args, store)
    print_table(result_rows(args, echo, ours), args.markdown)
    for err in (ours["errors"] + echo["errors"])[:5]:
        print("error:", err)
    return 0 if not ours["errors"] and not echo["errors"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
