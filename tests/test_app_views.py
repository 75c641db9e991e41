"""The app's views of #13 and #14: memorization on the loss chart, the Train tab's new controls,
the overfitting map, gradient flow, and Look inside for GRU, RNN and <unk>.

One small store per module: a two-point sweep, a GRU run and an RNN run on the default corpus
(about a minute to train on two CPUs, so the tests that use it are marked slow).
"""

from __future__ import annotations

import os

import gradio as gr
import pandas as pd
import pytest
from matplotlib.figure import Figure

import app
from training import registry
from training.config import TrainConfig

TINY = dict(steps=20, embed_dim=16, hidden_size=16, eval_interval=10, memorization_sample=16,
            max_vocab=300)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """{"uri", "parent", "gru", "rnn"}: a sweep of two windows runs (dropout 0 and 0.4), a GRU
    and an RNN run."""
    from training.sweep import run_sweep
    from training.tracking import train_run

    folder = tmp_path_factory.mktemp("views_store")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    previous = os.environ.get("MLFLOW_TRACKING_URI")
    os.environ["MLFLOW_TRACKING_URI"] = uri
    try:
        quiet = lambda line: None  # noqa: E731
        parent = run_sweep({"dropout": [0.0, 0.4]}, TINY, name="tiny-sweep", on_child=quiet)
        cells = {cell: train_run(TrainConfig.for_recipe("windows", cell=cell, **TINY),
                                 run_name=f"tiny-{cell}", on_log=quiet) for cell in ("gru", "rnn")}
    finally:
        if previous is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = previous
    return {"uri": uri, "parent": parent, **cells}


@pytest.fixture
def use_store(store, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store["uri"])
    registry.load_run.cache_clear()
    app.source_index.cache_clear()
    app.untrained_flows.cache_clear()
    return store


# ---- #13.1: memorization on the loss chart ------------------------------------------------------

@pytest.mark.slow
def test_loss_chart_has_memorization_on_a_second_axis(use_store):
    curves, note, figure = app.loss_chart(use_store["gru"])
    memorized = curves[curves["metric"] == app.MEMORIZATION]
    assert list(memorized["step"]) == [10, 20]  # one point per evaluation, the last kept once
    assert memorized["value"].between(0, 1).all()
    assert isinstance(figure, Figure) and len(figure.axes) == 2  # loss left, memorization right
    assert figure.axes[1].get_ylim() == (0, 100)
    assert "memorization stays below" in note or "Starts reciting" in note
    assert app.loss_chart(None)[1:] == ("No run selected.", None)


def test_starts_reciting_marks_the_first_step_at_half():
    memorized = pd.DataFrame({"step": [25, 50, 75, 100], "value": [0.1, 0.49, 0.5, 0.9],
                              "metric": app.MEMORIZATION})
    assert app.reciting_step(memorized) == 75
    assert "Starts reciting at step 75" in app.reciting_note(memorized, {"memorization_sample": "64"})
    assert app.reciting_step(memorized.iloc[:2]) is None
    curves = pd.concat([pd.DataFrame({"step": [25, 100], "value": [5.0, 1.0],
                                      "metric": "train_loss"}), memorized])
    labels = app.loss_figure(curves, "t").axes[0].get_legend().get_texts()
    assert "starts reciting (75)" in [t.get_text() for t in labels]


# ---- #13.2 and #14: the Train tab's controls ------------------------------------------------------

def test_train_config_takes_the_cell_and_the_regularizers():
    config = app.train_config("windows", 100, 32, 0.3, 1.0, 500, "gru", "ntasgd", 0.5, True,
                              0.1, 2.0, 1.0)
    assert (config.cell, config.optimizer, config.weight_drop, config.locked_dropout,
            config.embed_dropout, config.ar, config.tar) == ("gru", "ntasgd", 0.5, True, 0.1, 2.0, 1.0)
    assert app.train_config("seed", 100, 32, 0.0, 0.005).optimizer == "adam"  # recipe's own
    assert app.train_config("windows", 100, 32, 0.3, 1.0, 500, "rnn", "").optimizer == "sgd"


@pytest.mark.parametrize("extra, message", [
    (("transformer",), "Cell"),
    (("lstm", "rmsprop"), "Optimizer"),
    (("lstm", None, 0.95), "Weight drop"),
    (("lstm", None, "lots"), "Weight drop"),
    (("lstm", None, 0.0, "yes"), "Locked dropout"),
    (("lstm", None, 0.0, False, 0.9), "Embedding dropout"),
    (("lstm", None, 0.0, False, 0.0, -1), "AR"),
    (("lstm", None, 0.0, False, 0.0, 0.0, float("nan")), "TAR"),
])
def test_new_train_controls_are_bounded(extra, message):
    with pytest.raises(gr.Error, match=message):
        app.train_config("windows", 100, 32, 0.3, 1.0, 500, *extra)


def test_the_cost_ceiling_counts_the_cells_own_parameters():
    lstm = app.train_config("windows", 100, 64, 0.3, 1.0, 500)
    gru = app.train_config("windows", 100, 64, 0.3, 1.0, 500, "gru")
    rnn = app.train_config("windows", 100, 64, 0.3, 1.0, 500, "rnn")
    sizes = [app.model_parameters(c, 502) for c in (lstm, gru, rnn)]
    assert sizes[0] > sizes[1] > sizes[2]
    recurrent = 64 * 64 + 64 * 64  # one block of W_ih and W_hh
    assert sizes[0] - sizes[2] >= 3 * recurrent and sizes[1] - sizes[2] >= 2 * recurrent


# ---- #13.4: the overfitting map -------------------------------------------------------------------

@pytest.mark.slow
def test_the_map_has_one_point_per_run_and_loads_the_picked_one(use_store):
    points, note, table = app.overfitting_map("cell")
    assert len(points) == 4 and set(points["group"]) == {"lstm", "gru", "rnn"}
    assert (points["held_out_perplexity"] > 1).all() and points["memorization"].between(0, 1).all()
    assert "dropout=0.4" in " ".join(points["settings"])  # what differs is shown on hover
    assert "4 run(s)" in note and table is points
    assert set(app.overfitting_map("recipe")[0]["group"]) == {"windows"}
    target = points.iloc[2]
    row = gr.SelectData(None, {"index": [2, 0], "value": "x", "row_value": list(target)})
    assert app.pick_from_map(table, row)[0] == target["run_id"]
    x = target["held_out_perplexity"]
    brush = gr.SelectData(None, {"index": [x - 0.01, x + 0.01], "value": [x - 0.01, x + 0.01]})
    assert app.pick_from_map(table, brush)[0] == target["run_id"]
    with pytest.raises(gr.Error, match="Color by"):
        app.overfitting_map("steps")


def test_an_empty_store_or_runs_without_validation_give_a_note(temp_store, monkeypatch):
    points, note, _ = app.overfitting_map()
    assert points.empty and "No run to map yet" in note
    from training import sweep

    seed_run = pd.DataFrame([{"run_id": "a" * 32, "name": "s", "recipe": "seed", "params": {},
                              "held_out_perplexity": float("nan"),
                              "extractable_memorization": 0.9, "parent_run_id": None}])
    monkeypatch.setattr(sweep, "sweep_points", lambda: seed_run)  # a run with no held-out text
    points, note, _ = app.overfitting_map()
    assert points.empty and "No run to map yet" in note


# ---- #14: gradient flow and the cells inside -----------------------------------------------------

@pytest.mark.slow
def test_gradient_flow_overlays_three_untrained_cells_and_the_trained_run(use_store):
    figure, note, table = app.gradient_flow_view(use_store["rnn"])
    lines = figure.axes[0].get_lines()
    labels = [line.get_label() for line in lines]
    assert labels == ["lstm untrained", "gru untrained", "rnn untrained", "this run (rnn), trained"]
    assert figure.axes[0].get_yscale() == "log"
    assert all(line.get_ydata()[0] == pytest.approx(1.0) for line in lines)  # 1 at distance 0
    assert list(table.columns) == ["curve", "distance 10", "distance 20", "distance 40"]
    assert "Twenty words back" in note
    with pytest.raises(gr.Error, match="No run selected"):
        app.gradient_flow_view(None)


@pytest.mark.slow
@pytest.mark.parametrize("cell, rows", [
    ("gru", ("reset gate r", "update gate z", "candidate n", "hidden state h", "hidden h, unit")),
    ("rnn", ("hidden state h", "hidden h, unit")),
])
def test_look_inside_shows_each_cells_own_gates(use_store, cell, rows):
    loaded = app.load(use_store[cell])
    words = [w for w in loaded.source_tokens if w in loaded.vocab][:6]
    page = app.gate_heatmap(use_store[cell], " ".join(words))
    for row in rows:
        assert row in page
    assert "input gate" not in page and "forget gate" not in page


@pytest.mark.slow
def test_look_inside_reads_a_generated_unk(use_store):
    loaded = app.load(use_store["gru"])  # a vocabulary capped at 300 words: text has <unk>
    assert "<unk>" in loaded.vocab.decode(loaded.vocab.encode(loaded.source_tokens, unknown="unk"))
    text = "the <unk> and the <unk>."
    page = app.gate_heatmap(use_store["gru"], text)
    assert page.count("<th>&lt;unk&gt;</th>") == 2
    with pytest.raises(gr.Error, match="zorblax"):
        app.gate_heatmap(use_store["gru"], "the <unk> zorblax")


def test_train_api_keeps_its_inputs_and_adds_the_new_ones_last():
    demo = app.build_demo()
    train = next(fn for fn in demo.fns.values() if fn.api_name == "train")
    labels = [block.label for block in train.inputs]
    assert labels[:8] == ["Training text (.txt, UTF-8, up to 2 MB)", "Recipe", "Steps",
                          "Hidden size", "Dropout", "Learning rate", "Run name", "Vocabulary cap"]
    assert labels[8:] == ["Cell", "Optimizer", "Weight drop", "Locked dropout",
                          "Embedding dropout", "AR", "TAR"]
    names = {fn.api_name for fn in demo.fns.values()}
    assert {"loss_curves", "overfitting_map", "gradient_flow"} <= names
