"""The run picker above the tabs: which logged run every tab uses, and the table of all runs."""

from __future__ import annotations

from typing import NamedTuple

import gradio as gr


class RunsHeader(NamedTuple):
    run: gr.Dropdown  # the selected run id or models:/ URI, an input of every tab
    refresh: gr.Button
    table: gr.Dataframe
    notice: gr.Markdown  # shown only while the store is empty


def build() -> RunsHeader:
    notice = gr.Markdown(visible=False, elem_id="notice")
    with gr.Row(equal_height=False):
        run = gr.Dropdown(label="Model (a registered model or an MLflow run)",
                          allow_custom_value=True, scale=5, elem_id="run",
                          info="Registered models (name@alias) first, then each logged run; "
                               "a run id prefix or run name may be typed too.")
        refresh = gr.Button("↻ Refresh runs", scale=0, min_width=150, size="sm",
                            elem_id="refresh-btn")
    with gr.Accordion("All logged runs", open=False):
        gr.Markdown("Every figure is of the weights a run keeps (the ones loaded): the loaded "
                    "step, its held-out perplexity (a word the training part lacks reads "
                    "`<unk>`, and `<unk>` counts as one word) and its memorization.")
        table = gr.Dataframe(label="Runs in the MLflow store (newest first)", interactive=False,
                             elem_id="runs-table")
    return RunsHeader(run, refresh, table, notice)
