"""The Overfitting map tab: every run one point, held-out perplexity across, memorization up."""

from __future__ import annotations

import gradio as gr

import app


def build(run: gr.Dropdown) -> None:
    """run: the run picker at the top, which a point picked on the map sets."""
    with gr.Tab("Overfitting map", id="map") as tab:
        with gr.Row():
            color_by = gr.Radio(list(app.MAP_COLOR_BY), value="recipe", label="Color by",
                                scale=3)
            refresh = gr.Button("↻ Redraw the map", scale=0, min_width=160,
                                elem_id="map-btn")
        points = gr.ScatterPlot(
            x="held_out_perplexity", y="memorization", color="group", height=380,
            x_title="held-out perplexity (lower generalizes better)",
            y_title="extractable memorization (share recited)", y_lim=[0, 1],
            tooltip=["name", "run", "settings"], elem_id="map-plot")
        note = gr.Markdown(elem_id="map-note")
        with gr.Accordion("The runs on the map (click a row to load it)", open=False):
            table = gr.Dataframe(interactive=False, max_height=300, elem_id="map-table")
    outputs = [points, note, table]
    draw = dict(fn=app.overfitting_map, inputs=color_by, outputs=outputs, **app.COMPUTE_SLOT)
    refresh.click(**draw, api_name="overfitting_map",
                  api_description="Every finished run with held-out text as one point.")
    tab.select(**draw, api_visibility="private")
    color_by.change(**draw, api_visibility="private")
    # Both pickers read the table: it holds the same points as the map, as a DataFrame.
    points.select(app.pick_from_map, table, [run, note], api_visibility="private")
    table.select(app.pick_from_map, table, [run, note], api_visibility="private")
