"""The Gradio app: its functions called directly, then the launched app through gradio_client.

Every test uses a temporary store (the ``use_demo_store`` / ``temp_store`` fixtures, or the
memorizing run below), never mlruns/.
"""

from __future__ import annotations

import inspect
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import gradio as gr
import pandas as pd
import pytest

import app
from training import registry
from training.config import DEFAULT_CORPUS, TrainConfig

ROOT = Path(__file__).resolve().parent.parent
SEED = "i was twenty-three when"  # the corpus's first words
FIRST_WORDS = " ".join(DEFAULT_CORPUS.read_text(encoding="utf-8").split()[:200])


def train_memorizing_run(folder: Path) -> dict:
    """A run that recites its short training text: no dropout, nothing held out. ~4 s."""
    from training.tracking import train_run

    uri = f"sqlite:///{folder / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", uri)
        config = TrainConfig.for_recipe("windows", steps=100, dropout=0.0, embed_dim=32,
                                        hidden_size=32, val_fraction=0.0, eval_interval=100,
                                        optimizer="adam", lr=0.01, batch_size=16)
        run_id = train_run(config, run_name="demo-memorizer", text=FIRST_WORDS,
                           corpus_name="first-200-words", on_log=lambda line: None)
    return {"uri": uri, "run_id": run_id, "folder": folder}


@pytest.fixture(scope="module")
def memorizer(tmp_path_factory):
    return train_memorizing_run(tmp_path_factory.mktemp("memorizer"))


@pytest.fixture
def use_memorizer(memorizer, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", memorizer["uri"])
    return memorizer


def final(outputs):
    """The last yield of a generator event, as a dict by output name."""
    names = ["text", "highlight", "figures", "spans", "novelty", "note", "model", "source"]
    return dict(zip(names, list(outputs)[-1], strict=True))


# ---- import and start-up ---------------------------------------------------------------------

def test_import_opens_no_store(tmp_path):
    store = tmp_path / "never" / "mlflow.db"
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{store}"}
    subprocess.run([sys.executable, "-c", "import app; app.build_demo()"], cwd=ROOT, env=env,
                   check=True, capture_output=True, timeout=120)
    assert not store.parent.exists()


def test_default_run_prefers_newest_demo_run():
    runs = pd.DataFrame({"run_id": ["c", "b", "a"], "name": ["mine", "demo-seed", "demo-windows"]})
    assert app.default_run(runs) == "b"
    assert app.default_run(runs.assign(name=["x", "y", None])) == "c"
    assert app.default_run(runs.iloc[:0]) is None


def test_empty_store_shows_a_notice_and_clear_errors(temp_store):
    run, table, compare, notice = app.refresh_runs()
    assert run.choices == [] and run.value is None and table.empty
    assert notice.visible and "Train" in notice.value
    with pytest.raises(gr.Error, match="No run selected"):
        list(app.generate(None, SEED))


def test_ensure_runs_trains_a_default_model_only_when_empty(temp_store, monkeypatch, capsys):
    calls = []
    monkeypatch.setattr("training.tracking.train_run",
                        lambda config, **kw: calls.append((config, kw)) or "new-run")
    app.ensure_runs(steps=300)
    (config, kw), = calls
    assert kw["run_name"] == app.DEFAULT_RUN_NAME and config.recipe == "windows"
    assert config.steps == 300 and Path(config.corpus) == DEFAULT_CORPUS
    assert "training a small default model" in capsys.readouterr().out


def test_ensure_runs_starts_at_once_with_runs(use_demo_store, monkeypatch):
    monkeypatch.setattr("training.tracking.train_run", lambda *a, **k: pytest.fail("trained"))
    app.ensure_runs()


def test_refresh_lists_runs_and_selects_newest(use_demo_store):
    run, table, compare, notice = app.refresh_runs()
    ids = [run_id for _, run_id in run.choices]
    assert set(ids) == {use_demo_store["seed"], use_demo_store["windows"]}
    assert run.value == use_demo_store["windows"]  # newest; neither is named demo-…
    assert compare.value == ids[:2] and not notice.visible
    assert list(table["name"]) == ["test-windows", "test-seed"]
    assert app.refresh_runs(use_demo_store["seed"])[0].value == use_demo_store["seed"]


# ---- generation ------------------------------------------------------------------------------

def test_generate_streams_then_reports(use_demo_store, monkeypatch):
    monkeypatch.setattr(app, "STREAM_SECONDS", 0)
    monkeypatch.setattr(app, "FIRST_WORDS_SECONDS", 0)  # send every word (the real pace is timed)
    outputs = list(app.generate(use_demo_store["windows"], SEED, 30, 0.8, 0, 1.0, 7))
    assert len(outputs) > 3  # the text arrives in pieces before the report
    first = outputs[0]
    assert first[0].startswith(SEED) and first[1] is None  # old report cleared
    # ... with the spans table empty under its own column names (None would show "1 2 3")
    assert list(first[3].columns) == app.SPAN_COLUMNS and first[3].empty
    result = final(outputs)
    assert result["text"].startswith(SEED)
    assert result["highlight"][0] == (SEED, "prompt")
    assert {label for _, label in result["highlight"]} <= {"prompt", "copied", None}
    assert "".join(text for text, _ in result["highlight"]) == result["text"]
    assert list(result["novelty"]["n"]) == [str(n) for n in range(1, 9)]
    assert "4-grams" in result["figures"]
    assert "paragraph 1, word 1" in result["note"]  # the seed opens the corpus
    again = final(app.generate(use_demo_store["windows"], SEED, 30, 0.8, 0, 1.0, 7))
    assert again["text"] == result["text"]  # the random seed makes it reproducible


def page_events(run_id, *settings):
    """The Generate button's three events in turn, as the page chains them."""
    text, figures, first = app.first_words_on_page(run_id, *settings)
    rest = list(app.rest_on_page(first, run_id, *settings))
    return (text, figures, first), rest, app.report_outputs(rest[-1][2])


def assert_same_report(report, api):
    assert len(report) == len(api) - 1 == 7
    for ours, theirs in zip(report, api[1:], strict=True):
        if isinstance(ours, pd.DataFrame):
            pd.testing.assert_frame_equal(ours, theirs)
        else:
            assert ours == theirs


def test_the_page_gets_the_same_text_and_report_in_three_events(use_demo_store, monkeypatch):
    # The Generate button: the first words outside the queue (first_words_on_page), the rest
    # streamed (rest_on_page), then the report (report_outputs); the /generate API sends it all
    # in one event. Same settings, same result.
    monkeypatch.setattr(app, "STREAM_SECONDS", 0)
    monkeypatch.setattr(app, "FIRST_WORDS_SECONDS", 0)
    settings = (SEED, 30, 0.8, 0, 1.0, 7)
    (text, figures, first), rest, report = page_events(use_demo_store["windows"], *settings)
    api = list(app.generate(use_demo_store["windows"], *settings))[-1]
    assert figures == app.GENERATING_NOTE and first.pending is None
    assert 0 < first.shown < 30 and text == first.text and api[0].startswith(text)
    # The rest sends only texts longer than the one on screen, growing, and ends with the report's needs.
    assert len(rest) > 2 and all(len(update) == 3 for update in rest)
    assert all(figures == app.GENERATING_NOTE for _, figures, _ in rest)
    assert all(pending == gr.skip() for _, _, pending in rest[:-1])  # a State: no cost
    texts = [text] + [update[0] for update in rest[:-1]]  # the last may repeat the text
    assert all(len(a) < len(b) and b.startswith(a) for a, b in zip(texts, texts[1:], strict=False))
    assert rest[-1][0] == api[0] and len(rest[-1][2].new) == 30
    assert_same_report(report, api)


def test_a_short_text_is_finished_in_the_first_event(use_demo_store, monkeypatch):
    monkeypatch.setattr(app, "FIRST_WORDS_SECONDS", 60)  # all the work fits in the first event
    settings = (SEED, 12, 0.0, 0, 1.0, 0)
    (text, _, first), rest, report = page_events(use_demo_store["windows"], *settings)
    api = list(app.generate(use_demo_store["windows"], *settings))[-1]
    assert first.shown == 12 and text == api[0] and first.pending is not None
    assert len(rest) == 1 and rest[0] == (text, app.GENERATING_NOTE, first.pending)  # no second generation
    assert_same_report(report, api)


def test_the_page_leaves_a_refused_request_to_the_queued_event(use_demo_store):
    # Outside the queue Gradio shows no error on the page (an HTTP 500), so the page's first
    # event answers LEAVE_TO_QUEUE for any refusal, its components' own checks included (the
    # slider's range), and the queued one refuses the request with the usual message.
    run = use_demo_store["windows"]
    fns = app.build_demo().fns.values()
    first_on_page = next(fn for fn in fns if fn.name == "first_words_on_page").fn
    leave = tuple(first_on_page(run, SEED, 10**12, 0, 0, 1, 0))
    assert leave == (gr.skip(), gr.skip(), None)
    for args, message in [((SEED, 10**6), "Length"), (("the <b>zorblax</b>", 5), "zorblax"),
                          (("x " * 5000, 5), "characters long"), ((SEED, 5, math.nan), "Temperature"),
                          ((SEED, 5, 0.0, "many"), "Top-k must be a number"), (("", 5), "empty")]:
        request = (run, *args)
        with pytest.raises(gr.Error, match=message):
            app.first_words_on_page(*request)
        assert tuple(first_on_page(*request)) == leave
        with pytest.raises(gr.Error, match=message):
            list(app.rest_on_page(None, *request))
    with pytest.raises(gr.Error, match="There is no run"):
        list(app.rest_on_page(None, "no-such-run", SEED, 5))
    # A run name or id prefix is a look-up in the store: left to the queued event, which finds it.
    assert app.first_words_on_page(run[:8], SEED, 5) == app.LEAVE_TO_QUEUE
    assert len(list(app.rest_on_page(None, run[:8], SEED, 5))[-1][2].new) == 5


def test_the_first_words_event_stops_early_even_beside_other_generations(use_demo_store, monkeypatch):
    # Beside other generations the queued events send their first update late (one event for
    # a short text); the first-words event keeps the quiet rule: 3 words of a long text.
    monkeypatch.setattr(app, "_GENERATING", [1])
    _, _, first = app.first_words_on_page(use_demo_store["windows"], SEED, app.MAX_LENGTH, 0.0)
    assert first.shown == app.FIRST_WORDS_MIN and first.pending is None
    assert app._GENERATING[0] == 1  # its stopped generation is counted out again


def test_a_report_without_a_generated_text_is_a_clear_error():
    # The report event reads the page's state; called without one (its own request, a
    # session that never generated), it says so instead of failing on None.
    for pending in (None, {"reference": "x"}):
        with pytest.raises(gr.Error, match="generate one first"):
            app.report_outputs(pending)


def test_the_button_hides_the_old_report_and_shows_the_new_one_or_the_old_on_error():
    fns = list(app.build_demo().fns.values())
    first = next(fn for fn in fns if fn.name == "first_words_on_page")
    rest = next(fn for fn in fns if fn.name == "rest_on_page")
    report = next(fn for fn in fns if fn.name == "report_outputs")
    api = next(fn for fn in fns if fn.api_name == "generate")
    assert "report-stale" in first.js and not first.queue  # a plain request: no queue to join
    assert rest.queue and report.queue and api.queue
    # The texts are computed on the event loop, the report in a worker thread (ui.events).
    assert inspect.isasyncgenfunction(rest.fn) and inspect.isasyncgenfunction(api.fn)
    assert not inspect.iscoroutinefunction(report.fn) and not inspect.isasyncgenfunction(first.fn)
    assert all(fn.api_visibility == "private" for fn in (first, rest, report))
    assert [type(c).__name__ for c in first.outputs] == ["Textbox", "Markdown", "State"]
    assert [type(c).__name__ for c in rest.outputs] == ["Textbox", "Markdown", "State"]
    assert rest.inputs[0] is first.outputs[2] and rest.inputs[1:] == first.inputs
    assert rest.trigger_after == first._id and rest.trigger_only_on_success
    assert report.trigger_after == rest._id and report.trigger_only_on_success
    assert report.outputs == api.outputs[1:]  # the API's report outputs, filled by the page's event
    shown_again = [fn for fn in fns if fn.js and "classList.remove('report-stale')" in fn.js]
    assert {fn.trigger_after for fn in shown_again} == {report._id, rest._id, first._id}
    assert sum(fn.trigger_only_on_failure for fn in shown_again) == 2
    assert not any(fn.preprocess or fn.postprocess for fn in (first, rest, report, api))


def test_generate_finds_copied_spans(use_memorizer):
    result = final(app.generate(use_memorizer["run_id"], SEED, 40, 0.0))
    copied = [text for text, label in result["highlight"] if label == "copied"]
    assert copied and sum(len(c.split()) for c in copied) >= 20
    spans = result["spans"]
    assert len(spans) >= 1 and spans["words"].max() >= 10
    assert spans["where in the source"].str.match(r"paragraph \d+, word \d+").all()
    assert "«" in spans["the source there (in context)"].iloc[0]
    assert result["figures"].startswith("**Why:** demo-memorizer") and "\n### " in result["figures"]
    assert result["novelty"]["novel share"].iloc[3] < 0.5
    assert result["source"].startswith("i went out to the skerrow light")


@pytest.mark.parametrize("kwargs, message", [
    (dict(prompt=""), "empty"),
    (dict(prompt="   "), "empty"),
    (dict(prompt="the zorblax and florp"), "zorblax.*florp"),
    (dict(length=0), "Length"),
    (dict(length=-5), "Length"),
    (dict(length=10**6), "Length"),
    (dict(length=2.5), "whole number"),
    (dict(length=math.nan), "Length"),
    (dict(length="many"), "Length must be a number"),
    (dict(temperature=-0.1), "Temperature"),
    (dict(temperature=math.nan), "Temperature"),
    (dict(top_p=0), "Top-p"),
    (dict(top_p=1.5), "Top-p"),
    (dict(top_k=-1), "Top-k"),
    (dict(seed=-3), "Random seed"),
])
def test_bad_generation_input_is_a_clear_error(use_demo_store, kwargs, message):
    args = {"run_id": use_demo_store["windows"], "prompt": SEED, **kwargs}
    with pytest.raises(gr.Error, match=message):
        list(app.generate(**args))


def test_unknown_run_and_missing_artifacts(use_memorizer, tmp_path, monkeypatch):
    with pytest.raises(gr.Error, match="no run"):
        list(app.generate("0123456789abcdef", SEED))
    # A copy of the store whose model file was deleted (open_store relocates the copy).
    shutil.copytree(use_memorizer["folder"], tmp_path / "copy")
    run_id = use_memorizer["run_id"]
    artifacts = tmp_path / "copy" / "artifacts" / run_id / "artifacts"
    (artifacts / registry.MODEL_FILE).unlink()
    (artifacts / registry.LAST_FILE).unlink()  # with last.pt left, its weights are used instead
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'copy' / 'mlflow.db'}")
    registry.load_run.cache_clear()
    app.source_index.cache_clear()
    try:
        with pytest.raises(gr.Error, match="missing"):
            list(app.generate(run_id, SEED))
    finally:
        registry.load_run.cache_clear()
        app.source_index.cache_clear()


# ---- loss curves, temperature, comparison, gates ----------------------------------------------

def test_loss_curves_mark_the_lowest_validation_loss(use_demo_store):
    curves, note = app.loss_curves(use_demo_store["windows"])
    assert {"train_loss", "val_loss", "lowest val loss"} <= set(curves["metric"])
    marker = curves[curves["metric"] == "lowest val loss"]
    val = curves[curves["metric"] == "val_loss"]
    assert marker["step"].nunique() == 1
    assert marker["step"].iloc[0] == val.loc[val["value"].idxmin(), "step"]
    assert f"lowest at step {int(marker['step'].iloc[0])}" in note
    assert app.loss_curves(None)[1] == "No run selected."
    with pytest.raises(gr.Error, match="no run"):
        app.loss_curves("0123456789abcdef")


def test_memorization_falls_as_temperature_rises(use_memorizer):
    frame, note = app.temperature_sweep(use_memorizer["run_id"], SEED, 30)
    four = frame[frame["measure"] == "copied 4-grams"]
    assert list(four["temperature"]) == list(app.SWEEP_TEMPERATURES)
    assert frame["share"].between(0, 1).all()
    assert four["share"].iloc[0] > four["share"].iloc[-1]  # the memorizer recites when greedy
    assert "when greedy" in note


def test_compare_runs(use_demo_store):
    ids = [use_demo_store["seed"], use_demo_store["windows"]]
    curves, params, finals = app.compare_runs(ids)
    assert curves["series"].str.contains("test-seed").any()
    assert curves["series"].str.contains("test-windows").any()
    assert {"recipe", "dropout"} <= set(params["param"])
    assert not params["param"].str.startswith("model.dropout").any()  # duplicates left out
    assert {"val_loss", "extractable_memorization"} <= set(finals["metric"])
    with pytest.raises(gr.Error, match="at least two"):
        app.compare_runs(ids[:1])
    with pytest.raises(gr.Error, match="no run"):
        app.compare_runs([ids[0], "not-a-run"])


def test_gate_heatmap(use_demo_store):
    page = app.gate_heatmap(use_demo_store["windows"], "i was twenty-three when the light")
    for row in ("input gate", "forget gate", "output gate", "cell state"):
        assert row in page
    assert "<th>twenty-three</th>" in page and "averaged over all 32 units" in page
    assert page.count("cell c, unit") == app.HEATMAP_UNITS
    assert "unit 3" in app.gate_heatmap(use_demo_store["windows"], SEED, 1, 3)
    with pytest.raises(gr.Error, match="Unit"):
        app.gate_heatmap(use_demo_store["windows"], SEED, 1, 32)
    with pytest.raises(gr.Error, match="no text"):
        app.gate_heatmap(use_demo_store["windows"], "")
    with pytest.raises(gr.Error, match="zorblax"):
        app.gate_heatmap(use_demo_store["windows"], "the zorblax")


def test_suggest_prompt_offers_words_the_run_knows(use_memorizer):
    assert app.suggest_prompt(use_memorizer["run_id"], "zorblax") == SEED
    assert app.suggest_prompt(use_memorizer["run_id"], SEED) == gr.skip()  # kept as typed


# ---- training --------------------------------------------------------------------------------

@pytest.mark.parametrize("content, message", [
    (b"", "empty"),
    (b"   \n\n  ", "empty"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00", "binary"),
    (b"caf\xe9 au lait", "UTF-8"),
])
def test_bad_upload_is_a_clear_error(tmp_path, content, message):
    path = tmp_path / "corpus.txt"
    path.write_bytes(content)
    with pytest.raises(gr.Error, match=message):
        app.read_upload(str(path))


def test_upload_size_limit_and_default_corpus(tmp_path, monkeypatch):
    path = tmp_path / "big.txt"
    path.write_text("word " * 100, encoding="utf-8")
    monkeypatch.setattr(app, "MAX_UPLOAD_BYTES", 100)
    with pytest.raises(gr.Error, match="larger than"):
        app.read_upload(str(path))
    text, name = app.read_upload(None)
    assert name == DEFAULT_CORPUS.name and text.startswith("I was twenty-three")


@pytest.mark.parametrize("args, message", [
    (("nope", 100, 64, 0.3, 0.005), "Recipe"),
    (("windows", 0, 64, 0.3, 0.005), "Steps"),
    (("windows", 5000, 64, 0.3, 0.005), "Steps"),
    (("windows", 100, 4096, 0.3, 0.005), "Hidden size"),
    (("windows", 100, 64, 1.5, 0.005), "Dropout"),
    (("windows", 100, 64, 0.3, -1), "Learning rate"),
])
def test_training_limits(args, message):
    with pytest.raises(gr.Error, match=message):
        app.train_config(*args)


def test_one_training_at_a_time():
    assert app._TRAIN_LOCK.acquire(blocking=False)
    try:
        with pytest.raises(gr.Error, match="already in progress"):
            list(app.train(None))
    finally:
        app._TRAIN_LOCK.release()


def test_train_logs_a_run_and_selects_it(temp_store, tmp_path):
    upload = tmp_path / "story.txt"
    upload.write_text(FIRST_WORDS, encoding="utf-8")
    outputs = list(app.train(str(upload), "windows", 20, 16, 0.0, 0.01, "app-test"))
    run, table, compare, notice, status, log = outputs[-1]
    runs = registry.list_runs()
    assert list(runs["name"]) == ["app-test"] and run.value == runs["run_id"].iloc[0]
    assert runs["corpus"].iloc[0] == "story.txt" and not notice.visible
    assert "step 20/20" in log and status.startswith("Done: run")
    assert not app._TRAIN_LOCK.locked()


def test_failed_training_releases_the_lock(temp_store, tmp_path):
    upload = tmp_path / "tiny.txt"
    upload.write_text("hi", encoding="utf-8")  # too short to learn from: the trainer refuses
    with pytest.raises(gr.Error, match="Training failed"):
        list(app.train(str(upload), "windows", 10, 16, 0.0, 0.01))
    assert not app._TRAIN_LOCK.locked()


# ---- the launched app, through gradio_client ---------------------------------------------------

@pytest.fixture(scope="module")
def client(demo_store):
    from gradio_client import Client

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", demo_store["uri"])
        demo = app.build_demo()
        try:
            app.launch(demo, prevent_thread_lock=True, server_name="127.0.0.1", quiet=True)
            yield Client(demo.local_url, verbose=False)
        finally:
            demo.close()


def test_client_sees_a_documented_generate_endpoint(client):
    api = client.view_api(print_info=False, return_format="dict")
    endpoint = api["named_endpoints"]["/generate"]
    assert [p["parameter_name"] for p in endpoint["parameters"]] == [
        "run_id", "prompt", "length", "temperature", "top_k", "top_p", "seed"]
    assert "/train" in api["named_endpoints"] and "/refresh_runs" not in api["named_endpoints"]


def test_client_generates(client, demo_store):
    result = client.predict(demo_store["windows"], SEED, 20, 0.8, 0, 1.0, 0, api_name="/generate")
    text, marked = result[0], result[1]
    assert text.startswith(SEED) and len(text) > len(SEED) + 20
    assert marked[0] == {"token": SEED, "class_or_confidence": "prompt"}
    curves = client.predict(demo_store["seed"], api_name="/loss_curves")[0]
    assert "train_loss" in str(curves["data"])


def test_generate_converts_its_values_in_one_thread_with_gradios_own_methods(client, demo_store):
    # /generate runs the components' pre/postprocess itself (ui/events.py), not one Gradio
    # thread hand-off per component; a caller must see exactly what Gradio would have sent.
    generate = next(fn for fn in app.build_demo().fns.values() if fn.api_name == "generate")
    assert not generate.preprocess and not generate.postprocess
    result = client.predict(demo_store["windows"], SEED, 20, 0.0, 0, 1.0, 0, api_name="/generate")
    assert len(result) == len(generate.outputs) == 8
    spans, novelty = result[3], result[4]
    assert spans["headers"] == app.SPAN_COLUMNS and isinstance(spans["data"], list)
    assert novelty["columns"] == ["n", "novel share"] and novelty["mark"] == "bar"
    assert [row[0] for row in novelty["data"]] == [str(n) for n in range(1, len(novelty["data"]) + 1)]


def test_client_gets_clear_errors(client, demo_store):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="zorblax"):
        client.predict(demo_store["seed"], "the zorblax", 20, 0.0, 0, 1.0, 0, api_name="/generate")
    with pytest.raises(AppError, match="no run"):
        client.predict("not-a-run", SEED, 20, 0.0, 0, 1.0, 0, api_name="/generate")
    with pytest.raises(AppError, match="maximum"):
        client.predict(demo_store["seed"], SEED, 10**6, 0.0, 0, 1.0, 0, api_name="/generate")


def test_only_a_run_named_by_its_full_id_is_stepped_on_the_event_loop(use_demo_store):
    # Any other name is looked up in the store at every request: not on the event loop.
    run_id = use_demo_store["windows"]
    assert app.warm_run(run_id) is True
    assert app.warm_run(run_id[:8]) is False and app.warm_run(app.load(run_id).name) is False
    assert app.warm_rest(None, run_id) is True
    with pytest.raises(gr.Error, match="No run selected"):
        app.warm_run(None)
