"""The app's first words on screen: time from the request to the first streamed output.

    python -m bench.latency [--markdown]

Measured two ways on a loaded model (demo-windows, from a temporary copy of the store): the
app's generate function called directly (time to its first yield), and through the running
server with gradio_client (submit, then the first streamed output arrives).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from bench.table import print_table

ROOT = Path(__file__).resolve().parents[1]
REPEATS = 20


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copytree(ROOT / "mlruns", Path(tmp) / "mlruns")
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{Path(tmp) / 'mlruns' / 'mlflow.db'}"
        from gradio_client import Client

        import app

        runs = app.list_runs()
        run_id = runs.loc[runs["name"] == "demo-windows", "run_id"].iloc[0]
        list(app.generate(run_id, "the lamp", 5, 0.8))  # load and cache the model once
        direct = []
        for k in range(REPEATS):
            started = time.perf_counter()
            next(app.generate(run_id, "the lamp", 60, 0.8, 0, 1.0, k))
            direct.append(time.perf_counter() - started)

        demo = app.build_demo()
        app.launch(demo, prevent_thread_lock=True, server_name="127.0.0.1", quiet=True)
        try:
            client = Client(demo.local_url, verbose=False)
            served = []
            for k in range(REPEATS):
                started = time.perf_counter()
                job = client.submit(run_id, "the lamp", 60, 0.8, 0, 1.0, k, api_name="/generate")
                deadline = started + 30
                while not job.outputs() and time.perf_counter() < deadline:
                    time.sleep(0.002)
                served.append(time.perf_counter() - started)
                job.result()
        finally:
            demo.close()
    rows = [("path", "first output, median", "p95", "target"),
            ("app.generate, first yield", f"{statistics.median(direct) * 1000:.1f} ms",
             f"{sorted(direct)[int(0.95 * REPEATS) - 1] * 1000:.1f} ms", "<= 100 ms"),
            ("server via gradio_client", f"{statistics.median(served) * 1000:.1f} ms",
             f"{sorted(served)[int(0.95 * REPEATS) - 1] * 1000:.1f} ms", "<= 100 ms")]
    print_table(rows, args.markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
