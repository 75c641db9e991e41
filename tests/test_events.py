"""ui/events.py: an event's inputs and outputs converted in its own thread, as Gradio would."""

from __future__ import annotations

import inspect

import gradio as gr
import pandas as pd
import pytest

from ui.events import converted_in_thread


def test_values_and_updates_reach_the_wire_as_gradio_would_send_them():
    with gr.Blocks():
        number, text, table = gr.Number(precision=0), gr.Textbox(), gr.Dataframe()
    frame = pd.DataFrame({"n": [2]})

    def fn(count: int):
        yield str(count), frame
        yield gr.skip(), gr.update(value=frame, visible=True)

    first, second = list(converted_in_thread(fn, [number], [text, table])(2.0))
    assert first == ("2", table.postprocess(frame).model_dump())
    assert first[1]["headers"] == ["n"] and first[1]["data"] == [[2]]
    assert second[0] == gr.skip()  # Gradio applies an update itself
    assert second[1]["visible"] is True and second[1]["value"] == first[1]


def test_inputs_go_through_the_components_own_preprocess():
    with gr.Blocks():
        number = gr.Number(precision=0)
    seen = []

    def fn(value):
        seen.append(value)
        yield (value,)

    list(converted_in_thread(fn, [number], [number])(2.6))
    assert seen == [3] and isinstance(seen[0], int)  # precision 0 rounds, as Gradio would


def test_the_api_keeps_the_functions_own_parameter_names():
    def fn(run_id: str, prompt: str = "x"):
        yield (prompt,)

    wrapped = converted_in_thread(fn, [gr.Textbox(), gr.Textbox()], [gr.Textbox()])
    assert list(inspect.signature(wrapped).parameters) == ["run_id", "prompt"]


def test_a_plain_function_stays_one_reply_not_a_stream():
    # Gradio streams an event whose function is a generator; a function that returns once
    # (the Generate button's report event) must stay one reply.
    with gr.Blocks():
        number, text, table = gr.Number(precision=0), gr.Textbox(), gr.Dataframe()
    frame = pd.DataFrame({"n": [2]})

    def fn(count: int):
        return str(count), frame

    wrapped = converted_in_thread(fn, [number], [text, table])
    assert not inspect.isgeneratorfunction(wrapped)
    assert wrapped(2.4) == ("2", table.postprocess(frame).model_dump())


def test_on_error_answers_instead_of_raising_for_a_check_or_the_function():
    with gr.Blocks():
        length, text = gr.Slider(1, 10), gr.Textbox()

    def fn(value):
        if value > 5:
            raise gr.Error("too long")
        return (str(value),)

    plain = converted_in_thread(fn, [length], [text])
    guarded = converted_in_thread(fn, [length], [text], on_error=(gr.skip(),))
    assert guarded(3) == plain(3) == ("3",)
    for value, message in ((7, "too long"), (99, "greater than maximum")):  # fn, then the slider
        with pytest.raises(gr.Error, match=message):
            plain(value)
        assert guarded(value) == (gr.skip(),)
