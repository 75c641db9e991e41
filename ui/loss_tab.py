"""The Loss & temperature tab: the run's loss and memorization curves, and copying measured
against temperature."""

from __future__ import annotations

import gradio as gr

import app


def build(run: gr.Dropdown, prompt: gr.Textbox, length: gr.Slider) -> None:
    with gr.Tab("Loss & temperature", id="loss"):
        # One chart, two axes (a LinePlot has only one): loss left, memorization right.
        loss_plot = gr.Plot(label="Loss and memorization by training step", elem_id="loss-plot")
        loss_note = gr.Markdown()
        with gr.Accordion("The numbers behind the chart", open=False):
            loss_data = gr.Dataframe(interactive=False, max_height=300, elem_id="loss-data")
        gr.Markdown("**Memorization against temperature**: a few samples per temperature from the "
                    "prompt and length on the Generate tab.")
        sweep_btn = gr.Button(f"Measure copying at temperatures {app.SWEEP_TEMPERATURES[0]:g} … "
                              f"{app.SWEEP_TEMPERATURES[-1]:g}", elem_id="sweep-btn")
        sweep_plot = gr.LinePlot(x="temperature", y="share", color="measure", height=300,
                                 y_lim=[0, 1], title="Copying against temperature",
                                 elem_id="sweep-plot")
        sweep_note = gr.Markdown()
    run.change(app.loss_chart, run, [loss_data, loss_note, loss_plot], api_name="loss_curves",
               **app.COMPUTE_SLOT)
    sweep_btn.click(app.temperature_sweep, [run, prompt, length], [sweep_plot, sweep_note],
                    api_name="temperature_sweep", show_progress_on=sweep_plot, **app.COMPUTE_SLOT)
