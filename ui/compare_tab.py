"""The Compare runs tab: loss curves of several runs overlaid, their params and final figures."""

from __future__ import annotations

from typing import NamedTuple

import gradio as gr

import app


class CompareTab(NamedTuple):
    picker: gr.Dropdown  # refilled with the run list whenever the runs are re-read
    outputs: list[gr.components.Component]  # what app.compare_runs returns, in order


def build() -> CompareTab:
    with gr.Tab("Compare runs", id="compare"):
        picker = gr.Dropdown(label="Runs to compare", multiselect=True, allow_custom_value=True,
                             elem_id="compare", info="Pick two or more runs.")
        button = gr.Button("Compare", variant="primary", elem_id="compare-btn")
        plot = gr.LinePlot(x="step", y="value", color="series", height=340,
                           title="Loss curves overlaid", elem_id="compare-plot")
        with gr.Row():
            params = gr.Dataframe(label="Params that differ", interactive=False)
            finals = gr.Dataframe(label="Final metrics", interactive=False)
    outputs = [plot, params, finals]
    button.click(app.compare_runs, picker, outputs, api_name="compare_runs",
                 show_progress_on=plot, **app.COMPUTE_SLOT)
    return CompareTab(picker, outputs)
