"""The app's first words on screen: time from the request to the first streamed output.

    python -m bench.latency [--markdown]

Measured three ways on a loaded model (demo-windows, from a temporary copy of the store): the
app's generate function called directly (time to its first yield); through the running server
with gradio_client (submit, then the first streamed output arrives); and in headless Chromium
(Debian's /usr/bin/chromium, when it and playwright are installed), timed inside the page from
the click on Generate to the first generated words in the text box: what a learner sees.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import torch

from bench.table import print_table

ROOT = Path(__file__).resolve().parents[1]
REPEATS = 20
CHROMIUM = Path("/usr/bin/chromium")
# In the page: click Generate, then poll the output box until it holds new words (each click
# asks for another length, so the text always differs from the one before).
CLICK_TO_WORDS_JS = """async (prompt) => {
  const box = document.querySelector('#out textarea');
  const before = box.value;
  const started = performance.now();
  document.querySelector('#gen-btn').click();
  while (box.value === before || !box.value.startsWith(prompt) || box.value === prompt) {
    if (performance.now() - started > 30000) return -1;
    await new Promise(resolve => setTimeout(resolve, 1));
  }
  return performance.now() - started;
}"""


# The report replaces the "Generating…" note when the event ends.
REPORT_IN = "() => document.querySelector('#figures')?.innerText.includes('4-grams')"


def browser_latencies(url: str, prompt: str) -> list[float] | None:
    """Click-to-first-words times in headless Chromium (seconds), or None without a browser."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return None
    if not CHROMIUM.exists():
        return None
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM),
                                    args=["--headless", "--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page()
            page.goto(url, wait_until="load")  # not networkidle: the page keeps a heartbeat stream open
            page.wait_for_function("() => document.querySelector('#run input')?.value")
            page.locator("#prompt textarea").fill(prompt)
            length = page.locator("#length input[type=number]")
            times = []
            for k in range(REPEATS + 1):  # the first click warms the page up: not counted
                length.fill(str(60 + k % 2))
                length.press("Enter")
                elapsed = page.evaluate(CLICK_TO_WORDS_JS, prompt)
                page.wait_for_function(REPORT_IN, timeout=30000)  # the click's event is over
                if elapsed < 0:
                    raise RuntimeError("no generated words in the page within 30 s")
                times.append(elapsed / 1000)
            return times[1:]
        finally:
            browser.close()


def row(name: str, times: list[float]) -> tuple[str, ...]:
    ordered = sorted(times)
    return (name, f"{statistics.median(times) * 1000:.1f} ms",
            f"{ordered[int(0.95 * len(ordered)) - 1] * 1000:.1f} ms", "<= 200 ms")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copytree(ROOT / "mlruns", Path(tmp) / "mlruns")
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{Path(tmp) / 'mlruns' / 'mlflow.db'}"
        from gradio_client import Client

        import app
        import ui
        from training.runs import list_runs
        from ui.generate_tab import generate

        runs = list_runs()
        run_id = runs.loc[runs["name"] == "demo-windows", "run_id"].iloc[0]
        list(generate(run_id, "the lamp", 5, 0.8))  # load and cache the model once
        direct = []
        for k in range(REPEATS):
            started = time.perf_counter()
            next(generate(run_id, "the lamp", 60, 0.8, 0, 1.0, k))
            direct.append(time.perf_counter() - started)

        demo = ui.build_demo()
        torch.set_num_threads(app.SERVE_THREADS)  # as app.main() serves
        ui.launch(demo, prevent_thread_lock=True, server_name="127.0.0.1", quiet=True)
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
            clicked = browser_latencies(demo.local_url, "the lamp")
        finally:
            demo.close()
    rows = [("path", "first output, median", "p95", "target"),
            row("generate, first yield", direct),
            row("server via gradio_client", served)]
    rows.append(row("headless Chromium, click to first words", clicked) if clicked else
                ("headless Chromium", "not measured (no playwright or /usr/bin/chromium)", "", ""))
    print_table(rows, args.markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
