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

``listen(..., on_event_loop=warm)`` goes one step further for a generator whose steps are many
small tensor operations (the model writing a text): Gradio steps it on its event loop, the
thread that serves the HTTP traffic, instead of in a worker thread. Each tensor operation lets
go of the GIL while it computes; from a worker thread every one of them was a hand-off with the
busy event loop, and with 16 callers a 30-word text cost the server 43 ms of CPU where the same
text computed on the loop cost 35-38 (measured side by side, README). The loop gets its turn back
at every update the generator yields (a text in progress yields at least every 0.1 s; its
report, when it comes in the same event, is computed there too: ~2 ms for 30 words, ~90 ms for
400). ``warm``, which may read the store or load a model, runs in a worker thread first and
says whether the steps may run on the loop at all: a request whose steps would read the store
(a run named other than by its full id) is stepped in worker threads, as Gradio would.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import Callable, Sequence

import gradio as gr

_DONE = object()  # what next() answers for a finished generator


def _wire(component: gr.components.Component, value):
    """What Gradio's postprocess step would send for ``value``. An update (gr.skip(),
    gr.update(...)) goes to Gradio as it is, with its new value, if any, converted here."""
    if isinstance(value, dict) and value.get("__type__") == "update":
        return {**value, "value": _wire(component, value["value"])} if "value" in value else value
    value = component.postprocess(value)
    return value.model_dump() if hasattr(value, "model_dump") else value


def converted_in_thread(fn: Callable, inputs: Sequence, outputs: Sequence,
                        on_error: tuple | None = None,
                        on_event_loop: Callable | None = None) -> Callable:
    """``fn`` (a function returning, or a generator yielding, tuples of output values) with its
    inputs preprocessed and its outputs postprocessed by the components themselves; use with
    preprocess=False, postprocess=False. The signature (and so the API's parameter names)
    stays ``fn``'s. ``on_error`` (plain functions only): the outputs to answer instead when
    a conversion or ``fn`` raises, for an event whose errors another event reports.
    ``on_event_loop`` (generators only): a warm-up function, called with ``fn``'s inputs in a
    worker thread; when it returns True, ``fn`` is then stepped on the event loop, else in worker
    threads (either way the result is an async generator function)."""
    if on_event_loop is not None and not inspect.isgeneratorfunction(fn):
        raise TypeError(f"on_event_loop steps a generator; {fn.__name__} is not one")

    def values_of(payloads):
        return [component.preprocess(payload)
                for component, payload in zip(inputs, payloads, strict=True)]

    def wired(result):
        return tuple(_wire(component, value)
                     for component, value in zip(outputs, result, strict=True))

    if on_event_loop is not None:
        @functools.wraps(fn)
        async def stream_on_loop(*payloads):
            values = values_of(payloads)
            on_loop = await asyncio.to_thread(on_event_loop, *values)
            steps = fn(*values)
            while True:
                result = next(steps, _DONE) if on_loop else await asyncio.to_thread(
                    next, steps, _DONE)
                if result is _DONE:
                    return
                yield wired(result)
                # Sending an update takes the loop several rounds (queue, stream, socket). After
                # a zero sleep every update of a text went out together at its end; after 1 ms
                # the page still showed a 400-word text jump from its first words to nearly all
                # of them; with 10 ms it streamed as it did from a worker thread (Chromium).
                await asyncio.sleep(0.01)

        return stream_on_loop

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
           on_error: tuple | None = None, on_event_loop: Callable | None = None, **kwargs):
    """``listener(converted_in_thread(fn, ...), inputs, outputs, ...)`` with Gradio's own
    conversions off, the pairing the wrapper needs: e.g. ``listen(button.click, fn, ins, outs)``.
    ``on_event_loop``: see converted_in_thread. Returns the event, for ``.then`` and the like."""
    return listener(converted_in_thread(fn, inputs, outputs, on_error, on_event_loop), inputs,
                    outputs, preprocess=False, postprocess=False, **kwargs)
