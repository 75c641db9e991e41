"""The launched app through gradio_client, as a remote caller sees it: the named endpoints, the
text streamed then its report, one clear line for every refused value, the store's name never
its path, and the shared compute slots and bounded queue.

One app per module, served in this process against the registered store (conftest.client).
"""

from __future__ import annotations

import json
import threading
import time

import httpx
import pytest
from gradio_client.exceptions import AppError
from gradio_client.utils import QueueError

from conftest import RECITER, SEED, wait_until
from ui import generate_tab, inside_tab, limits
from ui.report import SPAN_COLUMNS

ENDPOINTS = {
    "/generate": ["run_id", "prompt", "length", "temperature", "top_k", "top_p", "seed"],
    "/loss_curves": ["run_id"],
    "/temperature_sweep": ["run_id", "prompt", "length"],
    "/compare_runs": ["run_ids"],
    "/gates": ["run_id", "text", "layer", "unit"],
    "/overfitting_map": ["color_by"],
    "/longrange_accuracy": [],
    "/longrange_gradients": [],
    "/forget_gate": [],
    "/rerun_longrange": ["cell", "k", "forget_bias", "lr"],
    "/gradient_flow": ["run_id"],
    # New inputs go last, so callers who pass the first eight keep working.
    "/train": ["upload", "recipe", "steps", "hidden_size", "dropout", "lr", "run_name",
               "max_vocab", "cell", "optimizer", "weight_drop", "locked_dropout",
               "embed_dropout", "ar", "tar", "forget_bias", "tokenizer"],
    "/stop_training": [],
    "/train_canary": ["repeats", "regularizer", "steps"],
    "/canary_chart": [],
}


def generation(run: str, **changed) -> list:
    """/generate's inputs: a short greedy text from the seed, with some of them changed."""
    args = dict(run_id=run, prompt=SEED, length=20, temperature=0.0, top_k=0, top_p=1.0, seed=0)
    return list({**args, **changed}.values())


def refusal(client, *args, api_name: str) -> str:
    """The one line a caller is told for a refused request."""
    with pytest.raises(AppError) as err:
        client.predict(*args, api_name=api_name)
    message = str(err.value)
    assert "\n" not in message and len(message) < 400, message
    return message


def test_the_named_endpoints_take_the_inputs_callers_rely_on(client):
    api = client.view_api(print_info=False, return_format="dict")
    named = {name: [p["parameter_name"] for p in endpoint["parameters"]]
             for name, endpoint in api["named_endpoints"].items()}
    assert named == ENDPOINTS  # and nothing else: the page's own events stay private
    assert not api["unnamed_endpoints"]


def test_generate_returns_the_text_then_its_report(client, registered):
    text, marked, figures, spans, novelty, note, model, source = client.predict(
        *generation(registered["windows"]), api_name="/generate")
    assert text.startswith(SEED) and len(text) > len(SEED) + 20
    assert marked[0] == {"token": SEED, "class_or_confidence": "prompt"}
    assert "".join(piece["token"] for piece in marked) == text
    assert "4-grams" in figures and spans["headers"] == SPAN_COLUMNS
    assert [row[0] for row in novelty["data"]] == [str(n) for n in range(1, 9)]
    assert text.endswith(model) and "paragraph 1, word 5" in note and source


def test_generate_streams_a_long_text_as_it_is_written(client, registered, monkeypatch):
    # The second word comes once the first words are due; then the server holds the text
    # until the caller has them: the first update must arrive while the rest is being written.
    first_seen, waited = threading.Event(), []
    real = generate_tab.stream_ids

    def stream_ids(*args):
        for k, token_id in enumerate(real(*args)):
            if k == 1:
                time.sleep(generate_tab.FIRST_WORDS_SECONDS)
            yield token_id
            if k == 1:
                waited.append(first_seen.wait(30))

    monkeypatch.setattr(generate_tab, "stream_ids", stream_ids)
    updates = []
    for update in client.submit(*generation(registered["windows"], length=limits.MAX_LENGTH),
                                api_name="/generate"):
        updates.append(update)
        first_seen.set()
    assert waited == [True], "the first update came only once the text was done"
    assert len(updates) > 1
    first, last = updates[0][0], updates[-1][0]
    assert last.startswith(first) and len(first) < len(last)
    assert "of 400" in updates[-1][2]  # the report, of the whole text


def test_generate_with_a_registered_model(client):
    text, _, figures, *_ = client.predict(*generation(RECITER), api_name="/generate")
    assert text.startswith(SEED) and len(text) > len(SEED)
    assert "--model models:/lighthouse@reciter" in figures


@pytest.mark.parametrize("changed, message", [
    (dict(length="many"), "Length must be a whole number from 1 to 400, got 'many'"),
    (dict(length=None), "Length must be a whole number from 1 to 400, got None"),
    (dict(length=10**6), "Length must be a whole number from 1 to 400, got 1000000"),
    (dict(length=10**400), "Length must be a whole number from 1 to 400, got a very large"),
    (dict(temperature="hot"), "Temperature must be a number from 0 to 2, got 'hot'"),
    (dict(top_k=[1]), "Top-k must be a whole number"),
    (dict(top_p=True), "Top-p must be a number from 0 to 1, got True"),
    (dict(seed="x"), "Random seed must be a whole number"),
    (dict(prompt="the zorblax"), "zorblax"),
    (dict(prompt="the " * 100_000), "characters long; the limit is 2,000 characters"),
    (dict(run_id="not-a-run"), "There is no run with id 'not-a-run'"),
    (dict(run_id="q" * 100_000), "A run reference has at most 300 characters; got 100,000"),
])
def test_a_refused_generation_gets_one_clear_line(client, registered, changed, message):
    assert message in refusal(client, *generation(registered["windows"], **changed),
                              api_name="/generate")


def test_nan_sent_as_json_gets_the_same_line(client, registered):
    # gradio_client cannot send NaN (strict JSON); a plain HTTP caller can.
    base = client.src.rstrip("/") + "/gradio_api/call/generate"
    body = json.dumps({"data": generation(registered["windows"], length=float("nan"))})
    event = httpx.post(base, content=body, headers={"content-type": "application/json"},
                       timeout=30).json()["event_id"]
    reply = httpx.get(f"{base}/{event}", timeout=60).text
    assert "event: error" in reply
    assert "Length must be a whole number from 1 to 400, got nan" in reply


def test_a_long_reference_is_echoed_as_a_short_prefix(client):
    message = refusal(client, *generation("z" * 5000), api_name="/generate")
    assert message.count("z") <= limits.SHOWN_CHARS


def test_errors_name_the_store_never_its_path_and_escape_what_they_echo(client, registered):
    message = refusal(client, *generation("<img src=x onerror=alert(1)>"), api_name="/generate")
    assert "<img" not in message and "&lt;img" in message
    assert str(registered["store"]) not in message
    assert f"{registered['store'].name}/mlflow.db" in message
    message = refusal(client, *generation(registered["windows"], prompt="the <b>zorblax</b>"),
                      api_name="/generate")
    assert "<b>" not in message and "zorblax" in message


def test_the_other_endpoints_refuse_bad_values_in_one_line(client, registered):
    run = registered["windows"]
    assert "Unit must be a whole number" in refusal(client, run, SEED, 1, "abc", api_name="/gates")
    assert "Steps must be a whole number" in refusal(
        client, None, "windows", "lots", 16, 0.0, 0.01, "", 500, api_name="/train")
    assert "Color by must be one of recipe, cell, corpus, got '&lt;b&gt;'" in refusal(
        client, "<b>", api_name="/overfitting_map")
    assert "There is no run" in refusal(client, "not-a-run", api_name="/loss_curves")
    assert "No training is in progress" in refusal(client, api_name="/stop_training")


def test_compare_runs_refuses_too_many_runs_or_a_string(client, registered):
    runs = [registered["seed"], registered["windows"]]
    curves, params, finals = client.predict(runs, api_name="/compare_runs")
    assert "recipe" in str(params["data"]) and "val_loss" in str(finals["data"])
    assert (f"Compare at most {limits.MAX_COMPARED} runs at once; got "
            f"{limits.MAX_COMPARED + 1}.") in refusal(
        client, runs * 4 + runs[:1], api_name="/compare_runs")
    assert "Runs to compare must be a list of runs, got 'abc'" in refusal(
        client, "abc", api_name="/compare_runs")


def test_every_view_answers(client, registered):
    run = registered["windows"]
    curves = client.predict(run, api_name="/loss_curves")[0]
    assert "train_loss" in str(curves["data"])
    sweep, note = client.predict(run, SEED, 10, api_name="/temperature_sweep")
    assert "when greedy" in note
    assert "forget gate" in client.predict(run, SEED, 1, -1, api_name="/gates")
    points, note, _ = client.predict("cell", api_name="/overfitting_map")
    assert "2 run(s)" in note
    plot, note, table = client.predict(run, api_name="/gradient_flow")
    assert "Twenty words back" in note


def test_gradios_monitoring_page_is_off(client):
    # Its summary of the app's traffic would be public.
    assert httpx.get(client.src.rstrip("/") + "/monitoring/summary", timeout=30).status_code == 403


def test_heavy_events_share_two_compute_slots_and_the_queue_is_bounded(client, registered,
                                                                       monkeypatch):
    # Two generations are held in the compute slots; a third and a flood of /gates calls (the
    # same slots) wait in the queue, which takes QUEUE_MAX_SIZE and tells the rest it is full.
    release, lock, running, most, gates_ran = threading.Event(), threading.Lock(), [], [0], []
    real_stream, real_load = generate_tab.stream_ids, inside_tab.load

    def held(*args):
        with lock:
            running.append(1)
            most[0] = max(most[0], len(running))
        try:
            release.wait(120)
            yield from real_stream(*args)
        finally:
            with lock:
                running.pop()

    def load(*args):
        gates_ran.append(release.is_set())
        return real_load(*args)

    monkeypatch.setattr(generate_tab, "stream_ids", held)
    monkeypatch.setattr(inside_tab, "load", load)
    run = registered["windows"]
    generations, gates, refused = [], [], []
    try:
        generations = [client.submit(*generation(run, length=5), api_name="/generate")
                       for _ in range(3)]
        wait_until(lambda: len(running) >= 2, 60, "two generations to start")
        gates = [client.submit(run, SEED, 1, -1, api_name="/gates")
                 for _ in range(limits.QUEUE_MAX_SIZE + 2)]
        jobs = generations + gates
        full = len(jobs) - 2 - limits.QUEUE_MAX_SIZE  # past the two running and the queue
        wait_until(lambda: sum(job.done() for job in jobs) >= full, 60, "the queue to refuse")
        assert len(running) == 2 and gates_ran == []  # nothing else ran meanwhile
    finally:
        release.set()
        for job in generations + gates:
            try:
                job.result(timeout=120)
            except QueueError as err:
                refused.append((job, str(err)))
    assert len(refused) == full and all("Queue is full" in message for _, message in refused)
    assert most[0] == 2  # never a third generation at once
    assert len(gates_ran) == len([job for job in gates if job not in dict(refused)])


def test_a_request_body_over_its_bound_is_refused_before_it_is_read(client):
    from ui.body_limit import bound_for

    assert bound_for("/gradio_api/upload") > limits.MAX_UPLOAD_BYTES  # room for the file
    assert bound_for("/gradio_api/call/generate") == limits.MAX_REQUEST_BYTES
    huge = json.dumps({"data": [RECITER, "a " * limits.MAX_REQUEST_BYTES, 5, 0, 0, 1, 0]})
    refused = httpx.post(f"{client.src}gradio_api/call/generate", content=huge, timeout=60,
                         headers={"content-type": "application/json"})
    assert refused.status_code == 413
    assert refused.json()["error"].startswith("The request is larger than 1,000,000 bytes")
    with pytest.raises(httpx.HTTPStatusError, match="413"):
        client.predict(RECITER, "a " * limits.MAX_REQUEST_BYTES, 5, 0, 0, 1, 0,
                       api_name="/generate")
    assert client.predict(RECITER, SEED, 5, 0, 0, 1, 0, api_name="/generate")[0].startswith(SEED)
