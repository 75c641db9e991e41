"""The Train tab: train a run on an uploaded text (or the default corpus) within set limits."""

from __future__ import annotations

import gradio as gr

import app
from training.config import DEFAULT_CORPUS, RECIPES


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
    steps = gr.Slider(10, app.MAX_STEPS, value=300, step=10, label="Steps", elem_id="train-steps",
                      info="Optimizer steps; 300 take a minute or two on two CPUs.")
    hidden = gr.Slider(16, app.MAX_HIDDEN, value=64, step=16, label="Hidden size",
                       info="LSTM state size (also the word-vector size).")
    dropout = gr.Slider(0, 0.8, value=0.4, step=0.05, label="Dropout",
                        info="Randomly zeroes activations while training; fights memorization.")
    lr = gr.Number(value=20.0, minimum=1e-5, maximum=100, label="Learning rate",
                   info="Step size: the windows recipe uses plain SGD (20), the seed recipe "
                        "Adam (0.005).")
    return [steps, hidden, dropout, lr]


def build(run_outputs: list[gr.components.Component]) -> None:
    """run_outputs: what app.refresh_runs fills, so a finished run is listed and selected."""
    with gr.Tab("Train", id="train"):
        with gr.Row():
            with gr.Column():
                upload, recipe, run_name = _text_and_recipe()
            with gr.Column():
                steps, hidden, dropout, lr = _model_and_steps()
        button = gr.Button("Train", variant="primary", elem_id="train-btn")
        status = gr.Textbox(label="Progress", interactive=False, elem_id="train-status",
                            value="The progress bar and the latest loss show here.")
        log = gr.Textbox(label="Training log", lines=8, interactive=False, elem_id="train-log")
    button.click(app.train, [upload, recipe, steps, hidden, dropout, lr, run_name],
                 [*run_outputs, status, log], api_name="train", concurrency_limit=2,
                 show_progress_on=status)
    recipe.change(app.recipe_defaults, recipe, [dropout, lr, run_name], api_visibility="private")
