"""The "Why an LSTM" tab: the long-range task that separates the cells, and the essay's gradient
flow, which does not.

The long-range figures come from the store's runs of the task (``training.longrange``): accuracy
against the distance k, the gradient curves of the trained cells at one k, and the keep gate
(LSTM forget, GRU update) over a sequence the LSTM solved. A button reruns one cell/k pair live.
"""

from __future__ import annotations

import dataclasses
import json
import queue
import threading
import time
from functools import lru_cache

import gradio as gr
import pandas as pd
import torch

from lstm_core.cells import CELLS
from lstm_core.gradient_flow import at_distances, equal_size_models, gradient_flow
from lstm_core.longrange import LRS, SOLVED, TaskConfig, train_task
from training import longrange
from training.runs import load_run
from training.store import artifact_path, public, tracking_uri
from training.tracking import GRADIENT_FLOW_FILE, flow_figure, flow_passages
from ui import fields, limits
from ui.runs import load

CELL_COLORS = {"lstm": "tab:blue", "gru": "tab:green", "rnn": "tab:red"}
FLOW_DISTANCES = (10, 20, 40)
TASK_TEXT = (
    "**The task.** A sequence starts with one of 8 words, then k distractor words drawn from 16 "
    "others, then a query mark; the model must answer the first word. Nothing else tells the "
    "answer, so a model that cannot carry that word k steps is at chance (1 in 8). Each cell "
    "trains at the same parameter count (about 7,500 weights: LSTM hidden 32, GRU 37, RNN 66) "
    f"with Adam at each of the learning rates {', '.join(f'{lr:g}' for lr in LRS)} in turn, "
    f"each run stopping once {SOLVED:.0%} of 512 validation sequences are right; the first rate "
    "that gets there (else the best on the validation sequences) is kept, and its accuracy on "
    "512 other test sequences is what is shown.")
NO_TASK_RUNS = ("**No long-range runs in this store yet.** `python -m training.longrange` trains "
                "the grid (a few minutes on two CPUs), or rerun one cell and k live below.")
ESSAY_TEXT = (
    "**On the training text.** How strongly the loss of the next word of the essay depends on "
    "each earlier word, by distance (1 at distance 0, log scale). Dashed: untrained models of "
    "the three cells at the selected run's size; solid: the selected run after training. On a "
    "short text with a next-word loss no word needs one forty words back, so nothing rewards "
    "a cell for keeping it: these curves do not rank the cells.")


# ---- the long-range task, from the store ------------------------------------------------------

def task_results() -> pd.DataFrame:
    try:
        return longrange.stored_results()
    except Exception as err:  # MLflow raises several types for an unreachable store
        raise limits.refusal(public(f"Cannot read the run store {tracking_uri()}: {err}")) from None


def _by_point(results: pd.DataFrame) -> pd.DataFrame:
    """One row per (cell, forget bias, k): the mean test accuracy over its seeds, and whether
    every seed solved the validation set."""
    points = results.assign(bias=results["forget_bias"].fillna(-99.0),
                            solved=results["val_accuracy"] >= SOLVED)
    points = points.groupby(["cell", "bias", "k"], as_index=False).agg(
        accuracy=("accuracy", "mean"), solved=("solved", "all"), seeds=("seed", "count"))
    return points.assign(forget_bias=points["bias"].where(points["bias"] != -99.0))


def _series(results: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """label -> points over k: each gated cell at each forget bias, the plain RNN once."""
    results = _by_point(results)
    series = {}
    for bias in sorted(results["forget_bias"].dropna().unique(), key=lambda b: (b != 1.0, b)):
        for cell in ("lstm", "gru"):
            rows = results[(results["cell"] == cell) & (results["forget_bias"] == bias)]
            if not rows.empty:
                series[f"{cell}, forget bias {bias:g}"] = rows.sort_values("k")
    rnn = results[results["cell"] == "rnn"]
    if not rnn.empty:
        series["rnn"] = rnn.sort_values("k")
    return series


LINE_STYLES = {1.0: "-", 0.0: "--"}  # any other bias dotted


def accuracy_figure(series: dict[str, pd.DataFrame], chance: float):
    from matplotlib.figure import Figure  # no pyplot: no global state, safe in the app's threads

    figure = Figure(figsize=(9, 3.8), dpi=100, layout="constrained")
    axes = figure.add_subplot()
    for label, rows in series.items():
        cell = label.split(",")[0]
        bias = rows["forget_bias"].iloc[0]
        axes.plot(rows["k"], rows["accuracy"], marker="o", color=CELL_COLORS[cell],
                  linestyle=LINE_STYLES.get(bias, "-") if cell != "rnn" else "-",
                  alpha=1.0 if cell == "rnn" or bias in LINE_STYLES else 0.6, label=label)
    axes.axhline(chance, color="gray", linestyle=":", label=f"chance ({chance:.3g})")
    ks = sorted({int(k) for rows in series.values() for k in rows["k"]})
    axes.set_xscale("log")
    axes.set_xticks(ks, [str(k) for k in ks])
    axes.minorticks_off()
    axes.set( ylim=(0, 1.05), xlabel="k: distractor words between the first word "
             "and the query", ylabel="test accuracy", title="Accuracy on the last word, each point at its best "
             "learning rate")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=8)
    return figure


def furthest_solved(rows: pd.DataFrame) -> int | None:
    """The largest k whose runs (every seed) solved the validation set."""
    if "solved" not in rows:
        rows = _by_point(rows)
    solved = rows[rows["solved"]]
    return int(solved["k"].max()) if not solved.empty else None


def accuracy_view():
    """Accuracy on the last word against k, for each cell and forget bias, from the store's
    runs of the task. Returns the figure (None without runs), a note and the table."""
    results = task_results()
    if results.empty:
        return None, NO_TASK_RUNS, pd.DataFrame()
    series = _series(results)
    reach = {label: furthest_solved(rows) for label, rows in series.items()}
    said = "; ".join(f"{label}: " + (f"k = {k}" if k else "none") for label, k in reach.items())
    seeds = results["seed"].nunique()
    steps = int(results["max_steps"].max())
    note = (f"{TASK_TEXT}\n\nThe furthest k solved (validation accuracy at least "
            f"{SOLVED:.0%}{', every seed' if seeds > 1 else ''}): {said}. "
            f"At most {steps} steps a run; "
            + (f"the mean of {seeds} seeds. " if seeds > 1 else "one seed. ")
            + "A curve ends at the first k it fails at every rate: longer distances are not "
            "trained.")
    table = results.assign(forget_bias=results["forget_bias"].map(
        lambda b: "none" if pd.isna(b) else f"{b:g}"), accuracy=results["accuracy"].round(3),
        val_accuracy=results["val_accuracy"].round(3),
        seconds=results["seconds"].round(1)).drop(columns=["run_id"])
    return accuracy_figure(series, TaskConfig().chance), note, table


def shown_k(results: pd.DataFrame) -> int:
    """The k the curves are shown at: the largest k every cell trained at. A curve stops at the
    first k it fails, so this is where the first cell failed, beside the others there."""
    return int(results.groupby("cell")["k"].max().min())


def _runs_at(results: pd.DataFrame, k: int) -> dict[str, pd.Series]:
    """Each cell's best run at k (the forget bias that did best; forget bias 1, then the
    smallest seed, on a tie)."""
    rows = results[results["k"] == k].assign(default=results["forget_bias"] != 1.0)
    rows = rows.sort_values(["accuracy", "default", "seed"], ascending=[False, True, True])
    return {row.cell: row for row in rows.drop_duplicates("cell").itertuples()}


def _label(row) -> str:
    bias = "" if pd.isna(row.forget_bias) else f", forget bias {row.forget_bias:g}"
    return f"{row.cell}{bias}, lr {row.lr:g} (accuracy {row.accuracy:.2f})"


def gradient_view():
    """The gradient flow of each trained cell on the task at one k (each cell's best run
    there): distance 0 is the query mark, distance k + 1 the first word, whose gradient
    carries the answer."""
    results = task_results()
    if results.empty:
        return None, NO_TASK_RUNS
    k = shown_k(results)
    rows = _runs_at(results, k)
    flows = {cell: longrange.run_result(row.run_id)["gradient_flow"] for cell, row in rows.items()}
    figure = flow_figure({_label(rows[cell]): (flow, CELL_COLORS[cell], "-")
                          for cell, flow in flows.items()},
                         f"Gradient flow on the task, k = {k}, trained")
    figure.axes[0].axvline(k + 1, color="gray", linestyle=":")
    note = (f"At k = {k}, the largest k every cell trained at, the gradient of the last word's "
            f"loss that reaches the first word (dotted line, k + 1 = {k + 1} steps back), relative "
            "to the query mark's: " + ", ".join(f"{_label(rows[cell])} **{flow['grad_norm'][k + 1]:.1e}**"
                                               for cell, flow in flows.items())
            + ". The first word is the only one the answer depends on: a gradient near zero "
            "there leaves training almost nothing to strengthen the link with.")
    return figure, note


def gate_figure(traces: dict[str, dict], k: int):
    from matplotlib.figure import Figure

    figure = Figure(figsize=(9, 3.4), dpi=100, layout="constrained")
    axes = figure.add_subplot()
    for cell, trace in traces.items():
        steps = range(len(trace["mean"]))
        axes.plot(steps, trace["top_unit"], color=CELL_COLORS[cell],
                  label=f"{cell} {trace['gate']} gate, unit {trace['unit']}")
        axes.plot(steps, trace["mean"], color=CELL_COLORS[cell], linestyle="--",
                  label=f"{cell} {trace['gate']} gate, mean of all units")
    axes.axvspan(0.5, k + 0.5, color="gray", alpha=0.1, label="the k distractors")
    axes.set(ylim=(0, 1.02), xlabel="position (0: the first word, last: the query mark)",
             ylabel="gate value", title=f"The keep gate over one solved sequence, k = {k}")
    axes.legend(fontsize=8)
    return figure


def gate_view():
    """The LSTM's forget gate (and the GRU's update gate) at every step of a held-out sequence
    it answers right, at the k the gradient curves use: the unit that holds it, and the mean."""
    results = task_results()
    if results.empty:
        return None, NO_TASK_RUNS
    k = shown_k(results)
    traces = {cell: longrange.run_result(row.run_id)["gate"]
              for cell, row in _runs_at(results, k).items() if cell != "rnn"}
    traces = {cell: trace for cell, trace in traces.items() if trace}
    if not traces:
        return None, f"No gated cell solved the task at k = {k}, so there is no solved sequence."
    rows = _runs_at(results, k)
    note = " ".join(
        f"**{_label(rows[cell])}**: over the {k} distractors its {t['gate']} gate averages "
        f"**{t['top_unit_over_distractors']:.2f}** in unit {t['unit']} (the unit that keeps most) "
        f"and {t['mean_over_distractors']:.2f} over all units." for cell, t in traces.items())
    return gate_figure(traces, k), note + " (The plain RNN has no such gate.)"


# ---- the live rerun ---------------------------------------------------------------------------

def live_config(cell, k, forget_bias, lr=LRS[0]) -> TaskConfig:
    cell = limits.choice(cell, "Cell", CELLS)
    k = limits.number(k, "k", 1, limits.MAX_LIVE_K, whole=True)
    bias = limits.number(forget_bias, "Forget bias", -limits.MAX_FORGET_BIAS,
                         limits.MAX_FORGET_BIAS)
    # The API may send the rate as a number or as the radio's text.
    lr = float(limits.choice(str(lr) if isinstance(lr, float) else lr, "Learning rate",
                             tuple(str(r) for r in LRS)))
    return dataclasses.replace(TaskConfig(), cell=cell, k=k, forget_bias=bias, lr=lr)


def curve_figure(points: list[tuple[int, float]], config: TaskConfig):
    from matplotlib.figure import Figure

    figure = Figure(figsize=(9, 3), dpi=100, layout="constrained")
    axes = figure.add_subplot()
    axes.plot([s for s, _ in points], [a for _, a in points], marker="o",
              color=CELL_COLORS[config.cell], label=f"{config.cell}, k = {config.k}")
    axes.axhline(config.chance, color="gray", linestyle=":", label="chance")
    axes.set(xlim=(0, max(500, points[-1][0])), ylim=(0, 1.05), xlabel="training step",
             ylabel="test accuracy", title="This rerun, live")
    axes.legend(fontsize=8)
    return figure


def rerun(cell: str = "lstm", k: float = 10, forget_bias: float = 1.0, lr: str = str(LRS[0])):
    """Train one cell on the task at distance k and one learning rate of the grid, here and now
    (at most MAX_LIVE_K, stopped after MAX_LIVE_SECONDS); streams the test accuracy curve,
    then a note."""
    config = live_config(cell, k, forget_bias, lr)
    points: queue.Queue = queue.Queue()
    deadline = time.monotonic() + limits.MAX_LIVE_SECONDS
    done: list = []

    def work():
        try:
            done.append(train_task(config, on_eval=lambda s, a: points.put((s, a)),
                                   should_stop=lambda: time.monotonic() > deadline,
                                   solved_at=SOLVED))
        except Exception as err:  # shown as one line below
            done.append(err)

    worker = threading.Thread(target=work, daemon=True)
    worker.start()
    seen = []
    while worker.is_alive() or not points.empty():
        try:
            seen.append(points.get(timeout=0.5))
        except queue.Empty:
            continue
        yield curve_figure(seen, config), f"step {seen[-1][0]}: accuracy {seen[-1][1]:.2f}…"
    if isinstance(done[0], Exception):
        raise limits.refusal(f"The rerun failed: {public(str(done[0]))[:200]}")
    yield curve_figure(seen, config), rerun_note(done[0], config)


def rerun_note(result, config: TaskConfig) -> str:
    step, acc = result.accuracy[-1]
    verdict = "solved" if result.final_validation >= SOLVED else "not solved"
    stopped = " (stopped at the time limit)" if step < config.steps and verdict != "solved" else ""
    bias = "" if config.cell == "rnn" else f", forget bias {config.forget_bias:g}"
    return (f"**{config.cell}, k = {config.k}{bias}, lr {config.lr:g}**: test accuracy "
            f"**{acc:.2f}** at step {step} (cap {config.steps}) in {result.seconds:.1f} s: "
            f"{verdict}{stopped} (chance {config.chance:.3g}).")


# ---- the essay's gradient flow (the selected run) ---------------------------------------------

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
    """How far back a gradient reaches on the run's text: untrained LSTM, GRU and RNN at the
    selected run's size (dashed), and the run itself after training (solid) when it logged its
    gradient flow. Returns the figure, a note, and a table of the curves at 10, 20 and 40."""
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
    title = f"Gradient flow on the text, log scale (run {loaded.run_id[:8]}, a {cell.upper()})"
    return flow_figure(curves, title), note, pd.DataFrame(rows)


def flow_if_run(run_id, request: gr.Request = None):
    """gradient_flow_view when a run is selected (on opening the tab); nothing otherwise."""
    return gradient_flow_view(run_id, request) if run_id else (gr.skip(), gr.skip(), gr.skip())


# ---- the tab ----------------------------------------------------------------------------------

def _rerun_controls():
    with gr.Row():
        cell = fields.radio(list(CELLS), value="rnn", label="Cell", elem_id="rerun-cell")
        k = fields.slider(1, limits.MAX_LIVE_K, value=20, step=1, label="k (distractors)",
                          elem_id="rerun-k")
        bias = fields.number(value=1.0, minimum=-limits.MAX_FORGET_BIAS,
                             maximum=limits.MAX_FORGET_BIAS, label="Forget bias",
                             info="The LSTM's forget gate (the GRU's update gate); the RNN "
                                  "has none.", elem_id="rerun-bias")
        lr = fields.radio([str(r) for r in LRS], value=str(LRS[0]), label="Learning rate",
                          elem_id="rerun-lr")
    return [cell, k, bias, lr]


def build(run: gr.Dropdown) -> None:
    with gr.Tab("Why an LSTM", id="flow") as tab:
        accuracy_plot = gr.Plot(label="Accuracy against k", elem_id="longrange-accuracy")
        accuracy_note = gr.Markdown(TASK_TEXT, elem_id="longrange-note")
        accuracy_table = gr.Dataframe(label="Every run of the task", interactive=False,
                                      elem_id="longrange-table")
        gradient_plot = gr.Plot(label="Gradient flow on the task", elem_id="longrange-flow")
        gradient_note = gr.Markdown(elem_id="longrange-flow-note")
        gate_plot = gr.Plot(label="The keep gate", elem_id="longrange-gate")
        gate_note = gr.Markdown(elem_id="longrange-gate-note")
        gr.Markdown(f"**Rerun one pair live** at one learning rate of the grid (k up to "
                    f"{limits.MAX_LIVE_K}, the grid's other settings, at most "
                    f"{limits.MAX_LIVE_SECONDS} s).")
        controls = _rerun_controls()
        rerun_button = gr.Button("Rerun live", variant="primary", elem_id="rerun-btn")
        rerun_plot = gr.Plot(label="This rerun", elem_id="rerun-plot")
        rerun_text = gr.Markdown(elem_id="rerun-note")
        gr.Markdown(ESSAY_TEXT)
        button = gr.Button("Draw the gradient flow on the text", elem_id="flow-btn")
        plot = gr.Plot(label="Gradient flow", elem_id="flow-plot")
        note = gr.Markdown(elem_id="flow-note")
        table = gr.Dataframe(label="The curves at distances 10, 20 and 40", interactive=False,
                             elem_id="flow-table")
    opened = tab.select(accuracy_view, None, [accuracy_plot, accuracy_note, accuracy_table],
                        api_name="longrange_accuracy", **limits.COMPUTE_SLOT)
    opened.then(gradient_view, None, [gradient_plot, gradient_note],
                api_name="longrange_gradients", **limits.COMPUTE_SLOT).then(
        gate_view, None, [gate_plot, gate_note], api_name="forget_gate", **limits.COMPUTE_SLOT
    ).then(flow_if_run, run, [plot, note, table], api_visibility="private", **limits.COMPUTE_SLOT)
    rerun_button.click(rerun, controls, [rerun_plot, rerun_text], api_name="rerun_longrange",
                       show_progress_on=rerun_plot, trigger_mode="once", **limits.COMPUTE_SLOT)
    button.click(gradient_flow_view, run, [plot, note, table], api_name="gradient_flow",
                 show_progress_on=plot, **limits.COMPUTE_SLOT)
