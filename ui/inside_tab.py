"""The Look inside tab: the gates and states, word by word, of the last generated text (an LSTM's
input, forget and output gates and cell state; a GRU's reset and update gates; an RNN's h)."""

from __future__ import annotations

import gradio as gr

import app
from ui import fields
from ui.generate_tab import GenerateTab


def build(run: gr.Dropdown, generate: GenerateTab) -> None:
    with gr.Tab("Look inside", id="inside") as tab:
        gr.Markdown("The gates while the model reads the last generated text, one column per word "
                    "(drawn when this tab opens).")
        with gr.Row():
            layer = fields.number(value=1, precision=0, minimum=1, label="Layer",
                                  info="Which layer (1 = nearest the words).")
            unit = fields.number(value=-1, precision=0, minimum=-1, label="Unit",
                                 info="-1 = mean over all units; 0, 1, … = one unit of the state.")
            button = gr.Button("Show the gates", elem_id="gates-btn")
        gates = gr.HTML(elem_id="gates")
    inputs = [run, generate.out, layer, unit]
    # Drawn when the tab opens, not after every generation: a classroom clicking Generate then
    # costs the server one event per click, not two.
    tab.select(app.gates_on_open, inputs, gates, api_visibility="private",
               **app.COMPUTE_SLOT)
    button.click(app.gate_heatmap, inputs, gates, api_name="gates", **app.COMPUTE_SLOT)
