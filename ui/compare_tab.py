"""The Compare runs tab: loss curves of several runs overlaid, their params and final figures."""

from __future__ import annotations

from typing import NamedTuple

import gradio as gr
import pandas as pd

from training.tracking import format_number
from ui import limits
from ui.runs import get_run, history, list_runs, resolve, unknown_run

FINAL_FIGURES = ["steps", "train_loss", "val_loss", "val_perplexity", "extractable_memorization",
                 "sample_copied_4gram_fraction", "sample_longest_copied_span", "duration_s"]


class CompareTab(NamedTuple):
    picker: gr.Dropdown  # refilled with the run list whenever the runs are re-read
    outputs: list[gr.components.Component]  # what compare_runs returns, in order


def picked(run_ids, request: gr.Request | None = None) -> list[str]:
    """The full ids of the runs to compare: a list of two to MAX_COMPARED references."""
    if run_ids is None:
        run_ids = []
    if not isinstance(run_ids, (list, tuple)):
        raise limits.refusal(f"Runs to compare must be a list of runs, got {limits.shown(run_ids)}")
    if len(run_ids) > limits.MAX_COMPARED:
        raise limits.refusal(f"Compare at most {limits.MAX_COMPARED} runs at once; got {len(run_ids):,}.")
    ids = list(dict.fromkeys(resolve(r, request) for r in run_ids if r))  # each once, in order
    if len(ids) < 2:
        raise limits.refusal("Pick at least two runs to compare.")
    return ids


def compare_runs(run_ids, request: gr.Request = None):
    """Loss curves of two or more runs overlaid, the params that differ, the final metrics."""
    run_ids = picked(run_ids, request)
    table = list_runs(request).set_index("run_id")
    missing = [r for r in run_ids if r not in table.index]
    if missing:
        raise unknown_run(missing[0])
    names = {r: f"{table.loc[r, 'name']} ({r[:4]})" for r in run_ids}
    curves = pd.concat([history(r).assign(run=names[r]) for r in run_ids], ignore_index=True)
    curves["series"] = curves["metric"].str.replace("_loss", "") + " · " + curves["run"]
    params = {names[r]: get_run(r, request).data.params for r in run_ids}
    keys = sorted(set().union(*params.values()))
    keys = [k for k in keys if k.removeprefix("model.") == k or k.removeprefix("model.") not in keys]
    differ = [k for k in keys if len({p.get(k, "—") for p in params.values()}) > 1]
    param_table = pd.DataFrame([{"param": k, **{n: p.get(k, "—") for n, p in params.items()}}
                                for k in differ], columns=["param", *params])
    metric_table = pd.DataFrame([
        {"metric": f, **{names[r]: format_number(table.loc[r, f]) for r in run_ids}}
        for f in FINAL_FIGURES])
    return curves[["step", "value", "series"]], param_table, metric_table


def compare_if_ready(run_ids, request: gr.Request = None):
    """compare_runs when two or more runs are picked; leaves the outputs alone otherwise."""
    if not isinstance(run_ids, list) or len(run_ids) < 2:
        return gr.skip(), gr.skip(), gr.skip()
    return compare_runs(run_ids, request)


def build() -> CompareTab:
    with gr.Tab("Compare runs", id="compare"):
        picker = gr.Dropdown(label="Runs to compare", multiselect=True, allow_custom_value=True,
                             elem_id="compare",
                             info=f"Pick two to {limits.MAX_COMPARED} runs.")
        button = gr.Button("Compare", variant="primary", elem_id="compare-btn")
        plot = gr.LinePlot(x="step", y="value", color="series", height=340,
                           title="Loss curves overlaid", elem_id="compare-plot")
        with gr.Row():
            params = gr.Dataframe(label="Params that differ", interactive=False)
            finals = gr.Dataframe(label="Final metrics", interactive=False)
    outputs = [plot, params, finals]
    button.click(compare_runs, picker, outputs, api_name="compare_runs",
                 show_progress_on=plot, **limits.COMPUTE_SLOT)
    return CompareTab(picker, outputs)
