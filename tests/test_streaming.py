"""How /generate streams: few, cheap updates (bench.load measures what they cost the server)."""

from __future__ import annotations

import types

import gradio as gr
import pytest

import app

SEED = "i was twenty-three when"


def fake_clock(monkeypatch, tick: float) -> None:
    """Every word the model generates takes tick seconds of work and of the clock."""
    now = [0.0]
    real_stream_ids = app.stream_ids

    def stream_ids(*args):
        for token_id in real_stream_ids(*args):
            now[0] += tick
            yield token_id

    monkeypatch.setattr(app, "stream_ids", stream_ids)
    # The first words are paced on CPU time, later updates on the clock: one clock for both.
    monkeypatch.setattr(app, "time", types.SimpleNamespace(perf_counter=lambda: now[0],
                                                           thread_time=lambda: now[0]))


def test_streamed_updates_never_skip_outputs(use_demo_store, monkeypatch):
    # Gradio answers gr.skip() by rebuilding the component and its config: a third of the
    # server's time under load, before this was fixed.
    monkeypatch.setattr(app, "STREAM_SECONDS", 0)
    monkeypatch.setattr(app, "FIRST_WORDS_SECONDS", 0)
    outputs = list(app.generate(use_demo_store["windows"], SEED, 30, 0.8, 0, 1.0, 1))
    # every word from the FIRST_WORDS_MIN-th (the first time the work is read) on, then the report
    assert len(outputs) == 30 - app.FIRST_WORDS_MIN + 2
    assert not [v for output in outputs for v in output if isinstance(v, dict) and v == gr.skip()]


def test_updates_are_paced_by_time_not_by_words(use_demo_store, monkeypatch):
    fake_clock(monkeypatch, tick=0.02)  # one read per word: the first words after 0.02 s
    outputs = list(app.generate(use_demo_store["windows"], SEED, 60, 0.8, 0, 1.0, 1))
    texts = [output[0] for output in outputs]
    assert texts[0].startswith(SEED) and 1 <= len(texts[0].split()) - len(SEED.split()) <= 3
    assert 10 <= len(outputs) - 1 <= 15  # then every 0.1 s (about 5 words), then the report


def test_first_words_arrive_before_the_analysis(use_demo_store, monkeypatch):
    fake_clock(monkeypatch, tick=0.01)  # a slow generation: its first words come before the report
    monkeypatch.setattr(app, "analyze", lambda *a, **k: pytest.fail("analysed before streaming"))
    text = next(app.generate(use_demo_store["windows"], SEED, 50, 0.0))[0]
    assert text.startswith(SEED) and len(text) > len(SEED)


def test_a_quick_generation_is_one_event(use_demo_store, monkeypatch):
    # Most requests finish before the first words are due: the text and its report go out
    # together, so Gradio serializes and sends one message instead of two.
    fake_clock(monkeypatch, tick=1e-6)
    outputs = list(app.generate(use_demo_store["windows"], SEED, 60, 0.8, 0, 1.0, 1))
    assert len(outputs) == 1 and outputs[0][2]  # the report's figures are there


def test_a_text_that_will_be_streamed_anyway_starts_at_once(use_demo_store, monkeypatch):
    # 1 ms per word: 60 words will take 60 ms, past FIRST_WORDS_SECONDS, so the first words go
    # out after the FIRST_WORDS_MIN words that gave the pace, not after 20 ms of work.
    fake_clock(monkeypatch, tick=0.001)
    outputs = list(app.generate(use_demo_store["windows"], SEED, 60, 0.8, 0, 1.0, 1))
    first = outputs[0][0].split()
    assert len(first) - len(SEED.split()) == app.FIRST_WORDS_MIN and len(outputs) >= 2


def test_a_text_projected_to_end_in_time_stays_one_event(use_demo_store, monkeypatch):
    fake_clock(monkeypatch, tick=0.001)  # 10 words at 1 ms each: 10 ms, within 20 ms
    outputs = list(app.generate(use_demo_store["windows"], SEED, 10, 0.8, 0, 1.0, 1))
    assert len(outputs) == 1


def test_beside_other_generations_a_short_text_goes_out_whole(use_demo_store, monkeypatch):
    # 1 ms a word: 60 words = 60 ms of work. Alone it streams (test above); with another
    # generation in progress its first update waits STREAM_SECONDS of work, so it is one event.
    fake_clock(monkeypatch, tick=0.001)
    monkeypatch.setattr(app, "_GENERATING", [1])
    outputs = list(app.generate(use_demo_store["windows"], SEED, 60, 0.8, 0, 1.0, 1))
    assert len(outputs) == 1 and app._GENERATING == [1]  # counted in, then out again


def test_an_abandoned_generation_is_counted_out(use_demo_store, monkeypatch):
    fake_clock(monkeypatch, tick=0.001)
    stream = app.generate(use_demo_store["windows"], SEED, 60, 0.8, 0, 1.0, 1)
    next(stream)
    assert app._GENERATING == [1]
    stream.close()  # a client that went away: Gradio closes the generator
    assert app._GENERATING == [0]


@pytest.mark.parametrize("cpu, words, length, due", [
    (0.020, 1, 1, True),  # FIRST_WORDS_SECONDS of work: due whatever the projection
    (0.005, 2, 60, False),  # too few words timed to project (the first one read the prompt)
    (0.002, 3, 60, True),  # 0.67 ms a word x 60 = 40 ms: due now
    (0.002, 3, 25, False),  # x 25 = 17 ms: it will end in time, one event
])
def test_first_words_due(cpu, words, length, due):
    assert app.first_words_due(cpu, words, length) is due


def test_first_words_wait_for_work_not_for_the_clock(use_demo_store, monkeypatch):
    # Under load the clock runs on while the thread waits for a core; a 30-word text whose
    # work stays under FIRST_WORDS_SECONDS must still go out as one event.
    cpu = [0.0]

    def thread_time() -> float:
        cpu[0] += 1e-4
        return cpu[0]

    wall = [0.0]

    def perf_counter() -> float:
        wall[0] += 0.05  # 50 ms of waiting per read
        return wall[0]

    monkeypatch.setattr(app, "time", types.SimpleNamespace(perf_counter=perf_counter,
                                                           thread_time=thread_time))
    assert len(list(app.generate(use_demo_store["windows"], SEED, 30, 0.8, 0, 1.0, 1))) == 1


def test_a_generation_asks_the_store_nothing_once_the_run_is_loaded(use_demo_store, monkeypatch):
    # Under a classroom's load, two store queries per request (the run's metrics, the short id
    # for the CLI line) were three quarters of a generation's server time.
    run_id = use_demo_store["windows"]
    list(app.generate(run_id, SEED, 5, 0.8, 0, 1.0, 1))  # loads and caches the run

    def no_store(*args, **kwargs):
        raise AssertionError("the store was queried during a generation")

    for name in ("get_run", "resolve_run_id", "list_runs", "open_store"):
        monkeypatch.setattr(app.registry, name, no_store)
    figures = list(app.generate(run_id, SEED, 30, 0.8, 0, 1.0, 2))[-1][2]
    assert "**Why:**" in figures and f"--run {run_id[:8]}" in figures
