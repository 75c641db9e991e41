"""Number fields that hand anything that is not a number to the app's own checks.

Gradio's Slider and Number compare a caller's value with their bounds before the event runs; a
string, None or NaN sent through the API then fails inside Gradio, and the caller sees only "the
upstream Gradio app has raised an exception". These fields pass such values through unchanged,
so the event's function (``app._number``) answers with one clear line naming the field.
(Wrapping the instance's ``preprocess``, not subclassing: Gradio writes a .pyi stub beside any
module that subclasses a component.)
"""

from __future__ import annotations

import math

import gradio as gr


def _is_number(payload) -> bool:
    return (isinstance(payload, (int, float)) and not isinstance(payload, bool)
            and math.isfinite(payload))


def _pass_non_numbers(field):
    checked = field.preprocess
    field.preprocess = lambda payload: checked(payload) if _is_number(payload) else payload
    return field


def slider(*args, **kwargs) -> gr.Slider:
    return _pass_non_numbers(gr.Slider(*args, **kwargs))


def number(*args, **kwargs) -> gr.Number:
    return _pass_non_numbers(gr.Number(*args, **kwargs))
