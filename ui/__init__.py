"""The Gradio app: one module per tab (``*_tab.py``), each holding what the tab computes and
shows, and the pieces several tabs share: picking runs (``runs``), the memorization report
(``report``), the app's bounds (``limits``) and its one training at a time (``training_job``).

``build_demo()`` assembles the tabs without touching the store (the run lists are filled on
page load); ``launch()`` serves it with the app's queue, theme and styles.
"""

from __future__ import annotations

import os

import gradio as gr
from starlette.middleware import Middleware

from ui import (
    about_tab,
    canary_tab,
    compare_tab,
    flow_tab,
    generate_tab,
    header,
    inside_tab,
    limits,
    loss_tab,
    map_tab,
    train_tab,
)
from ui.body_limit import BodyLimit
from ui.runs import refresh_runs

INTRO = """# How much does a small LSTM recite?
Pick a logged run, give it a few words, and see which parts of what it writes are copied word for
word from its training text (highlighted), and why: loss curves, runs side by side, its gates at work."""

CSS = """
#highlight .textfield { display: block; word-break: normal; line-height: 1.9; }
#highlight .token-container { display: inline; }
#highlight .token { display: inline; -webkit-box-decoration-break: clone; box-decoration-break: clone; }
#highlight .token.highlighted { margin: 0; padding: 2px 3px; border-left: 3px solid rgba(0, 0, 0, 0.3); }
#refresh-btn { align-self: center; }
.gates .scroll { overflow-x: auto; }
.gates table { border-collapse: collapse; font-size: 11px; color: #111; }
.gates th { font-weight: normal; writing-mode: vertical-rl; transform: rotate(180deg);
            padding: 4px 1px; color: var(--body-text-color); white-space: nowrap; }
.gates th.rowname { writing-mode: horizontal-tb; transform: none; text-align: right;
                    padding-right: 8px; position: sticky; left: 0; background: var(--background-fill-primary); }
.gates td { min-width: 30px; text-align: center; padding: 4px 1px; border: 1px solid #fff; }
"""


def build_demo() -> gr.Blocks:
    # Uploads the Train button never read are deleted too: every 10 minutes, those over 10 old.
    with gr.Blocks(title="LSTM memorization demo", delete_cache=(600, 600)) as demo:
        gr.Markdown(INTRO)
        top = header.build()
        with gr.Tabs():
            generate = generate_tab.build(top.run)
            loss_tab.build(top.run, generate.prompt, generate.length)
            compare = compare_tab.build()
            inside_tab.build(top.run, generate.out)
            map_tab.build(top.run)
            flow_tab.build(top.run)
            run_outputs = [top.run, top.table, compare.picker, top.notice]
            train_tab.build(run_outputs)
            canary_tab.build(run_outputs)
            about_tab.build()
        loaded = demo.load(refresh_runs, None, run_outputs, api_visibility="private")
        loaded.then(compare_tab.compare_if_ready, compare.picker, compare.outputs,
                    api_visibility="private")
        top.refresh.click(refresh_runs, top.run, run_outputs, api_visibility="private")
    return demo


def launch(demo: gr.Blocks, **kwargs):
    """Serve the demo: a bounded queue, the theme and styles (Gradio 6 takes them in launch)."""
    # The /monitoring page would publish our traffic, and its summary is rebuilt after every
    # event; with the page off it is never rebuilt.
    os.environ.setdefault("GRADIO_ANALYTICS_CACHE_FREQUENCY", str(10**12))
    # max_file_size makes Gradio refuse an oversized upload before it is even stored.
    # Every request body is bounded before it is read (ui.body_limit).
    app_kwargs = {"middleware": [Middleware(BodyLimit)], **kwargs.pop("app_kwargs", {})}
    return demo.queue(default_concurrency_limit=2, max_size=limits.QUEUE_MAX_SIZE).launch(
        theme=gr.themes.Soft(), css=CSS, max_file_size=limits.MAX_UPLOAD_BYTES,
        enable_monitoring=False, state_session_capacity=limits.MAX_SESSIONS,
        app_kwargs=app_kwargs, **kwargs)
