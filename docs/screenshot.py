"""Make docs/app.png, the README's screenshot: `python docs/screenshot.py`.

Launches the app on a temporary copy of the committed store, picks demo-seed, generates greedily
from the first words of the default corpus in headless Debian Chromium, and saves the page.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
SEED = "i went out to the skerrow light"


def main() -> int:
    sys.path.insert(0, str(ROOT))
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        shutil.copytree(ROOT / "mlruns", Path(tmp) / "mlruns")
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{Path(tmp) / 'mlruns' / 'mlflow.db'}"
        import ui

        demo = ui.build_demo()
        ui.launch(demo, prevent_thread_lock=True, server_name="127.0.0.1", quiet=True)
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
                page = browser.new_page(viewport={"width": 1280, "height": 1000})
                page.goto(demo.local_url, wait_until="load")  # not networkidle: the page keeps a heartbeat stream open
                page.wait_for_function("() => document.querySelector('#run input')?.value")
                page.locator("#run input").click()
                page.get_by_role("option", name="demo-seed").first.click()
                page.locator("#prompt textarea, #prompt input").first.fill(SEED)
                temperature = page.locator("#temperature input[type=number]")
                temperature.fill("0")
                temperature.press("Enter")
                page.locator("#gen-btn").click()
                page.locator("#highlight .token.highlighted").first.wait_for(timeout=60_000)
                page.wait_for_timeout(1500)
                page.screenshot(path=str(ROOT / "docs" / "app.png"), full_page=True)
                browser.close()
        finally:
            demo.close()
    print("saved docs/app.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
