"""The Gradient flow tab: how far back a gradient reaches in an RNN, a GRU and an LSTM."""

from __future__ import annotations

import gradio as gr

import app


def build(run: gr.Dropdown) -> None:
    with gr.Tab("Gradient flow", id="flow") as tab:
        gr.Markdown(
            "How strongly the loss of the last word depends on each earlier word, by distance "
            "(1 at distance 0, log scale). Going back one step, a plain RNN's gradient is "
            "multiplied by its recurrent matrix and the slope of tanh, so it shrinks (or grows) "
            "geometrically; the LSTM's cell state and the GRU's update gate add a gated shortcut. "
            "Untrained, with this project's small starting word vectors, the RNN's tanh works "
            "in its linear range and its gradient has not faded yet; pick `demo-rnn` (solid "
            "line) to see what training does to it. Dashed: untrained models of the three cells "
            "at the selected run's size; solid: the selected run after training.")
        button = gr.Button("Draw the gradient flow", variant="primary", elem_id="flow-btn")
        plot = gr.Plot(label="Gradient flow", elem_id="flow-plot")
        note = gr.Markdown(elem_id="flow-note")
        table = gr.Dataframe(label="The curves at distances 10, 20 and 40", interactive=False,
                             elem_id="flow-table")
    outputs = [plot, note, table]
    button.click(app.gradient_flow_view, run, outputs, api_name="gradient_flow",
                 show_progress_on=plot, **app.COMPUTE_SLOT)
    tab.select(app.flow_if_run, run, outputs, api_visibility="private", **app.COMPUTE_SLOT)
