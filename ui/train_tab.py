"""The Train tab: train a run on an uploaded text (or the default corpus) within set limits."""

from __future__ import annotations

import gradio as gr

import app
from lstm_core.cells import CELLS
from training.config import DEFAULT_CORPUS, OPTIMIZERS, RECIPES, TrainConfig
from ui import fields

SEED, WINDOWS = TrainConfig.for_recipe("seed"), TrainConfig.for_recipe("windows")


def _text_and_recipe() -> list[gr.components.Component]:
    upload = gr.File(label=f"Training text (.txt, UTF-8, up to {app.MAX_UPLOAD_BYTES / 1e6:g} MB)",
                     file_types=[".txt"], elem_id="upload")
    gr.Markdown(f"Leave empty to train on the default corpus ({DEFAULT_CORPUS.name}).")
    recipe = gr.Radio(list(RECIPES), value="windows", label="Recipe",
                      info="seed: the write-up's prefix pairs, memorizes; "
                           "windows: every position, with validation.")
    run_name = gr.Textbox(label="Run name", placeholder="app-windows",
                          info="A name for the MLflow run (optional).")
    return [upload, recipe, run_name]


def _model_and_steps() -> list[gr.components.Component]:
    steps = fields.slider(10, app.MAX_STEPS, value=300, step=10, label="Steps",
                          elem_id="train-steps",
                          info="Optimizer steps; 300 take a minute or two on two CPUs.")
    hidden = fields.slider(16, app.MAX_HIDDEN, value=64, step=16, label="Hidden size",
                           info="State size of the cell (also the word-vector size).")
    dropout = fields.slider(0, 0.8, value=0.4, step=0.05, label="Dropout",
                            info="Randomly zeroes activations while training; fights "
                                 "memorization.")
    lr = fields.number(value=20.0, minimum=1e-5, maximum=100, label="Learning rate",
                       info=f"Step size: the windows recipe uses plain SGD ({WINDOWS.lr:g}), "
                            f"the seed recipe Adam ({SEED.lr:g}).")
    max_vocab = fields.slider(app.MIN_APP_VOCAB, app.MAX_APP_VOCAB, step=100,
                              value=app.DEFAULT_APP_VOCAB, label="Vocabulary cap",
                              elem_id="max-vocab",
                              info="Keep the N most frequent words; rarer ones become <unk>.")
    return [steps, hidden, dropout, lr, max_vocab]


def _cell_and_optimizer() -> list[gr.components.Component]:
    cell = gr.Radio(list(CELLS), value="lstm", label="Cell", elem_id="train-cell",
                    info="lstm: gates and a cell state; gru: two gates, no cell state; "
                         "rnn: a plain tanh RNN (its gradient fades: see Gradient flow).")
    optimizer = gr.Radio(list(OPTIMIZERS), value=WINDOWS.optimizer, label="Optimizer",
                         elem_id="train-optimizer",
                         info="ntasgd: SGD, then averages the weights once validation stalls "
                              "(AWD-LSTM's NT-ASGD).")
    return [cell, optimizer]


def _regularizers() -> list[gr.components.Component]:
    """The AWD-LSTM regularizers (docs/guide.md has a section on each), all off by default."""
    weight_drop = fields.slider(0, app.MAX_DROP, value=0, step=0.05, label="Weight drop",
                                elem_id="train-weight-drop",
                                info="DropConnect on the hidden-to-hidden weights.")
    locked = gr.Checkbox(value=False, label="Locked dropout", elem_id="train-locked",
                         info="The same dropout mask at every time step of a sequence.")
    embed_dropout = fields.slider(0, app.MAX_DROP, value=0, step=0.05, label="Embedding dropout",
                                  info="Drops whole words from the embedding matrix.")
    ar = fields.number(value=0, minimum=0, maximum=app.MAX_AR, label="AR",
                       info="Penalty on the size of h (0 = off; AWD-LSTM used 2).")
    tar = fields.number(value=0, minimum=0, maximum=app.MAX_AR, label="TAR",
                        info="Penalty on h's change between steps (0 = off; AWD-LSTM used 1).")
    return [weight_drop, locked, embed_dropout, ar, tar]


def limits_text() -> str:
    """The limits every app training runs under, said where people choose the settings."""
    return (f"**Limits here** (a shared machine): one training at a time; at most {app.MAX_STEPS} "
            f"steps, hidden size {app.MAX_HIDDEN} and a vocabulary of the {app.MAX_APP_VOCAB:,} "
            f"most frequent words (the rest become `<unk>`); parameters x steps at most "
            f"{app.MAX_PARAM_STEPS / 1e6:,.0f} million; a run is stopped after {app.MAX_TRAIN_SECONDS // 60} "
            "minutes (it ends as KILLED and keeps its last checkpoint, as with **Stop**); the "
            f"app keeps only the newest {app.KEEP_APP_RUNS} runs trained here, deleting older "
            "ones (the demo runs and runs trained with `python -m training` are never deleted).")


def build(run_outputs: list[gr.components.Component]) -> None:
    """run_outputs: what app.refresh_runs fills, so a finished run is listed and selected."""
    with gr.Tab("Train", id="train"):
        gr.Markdown(limits_text(), elem_id="train-limits")
        with gr.Row():
            with gr.Column():
                upload, recipe, run_name = _text_and_recipe()
            with gr.Column():
                steps, hidden, dropout, lr, max_vocab = _model_and_steps()
        cell, optimizer = _cell_and_optimizer()
        with gr.Accordion("Regularizers (AWD-LSTM)", open=False):
            with gr.Row():
                regularizers = _regularizers()
        with gr.Row():
            button = gr.Button("Train", variant="primary", elem_id="train-btn")
            stop = gr.Button("Stop", variant="stop", elem_id="stop-btn")
        status = gr.Textbox(label="Progress", interactive=False, elem_id="train-status",
                            value="The progress bar and the latest loss show here.")
        log = gr.Textbox(label="Training log", lines=8, interactive=False, elem_id="train-log")
    # New inputs go last, so callers of the API who pass the first eight keep working.
    button.click(app.train, [upload, recipe, steps, hidden, dropout, lr, run_name, max_vocab,
                             cell, optimizer, *regularizers],
                 [*run_outputs, status, log], api_name="train", show_progress_on=status,
                 concurrency_limit=2)  # a second caller gets app.BUSY at once, not a wait
    stop.click(app.stop_training, None, status, api_name="stop_training", concurrency_limit=None)
    recipe.change(app.recipe_defaults, recipe, [dropout, lr, run_name, optimizer],
                  api_visibility="private")
