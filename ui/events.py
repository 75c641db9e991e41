"""Events whose inputs and outputs are converted inside the event's own worker thread.

For every input and every output of an event, Gradio runs the component's ``preprocess`` or
``postprocess`` in a worker thread of its own, one hand-off per component, awaited in turn. The
conversions themselves take microseconds, but each hand-off wakes a thread and passes the GIL
back and forth while the model computes: Generate (7 inputs, 8 outputs) paid 15 of them per
request where an echo app pays 2. In a profile of the server under a classroom's load, waking
worker threads was 17% of the samples, 9 points of it for these conversions.
``converted_in_thread`` wraps a function (or a generator) so that the components' own methods
run inside it, and the event is then declared with ``preprocess=False, postprocess=False``:
the same checks and the same values on the wire, one thread for all of it.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Sequence

import gradio as gr


def _wire(component: gr.components.Component, value):
    """What Gradio's postprocess step would send for ``value``. An update (gr.skip(),
    gr.update(...)) goes to Gradio as it is, with its new value, if any, converted here."""
    if isinstance(value, dict) and value.get("__type__") == "update":
        return {**value, "value": _wire(component, value["value"])} if "value" in value else value
    value = component.postprocess(value)
    return value.model_dump() if hasattr(value, "model_dump") else value


def converted_in_thread(fn: Callable, inputs: Sequence, outputs: Sequence,
                        on_error: tuple | None = None) -> Callable:
    """``fn`` (a function returning, or a generator yielding, tuples of output values) with its
    inputs preprocessed and its outputs postprocessed by the components themselves; use with
    preprocess=False, postprocess=False. The signature (and so the API's parameter names)
    stays ``fn``'s. ``on_error`` (plain functions only): the outputs to answer instead when
    a conversion or ``fn`` raises, for an event whose errors another event reports."""

    def values_of(payloads):
        return [component.preprocess(payload)
                for component, payload in zip(inputs, payloads, strict=True)]

    def wired(result):
        return tuple(_wire(component, value)
                     for component, value in zip(outputs, result, strict=True))

    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def stream(*payloads):
            for result in fn(*values_of(payloads)):
                yield wired(result)

        return stream

    @functools.wraps(fn)
    def call(*payloads):
        try:
            return wired(fn(*values_of(payloads)))
        except Exception:
            if on_error is None:
                raise
            return wired(on_error)  # reported by the event that follows, as on_error's user says

    return call


def listen(listener: Callable, fn: Callable, inputs: Sequence, outputs: Sequence,
           on_error: tuple | None = None, **kwargs):
    """``listener(converted_in_thread(fn, ...), inputs, outputs, ...)`` with Gradio's own
    conversions off, the pairing the wrapper needs: e.g. ``listen(button.click, fn, ins, outs)``.
    Returns the event, for ``.then`` and the like."""
    return listener(converted_in_thread(fn, inputs, outputs, on_error), inputs, outputs,
                    preprocess=False, postprocess=False, **kwargs)
