"""The long-range task: its sequences, the forget bias, each cell learning it at a small k, the
learning-rate search on a validation set, its runs in MLflow (nested, never offered as language
models) and the Why an LSTM tab's views."""

from __future__ import annotations

import dataclasses

import gradio as gr
import pytest
import torch

from lstm_core.cells import CELLS
from lstm_core.longrange import (
    TaskConfig,
    gate_trace,
    held_out,
    search_lr,
    sequences,
    task_gradient_flow,
    train_task,
    validation,
)
from lstm_core.model import LSTMLanguageModel, ModelConfig
from training.config import TrainConfig
from training.loop import model_config_for

SMALL = TaskConfig(k=3, steps=150, eval_interval=25, eval_size=256)


def test_a_sequence_is_the_first_word_k_distractors_and_the_query():
    config = TaskConfig(k=7)
    inputs, targets = sequences(config, 50, torch.Generator().manual_seed(0))
    assert inputs.shape == (50, 9) and torch.equal(targets, inputs[:, 0])
    assert (inputs[:, 0] < config.signals).all()
    between = inputs[:, 1:-1]
    assert ((between >= config.signals) & (between < config.vocab_size - 1)).all()
    assert (inputs[:, -1] == config.vocab_size - 1).all()
    assert not torch.equal(held_out(config)[0][:50], inputs)  # a seed of their own
    assert not torch.equal(held_out(config)[0], validation(config)[0])  # test apart from validation


def test_the_search_keeps_the_first_rate_that_solves_else_the_best_on_validation():
    solved, tries = search_lr(SMALL, (0.01, 0.03))
    assert [t["lr"] for t in tries] == [0.01] and solved.lr == 0.01  # no need to try 0.03
    assert solved.final_validation >= 0.99 and solved.steps < SMALL.steps  # stopped once solved
    capped = dataclasses.replace(SMALL, steps=4, eval_interval=2)
    best, tries = search_lr(capped, (0.001, 0.03, 0.01))
    assert [t["lr"] for t in tries] == [0.001, 0.03, 0.01]  # none solves in 4 steps: all tried
    assert all(t["steps"] == 4 for t in tries)
    top = max(t["val_accuracy"] for t in tries)
    assert best.final_validation == top
    assert best.lr == next(t["lr"] for t in tries if t["val_accuracy"] == top)  # earlier on a tie


def test_the_three_cells_have_equal_parameter_counts():
    counts = {cell: LSTMLanguageModel(TaskConfig(cell=cell).model_config()).num_parameters()
              for cell in CELLS}
    assert all(abs(n - counts["lstm"]) / counts["lstm"] < 0.03 for n in counts.values()), counts


@pytest.mark.parametrize("cell", CELLS)
def test_each_cell_learns_the_task_at_a_small_k(cell):
    result = train_task(dataclasses.replace(SMALL, cell=cell), solved_at=0.99)
    assert result.accuracy[0][0] == 0 and result.accuracy[0][1] < 0.5  # chance is 1/8
    assert result.final_accuracy >= 0.95, result.accuracy
    flow = task_gradient_flow(result.model, *[t[:16] for t in held_out(SMALL)])
    assert len(flow["grad_norm"]) == SMALL.k + 2 and flow["grad_norm"][0] == pytest.approx(1.0)
    trace = gate_trace(result.model, held_out(SMALL)[0][0])
    if cell == "rnn":
        assert trace is None  # no gate that keeps the state
    else:
        assert len(trace["mean"]) == SMALL.k + 2
        assert 0 < trace["mean_over_distractors"] <= trace["top_unit_over_distractors"] < 1


def test_forget_bias_sets_the_lstm_forget_gate_and_the_gru_update_gate():
    for cell, bias in (("lstm", 0.0), ("lstm", 2.5), ("gru", 0.0), ("lstm", 1.0)):
        model = LSTMLanguageModel(ModelConfig(vocab_size=10, embed_dim=4, hidden_size=6,
                                              cell=cell, forget_bias=bias))
        blocks = model.bias_l0.detach().split(6)
        assert torch.equal(blocks[1], torch.full((6,), bias))
        assert all(not block.any() for i, block in enumerate(blocks) if i != 1)
    assert ModelConfig(vocab_size=10).forget_bias == TrainConfig().forget_bias == 1.0  # as before
    config = TrainConfig(forget_bias=0.0)
    assert model_config_for(config, 50).forget_bias == 0.0
    for bad in (11.0, float("nan")):
        with pytest.raises(ValueError, match="forget_bias"):
            TrainConfig(forget_bias=bad)


@pytest.mark.slow  # about 6 s on an idle machine, 20 s on a busy one
def test_the_grid_logs_nested_runs_the_picker_never_offers(temp_store):
    from training import longrange
    from training.runs import list_runs
    from training.store import mlflow, open_store
    from ui import flow_tab

    assert flow_tab.accuracy_view()[:2] == (None, flow_tab.NO_TASK_RUNS)  # empty store
    parent = longrange.run_grid({"k": [2, 3], "cell": ["lstm", "rnn"], "forget_bias": [1.0, 0.0]},
                                SMALL, name="test-longrange", on_line=lambda line: None,
                                lrs=(0.01, 0.03))
    runs = mlflow.search_runs(experiment_ids=[open_store()])
    children = runs[runs["tags.mlflow.parentRunId"] == parent]
    assert sorted(zip(children["params.cell"], children["params.forget_bias"],
                      children["params.k"], strict=True)) == [
        ("lstm", "0.0", "2"), ("lstm", "0.0", "3"), ("lstm", "1.0", "2"), ("lstm", "1.0", "3"),
        ("rnn", "none", "2"), ("rnn", "none", "3")]  # the RNN has no forget gate: once per k
    assert set(children["params.task"]) == {"copy-first"}
    assert set(children["params.lrs"]) == {"0.01 0.03"}
    for name in ("accuracy", "val_accuracy"):
        history = mlflow.MlflowClient().get_metric_history(children["run_id"].iloc[0], name)
        assert sorted(m.step for m in history)[:2] == [0, 25]
    assert (children["metrics.steps_trained"] < SMALL.steps).all()  # stopped once solved
    assert list_runs().empty  # neither the parent nor the children are language models
    results = longrange.stored_results()
    assert len(results) == 6 and (results["accuracy"] >= 0.95).all()
    assert (results["steps"] < results["max_steps"]).all()  # steps trained, not the cap

    # A curve that fails a k at every rate is not trained at larger k.
    lines = []
    hopeless = dataclasses.replace(SMALL, steps=1, eval_interval=1, seed=1)
    longrange.run_grid({"k": [2, 3], "cell": ["rnn"], "forget_bias": [1.0]}, hopeless,
                       name="test-hopeless", on_line=lines.append, lrs=(0.01,))
    assert "skipped" in lines[-1] and len(longrange.stored_results()) == 7

    figure, note, table = flow_tab.accuracy_view()
    assert len(table) == 7 and "k = 3" in note and "the mean of 2 seeds" in note
    figure, note = flow_tab.gradient_view()
    assert "k = 3" in note and "lstm" in note and "rnn" in note
    figure, note = flow_tab.gate_view()
    assert "forget gate averages" in note and figure is not None


def test_the_live_rerun_streams_its_accuracy_and_refuses_a_far_k():
    from ui import flow_tab, limits

    updates = list(flow_tab.rerun("gru", 3, 1.0))
    assert len(updates) >= 2 and "solved" in updates[-1][1] and "lr 0.01" in updates[-1][1]
    note = list(flow_tab.rerun("rnn", 2, 1.0, "0.03"))[-1][1]
    assert "lr 0.03" in note and "forget bias" not in note  # the RNN has no forget gate
    with pytest.raises(gr.Error, match="Learning rate"):
        next(flow_tab.rerun("lstm", 5, 1.0, "0.5"))
    with pytest.raises(gr.Error, match="k must be"):
        next(flow_tab.rerun("lstm", limits.MAX_LIVE_K + 1, 1.0))
    with pytest.raises(gr.Error, match="Forget bias"):
        next(flow_tab.rerun("lstm", 5, "nan"))
