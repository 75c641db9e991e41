"""The Generate tab: a prompt and sampling controls in, the text and its memorization report out."""

from __future__ import annotations

from typing import NamedTuple

import gradio as gr
import pandas as pd

import app
from ui import events, fields


class GenerateTab(NamedTuple):
    prompt: gr.Textbox  # the loss tab's temperature sweep starts from the same prompt
    length: gr.Slider
    out: gr.Textbox  # the generated text, which the Look inside tab reads


# While a text streams, the page hides the old report's parts (app.CSS): the class goes on the
# page with the click, in the browser, and comes off when the new report is in or the request
# failed. Hiding keeps the layout, so nothing is redrawn; clearing them would be redrawing.
# Meanwhile the button takes no click: a second request's events would share the outputs with
# the first's (its words overwritten by the first's stream, the first's report shown beside
# its text), and Gradio would drop its later events while the first's were still running.
REPORT_PART = ["report-part"]
HIDE_OLD_REPORT = """(...inputs) => {
  document.body.classList.add('report-stale');
  document.querySelector('#gen-btn').disabled = true;
  return inputs;
}"""
SHOW_REPORT = """() => {
  document.body.classList.remove('report-stale');
  document.querySelector('#gen-btn').disabled = false;
}"""


def _controls() -> list[gr.components.Component]:
    prompt = gr.Textbox(label="Prompt", value="i was twenty-three when", elem_id="prompt",
                        info="The words the text starts with; they must occur in the training "
                             f"text (at most {app.MAX_PROMPT_WORDS} words).")
    length = fields.slider(1, app.MAX_LENGTH, value=60, step=1, label="Length (words)",
                           info="How many words to generate.", elem_id="length")
    temperature = fields.slider(0, 2, value=0, step=0.05, label="Temperature",
                                elem_id="temperature",
                                info="0 = greedy (always the likeliest word); higher = more random.")
    top_k = fields.slider(0, 200, value=0, step=1, label="Top-k",
                          info="Sample only among the k likeliest words (0 = all).")
    top_p = fields.slider(0.05, 1, value=1, step=0.05, label="Top-p",
                          info="Sample only among the likeliest words whose probabilities add "
                               "up to p (1 = all).")
    rng_seed = fields.number(value=0, precision=0, minimum=0, label="Random seed",
                             info="The same random seed and settings give the same text.")
    return [prompt, length, temperature, top_k, top_p, rng_seed]


def _report() -> list[gr.components.Component]:
    """The outputs, in the order app.generate yields them (out first)."""
    out = gr.Textbox(label="Generated text", lines=5, elem_id="out", buttons=["copy"],
                     interactive=False)
    figures = gr.Markdown(elem_id="figures")
    marked = gr.HighlightedText(label="Copied from the training text (spans of 4+ words)",
                                color_map={"copied": "#f97316", "prompt": "#94a3b8"},
                                show_legend=True, show_inline_category=False, elem_id="highlight",
                                elem_classes=REPORT_PART)
    spans = gr.Dataframe(pd.DataFrame(columns=app.SPAN_COLUMNS), wrap=True, label="Copied spans",
                         interactive=False, elem_id="spans", max_height=320,
                         column_widths=["38%", "9%", "18%", "35%"], elem_classes=REPORT_PART)
    return [out, marked, figures, spans]


def _continuation() -> list[gr.components.Component]:
    novelty = gr.BarPlot(x="n", y="novel share", y_lim=[0, 1], height=260, scale=1, min_width=280,
                         title="n-gram novelty (share never in the source)", x_title="n (words)",
                         elem_id="novelty", elem_classes=REPORT_PART)
    with gr.Column(scale=2):
        note = gr.Markdown("Where the prompt occurs in the training text, its own continuation "
                           "shows beside the model's.", elem_classes=REPORT_PART)
        with gr.Row():
            model_text = gr.Textbox(label="The model's continuation", lines=5, interactive=False,
                                    elem_classes=REPORT_PART)
            source_text = gr.Textbox(label="The training text's own continuation", lines=5,
                                     interactive=False, elem_classes=REPORT_PART)
    return [novelty, note, model_text, source_text]


def build(run: gr.Dropdown) -> GenerateTab:
    with gr.Tab("Generate", id="generate"):
        with gr.Row():
            with gr.Column(scale=1, min_width=280):
                controls = _controls()
                button = gr.Button("Generate", variant="primary", elem_id="gen-btn")
            with gr.Column(scale=2):
                report = _report()
        with gr.Row():
            report += _continuation()
        api_only = gr.Button(visible=False, elem_id="generate-api")  # the /generate API's trigger
        first_words = gr.State()  # from the button's first event to its second
        pending = gr.State()  # from the second to the report
    prompt, length = controls[:2]
    run.change(app.suggest_prompt, [run, prompt], prompt, api_visibility="private")
    inputs = [run, *controls]
    # The page's button: the first words come outside the queue, the rest of the text streams
    # in a second event and the report follows in a third (app.first_words_on_page says why).
    out, figures = report[0], report[2]
    # Gradio shows no error raised outside the queue, so a refused request answers
    # LEAVE_TO_QUEUE and the queued event refuses it again, where the page shows the message.
    first = events.listen(
        button.click, app.first_words_on_page, inputs, [out, figures, first_words],
        on_error=app.LEAVE_TO_QUEUE, js=HIDE_OLD_REPORT, queue=False, show_progress="hidden",
        api_visibility="private")
    rest = events.listen(
        first.success, app.rest_on_page, [first_words, *inputs], [out, figures, pending],
        on_event_loop=app.warm_rest, show_progress_on=out, api_visibility="private",
        **app.COMPUTE_SLOT)
    events.listen(rest.success, app.report_outputs, [pending], report[1:], show_progress="hidden",
                  api_visibility="private", **app.COMPUTE_SLOT).then(None, js=SHOW_REPORT)
    first.failure(None, js=SHOW_REPORT)
    rest.failure(None, js=SHOW_REPORT)
    # The /generate API: the text and its report in one event, on a button nobody sees.
    events.listen(
        api_only.click, app.generate, inputs, report, api_name="generate",
        on_event_loop=app.warm_run, **app.COMPUTE_SLOT,
        api_description="Generate text with a logged run; the first output is the final text.")
    return GenerateTab(prompt, length, report[0])
