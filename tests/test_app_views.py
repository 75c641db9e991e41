"""The app's other tabs, their functions called directly: loss and temperature, compare, look
inside, the overfitting map, gradient flow, about.

The GRU, RNN and map views use one small store per module (a two-point sweep, a GRU and an RNN
run: about a minute to train on two CPUs, so the tests that use it are marked slow).
"""

from __future__ import annotations

from types import SimpleNamespace

import gradio as gr
import pandas as pd
import pytest
from matplotlib.figure import Figure

from conftest import QUIET, SEED, clear_run_caches, sqlite_uri, tracking
from training import runs
from training.config import TrainConfig
from ui import about_tab
from ui.compare_tab import compare_runs
from ui.flow_tab import gradient_flow_view
from ui.inside_tab import gate_heatmap
from ui.loss_tab import (
    MEMORIZATION,
    SWEEP_TEMPERATURES,
    loss_chart,
    loss_curves,
    loss_figure,
    reciting_note,
    reciting_step,
    temperature_sweep,
)
from ui.map_tab import overfitting_map, pick_from_map
from ui.runs import load

TINY = dict(steps=20, embed_dim=16, hidden_size=16, eval_interval=10, memorization_sample=16,
            max_vocab=300)


@pytest.fixture(scope="module")
def cells_store(tmp_path_factory):
    """{"uri", "parent", "gru", "rnn"}: a sweep of two windows runs (dropout 0 and 0.4), a GRU
    and an RNN run."""
    from training.sweep import run_sweep
    from training.tracking import train_run

    folder = tmp_path_factory.mktemp("cells_store")
    with tracking(sqlite_uri(folder)):
        parent = run_sweep({"dropout": [0.0, 0.4]}, TINY, name="tiny-sweep", on_child=QUIET)
        cells = {cell: train_run(TrainConfig.for_recipe("windows", cell=cell, **TINY),
                                 run_name=f"tiny-{cell}", on_log=QUIET) for cell in ("gru", "rnn")}
    return {"uri": sqlite_uri(folder), "parent": parent, **cells}


@pytest.fixture
def use_cells(cells_store, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", cells_store["uri"])
    clear_run_caches()
    yield cells_store
    clear_run_caches()


# ---- loss and temperature --------------------------------------------------------------------------

def test_loss_curves_mark_the_lowest_validation_loss(use_demo_store):
    curves, note = loss_curves(use_demo_store["windows"])
    assert {"train_loss", "val_loss", "lowest val loss"} <= set(curves["metric"])
    marker = curves[curves["metric"] == "lowest val loss"]
    val = curves[curves["metric"] == "val_loss"]
    assert marker["step"].nunique() == 1
    assert marker["step"].iloc[0] == val.loc[val["value"].idxmin(), "step"]
    assert f"lowest at step {int(marker['step'].iloc[0])}" in note
    assert loss_chart(None)[1:] == ("No run selected.", None, "")
    with pytest.raises(gr.Error, match="no run"):
        loss_curves("0123456789abcdef")


@pytest.mark.slow
def test_the_loss_chart_draws_memorization_on_a_second_axis(use_cells):
    curves, note, figure, _ = loss_chart(use_cells["gru"])
    memorized = curves[curves["metric"] == MEMORIZATION]
    assert list(memorized["step"]) == [10, 20]  # one point per evaluation, the last kept once
    assert memorized["value"].between(0, 1).all()
    assert isinstance(figure, Figure) and len(figure.axes) == 2  # loss left, memorization right
    assert figure.axes[1].get_ylim() == (0, 100)
    assert "memorization stays below" in note or "Starts reciting" in note


def test_starts_reciting_marks_the_first_step_at_half():
    memorized = pd.DataFrame({"step": [25, 50, 75, 100], "value": [0.1, 0.49, 0.5, 0.9],
                              "metric": MEMORIZATION})
    assert reciting_step(memorized) == 75
    assert "Starts reciting at step 75" in reciting_note(memorized, {"memorization_sample": "64"})
    assert reciting_step(memorized.iloc[:2]) is None
    curves = pd.concat([pd.DataFrame({"step": [25, 100], "value": [5.0, 1.0],
                                      "metric": "train_loss"}), memorized])
    labels = loss_figure(curves, "t").axes[0].get_legend().get_texts()
    assert "starts reciting (75)" in [t.get_text() for t in labels]


def test_the_loss_note_states_the_runs_own_memorization_lengths(use_demo_store, monkeypatch):
    real = runs.get_run(use_demo_store["windows"])
    params = {**real.data.params, "memorization_prefix": "5", "memorization_suffix": "7"}
    logged = SimpleNamespace(info=real.info, data=SimpleNamespace(
        params=params, tags=real.data.tags,
        metrics={**real.data.metrics, MEMORIZATION: 0.5}))
    monkeypatch.setattr(runs, "get_run", lambda run_id: logged)
    assert "given 5 words, the next 7" in loss_curves(use_demo_store["windows"])[1]


def test_memorization_falls_as_temperature_rises(use_memorizer):
    frame, note = temperature_sweep(use_memorizer["run_id"], SEED, 30)
    four = frame[frame["measure"] == "copied 4-grams"]
    assert list(four["temperature"]) == list(SWEEP_TEMPERATURES)
    assert frame["share"].between(0, 1).all()
    assert four["share"].iloc[0] > four["share"].iloc[-1]  # the memorizer recites when greedy
    assert "when greedy" in note


# ---- compare ------------------------------------------------------------------------------------

def test_compare_overlays_the_curves_and_lists_what_differs(use_demo_store):
    curves, params, finals = compare_runs([use_demo_store["seed"], use_demo_store["windows"]])
    assert curves["series"].str.contains("test-seed").any()
    assert curves["series"].str.contains("test-windows").any()
    assert {"recipe", "dropout"} <= set(params["param"])
    assert not params["param"].str.startswith("model.dropout").any()  # duplicates left out
    assert {"val_loss", "extractable_memorization"} <= set(finals["metric"])


def test_compare_needs_two_runs_it_knows(use_demo_store):
    seed = use_demo_store["seed"]
    with pytest.raises(gr.Error, match="at least two"):
        compare_runs([seed, seed[:8]])  # the same run twice is one run
    with pytest.raises(gr.Error, match="no run"):
        compare_runs([seed, "not-a-run"])


# ---- look inside -------------------------------------------------------------------------------

def test_the_heatmap_shows_an_lstms_gates_word_by_word(use_demo_store):
    run_id = use_demo_store["windows"]
    page = gate_heatmap(run_id, "i went out to the skerrow light")
    for row in ("input gate", "forget gate", "output gate", "cell state"):
        assert row in page
    assert "<th>skerrow</th>" in page and "averaged over all 32 units" in page
    assert page.count("cell c, unit") == 6  # the units whose state varies most
    assert "unit 3" in gate_heatmap(run_id, SEED, 1, 3)
    with pytest.raises(gr.Error, match="Unit must be a whole number from -1 to 31"):
        gate_heatmap(run_id, SEED, 1, 32)
    with pytest.raises(gr.Error, match="Layer must be a whole number from 1 to 1"):
        gate_heatmap(run_id, SEED, 2, -1)


def test_the_heatmap_needs_a_text_of_known_words(use_demo_store):
    with pytest.raises(gr.Error, match="no text to look inside"):
        gate_heatmap(use_demo_store["windows"], "")
    with pytest.raises(gr.Error, match="zorblax"):
        gate_heatmap(use_demo_store["windows"], "the <b>zorblax</b>")


@pytest.mark.slow
@pytest.mark.parametrize("cell, rows", [
    ("gru", ("reset gate r", "update gate z", "candidate n", "hidden state h", "hidden h, unit")),
    ("rnn", ("hidden state h", "hidden h, unit")),
])
def test_look_inside_shows_each_cells_own_gates(use_cells, cell, rows):
    loaded = load(use_cells[cell])
    words = [w for w in loaded.source_tokens if w in loaded.vocab][:6]
    page = gate_heatmap(use_cells[cell], " ".join(words))
    for row in rows:
        assert row in page
    assert "input gate" not in page and "forget gate" not in page


@pytest.mark.slow
def test_look_inside_reads_a_generated_unk(use_cells):
    loaded = load(use_cells["gru"])  # a vocabulary capped at 300 words: its text has <unk>
    assert "<unk>" in loaded.vocab.decode(loaded.vocab.encode(loaded.source_tokens, unknown="unk"))
    page = gate_heatmap(use_cells["gru"], "the <unk> and the <unk>.")
    assert page.count("<th>&lt;unk&gt;</th>") == 2
    with pytest.raises(gr.Error, match="zorblax"):
        gate_heatmap(use_cells["gru"], "the <unk> zorblax")


# ---- the overfitting map ----------------------------------------------------------------------------

@pytest.mark.slow
def test_the_map_has_one_point_per_run_and_loads_the_picked_one(use_cells):
    points, note, table = overfitting_map("cell")
    assert len(points) == 4 and set(points["group"]) == {"lstm", "gru", "rnn"}
    assert (points["held_out_perplexity"] > 1).all() and points["memorization"].between(0, 1).all()
    assert "dropout=0.4" in " ".join(points["settings"])  # what differs is shown on hover
    assert "4 run(s)" in note
    assert set(overfitting_map("recipe")[0]["group"]) == {"windows"}
    target = points.iloc[2]
    row = gr.SelectData(None, {"index": [2, 0], "value": "x", "row_value": list(target)})
    assert pick_from_map(table, row)[0] == target["run_id"]
    x = target["held_out_perplexity"]
    brush = gr.SelectData(None, {"index": [x - 0.01, x + 0.01], "value": [x - 0.01, x + 0.01]})
    assert pick_from_map(table, brush)[0] == target["run_id"]
    with pytest.raises(gr.Error, match="Color by must be one of recipe, cell"):
        overfitting_map("steps")


def test_a_store_without_held_out_runs_draws_no_map_but_a_note(temp_store, monkeypatch, memorizer):
    assert "No run to map yet" in overfitting_map()[1]
    monkeypatch.setenv("MLFLOW_TRACKING_URI", memorizer["uri"])  # its one run holds nothing out
    points, note, _ = overfitting_map()
    assert points.empty and "No run to map yet" in note


# ---- gradient flow ------------------------------------------------------------------------------

@pytest.mark.slow
def test_gradient_flow_overlays_three_untrained_cells_and_the_trained_run(use_cells):
    figure, note, table = gradient_flow_view(use_cells["rnn"])
    lines = figure.axes[0].get_lines()
    assert [line.get_label() for line in lines] == [
        "lstm untrained", "gru untrained", "rnn untrained", "this run (rnn), trained"]
    assert figure.axes[0].get_yscale() == "log"
    assert all(line.get_ydata()[0] == pytest.approx(1.0) for line in lines)  # 1 at distance 0
    assert list(table.columns) == ["curve", "distance 10", "distance 20", "distance 40"]
    assert "Twenty words back" in note
    with pytest.raises(gr.Error, match="No run selected"):
        gradient_flow_view(None)


# ---- about -------------------------------------------------------------------------------------

def test_about_is_built_from_the_demo_configs(monkeypatch):
    from training import demo as demo_runs

    changed = TrainConfig.for_recipe("seed", tokenizer="words", val_fraction=0.1, steps=777)
    monkeypatch.setitem(demo_runs.DEMO_RUNS, "demo-seed", changed)
    assert "777 steps" in about_tab.demo_runs_text()


def test_about_says_where_runs_are_kept_without_the_stores_path(monkeypatch, tmp_path):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    local = about_tab.store_text()
    assert "`mlruns/mlflow.db`" in local and "vanish" in local and "secret" in local
    assert str(tmp_path) not in local
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert "kept there" in about_tab.store_text()
