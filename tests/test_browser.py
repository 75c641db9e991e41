"""The app in headless Chromium, as a visitor sees it: the text streams in, copied spans are
highlighted, refused input is named, and a second click while a text streams changes nothing.

Needs Debian's /usr/bin/chromium and the playwright package (never `playwright install`).
Screenshots go to tests/screenshots/ (git-ignored): app.png is the Generate tab after a run.
"""

from __future__ import annotations

import re
import shutil
import threading
import time
from pathlib import Path

import pytest

from conftest import SEED, launched
from ui import generate_tab

try:
    from playwright.sync_api import sync_playwright
except ImportError:  # CI installs it; a bare checkout may not
    sync_playwright = None

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
SHOTS = Path(__file__).resolve().parent / "screenshots"
OTHER_PROMPT = "i went out to the skerrow light"  # also in the memorizer's text
# Records every value the generated-text box shows, in window.shown.
WATCH_TEXT = """() => {
  window.shown = [];
  setInterval(() => {
    const value = document.querySelector('#out textarea').value;
    if (value && value !== window.shown[window.shown.length - 1]) window.shown.push(value);
  }, 5);
}"""

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(sync_playwright is None, reason="the playwright package is not installed"),
    pytest.mark.skipif(not CHROMIUM.exists() or shutil.which(str(CHROMIUM)) is None,
                       reason=f"no Chromium at {CHROMIUM} (apt-get install chromium)"),
]


@pytest.fixture(scope="module")
def app_url(memorizer):
    """The app, launched against a store holding one run that recites its training text."""
    with launched(memorizer["uri"]) as url:
        yield url


@pytest.fixture
def page(app_url):
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.goto(app_url, wait_until="load")  # not networkidle: a heartbeat stream stays open
            page.wait_for_selector("#gen-btn")
            # The run list is filled on page load; the newest demo run is selected.
            page.wait_for_function("() => document.querySelector('#run input')?.value"
                                   ".includes('demo-memorizer')")
            yield page
        finally:
            browser.close()


@pytest.fixture
def held(monkeypatch):
    """Generations pause after their first words until .release is set; .started counts them."""
    state = type("Held", (), {})()
    state.release, state.started = threading.Event(), []
    real = generate_tab.stream_ids

    def stream_ids(*args):
        state.started.append(1)
        for k, token_id in enumerate(real(*args)):
            if k == 1:  # the first words are due with the second word
                time.sleep(generate_tab.FIRST_WORDS_SECONDS)
            yield token_id
            if k == 1:
                state.release.wait(60)

    monkeypatch.setattr(generate_tab, "stream_ids", stream_ids)
    yield state
    state.release.set()


def set_field(page, selector: str, value: str) -> None:
    field = page.locator(selector).first
    field.fill(value)
    field.press("Enter")


def wait_for_report(page, words: int) -> None:
    page.wait_for_function(  # the report's Markdown may render a moment after the text
        "n => document.querySelector('#figures')?.innerText.includes(`of ${n}`)", arg=words)


def test_the_text_streams_in_then_the_copied_spans_are_highlighted(page, held):
    SHOTS.mkdir(exist_ok=True)
    set_field(page, "#prompt textarea", SEED)
    set_field(page, "#temperature input[type=number]", "0")  # greedy: the run recites its text
    page.locator("#gen-btn").click()
    # The server holds the text after its first word: the page shows that much already.
    page.wait_for_function("s => { const v = document.querySelector('#out textarea').value;"
                           " return v.startsWith(s) && v.length > s.length; }", arg=SEED)
    assert "Generating" in page.locator("#figures").inner_text()  # no old report meanwhile
    held.release.set()
    wait_for_report(page, 60)
    copied = page.locator("#highlight .token.highlighted", has_not_text=SEED)
    assert len(" ".join(copied.all_inner_texts()).split()) >= 20  # greedy text recites the source
    assert "copied from the training text" in page.locator("#figures").inner_text()
    assert "Why:" in page.locator("#figures").inner_text()
    assert "paragraph" in page.locator("#spans").inner_text()
    page.screenshot(path=str(SHOTS / "app.png"), full_page=True)


def test_look_inside_draws_the_gates_of_the_generated_text(page):
    set_field(page, "#length input[type=number]", "10")
    page.locator("#gen-btn").click()
    wait_for_report(page, 10)
    page.get_by_role("tab", name="Look inside").click()
    page.wait_for_selector("#gates table")  # drawn when the tab opens
    assert "forget gate" in page.locator("#gates").inner_text()
    page.screenshot(path=str(SHOTS / "inside.png"), full_page=True)


def test_unknown_words_are_named_in_an_error(page):
    set_field(page, "#prompt textarea", "the zorblax")
    page.locator("#gen-btn").click()
    page.wait_for_selector("text=zorblax", timeout=20_000)
    assert "not in the training text" in page.locator("body").inner_text()


def test_a_value_refused_by_a_field_is_named_in_an_error(page):
    seed = page.get_by_label("Random seed")
    seed.fill("-5")
    seed.press("Enter")
    page.locator("#gen-btn").click()
    page.wait_for_selector("text=Random seed must be a whole number", timeout=20_000)
    assert "got -5" in page.locator("body").inner_text()


def test_a_second_click_while_a_text_streams_changes_nothing(page, held):
    set_field(page, "#length input[type=number]", "400")
    page.evaluate(WATCH_TEXT)
    page.locator("#gen-btn").click()
    page.wait_for_function("s => document.querySelector('#out textarea').value.length > s.length",
                           arg=SEED)
    # Another prompt and length, and a second click, while the first text is held.
    set_field(page, "#prompt textarea", OTHER_PROMPT)
    set_field(page, "#length input[type=number]", "10")
    page.locator("#gen-btn").click()
    held.release.set()
    wait_for_report(page, 400)
    final = page.locator("#out textarea").input_value()
    shown = page.evaluate("window.shown")
    assert final.startswith(SEED) and len(shown) >= 2
    assert all(final.startswith(value) for value in shown)  # one text, growing: never another
    marked = page.locator("#highlight .textfield").inner_text()
    # The same text (Gradio puts a space between highlighted pieces, as before "," here).
    assert re.sub(r"\s", "", marked) == re.sub(r"\s", "", final)
    assert len(held.started) == 1  # the second click started nothing
