"""The Overfitting map tab: every run one point, held-out perplexity across, memorization up."""

from __future__ import annotations

import html

import gradio as gr
import pandas as pd

from training.store import public, tracking_uri
from training.sweep import sweep_points
from ui import fields, limits
from ui.runs import chart_only, list_runs

MEMORIZATION = "extractable_memorization"
MAP_COLOR_BY = ("recipe", "cell", "corpus")  # corpus: perplexities of two texts do not compare
# Params the map's hover shows when they differ between runs (all of them when only one run).
MAP_SETTINGS = ("cell", "recipe", "optimizer", "steps", "hidden_size", "dropout", "weight_drop",
                "locked_dropout", "embed_dropout", "ar", "tar", "lr", "max_vocab")
MAP_COLUMNS = ["held_out_perplexity", "memorization", "group", *MAP_COLOR_BY, "name", "run",
               "settings", "run_id"]
NO_MAP = ("**No run to map yet.** Each point is a finished run with held-out text. Train a few in "
          "the **Train** tab, or a grid with `python -m training.sweep --dropout 0 0.4 "
          "--weight-drop 0 0.5`.")


def _settings(params: dict, keys: list[str]) -> str:
    return ", ".join(f"{k}={params[k]}" for k in keys if k in params)


def overfitting_map(color_by: str = "recipe", request: gr.Request = None):
    """Every finished run with held-out text as one point: held-out perplexity across,
    extractable memorization up (both of the checkpoint the run keeps), colored by recipe,
    cell or corpus.

    Returns the points (held_out_perplexity, memorization, group: the color_by column's value,
    recipe, cell, corpus, name, run, settings, run_id), a note, and the points again for the
    table under the map. Runs without
    validation (the seed recipe's default) are left out and counted in the note.
    """
    color_by = limits.choice(color_by, "Color by", MAP_COLOR_BY)
    try:
        runs = sweep_points()
    except Exception as err:  # MLflow raises several types for an unreachable store
        raise limits.refusal(public(f"Cannot read the run store {tracking_uri()}: {err}")) from None
    visible = list_runs(request)
    visible = visible[~chart_only(visible)]  # what this caller may see and load
    runs = runs[runs["run_id"].isin(visible["run_id"])]
    usable = runs.dropna(subset=["held_out_perplexity", MEMORIZATION])
    if usable.empty:
        empty = pd.DataFrame(columns=MAP_COLUMNS)
        return empty, NO_MAP, empty
    params = list(usable["params"])
    keys = [k for k in MAP_SETTINGS if len(params) == 1 or len({p.get(k) for p in params}) > 1]
    colors = {"recipe": [p.get("recipe") or "?" for p in params],
              "cell": [p.get("cell") or "lstm" for p in params],
              "corpus": list(usable["corpus"].fillna("?"))}
    points = pd.DataFrame({
        "held_out_perplexity": usable["held_out_perplexity"].round(1),
        "memorization": usable[MEMORIZATION].round(3),
        "group": colors[color_by], **colors,
        "name": usable["name"], "run": usable["run_id"].str[:8],
        "settings": [_settings(p, keys) for p in params], "run_id": usable["run_id"],
    }, columns=MAP_COLUMNS).reset_index(drop=True)
    left_out = len(runs) - len(usable)
    note = (f"**{len(points)} run(s)**, one point each: further right is worse on held-out text, "
            "higher recites more of its training text; both figures are of the weights the run "
            "keeps (its model.pt). Hover a point for its settings; drag across points (or click "
            "a row below) to load a run.")
    corpora = usable["corpus"].nunique()
    if corpora > 1:
        note += (f" The runs come from {corpora} texts, whose perplexities do not compare: "
                 "color by corpus to tell them apart.")
    if left_out:
        note += f" {left_out} finished run(s) without held-out text are left out."
    return points, note, points


def draw_map(color_by: str = "recipe", request: gr.Request = None):
    """The map as the tab draws it: each color choice is its own column of the points, so a
    new choice redraws the chart's colors (a chart handed new values in the column it already
    colors by keeps its old legend and draws none of them)."""
    points, note, table = overfitting_map(color_by, request)
    column = color_by if color_by in MAP_COLOR_BY else "group"
    return gr.ScatterPlot(value=points, color=column), note, table


def pick_from_map(points: pd.DataFrame | None, evt: gr.SelectData):
    """Load the run picked on the map: a dragged range of perplexities selects the point
    nearest its middle; a clicked row of the table selects that row's run.

    points: the table of overfitting_map's points. Returns (run picker value, note)."""
    if points is None or len(points) == 0:
        return gr.skip(), gr.skip()
    if evt.row_value is not None:  # a row of the table (its last column is the run id)
        run_id = str(evt.row_value[-1])
    else:
        low, high = sorted(float(x) for x in evt.index)
        inside = points[points["held_out_perplexity"].between(low, high)]
        if inside.empty:
            return gr.skip(), "No run in the range you dragged across; try a wider one."
        middle = (inside["held_out_perplexity"] - (low + high) / 2).abs()
        run_id = str(inside.loc[middle.idxmin(), "run_id"])
    return run_id, f"Loaded run `{html.escape(run_id[:8])}`: it is selected at the top."


def build(run: gr.Dropdown) -> None:
    """run: the run picker at the top, which a point picked on the map sets."""
    with gr.Tab("Overfitting map", id="map") as tab:
        with gr.Row():
            color_by = fields.radio(list(MAP_COLOR_BY), value="recipe", label="Color by", scale=3)
            refresh = gr.Button("↻ Redraw the map", scale=0, min_width=160, elem_id="map-btn")
        points = gr.ScatterPlot(
            x="held_out_perplexity", y="memorization", color="group", height=380,
            x_title="held-out perplexity (<unk> counts as one word; lower generalizes better)",
            y_title="extractable memorization (share recited)", y_lim=[0, 1],
            tooltip=["name", "run", "settings"], elem_id="map-plot")
        note = gr.Markdown(elem_id="map-note")
        with gr.Accordion("The runs on the map (click a row to load it)", open=False):
            table = gr.Dataframe(interactive=False, max_height=300, elem_id="map-table")
    outputs = [points, note, table]
    draw = dict(fn=draw_map, inputs=color_by, outputs=outputs, **limits.COMPUTE_SLOT)
    refresh.click(**draw, api_name="overfitting_map",
                  api_description="Every finished run with held-out text as one point.")
    tab.select(**draw, api_visibility="private")
    color_by.change(**draw, api_visibility="private")
    # Both pickers read the table: it holds the same points as the map, as a DataFrame.
    points.select(pick_from_map, table, [run, note], api_visibility="private")
    table.select(pick_from_map, table, [run, note], api_visibility="private")
