"""Memory: does a running app's resident memory settle, or keep growing, under /generate calls?

    python -m bench.memory [--calls 1000] [--every 100] [--app-dir DIR] [--markdown]

Starts ``python app.py`` on a temporary copy of the project store (loopback only), then makes
``calls`` /generate calls, one after another: 40 words, temperature 0.8, a new seed and one of
five prompts per call, from one gradio_client: in one Gradio session, or with
``--new-sessions`` in a new session every call, as when every call comes from a new visitor
(a page load, an API client) and Gradio keeps state for each. The server's resident set size (VmRSS, read
from /proc) is printed before the first call and after every ``every`` calls, with the growth
per 200 calls over the second half, where a memory that has settled grows by about 0.
``--app-dir`` drives the app of another checkout, to measure a change side by side.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import uuid
from pathlib import Path

from bench.load import demo_run_id, free_port, start_server
from bench.table import print_table

ROOT = Path(__file__).resolve().parents[1]
PROMPTS = ["the lamp", "i was", "the sea", "the keeper", "in the"]
WORDS, TEMPERATURE = 40, 0.8


def rss_mb(pid: int) -> float:
    """The process's resident set size in MB (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def drive(url: str, pid: int, run_id: str, calls: int, every: int,
          new_sessions: bool) -> list[tuple[int, float]]:
    """(calls made, RSS in MB) before the first call and after every ``every`` calls."""
    from gradio_client import Client

    client = Client(url, verbose=False)
    client.predict(run_id, PROMPTS[0], WORDS, TEMPERATURE, 0, 1.0, 0, api_name="/generate")
    samples = [(0, rss_mb(pid))]  # after one call outside the count: the model is loaded
    for k in range(1, calls + 1):
        if new_sessions:
            client.session_hash = str(uuid.uuid4())  # what a new visitor's first call sends
        text = client.predict(run_id, PROMPTS[k % len(PROMPTS)], WORDS, TEMPERATURE, 0, 1.0, k,
                              api_name="/generate")[0]
        assert isinstance(text, str) and text, f"call {k} returned {text!r}"
        if k % every == 0:
            samples.append((k, rss_mb(pid)))
    return samples


def rows(samples: list[tuple[int, float]]) -> list[tuple[str, ...]]:
    half = [s for s in samples if s[0] >= samples[-1][0] // 2]
    (k0, m0), (k1, m1) = half[0], half[-1]
    slope = (m1 - m0) / max(k1 - k0, 1) * 200
    table = [("calls", "server RSS", "growth since first")]
    table += [(str(k), f"{m:.0f} MB", f"{m - samples[0][1]:+.0f} MB") for k, m in samples]
    table.append((f"second half ({k0} to {k1})", "", f"{slope:+.1f} MB per 200 calls"))
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1000, choices=range(10, 20001),
                        metavar="10..20000")
    parser.add_argument("--every", type=int, default=100, choices=range(1, 20001),
                        metavar="1..20000")
    parser.add_argument("--app-dir", type=Path, default=ROOT,
                        help="the checkout whose app.py to drive (default: this one)")
    parser.add_argument("--new-sessions", action="store_true",
                        help="a new Gradio session for every call (a new visitor each time)")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "mlruns"
        shutil.copytree(args.app_dir / "mlruns", store)
        env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{store / 'mlflow.db'}"}
        port = free_port()
        server = start_server([sys.executable, "app.py"], args.app_dir, env, port)
        try:
            samples = drive(f"http://127.0.0.1:{port}/", server.pid,
                            demo_run_id(store / "mlflow.db"), args.calls, args.every,
                            args.new_sessions)
        finally:
            server.terminate()
            server.wait(timeout=30)
    print_table(rows(samples), args.markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
