"""The Train tab: train a run on an uploaded text (or the default corpus) within set limits."""

from __future__ import annotations

import contextlib
import html
import math
import os
from pathlib import Path

import gradio as gr

from lstm_core.cells import CELLS
from lstm_core.text import SCHEMES, decode_text, tokenize_paragraphs
from training.config import (
    DEFAULT_CORPUS,
    OPTIMIZERS,
    RECIPES,
    RESERVED_IDS,
    TrainConfig,
    parameter_count,
    training_flops,
)
from training.store import public
from ui import fields, limits, live_view, training_job
from ui.loss_tab import samples_markdown
from ui.runs import refresh_runs, viewer

SEED, WINDOWS = TrainConfig.for_recipe("seed"), TrainConfig.for_recipe("windows")
MEMORIZE = TrainConfig.for_recipe("memorize")
# What bench.memorize measured (docs/benchmarks.md), said where the recipe is picked.
MEMORIZE_SIZES = ("within these limits it recites texts of up to about 5,000 words (more "
                  "words need more steps than the limits allow).")
# (hidden size, steps, vocabulary cap) each recipe starts with in the app.
APP_SIZES = {"seed": (64, 300, limits.DEFAULT_APP_VOCAB),
             "windows": (64, 300, limits.DEFAULT_APP_VOCAB),
             "memorize": (MEMORIZE.hidden_size, MEMORIZE.steps, limits.MAX_APP_VOCAB)}


def read_upload(path, caller: str = "") -> tuple[str, str]:
    """(text, name) of an uploaded .txt, or of the default corpus when nothing was uploaded.
    The upload is deleted whatever happens, and counted against the caller's hourly bound."""
    if not path:
        return DEFAULT_CORPUS.read_text(encoding="utf-8"), DEFAULT_CORPUS.name
    if not isinstance(path, str):
        raise limits.refusal(f"The upload must be a file, got {limits.shown(path)}")
    name = Path(path).name
    try:
        size = os.path.getsize(path)
        data = Path(path).read_bytes() if size <= limits.MAX_UPLOAD_BYTES else b""
    except OSError:
        raise limits.refusal("The uploaded file is gone (an upload is deleted once read): upload it "
                             "again.") from None
    finally:
        with contextlib.suppress(OSError):
            Path(path).unlink(missing_ok=True)  # read once, never kept on disk, even if refused
    if size > limits.MAX_UPLOAD_BYTES:
        raise limits.refusal(f"{html.escape(name[:80])} is larger than "
                             f"{limits.MAX_UPLOAD_BYTES / 1e6:g} MB; upload a shorter text.")
    limits.charge_upload(caller, size)
    try:
        return decode_text(data, name), name
    except ValueError as err:  # binary, not UTF-8, or empty
        raise limits.refusal(html.escape(str(err))) from None


def train_config(recipe, steps, hidden_size, dropout, lr, max_vocab=limits.DEFAULT_APP_VOCAB,
                 cell="lstm", optimizer=None, weight_drop=0.0, locked_dropout=False,
                 embed_dropout=0.0, ar=0.0, tar=0.0, forget_bias=1.0,
                 tokenizer=None) -> TrainConfig:
    """The run's config from the Train tab's controls, each checked against the app's limits.

    optimizer and tokenizer None (or "") keep the recipe's own; the regularizers default to off.
    """
    tokenizer = limits.choice(tokenizer, "Tokenizer", SCHEMES) if tokenizer else None
    recipe = limits.choice(recipe, "Recipe", RECIPES)
    cell = limits.choice(cell, "Cell", CELLS)
    optimizer = limits.choice(optimizer, "Optimizer", OPTIMIZERS) if optimizer else None
    if locked_dropout not in (True, False, None):
        raise limits.refusal(f"Locked dropout must be true or false, got {limits.shown(locked_dropout)}")
    steps = limits.number(steps, "Steps", 10, limits.MAX_STEPS, whole=True)
    hidden = limits.number(hidden_size, "Hidden size", 8, limits.MAX_HIDDEN, whole=True)
    try:
        return TrainConfig.for_recipe(
            recipe, steps=steps, hidden_size=hidden, embed_dim=hidden,
            dropout=limits.number(dropout, "Dropout", 0, limits.MAX_DROP),
            lr=limits.number(lr, "Learning rate", 1e-5, 100),
            max_vocab=limits.number(max_vocab, "Vocabulary cap", limits.MIN_APP_VOCAB,
                                    limits.MAX_APP_VOCAB, whole=True),
            eval_interval=max(10, steps // 20), cell=cell, optimizer=optimizer,
            weight_drop=limits.number(weight_drop, "Weight drop", 0, limits.MAX_DROP),
            locked_dropout=bool(locked_dropout),
            embed_dropout=limits.number(embed_dropout, "Embedding dropout", 0, limits.MAX_DROP),
            ar=limits.number(ar, "AR", 0, limits.MAX_AR),
            tar=limits.number(tar, "TAR", 0, limits.MAX_AR),
            forget_bias=limits.number(forget_bias, "Forget bias", -limits.MAX_FORGET_BIAS,
                                      limits.MAX_FORGET_BIAS),
            tokenizer=tokenizer)
    except ValueError as err:
        raise limits.refusal(public(str(err))) from None


def check_cost(config: TrainConfig, text: str) -> int:
    """Refuse a run whose arithmetic exceeds the app's ceiling (what its time grows with:
    steps x the positions a step reads x the cell's and the output layer's size); returns the
    model's parameter count."""
    paragraphs = tokenize_paragraphs(text, config.tokenizer)
    words = len({word for paragraph in paragraphs for word in paragraph}) + 1  # + the break
    vocab_size = min(words, config.max_vocab or words) + RESERVED_IDS
    longest = max(map(len, paragraphs), default=0)
    flops = training_flops(config, vocab_size, longest)
    if flops > limits.MAX_TRAIN_FLOPS:
        raise limits.refusal(
            f"This run is too big for the app: about {flops / 1e12:.1f} trillion operations, over "
            f"the limit of {limits.MAX_TRAIN_FLOPS / 1e12:g} trillion (a few minutes on two CPUs). "
            "Lower the steps, the hidden size or the vocabulary cap (or train it with python -m "
            "training).")
    return parameter_count(config, vocab_size)


def check_run_name(run_name, recipe: str) -> str:
    if run_name is not None and not isinstance(run_name, str):
        raise limits.refusal(f"The run name must be text, got {limits.shown(run_name)}")
    if len(run_name or "") > limits.MAX_RUN_NAME * 4:  # before splitting a huge text
        raise limits.refusal(f"The run name may have at most {limits.MAX_RUN_NAME} characters.")
    name = " ".join((run_name or "").split())
    if len(name) > limits.MAX_RUN_NAME:
        raise limits.refusal(f"The run name may have at most {limits.MAX_RUN_NAME} characters.")
    if name.startswith("demo-"):
        raise limits.refusal('Run names starting with "demo-" are kept for the demo runs; pick another.')
    return name or f"app-{recipe}"


def recipe_defaults(recipe):
    """The recipe's own dropout, learning rate, optimizer and tokenizer, a default run name, and
    the size, steps and vocabulary cap the app starts it with (memorize: wide and long enough to
    recite a text of a few thousand words)."""
    config = TrainConfig.for_recipe(recipe if recipe in RECIPES else "windows")
    hidden, steps, vocab = APP_SIZES.get(recipe, APP_SIZES["windows"])
    return (config.dropout, config.lr, gr.Textbox(placeholder=f"app-{recipe}"),
            config.optimizer, hidden, steps, vocab, config.tokenizer)


def train(upload, recipe: str = "windows", steps: float = 300, hidden_size: float = 64,
          dropout: float = 0.4, lr: float = 20.0, run_name: str = "",
          max_vocab: float = limits.DEFAULT_APP_VOCAB, cell: str = "lstm",
          optimizer: str | None = None, weight_drop: float = 0.0, locked_dropout: bool = False,
          embed_dropout: float = 0.0, ar: float = 0.0, tar: float = 0.0,
          forget_bias: float = 1.0, tokenizer: str | None = None, request: gr.Request = None,
          progress=gr.Progress()):  # noqa: B008
    """Train a run on the uploaded text (or the default corpus), log it to MLflow, select it.

    cell: "lstm", "gru" or "rnn"; optimizer: "sgd", "adam" or "ntasgd" (empty: the recipe's);
    weight_drop, embed_dropout (0 to 0.8), locked_dropout, ar, tar (0 to 10): the regularizers.
    forget_bias (-5 to 5): the initial bias of the LSTM's forget gate (GRU: update gate).
    tokenizer: "words" or "seed" (empty: the recipe's own).
    """
    config = train_config(recipe, steps, hidden_size, dropout, lr, max_vocab, cell, optimizer,
                          weight_drop, locked_dropout, embed_dropout, ar, tar, forget_bias,
                          tokenizer)
    name = check_run_name(run_name, config.recipe)
    text, corpus_name = read_upload(upload, limits.caller(request))
    params = check_cost(config, text)
    owner = viewer(request) if upload else ""  # a run of an upload is private to its page
    job = training_job.start(config, text, corpus_name, name,
                             getattr(request, "session_hash", None), owner)
    job.lines.append(f"training on {html.escape(corpus_name[:80])} ({len(text):,} characters, "
                     f"{params:,} parameters)…")
    title, shown = f"So far: {name} on {corpus_name[:40]}", -1
    while job.thread.is_alive():
        job.thread.join(0.5)
        loss = "…" if math.isnan(job.loss) else f"{job.loss:.3f}"
        readout = f"step {job.step}/{config.steps} · loss {loss}"
        progress(job.step / config.steps, desc=readout)
        chart, samples, shown = _live(job, title, shown)
        yield (*[gr.skip()] * 4, readout, "\n".join(job.lines[-12:]), chart, samples)
    if job.error is not None:
        raise limits.refusal(training_job.failure_message(job.error))
    done = done_message(job)
    yield (*refresh_runs(job.run_id, request), done, "\n".join([*job.lines[-11:], done]),
           *_live(job, title, -1)[:2])


def _live(job: training_job.TrainingJob, title: str, shown: int) -> tuple:
    """The live chart and samples, redrawn only when an evaluation came in since ``shown``
    evaluations were drawn, and how many are drawn now."""
    evals = list(job.evals)  # the worker thread appends to it
    if len(evals) == shown:
        return gr.skip(), gr.skip(), shown
    samples = [(step, sample) for step, _, sample in evals if sample]
    return live_view.figure(evals, title), samples_markdown(samples), len(evals)


def done_message(job: training_job.TrainingJob) -> str:
    if not job.stop.is_set():
        return f"Done: run {job.run_id} is logged to MLflow and selected above."
    why = job.stopped_because or "Stop was pressed"
    return (f"Stopped ({why}): run {job.run_id} ended as KILLED with its last checkpoint, and "
            "is selected above.")


def stop_training(request: gr.Request = None) -> str:
    """Stop the training in progress between two steps; the run ends KILLED, checkpoint saved."""
    return training_job.stop(getattr(request, "session_hash", None))


def limits_text() -> str:
    """The limits every app training runs under, said where people choose the settings."""
    return (f"**Limits here** (a shared machine): one training at a time; at most "
            f"{limits.MAX_STEPS} steps, hidden size {limits.MAX_HIDDEN} and a vocabulary of the "
            f"{limits.MAX_APP_VOCAB:,} most frequent words (the rest become `<unk>`); parameters "
            f"at most {limits.MAX_TRAIN_FLOPS / 1e12:g} trillion operations of arithmetic (a few "
            "minutes: the steps x the words a step reads x the model's size); a run is stopped "
            f"after {limits.MAX_TRAIN_SECONDS // 60} minutes (it ends as KILLED and keeps its "
            "last checkpoint, as with **Stop**); the app keeps only the newest "
            f"{limits.KEEP_APP_RUNS} runs trained here, deleting older ones (the demo runs and "
            "runs trained with `python -m training` are never deleted).\n\n"
            "**Your upload**: the file is deleted as soon as it is read. A run trained on it "
            "keeps its text (the model recites it) and is **shown only on this page**: other "
            "visitors cannot list, load or generate from it, and a reload of this page loses "
            "it too. It stays in the store until it is one of the app's oldest runs.")


def _text_and_recipe() -> list[gr.components.Component]:
    upload = gr.File(label=f"Training text (.txt, UTF-8, up to "
                           f"{limits.MAX_UPLOAD_BYTES / 1e6:g} MB)",
                     file_types=[".txt"], elem_id="upload")
    gr.Markdown(f"Leave empty to train on the default corpus ({DEFAULT_CORPUS.name}).")
    recipe = fields.radio(list(RECIPES), value="windows", label="Recipe",
                          info="seed: the write-up's prefix pairs; windows: every position, "
                               "with validation; memorize: every position of the whole text, "
                               f"no dropout, Adam: {MEMORIZE_SIZES}")
    tokenizer = fields.radio(["words", "seed"], value="words", label="Tokenizer",
                             elem_id="train-tokenizer",
                             info="words: punctuation split off (end. is end + .); seed: the "
                                  "write-up's, split on spaces (end. is one word).")
    run_name = gr.Textbox(label="Run name", placeholder="app-windows",
                          info="A name for the MLflow run (optional).")
    return [upload, recipe, tokenizer, run_name]


def _model_and_steps() -> list[gr.components.Component]:
    steps = fields.slider(10, limits.MAX_STEPS, value=300, step=10, label="Steps",
                          elem_id="train-steps",
                          info="Optimizer steps; 300 take a minute or two on two CPUs.")
    hidden = fields.slider(16, limits.MAX_HIDDEN, value=64, step=16, label="Hidden size",
                           info="State size of the cell (also the word-vector size).")
    dropout = fields.slider(0, limits.MAX_DROP, value=0.4, step=0.05, label="Dropout",
                            info="Randomly zeroes activations while training; fights "
                                 "memorization.")
    lr = fields.number(value=20.0, minimum=1e-5, maximum=100, label="Learning rate",
                       info=f"Step size: the windows recipe uses plain SGD ({WINDOWS.lr:g}), "
                            f"the seed recipe Adam ({SEED.lr:g}).")
    max_vocab = fields.slider(limits.MIN_APP_VOCAB, limits.MAX_APP_VOCAB, step=100,
                              value=limits.DEFAULT_APP_VOCAB, label="Vocabulary cap",
                              elem_id="max-vocab",
                              info="Keep the N most frequent words; rarer ones become <unk>.")
    return [steps, hidden, dropout, lr, max_vocab]


def _cell_and_optimizer() -> list[gr.components.Component]:
    cell = fields.radio(list(CELLS), value="lstm", label="Cell", elem_id="train-cell",
                    info="lstm: gates and a cell state; gru: two gates, no cell state; "
                         "rnn: a plain tanh RNN.")
    optimizer = fields.radio(list(OPTIMIZERS), value=WINDOWS.optimizer, label="Optimizer",
                         elem_id="train-optimizer",
                         info="ntasgd: SGD, then averages the weights once validation stalls "
                              "(AWD-LSTM's NT-ASGD).")
    forget_bias = fields.number(value=1.0, minimum=-limits.MAX_FORGET_BIAS,
                                maximum=limits.MAX_FORGET_BIAS, label="Forget bias",
                                elem_id="train-forget-bias",
                                info="Initial bias of the LSTM's forget gate (the GRU's update "
                                     "gate); 1 keeps the memory open early on.")
    return [cell, optimizer, forget_bias]


def _regularizers() -> list[gr.components.Component]:
    """The AWD-LSTM regularizers (docs/guide.md has a section on each), all off by default."""
    weight_drop = fields.slider(0, limits.MAX_DROP, value=0, step=0.05, label="Weight drop",
                                elem_id="train-weight-drop",
                                info="DropConnect on the hidden-to-hidden weights.")
    locked = gr.Checkbox(value=False, label="Locked dropout", elem_id="train-locked",
                         info="The same dropout mask at every time step of a sequence.")
    embed_dropout = fields.slider(0, limits.MAX_DROP, value=0, step=0.05,
                                  label="Embedding dropout",
                                  info="Drops whole words from the embedding matrix.")
    ar = fields.number(value=0, minimum=0, maximum=limits.MAX_AR, label="AR",
                       info="Penalty on the size of h (0 = off; AWD-LSTM used 2).")
    tar = fields.number(value=0, minimum=0, maximum=limits.MAX_AR, label="TAR",
                        info="Penalty on h's change between steps (0 = off; AWD-LSTM used 1).")
    return [weight_drop, locked, embed_dropout, ar, tar]


def build(run_outputs: list[gr.components.Component]) -> None:
    """run_outputs: what ui.runs.refresh_runs fills, so a finished run is listed and selected."""
    with gr.Tab("Train", id="train"):
        gr.Markdown(limits_text(), elem_id="train-limits")
        with gr.Row():
            with gr.Column():
                upload, recipe, tokenizer, run_name = _text_and_recipe()
            with gr.Column():
                steps, hidden, dropout, lr, max_vocab = _model_and_steps()
        cell, optimizer, forget_bias = _cell_and_optimizer()
        with gr.Accordion("Regularizers (AWD-LSTM)", open=False):
            with gr.Row():
                regularizers = _regularizers()
        with gr.Row():
            button = gr.Button("Train", variant="primary", elem_id="train-btn")
            stop = gr.Button("Stop", variant="stop", elem_id="stop-btn")
        status = gr.Textbox(label="Progress", interactive=False, elem_id="train-status",
                            value="The progress bar and the latest loss show here.")
        live_plot = gr.Plot(label="Loss and memorization so far", show_label=False,
                            elem_id="train-plot")
        live_samples = gr.Markdown(samples_markdown([]), elem_id="train-samples")
        log = gr.Textbox(label="Training log", lines=8, interactive=False, elem_id="train-log")
    # New inputs go last, so callers of the API who pass the first eight keep working.
    button.click(train, [upload, recipe, steps, hidden, dropout, lr, run_name, max_vocab,
                         cell, optimizer, *regularizers, forget_bias, tokenizer],
                 [*run_outputs, status, log, live_plot, live_samples], api_name="train",
                 show_progress_on=status,
                 concurrency_limit=2)  # a second caller is told BUSY at once, not queued
    stop.click(stop_training, None, status, api_name="stop_training", concurrency_limit=None)
    recipe.change(recipe_defaults, recipe,
                  [dropout, lr, run_name, optimizer, hidden, steps, max_vocab, tokenizer],
                  api_visibility="private")
