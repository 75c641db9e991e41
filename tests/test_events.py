"""ui/events.py: an event's inputs and outputs converted in its own thread, as Gradio would."""

from __future__ import annotations

import asyncio
import inspect
import threading

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


def test_a_stream_on_the_event_loop_warms_up_in_a_thread_then_steps_on_the_loop():
    # /generate's text is computed on Gradio's event loop (ui.events says why); what may read
    # the store (the warm-up) must not run there, and the values on the wire stay the same.
    with gr.Blocks():
        number, text = gr.Number(precision=0), gr.Textbox()
    threads = {}

    def warm(count: int):
        threads["warm"] = (threading.get_ident(), count)
        return True

    def fn(count: int):
        threads["steps"] = threading.get_ident()
        for k in range(count):
            yield (str(k),)

    on_loop = converted_in_thread(fn, [number], [text], on_event_loop=warm)
    assert inspect.isasyncgenfunction(on_loop)

    async def collect():
        threads["loop"] = threading.get_ident()
        return [out async for out in on_loop(2.6)]

    assert asyncio.run(collect()) == list(converted_in_thread(fn, [number], [text])(2.6))
    assert threads["warm"][1] == 3  # the warm-up sees the preprocessed inputs
    assert threads["warm"][0] != threads["loop"] == threads["steps"]


def test_a_request_the_warm_up_keeps_off_the_loop_is_stepped_in_worker_threads():
    # A run named other than by its full id is looked up in the store at every step's start.
    with gr.Blocks():
        text = gr.Textbox()
    step_threads = []

    def fn(name):
        for k in range(3):
            step_threads.append(threading.get_ident())
            yield (f"{name} {k}",)

    async def collect():
        wrapped = converted_in_thread(fn, [text], [text], on_event_loop=lambda name: False)
        return threading.get_ident(), [out async for out in wrapped("x")]

    loop_thread, outputs = asyncio.run(collect())
    assert outputs == [("x 0",), ("x 1",), ("x 2",)]
    assert len(step_threads) == 3 and loop_thread not in step_threads


def test_the_loop_sends_each_update_before_the_next_step_starts():
    # Sending a streamed update takes the loop several rounds (queue, stream, socket). With a
    # zero sleep between steps every update of a text went out together at its end.
    with gr.Blocks():
        text = gr.Textbox()
    rounds, seen_by_step = [], []

    async def sender():  # a stand-in for Gradio's sending: five rounds of the loop
        for k in range(5):
            await asyncio.sleep(0)
            rounds.append(k)

    def fn(_):
        for k in range(3):
            seen_by_step.append(len(rounds))
            yield (str(k),)

    async def collect():
        wrapped = converted_in_thread(fn, [text], [text], on_event_loop=lambda _: True)
        async for _ in wrapped("x"):
            rounds.clear()
            task = asyncio.get_running_loop().create_task(sender())
        await task

    asyncio.run(collect())
    assert seen_by_step == [0, 5, 5]  # each later step started after the sender's five rounds


def test_a_failed_warm_up_is_the_events_error_and_nothing_is_computed():
    with gr.Blocks():
        text = gr.Textbox()
    steps = []

    def warm(run_id):
        raise gr.Error("no such run")

    def fn(run_id):
        steps.append(run_id)
        yield (run_id,)

    async def collect():
        return [out async for out in converted_in_thread(fn, [text], [text], on_event_loop=warm)("x")]

    with pytest.raises(gr.Error, match="no such run"):
        asyncio.run(collect())
    assert steps == []
    with pytest.raises(TypeError, match="steps a generator"):
        converted_in_thread(lambda run_id: (run_id,), [text], [text], on_event_loop=warm)
