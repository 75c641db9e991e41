"""The app in headless Chromium: type a seed, generate, find the copied spans highlighted.

Needs Debian's /usr/bin/chromium and the playwright package (never `playwright install`).
Screenshots go to tests/screenshots/ (git-ignored): app.png is the Generate tab after a run.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

try:
    from playwright.sync_api import sync_playwright
except ImportError:  # CI installs it; a bare checkout may not
    sync_playwright = None

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
SHOTS = Path(__file__).resolve().parent / "screenshots"
SEED = "i was twenty-three when"  # the corpus's first words: the memorizing run recites on
# Records each time the page hides or shows the old report (a class on <body>) in reportHidden,
# with whether the Generate button took clicks then.
WATCH_REPORT_HIDING = """() => {
  window.reportHidden = [];
  let hidden = document.body.classList.contains('report-stale');
  new MutationObserver(() => {
    const now = document.body.classList.contains('report-stale');
    const clickable = !document.querySelector('#gen-btn').disabled;
    if (now !== hidden) { hidden = now; window.reportHidden.push([now, clickable]); }
  }).observe(document.body, {attributes: true, attributeFilter: ['class']});
}"""
HIDDEN_THEN_SHOWN = [[True, False], [False, True]]  # the button takes no click meanwhile

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(sync_playwright is None, reason="the playwright package is not installed"),
    pytest.mark.skipif(not CHROMIUM.exists() or shutil.which(str(CHROMIUM)) is None,
                       reason=f"no Chromium at {CHROMIUM} (apt-get install chromium)"),
]


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    """The app, launched against a store holding one run that recites its training text."""
    import app
    from training.config import DEFAULT_CORPUS, TrainConfig
    from training.tracking import train_run

    folder = tmp_path_factory.mktemp("browser_store")
    text = " ".join(DEFAULT_CORPUS.read_text(encoding="utf-8").split()[:200])
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{folder / 'mlflow.db'}")
        # No dropout and nothing held out: 100 steps on 200 words are enough to learn them by heart.
        config = TrainConfig.for_recipe("windows", steps=100, dropout=0.0, embed_dim=32,
                                        hidden_size=32, val_fraction=0.0, eval_interval=50,
                                        optimizer="adam", lr=0.01, batch_size=16)
        train_run(config, run_name="demo-memorizer", text=text, corpus_name="first-200-words",
                  on_log=lambda line: None)
        demo = app.build_demo()
        try:
            app.launch(demo, prevent_thread_lock=True, server_name="127.0.0.1", quiet=True)
            yield demo.local_url
        finally:
            demo.close()


@pytest.fixture
def page(app_url):
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.goto(app_url, wait_until="load")  # not networkidle: the page keeps a heartbeat stream open
            page.wait_for_selector("#gen-btn")
            # The run list is filled on page load; the newest demo run is selected.
            page.wait_for_function("() => document.querySelector('#run input')?.value"
                                   ".includes('demo-memorizer')")
            yield page
        finally:
            browser.close()


def test_generate_highlights_copied_spans(page):
    SHOTS.mkdir(exist_ok=True)
    seed_box = page.locator("#prompt textarea, #prompt input").first
    seed_box.fill(SEED)
    temperature = page.locator("#temperature input[type=number]")
    temperature.fill("0")  # greedy: the memorizing run recites its text
    temperature.press("Enter")
    page.evaluate(WATCH_REPORT_HIDING)
    page.locator("#gen-btn").click()
    page.wait_for_function(
        "s => { const e = document.querySelector('#out textarea');"
        " return e && e.value.startsWith(s) && e.value.split(' ').length >= 30; }", arg=SEED)
    copied = page.locator("#highlight .token.highlighted", has_not_text=SEED)
    copied.first.wait_for()
    assert copied.count() >= 1
    assert len(" ".join(copied.all_inner_texts()).split()) >= 20  # greedy text recites the source
    page.wait_for_function(  # the report's Markdown (with its code block) may render a moment later
        "() => document.querySelector('#figures')?.innerText.includes('copied from the training text')")
    assert "Why:" in page.locator("#figures").inner_text()
    assert "paragraph" in page.locator("#spans").inner_text()
    # The old report was hidden on the click and the new one is shown once it is in.
    page.wait_for_function("() => !document.body.classList.contains('report-stale')")
    assert page.evaluate("window.reportHidden") == HIDDEN_THEN_SHOWN
    assert page.locator("#highlight").evaluate("e => getComputedStyle(e).visibility") == "visible"
    page.screenshot(path=str(SHOTS / "app.png"), full_page=True)

    page.get_by_role("tab", name="Look inside").click()
    page.wait_for_selector("#gates table")  # drawn when the tab opens
    assert "forget gate" in page.locator("#gates").inner_text()
    page.screenshot(path=str(SHOTS / "inside.png"), full_page=True)


def test_unknown_words_are_named_in_an_error(page):
    page.evaluate(WATCH_REPORT_HIDING)
    page.locator("#prompt textarea, #prompt input").first.fill("the zorblax")
    page.locator("#gen-btn").click()
    page.wait_for_selector("text=zorblax", timeout=10_000)
    assert "not in the vocabulary" in page.locator("body").inner_text()
    # The report hidden on the click comes back when the request fails.
    page.wait_for_function("() => !document.body.classList.contains('report-stale')")
    assert page.evaluate("window.reportHidden") == HIDDEN_THEN_SHOWN


def test_a_value_refused_by_a_field_is_named_in_an_error(page):
    # The seed box refuses -5 itself, before our code runs; the first event, outside Gradio's
    # queue where an error would show nothing, leaves it to the queued one, which shows it.
    page.evaluate(WATCH_REPORT_HIDING)
    seed = page.get_by_label("Random seed")
    seed.fill("-5")
    seed.press("Enter")
    page.locator("#gen-btn").click()
    page.wait_for_selector("text=less than minimum value 0", timeout=10_000)
    page.wait_for_function("() => !document.body.classList.contains('report-stale')")
    assert page.evaluate("window.reportHidden") == HIDDEN_THEN_SHOWN


def test_the_button_takes_no_click_until_the_report_is_in(page):
    length = page.locator("#length input[type=number]")
    length.fill(str(400))
    length.press("Enter")
    page.evaluate(WATCH_REPORT_HIDING)
    page.locator("#gen-btn").click()
    page.wait_for_function("() => document.querySelector('#out textarea').value.split(' ').length > 3")
    assert page.locator("#gen-btn").is_disabled()  # 400 words take longer than this
    page.wait_for_function("() => !document.body.classList.contains('report-stale')")
    assert page.locator("#gen-btn").is_enabled()
    page.wait_for_function(  # the report's Markdown may render a moment later
        "() => document.querySelector('#figures')?.innerText.includes('of 400')")
    assert page.evaluate("window.reportHidden") == HIDDEN_THEN_SHOWN
