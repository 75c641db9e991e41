"""Watching a run learn: its curves and its greedy samples, drawn from the figures of each
evaluation. The Train tab shows them growing while a run trains; the Loss tab replays the
samples of a finished run (they are logged to MLflow with their step)."""

from __future__ import annotations

import math

import pandas as pd

from ui.loss_tab import MEMORIZATION, loss_figure

CURVES = ("train_loss", "val_loss", MEMORIZATION)


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
