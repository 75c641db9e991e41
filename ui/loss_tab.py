"""The Loss & temperature tab: the run's loss and memorization curves, and copying measured
against temperature."""

from __future__ import annotations

import gradio as gr
import pandas as pd

from lstm_core.generate import SamplingConfig, stream_ids
from lstm_core.memorization import analyze
from training.runs import run_samples
from ui import limits
from ui.generate_tab import prompt_ids
from ui.report import MIN_SPAN
from ui.runs import get_run, history, load, resolve

MEMORIZATION = "extractable_memorization"
RECITING = 0.5  # "starts reciting": the first evaluation at which half the passages are recited
SWEEP_TEMPERATURES = (0.0, 0.5, 0.8, 1.0, 1.3, 1.6)
SWEEP_SEEDS = 3  # samples per temperature above 0 (greedy needs only one)
SWEEP_MAX_LENGTH = 80  # words per sample in the temperature sweep
SHOWN_SAMPLES = 12  # greedy samples shown, newest first; all of them stay in MLflow
SAMPLE_CHARS = 400  # a sample is 24 words, so this only bounds a text of very long words


def loss_curves(run_id, request: gr.Request | None = None):
    """The run's train and validation loss by step, with the lowest validation loss marked, and
    its extractable memorization by step with the first step at 50% or more marked."""
    run = get_run(run_id, request)
    run_id = run.info.run_id
    curves = history(run_id)
    keeps_best = run.data.params.get("recipe") != "seed"  # the seed recipe keeps its last step
    val = curves[curves["metric"] == "val_loss"]
    if val.empty:
        note = ("This run held no text out for validation (like the write-up, which trains "
                "on all of it), so only the training loss is shown; the app uses its last step.")
    else:
        best = val.loc[val["value"].idxmin()]
        marker = pd.DataFrame({"step": [best.step] * 2,
                               "value": [curves["value"].min(), curves["value"].max()],
                               "metric": ["lowest val loss"] * 2})
        curves = pd.concat([curves, marker], ignore_index=True)
        loaded = ("the app loads that checkpoint" if keeps_best else
                  "this seed-recipe run keeps its last step, as the write-up did")
        note = (f"**Validation loss is lowest at step {int(best.step)}: {best.value:.3f}** "
                f"(the vertical line; {loaded}). Where training loss keeps "
                "falling while validation loss rises, the model is learning the text by heart.")
    metrics, params = run.data.metrics, run.data.params
    if MEMORIZATION in metrics:
        k, m = (params.get(f"memorization_{x}", "?") for x in ("prefix", "suffix"))
        note += (f"\n\nExtractable memorization: **{metrics[MEMORIZATION]:.0%}** of "
                 f"tested source passages are continued exactly (given {k} words, the next {m}).")
    memorized = history(run_id, (MEMORIZATION,))
    if memorized["step"].nunique() < 2:  # only the final figure: no curve to draw
        memorized = memorized.iloc[0:0]
    curves = pd.concat([curves, memorized], ignore_index=True) if not memorized.empty else curves
    return curves, note + reciting_note(memorized, params)


def reciting_step(memorized: pd.DataFrame) -> int | None:
    """The first step at which at least RECITING of the sampled passages are recited."""
    over = memorized[memorized["value"] >= RECITING]
    return int(over["step"].min()) if not over.empty else None


def reciting_note(memorized: pd.DataFrame, params: dict) -> str:
    if memorized.empty:
        return ""
    sample = params.get("memorization_sample", "?")
    step = reciting_step(memorized)
    if step is None:
        peak = memorized.loc[memorized["value"].idxmax()]
        return (f"\n\nWhile training (right axis, {sample} training passages at each evaluation), "
                f"memorization stays below {RECITING:.0%}: at most {peak.value:.0%}, at step "
                f"{int(peak.step)}.")
    return (f"\n\n**Starts reciting at step {step}**: from there at least {RECITING:.0%} of "
            f"{sample} sampled training passages are continued exactly (the dashed red line; "
            "memorization is on the right axis).")


def loss_figure(curves: pd.DataFrame, title: str):
    """Train and validation loss (left axis) and memorization (right axis) against the step."""
    from matplotlib.figure import Figure  # no pyplot: no global state shared between threads

    figure = Figure(figsize=(9, 3.8), dpi=100, layout="constrained")
    axes = figure.add_subplot()
    for metric, color in (("train_loss", "tab:blue"), ("val_loss", "tab:orange")):
        part = curves[curves["metric"] == metric]
        if not part.empty:  # a run with nothing held out has no validation curve
            axes.plot(part["step"], part["value"], color=color, label=metric.replace("_", " "))
    lowest = curves[curves["metric"] == "lowest val loss"]
    if not lowest.empty:
        step = lowest["step"].iloc[0]
        axes.axvline(step, color="tab:orange", linestyle=":", label=f"lowest val loss ({step:g})")
    axes.set(xlabel="training step", ylabel="cross-entropy loss", title=title)
    axes.grid(alpha=0.3)
    memorized = curves[curves["metric"] == MEMORIZATION]
    handles, labels = axes.get_legend_handles_labels()
    if not memorized.empty:
        right = axes.twinx()
        right.plot(memorized["step"], memorized["value"] * 100, color="tab:red", marker=".",
                   label="extractable memorization")
        step = reciting_step(memorized)
        if step is not None:
            right.axvline(step, color="tab:red", linestyle="--", label=f"starts reciting ({step})")
        right.set(ylim=(0, 100), ylabel="training passages recited (%)")
        more = right.get_legend_handles_labels()
        handles, labels = handles + more[0], labels + more[1]
    axes.legend(handles, labels, loc="upper right", fontsize=8)
    return figure


def loss_chart(run_id, request: gr.Request = None):
    """The Loss tab's chart: loss_curves's numbers and note, the figure drawn from them, and
    the greedy samples the run logged at each evaluation."""
    if not run_id:
        return pd.DataFrame(columns=["step", "value", "metric"]), "No run selected.", None, ""
    run_id = resolve(run_id, request)  # once: a prefix or name is looked up in the store
    curves, note = loss_curves(run_id, request)
    samples = samples_markdown(run_samples(run_id))
    if curves.empty:
        return curves, note, None, samples
    return curves, note, loss_figure(curves, f"Run {run_id[:8]}"), samples


def samples_markdown(samples: list[tuple[int, str]]) -> str:
    """The greedy samples from the training text's first words, newest first (the Train tab
    shows them as they come, this tab replays a finished run's). Evaluations that wrote the
    same text are one line, so the change from gibberish to recitation stays in view."""
    if not samples:
        return ("*At each evaluation the model continues the training text's first words "
                "(greedy); the samples show here, newest first.*")
    groups: list[list] = []  # [first step, last step, text], oldest first
    for step, text in sorted(samples):
        text = " ".join(text.split())[:SAMPLE_CHARS]
        if groups and groups[-1][2] == text:
            groups[-1][1] = step
        else:
            groups.append([step, step, text])
    lines = [f"- **step {first}**: {limits.plain(text)}" if first == last else
             f"- **steps {first}–{last}**: {limits.plain(text)}"
             for first, last, text in reversed(groups[-SHOWN_SAMPLES:])]
    return "**Greedy samples from the same cue, newest first**\n\n" + "\n".join(lines)


def temperature_sweep(run_id: str, prompt: str, length: float = 60, request: gr.Request = None,
                      progress=gr.Progress()):  # noqa: B008
    """Copied 4-gram share and copied-word share against temperature, for one run and prompt."""
    loaded = load(run_id, request)
    ids = prompt_ids(prompt, loaded)
    length = min(limits.number(length, "Length", 1, limits.MAX_LENGTH, whole=True),
                 SWEEP_MAX_LENGTH)
    rows = []
    for k, temperature in enumerate(SWEEP_TEMPERATURES):
        progress(k / len(SWEEP_TEMPERATURES), desc=f"temperature {temperature}")
        reports = []
        for seed in range(1 if temperature == 0 else SWEEP_SEEDS):
            sampling = SamplingConfig(length, temperature, seed=seed)
            new = loaded.vocab.decode(stream_ids(loaded.model, ids, sampling))
            reports.append(analyze(new, loaded.index, min_len=MIN_SPAN))
        for name, key in (("copied 4-grams", "copied_4gram_fraction"),
                          ("words in copied spans", "copied_token_fraction")):
            share = sum(getattr(r, key) for r in reports) / len(reports)
            rows.append({"temperature": temperature, "share": round(share, 3), "measure": name})
    frame = pd.DataFrame(rows)
    four = frame[frame["measure"] == "copied 4-grams"]["share"].tolist()
    note = (f"Copied 4-grams: **{four[0]:.0%}** when greedy, **{four[-1]:.0%}** at temperature "
            f"{SWEEP_TEMPERATURES[-1]} ({SWEEP_SEEDS} samples of {length} words per temperature).")
    return frame, note


def build(run: gr.Dropdown, prompt: gr.Textbox, length: gr.Slider) -> None:
    with gr.Tab("Loss & temperature", id="loss"):
        # One chart, two axes (a LinePlot has only one): loss left, memorization right.
        loss_plot = gr.Plot(label="Loss and memorization by training step", elem_id="loss-plot")
        loss_note = gr.Markdown()
        with gr.Accordion("What it wrote at each evaluation", open=False):
            samples = gr.Markdown(elem_id="loss-samples")
        with gr.Accordion("The numbers behind the chart", open=False):
            loss_data = gr.Dataframe(interactive=False, max_height=300, elem_id="loss-data")
        gr.Markdown("**Memorization against temperature**: a few samples per temperature from the "
                    "prompt and length on the Generate tab.")
        sweep_btn = gr.Button(f"Measure copying at temperatures {SWEEP_TEMPERATURES[0]:g} … "
                              f"{SWEEP_TEMPERATURES[-1]:g}", elem_id="sweep-btn")
        sweep_plot = gr.LinePlot(x="temperature", y="share", color="measure", height=300,
                                 y_lim=[0, 1], title="Copying against temperature",
                                 elem_id="sweep-plot")
        sweep_note = gr.Markdown()
    run.change(loss_chart, run, [loss_data, loss_note, loss_plot, samples], api_name="loss_curves",
               **limits.COMPUTE_SLOT)
    sweep_btn.click(temperature_sweep, [run, prompt, length], [sweep_plot, sweep_note],
                    api_name="temperature_sweep", show_progress_on=sweep_plot,
                    **limits.COMPUTE_SLOT)
