"""NT-ASGD's averaging (Merity et al. 2017): plain SGD until validation stalls, then the model
used for evaluation and saving is the running average of the weights since that moment.

    average_n = average_{n-1} + (w_n - average_{n-1}) / n      (n = steps since the trigger)

Averaging smooths out the last, noisy SGD steps that fit single training passages; the trainer
swaps the average in to validate and to save, and swaps the raw weights back to keep training.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn


class WeightAverage:
    """A running (Polyak) average of a model's parameters, started when NT-ASGD triggers."""

    def __init__(self, model: nn.Module, start_step: int):
        self.params = list(model.parameters())
        self.average = [p.detach().clone() for p in self.params]
        self.count = 1
        self.start_step = start_step  # the step at which validation had stalled

    @torch.no_grad()
    def update(self) -> None:
        """Fold the current weights into the average (after every optimizer step)."""
        self.count += 1
        for average, param in zip(self.average, self.params, strict=True):
            average.add_(param - average, alpha=1.0 / self.count)

    @contextmanager
    def swapped_in(self) -> Iterator[None]:
        """Inside the block the model holds the averaged weights; the raw ones come back after."""
        raw = [p.detach().clone() for p in self.params]
        with torch.no_grad():
            for param, average in zip(self.params, self.average, strict=True):
                param.copy_(average)
        try:
            yield
        finally:
            with torch.no_grad():
                for param, value in zip(self.params, raw, strict=True):
                    param.copy_(value)

    def state_dict(self) -> dict:
        return {"average": [a.cpu() for a in self.average], "count": self.count,
                "start_step": self.start_step}

    def load_state_dict(self, state: dict) -> None:
        self.average = [a.to(p.device) for a, p in zip(state["average"], self.params, strict=True)]
        self.count, self.start_step = state["count"], state["start_step"]
