"""How /generate streams: few, cheap updates (bench.load measures what they cost the server)."""

from __future__ import annotations

import types

import gradio as gr

import app

SEED = "i was twenty-three when"


def fake_clock(monkeypatch, tick: float) -> None:
    """Every read of app.time.perf_counter() moves the clock on by tick seconds."""
    now = [0.0]

    def perf_counter() -> float:
        now[0] += tick
        return now[0]

    monkeypatch.setattr(app, "time", types.SimpleNamespace(perf_counter=perf_counter))


def test_streamed_updates_never_skip_outputs(use_demo_store, monkeypatch):
    # Gradio answers gr.skip() by rebuilding the component and its config: a third of the
    # server's time under load, before this was fixed.
    monkeypatch.setattr(app, "STREAM_SECONDS", 0)
    outputs = list(app.generate(use_demo_store["windows"], SEED, 30, 0.8, 0, 1.0, 1))
    assert len(outputs) == 31  # every word, then the report
    assert not [v for output in outputs for v in output if isinstance(v, dict) and v == gr.skip()]


def test_updates_are_paced_by_time_not_by_words(use_demo_store, monkeypatch):
    fake_clock(monkeypatch, tick=0.02)  # one read per word: 0.1 s = every 5th word
    outputs = list(app.generate(use_demo_store["windows"], SEED, 60, 0.8, 0, 1.0, 1))
    texts = [output[0] for output in outputs]
    assert texts[0].startswith(SEED) and len(texts[0].split()) > len(SEED.split())  # first word at once
    assert 10 <= len(outputs) - 1 <= 15  # about 60 / 5 updates, then the report
    fake_clock(monkeypatch, tick=1e-6)  # a fast machine: the first words, then the report
    assert len(list(app.generate(use_demo_store["windows"], SEED, 60, 0.8, 0, 1.0, 1))) == 2
