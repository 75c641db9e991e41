"""The Gradient flow tab: how far back a gradient reaches in an RNN, a GRU and an LSTM."""

from __future__ import annotations

import json
from functools import lru_cache

import gradio as gr
import pandas as pd
import torch

from lstm_core.gradient_flow import at_distances, equal_size_models, gradient_flow
from training.runs import load_run
from training.store import artifact_path
from training.tracking import GRADIENT_FLOW_FILE, flow_figure, flow_passages
from ui import limits
from ui.runs import load

CELL_COLORS = {"lstm": "tab:blue", "gru": "tab:green", "rnn": "tab:red"}
FLOW_DISTANCES = (10, 20, 40)
ABOUT = ("How strongly the loss of the last word depends on each earlier word, by distance "
         "(1 at distance 0, log scale). Going back one step, a plain RNN's gradient is "
         "multiplied by its recurrent matrix and the slope of tanh, so it shrinks (or grows) "
         "geometrically; the LSTM's cell state and the GRU's update gate add a gated shortcut. "
         "Dashed: untrained models of the three cells at the selected run's size; solid: the "
         "selected run after training. On a short text with a next-word loss no cell needs to "
         "look far back, so these curves alone do not rank the cells.")


@lru_cache(maxsize=8)
def untrained_flows(run_id: str) -> dict[str, dict]:
    """Gradient flow of untrained LSTM, GRU and RNN models the size of the run's model (equal
    parameter count, its vocabulary), on the run's text."""
    loaded = load_run(run_id)  # checked by the caller
    passages = flow_passages(torch.tensor(loaded.vocab.encode(loaded.source_tokens,
                                                              unknown="unk")))
    models = equal_size_models(loaded.model.config, seed=0)
    return {cell: gradient_flow(model, passages) for cell, model in models.items()}


def trained_flow(run_id: str) -> dict | None:
    """The run's own logged gradient flow, or None when it logged none."""
    try:
        path = artifact_path(run_id, GRADIENT_FLOW_FILE)
        return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None
    except Exception:  # a remote store raises when the file is not there
        return None


def gradient_flow_view(run_id, request: gr.Request = None):
    """How far back a gradient reaches: untrained LSTM, GRU and RNN at the selected run's size
    (dashed), and the run itself after training (solid) when it logged its gradient flow.

    Returns the figure, a note, and a table of the curves at distances 10, 20 and 40.
    """
    loaded = load(run_id, request)
    cell = loaded.model.config.cell
    untrained = untrained_flows(loaded.run_id)
    curves = {f"{c} untrained": (flow, CELL_COLORS[c], "--") for c, flow in untrained.items()}
    trained = trained_flow(loaded.run_id)
    if trained is not None:
        curves[f"this run ({cell}), trained"] = (trained, CELL_COLORS[cell], "-")
    rows = [{"curve": label, **{f"distance {d}": f"{v:.2g}" for d, v in
                                at_distances(flow, FLOW_DISTANCES).items()}}
            for label, (flow, _, _) in curves.items()]
    at20 = {c: at_distances(f, (20,)).get(20) for c, f in untrained.items()}
    note = (f"Untrained models of **{loaded.model.num_parameters():,} parameters** each (the "
            "run's size and vocabulary), reading passages of its text.")
    if None not in at20.values():
        note += (f" Twenty words back, the untrained RNN keeps **{at20['rnn']:.1g}** of the "
                 f"gradient, the GRU {at20['gru']:.1g}, the LSTM {at20['lstm']:.1g}.")
    note += (" The solid line is the run itself after training." if trained is not None else
             " This run logged no gradient flow, so only untrained curves show.")
    title = f"Gradient flow, log scale (run {loaded.run_id[:8]}, a {cell.upper()})"
    return flow_figure(curves, title), note, pd.DataFrame(rows)


def flow_if_run(run_id, request: gr.Request = None):
    """gradient_flow_view when a run is selected (on opening the tab); nothing otherwise."""
    return gradient_flow_view(run_id, request) if run_id else (gr.skip(), gr.skip(), gr.skip())


def build(run: gr.Dropdown) -> None:
    with gr.Tab("Gradient flow", id="flow") as tab:
        gr.Markdown(ABOUT)
        button = gr.Button("Draw the gradient flow", variant="primary", elem_id="flow-btn")
        plot = gr.Plot(label="Gradient flow", elem_id="flow-plot")
        note = gr.Markdown(elem_id="flow-note")
        table = gr.Dataframe(label="The curves at distances 10, 20 and 40", interactive=False,
                             elem_id="flow-table")
    outputs = [plot, note, table]
    button.click(gradient_flow_view, run, outputs, api_name="gradient_flow",
                 show_progress_on=plot, **limits.COMPUTE_SLOT)
    tab.select(flow_if_run, run, outputs, api_visibility="private", **limits.COMPUTE_SLOT)
