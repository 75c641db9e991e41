"""Watching a run learn: its curves and its greedy samples, drawn from the figures of each
evaluation. The Train tab shows them growing while a run trains; the Loss tab replays the
samples of a finished run (they are logged to MLflow with their step)."""

from __future__ import annotations

import math

import pandas as pd

from ui import limits
from ui.loss_tab import MEMORIZATION, loss_figure

CURVES = ("train_loss", "val_loss", MEMORIZATION)
SHOWN_SAMPLES = 12  # newest first; the rest stay in MLflow (samples.json)
SAMPLE_CHARS = 400  # a sample is 24 words, so this only bounds a text of very long words


def curves(evals: list[tuple[int, dict[str, float], str]]) -> pd.DataFrame:
    """(step, value, metric) rows of the curves so far, as the Loss tab reads a finished run."""
    rows = [{"step": step, "value": metrics[name], "metric": name}
            for step, metrics, _ in evals for name in CURVES
            if name in metrics and math.isfinite(metrics[name])]
    return pd.DataFrame(rows, columns=["step", "value", "metric"])


def figure(evals: list[tuple[int, dict[str, float], str]], title: str):
    """The live chart: loss on the left axis, memorization on the right, as in the Loss tab."""
    frame = curves(evals)
    return None if frame.empty else loss_figure(frame, title)


def samples_markdown(samples: list[tuple[int, str]]) -> str:
    """The greedy samples from the training text's first words, newest first."""
    if not samples:
        return ("*At each evaluation the model continues the training text's first words "
                "(greedy); the samples show here, newest first.*")
    lines = [f"- **step {step}**: {limits.plain(' '.join(text.split())[:SAMPLE_CHARS])}"
             for step, text in sorted(samples, reverse=True)[:SHOWN_SAMPLES]]
    return "**Greedy samples from the same cue, newest first**\n\n" + "\n".join(lines)
