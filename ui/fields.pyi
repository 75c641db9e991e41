"""Number fields that hand anything that is not a number to the app's own checks.

Gradio's Slider and Number compare a caller's value with their bounds before the event runs; a
string, None or NaN sent through the API then fails inside Gradio, and the caller sees only "the
upstream Gradio app has raised an exception". These pass such values through unchanged, so the
event's function (``app._number``) answers with one clear line naming the field.
"""

from __future__ import annotations

import math

import gradio as gr


def _is_number(payload) -> bool:
    return (isinstance(payload, (int, float)) and not isinstance(payload, bool)
            and math.isfinite(payload))

from gradio.events import Dependency

class Slider(gr.Slider):
    is_template = True  # drawn by the browser as a plain Slider

    def preprocess(self, payload):
        return super().preprocess(payload) if _is_number(payload) else payload
    from typing import Callable, Literal, Sequence, Any, TYPE_CHECKING
    from gradio.blocks import Block
    if TYPE_CHECKING:
        from gradio.components import Timer
        from gradio.components.base import Component


class Number(gr.Number):
    is_template = True  # drawn by the browser as a plain Number

    def preprocess(self, payload):
        return super().preprocess(payload) if _is_number(payload) else payload
    from typing import Callable, Literal, Sequence, Any, TYPE_CHECKING
    from gradio.blocks import Block
    if TYPE_CHECKING:
        from gradio.components import Timer
        from gradio.components.base import Component