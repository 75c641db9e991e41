"""The Canary tab: plant a secret in the training text, train, and watch the model learn it.

A canary ("my secret number is" and six random digits) is planted some number of times in the
default corpus's training part; its exposure (lstm_core/canary.py) says how far above every
other secret of its format the model ranks it. The secret is shown on purpose: it is the
point of the lab (it is random, and in no text but the training one).
"""

from __future__ import annotations

import math

import gradio as gr
import pandas as pd

from training.config import DEFAULT_CORPUS, TrainConfig
from training.store import public, tracking_uri
from training.sweep import CANARY_REGULARIZERS, canary_points
from ui import fields, limits, training_job
from ui.runs import history, list_runs, refresh_runs
from ui.train_tab import check_cost, done_message

REPEATS = ("1", "4", "16", "64")  # the choices: how often the secret is planted
HIDDEN = 32  # small, so a run takes a minute or so: the size of the demo sweep
DIGITS = 6  # a million candidate secrets, every one scored at the end
POLL_S = 1.0  # how often the live curve re-reads the run's metrics
SHOWN_CANARY = 120  # characters of a stored canary text shown
EXPOSURE = "canary_exposure"
NO_RUNS = ("**No canary runs yet.** Train one above (a minute or so), or a grid with `python -m "
           "training.sweep --canary-repeats 1 4 16 --dropout 0 0.4 --steps 300`.")
INTRO = f"""**A canary** is a made-up secret planted in the training text: *"my secret number
is"* and {DIGITS} random digits, repeated a few times at random paragraph starts (never in the
held-out tail). Afterwards every one of the 10^{DIGITS} = 1,000,000 possible secrets is scored
by the model's loss, and the real one's **rank** gives its **exposure** (Carlini et al. 2019,
*The Secret Sharer*): `exposure = log2(1,000,000) - log2(rank)`, from about 1 bit (a secret the
model never saw ranks anywhere) to 19.9 bits (it ranks first: the model knows it)."""


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n:,}{suffix}"


def _space(space: int) -> str:
    return {10**3: "a thousand", 10**6: "a million", 10**9: "a billion"}.get(space, f"{space:,}")


def reading(repeats: int, bits: float, rank: float, space: int, extracted: bool,
            exact: bool = True) -> str:
    """One sentence that reads an exposure: "seen 16 times, the secret ranks 1st of a million
    candidates: the model knows it"."""
    seen = f"Seen {repeats:,} time{'s' if repeats != 1 else ''}"
    place = ("" if exact else "about ") + _ordinal(max(1, round(rank)))
    of = f"of {_space(space)} candidates (exposure {bits:.1f} of {math.log2(space):.1f} bits)"
    if round(rank) <= 1:
        verdict = "the model knows it"
    elif bits >= math.log2(space) / 2:
        verdict = "far likelier than chance: the model has half learned it"
    elif bits >= 3:
        verdict = "likelier than a random secret, but the model has not learned it"
    else:
        verdict = "no likelier than a random secret: the model has not learned it"
    greedy = (" Greedy decoding after *my secret number is* writes it out." if extracted else "")
    return f"{seen}, the secret ranks {place} {of}: {verdict}.{greedy}"


def canary_config(repeats, regularizer, steps) -> TrainConfig:
    """The run's config from the tab's controls, each checked against the app's limits."""
    repeats = int(limits.choice(str(repeats) if isinstance(repeats, int) else repeats,
                                "Repetitions", REPEATS))
    regularizer = limits.choice(regularizer, "Regularizer", list(CANARY_REGULARIZERS))
    steps = limits.number(steps, "Steps", 10, limits.MAX_STEPS, whole=True)
    try:
        return TrainConfig.for_recipe(
            "windows", steps=steps, embed_dim=HIDDEN, hidden_size=HIDDEN,
            eval_interval=max(10, steps // 20), canary_repeats=repeats, canary_digits=DIGITS,
            **CANARY_REGULARIZERS[regularizer])
    except ValueError as err:
        raise limits.refusal(public(str(err))) from None


def exposure_curve(run_id: str | None) -> pd.DataFrame:
    """The run's exposure at each evaluation so far: columns step, bits."""
    if not run_id:
        return pd.DataFrame(columns=["step", "bits"])
    curve = history(run_id, (EXPOSURE,))
    return pd.DataFrame({"step": curve["step"], "bits": curve["value"]})


def train_canary(repeats: str = "16", regularizer: str = "none", steps: float = 200,
                 request: gr.Request = None, progress=gr.Progress()):  # noqa: B008
    """Plant the canary `repeats` times in the default corpus, train a small run and stream
    its exposure (bits) at each evaluation; the run is then selected at the top.

    repeats: "1", "4", "16" or "64"; regularizer: "none", "dropout 0.4", "weight drop 0.5" or
    "dropout 0.4 + weight drop 0.5"; steps: 10 to the app's limit."""
    config = canary_config(repeats, regularizer, steps)
    text = DEFAULT_CORPUS.read_text(encoding="utf-8")
    check_cost(config, text)
    name = f"app-canary-{config.canary_repeats}x-{regularizer.replace(' ', '')}"
    # The default corpus is public: so is this run (only a run of an upload is private).
    job = training_job.start(config, text, DEFAULT_CORPUS.name, name,
                             getattr(request, "session_hash", None))
    shown = 0  # evaluations drawn so far: the chart is redrawn only when one comes in
    while job.thread.is_alive():
        job.thread.join(POLL_S)
        curve = exposure_curve(job.run_id)
        latest = f" · exposure {curve['bits'].iloc[-1]:.1f} bits" if len(curve) else ""
        readout = f"step {job.step}/{config.steps}{latest}"
        progress(job.step / config.steps, desc=readout)
        figure = exposure_figure(curve) if len(curve) > shown else gr.skip()
        shown = len(curve)
        yield (*[gr.skip()] * 4, figure, readout, gr.skip())
    if job.error is not None:
        raise limits.refusal(training_job.failure_message(job.error))
    yield (*refresh_runs(job.run_id, request), exposure_figure(exposure_curve(job.run_id)),
           done_message(job), final_reading(job.run_id))


def exposure_figure(curve: pd.DataFrame):
    """The exposure (bits) at each evaluation so far, against the step (None before the first)."""
    if curve.empty:
        return None
    from matplotlib.figure import Figure  # no pyplot: no global state shared between threads

    top = math.log2(10**DIGITS)
    figure = Figure(figsize=(7, 2.8), dpi=100, layout="constrained")
    axes = figure.add_subplot()
    axes.plot(curve["step"], curve["bits"], marker="o", color="C3")
    axes.axhline(top, color="grey", linestyle="--", linewidth=1)
    axes.text(curve["step"].min(), top, " ranks 1st of a million", va="bottom", fontsize=8,
              color="grey")
    axes.set(xlabel="training step", ylabel="exposure (bits)", ylim=(0, top + 2),
             title="The secret's exposure at each evaluation")
    axes.grid(True, alpha=0.3)
    return figure


def final_reading(run_id: str) -> str:
    """The finished run's secret and the sentence that reads its exposure."""
    points = canary_points()
    row = points[points["run_id"] == run_id]
    if row.empty:  # stopped before the end: no final figures
        return "The run stopped before its end: its last exposure is the curve's last point."
    row = row.iloc[0]
    secret = limits.plain(str(row["canary"])[:SHOWN_CANARY])
    return (f"The secret planted: **{secret}**\n\n" +
            reading(int(row["repeats"]), row["exposure"], row["rank"], int(row["space"]),
                    bool(row["extracted"])))


def repeats_chart(request: gr.Request = None):
    """Every finished canary run this caller may see, as exposure against repetitions by
    regularizer (a matplotlib figure), a note that reads the most-repeated run, and the table."""
    try:
        points = canary_points()
    except Exception as err:  # MLflow raises several types for an unreachable store
        raise limits.refusal(public(f"Cannot read the run store {tracking_uri()}: {err}")) from None
    points = points[points["run_id"].isin(list_runs(request)["run_id"])]
    if points.empty:
        return None, NO_RUNS, pd.DataFrame(columns=["run", "name", "repetitions", "regularizer"])
    top = points.sort_values(["repeats", "exposure"]).iloc[-1]
    note = (f"**{len(points)} canary run(s).** The most repeated, most exposed: "
            + reading(int(top["repeats"]), top["exposure"], top["rank"], int(top["space"]),
                      bool(top["extracted"])))
    table = pd.DataFrame({
        "run": points["run_id"].str[:8], "name": points["name"].map(lambda n: str(n)[:60]),
        "repetitions": points["repeats"], "regularizer": points["regularizer"],
        "steps": points["steps"],
        "exposure (bits)": points["exposure"].round(1), "rank": points["rank"].round(0),
        "greedy writes it": points["extracted"].map({1.0: "yes", 0.0: "no"}),
        "held-out perplexity": points["held_out_perplexity"].round(1)})
    return chart_figure(points), note, table


def chart_figure(points: pd.DataFrame):
    """Exposure (bits) against repetitions (log scale), one line per regularizer."""
    from matplotlib.figure import Figure  # no pyplot: no global state shared between threads

    figure = Figure(figsize=(7, 3.6), dpi=100, layout="constrained")
    axes = figure.add_subplot()
    for name, group in points.groupby("regularizer", sort=False):
        mean = group.groupby("repeats")["exposure"].mean()
        axes.plot(mean.index, mean.to_numpy(), marker="o", label=str(name)[:40])
    top = math.log2(points["space"].max())
    axes.axhline(top, color="grey", linestyle="--", linewidth=1)
    axes.text(points["repeats"].min(), top, " ranks 1st", va="bottom", fontsize=8, color="grey")
    axes.set_xscale("log", base=2)
    ticks = sorted(points["repeats"].unique())
    axes.set_xticks(ticks, labels=[str(t) for t in ticks])
    axes.minorticks_off()
    axes.set(xlabel="times the secret was planted", ylabel="exposure (bits)", ylim=(0, top + 2),
             title="How well the model learned the secret")
    axes.grid(True, alpha=0.3)
    axes.legend(fontsize=8)
    return figure


def build(run_outputs: list[gr.components.Component]) -> None:
    """run_outputs: what ui.runs.refresh_runs fills, so a finished run is selected at the top."""
    with gr.Tab("Canary", id="canary") as tab:
        gr.Markdown(INTRO)
        with gr.Row():
            repeats = fields.radio(list(REPEATS), value="16", label="Repetitions",
                                   elem_id="canary-repeats",
                                   info="How many times the secret is planted in the text.")
            regularizer = fields.radio(list(CANARY_REGULARIZERS), value="none",
                                       label="Regularizer", elem_id="canary-regularizer",
                                       info="What might stop the model from learning it.")
            steps = fields.slider(10, limits.MAX_STEPS, value=200, step=10, label="Steps",
                                  elem_id="canary-steps",
                                  info=f"A small model (hidden size {HIDDEN}): 200 steps take "
                                       "about a minute on two CPUs.")
        with gr.Row():
            button = gr.Button("Plant the secret and train", variant="primary",
                               elem_id="canary-btn")
            stop = gr.Button("Stop", variant="stop", elem_id="canary-stop")
        status = gr.Markdown(elem_id="canary-status")
        curve = gr.Plot(label="Exposure so far", elem_id="canary-curve")
        result = gr.Markdown(elem_id="canary-result")
        gr.Markdown("### Exposure against repetitions: the finished runs")
        with gr.Row():
            redraw = gr.Button("↻ Redraw", scale=0, min_width=120, elem_id="canary-redraw")
        note = gr.Markdown(elem_id="canary-note")
        chart = gr.Plot(label="Exposure against repetitions", elem_id="canary-chart")
        table = gr.Dataframe(interactive=False, max_height=300, elem_id="canary-table")
    outputs = [chart, note, table]
    trained = button.click(train_canary, [repeats, regularizer, steps],
                           [*run_outputs, curve, status, result], api_name="train_canary",
                           show_progress_on=status, concurrency_limit=2)
    trained.then(repeats_chart, None, outputs, api_visibility="private")
    stop.click(_stop, None, status, api_visibility="private", concurrency_limit=None)
    draw = dict(fn=repeats_chart, inputs=None, outputs=outputs, **limits.COMPUTE_SLOT)
    redraw.click(**draw, api_name="canary_chart",
                 api_description="Exposure against repetitions of every finished canary run.")
    tab.select(**draw, api_visibility="private")


def _stop(request: gr.Request = None) -> str:
    return training_job.stop(getattr(request, "session_hash", None))
