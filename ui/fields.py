"""Fields whose values the app's own checks judge (ui.limits), not Gradio's.

Gradio's Slider, Number and Radio check a caller's value before the event runs; their messages
do not name the field, echo the whole value unescaped (a 5 MB string comes back whole), and a
string or NaN sent to a number field ends in "the upstream Gradio app has raised an exception".
These fields hand every value to the event's function unchanged, where ``ui.limits`` answers
with one line that names the field and echoes at most a short, escaped prefix. (The instance's
``preprocess`` is replaced, not subclassed: Gradio writes a .pyi stub beside any module that
subclasses a component.)
"""

from __future__ import annotations

import gradio as gr


def _unchecked(field):
    field.preprocess = lambda payload: payload
    return field


def slider(*args, **kwargs) -> gr.Slider:
    return _unchecked(gr.Slider(*args, **kwargs))


def number(*args, **kwargs) -> gr.Number:
    return _unchecked(gr.Number(*args, **kwargs))


def radio(*args, **kwargs) -> gr.Radio:
    return _unchecked(gr.Radio(*args, **kwargs))
