"""The Generate tab: a prompt and sampling controls in; the text, streamed, then its
memorization report out."""

from __future__ import annotations

import time
from typing import NamedTuple

import gradio as gr
import pandas as pd
import torch

from lstm_core.data import first_known_window, split_point
from lstm_core.generate import encode_prompt, stream_ids
from lstm_core.text import PARAGRAPH, detokenize, tokenize
from lstm_core.vocab import UnknownWordsError
from training.runs import LoadedRun
from training.store import public
from ui import fields, limits
from ui.report import REPEATS, SPAN_COLUMNS, report
from ui.runs import load

# Send the growing text at most this often: every update costs the server work for each of
# the tab's outputs, far more than a word costs the model. The first words wait a shorter
# while, so a text finished by then goes out once, whole, and a longer one starts at once.
# Words every demo run knows (each occurs at least twice in the default corpus's training part).
DEFAULT_PROMPT = "i went out to the skerrow light"
STREAM_SECONDS, FIRST_WORDS_SECONDS = 0.1, 0.05
GENERATING = "*Generating… the report follows when the text is done.*"
# The first update clears the old report, so no figure ever describes another text.
CLEARED_REPORT = (None, GENERATING, pd.DataFrame(columns=SPAN_COLUMNS), None, "", "", "")


class GenerateTab(NamedTuple):
    prompt: gr.Textbox  # the loss tab's temperature sweep starts from the same prompt
    length: gr.Slider
    out: gr.Textbox  # the generated text, which the Look inside tab reads


def prompt_ids(prompt, loaded: LoadedRun) -> list[int]:
    try:
        return encode_prompt(limits.text(prompt), loaded.vocab)
    except UnknownWordsError as err:
        raise limits.refusal(public(unknown_words(err.words, loaded))) from None
    except ValueError as err:  # an empty prompt
        raise limits.refusal(public(str(err))) from None


def unknown_words(words: list[str], loaded: LoadedRun) -> str:
    """Why each unknown prompt word is unknown: not in the training text at all, only in its
    held-out tail (the vocabulary comes from the training part), or in the training part but
    left out of the vocabulary (the cap keeps only the most frequent words; min_count)."""
    tokens, cfg = loaded.source_tokens, loaded.config
    in_training = set(tokens[:split_point(len(tokens), cfg.val_fraction)])
    in_text = set(tokens)
    listed = lambda ws: ", ".join(repr(w[:30]) for w in ws[:5]) + (" …" if len(ws) > 5 else "")  # noqa: E731
    absent = [w for w in words if w not in in_text]
    held_out = [w for w in words if w in in_text and w not in in_training]
    dropped = [w for w in words if w in in_training]
    parts = []
    if absent:
        parts.append(f"not in the training text: {listed(absent)} (the model only knows words "
                     "from its training text)")
    if held_out:
        parts.append(f"only in the held-out last {cfg.val_fraction:.0%} of the text: "
                     f"{listed(held_out)} (the vocabulary comes from the training part, so the "
                     "held-out text is scored on words the model never saw)")
    if dropped:
        rule = (f"the vocabulary cap of {cfg.max_vocab:,} keeps only the most frequent words"
                if cfg.max_vocab and len(loaded.vocab) - 2 >= cfg.max_vocab else
                f"words seen fewer than {cfg.min_count} times are left out")
        parts.append(f"in the training text but not in the model's vocabulary: {listed(dropped)} "
                     f"({rule}; such words read as <unk>)")
    return "Unknown prompt words: " + "; ".join(parts) + "."


def generate(run_id: str, prompt: str, length: float = 60, temperature: float = 0.0,
             top_k: float = 0, top_p: float = 1.0, seed: float = 0,
             request: gr.Request = None):
    """Generate text from a prompt with a logged run, then measure how much of it is copied.

    Args:
        run_id: the model to use: an MLflow run id, a unique id prefix, a unique run name or a
            registered model (models:/NAME@ALIAS).
        prompt: the words the text starts with (they must be in the model's vocabulary).
        length: how many words to generate (1 to 400).
        temperature: 0 = greedy (always the likeliest word); higher = more random (up to 2).
        top_k: sample only among the k likeliest words (0 = no limit).
        top_p: sample only among the likeliest words whose probabilities add up to p (1 = all).
        seed: random seed, so the same settings give the same text.
    Returns:
        The text (prompt + generated words) first, then the memorization report: highlighted
        text, headline figures, copied spans, n-gram novelty, and the source's continuation.
    """
    reference = limits.reference(run_id)
    loaded = load(reference, request)
    sampling = limits.sampling(length, temperature, top_k, top_p, seed)
    ids = prompt_ids(prompt, loaded)
    start, new, scheme = loaded.vocab.decode(ids), [], loaded.vocab.scheme
    send_at, rest = time.monotonic() + FIRST_WORDS_SECONDS, CLEARED_REPORT
    for token_id in stream_ids(loaded.model, ids, sampling):
        new.append(loaded.vocab.id_to_token(token_id))
        if len(new) < sampling.max_new_tokens and time.monotonic() >= send_at:
            yield detokenize(start + new, scheme), *rest
            send_at, rest = time.monotonic() + STREAM_SECONDS, [gr.skip()] * len(CLEARED_REPORT)
    yield detokenize(start + new, scheme), *report(reference, loaded, start, new, sampling)


def suggest_prompt(run_id, prompt, request: gr.Request = None):
    """Keep the prompt when the run knows its words, else offer the first words of its source."""
    try:
        loaded = load(run_id, request)
    except gr.Error:
        return gr.skip()  # the error shows when generating
    scheme = loaded.vocab.scheme
    tokens = tokenize(prompt if isinstance(prompt, str) else "", scheme)
    if tokens and not loaded.vocab.unknown_words(tokens):
        return gr.skip()
    return detokenize(first_known_words(loaded), scheme)


def first_known_words(loaded: LoadedRun, count: int = 4, within: int = 400) -> list[str]:
    """The first ``count`` consecutive words of the source that the vocabulary knows (a rare
    word reads <unk> and cannot be typed), else its first known words wherever they are."""
    words = [t for t in loaded.source_tokens[:within] if t != PARAGRAPH]
    start = first_known_window(torch.tensor(loaded.vocab.encode(words, unknown="unk")), count)
    if start is not None:
        return words[start:start + count]
    return [w for w in words if w in loaded.vocab][:count]


def _controls() -> list[gr.components.Component]:
    prompt = gr.Textbox(label="Prompt", value=DEFAULT_PROMPT, elem_id="prompt",
                        info="The words the text starts with; they must occur in the training "
                             f"text (at most {limits.MAX_PROMPT_WORDS} words).")
    length = fields.slider(1, limits.MAX_LENGTH, value=60, step=1, label="Length (words)",
                           info="How many words to generate.", elem_id="length")
    temperature = fields.slider(0, limits.MAX_TEMPERATURE, value=0, step=0.05,
                                label="Temperature", elem_id="temperature",
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
    """The outputs after the text, in the order ui.report.report returns them."""
    marked = gr.HighlightedText(label="Copied from the training text (spans of 4+ words), or repeating itself",
                                color_map={"copied": "#f97316", REPEATS: "#a78bfa", "prompt": "#94a3b8"},
                                show_legend=True, show_inline_category=False, elem_id="highlight")
    figures = gr.Markdown(elem_id="figures")
    spans = gr.Dataframe(pd.DataFrame(columns=SPAN_COLUMNS), wrap=True, label="Copied spans",
                         interactive=False, elem_id="spans", max_height=320,
                         column_widths=["38%", "9%", "18%", "35%"])
    return [marked, figures, spans]


def _continuation() -> list[gr.components.Component]:
    novelty = gr.BarPlot(x="n", y="novel share", y_lim=[0, 1], height=260, scale=1, min_width=280,
                         title="n-gram novelty (share never in the source)", x_title="n (words)",
                         elem_id="novelty")
    with gr.Column(scale=2):
        note = gr.Markdown("Where the prompt occurs in the training text, its own continuation "
                           "shows beside the model's.")
        with gr.Row():
            model_text = gr.Textbox(label="The model's continuation", lines=5, interactive=False)
            source_text = gr.Textbox(label="The training text's own continuation", lines=5,
                                     interactive=False)
    return [novelty, note, model_text, source_text]


def build(run: gr.Dropdown) -> GenerateTab:
    with gr.Tab("Generate", id="generate"):
        with gr.Row():
            with gr.Column(scale=1, min_width=280):
                controls = _controls()
                button = gr.Button("Generate", variant="primary", elem_id="gen-btn")
            with gr.Column(scale=2):
                out = gr.Textbox(label="Generated text", lines=5, elem_id="out",
                                 buttons=["copy"], interactive=False)
                report_parts = _report()
        with gr.Row():
            report_parts += _continuation()
    prompt, length = controls[:2]
    run.change(suggest_prompt, [run, prompt], prompt, api_visibility="private")
    # One streaming event per click; a click while it runs is ignored ("once").
    button.click(generate, [run, *controls], [out, *report_parts], api_name="generate",
                 trigger_mode="once", show_progress_on=out, **limits.COMPUTE_SLOT,
                 api_description="Generate text with a logged run; the first output is the "
                                 "final text.")
    return GenerateTab(prompt, length, out)
