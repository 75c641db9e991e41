"""The About tab: what the figures mean, how the demo runs were trained, where runs are kept.

Every number that is a setting comes from where it is set (the demo runs' configs, the app's
constants), so the text cannot drift from what the runs actually did.
"""

from __future__ import annotations

import os

import gradio as gr

from training.config import TrainConfig
from training.demo import DEMO_RUNS
from training.store import store_name
from ui.report import MIN_SPAN

FIGURES = """### What the figures mean
- **Copied span**: a run of at least {span} generated words that appears word for word in the
  training text. The table says where (paragraph and word, counted from 1; punctuation marks
  count as words).
- **Copied 4-grams**: the share of the generated 4-word sequences that occur in the training text.
  The **n-gram novelty** plot is its generalisation (McCoy et al. 2021, *How much do language models
  copy from their training data?*): the share of generated n-grams, for n = 1…8, that never occur in
  the training text. Human text has high novelty from n = 3 or 4; a model that recites has low novelty.
- **Extractable memorization** (Carlini et al. 2022, *Quantifying Memorization Across Neural
  Language Models*): give the model {k} words of its training text; does greedy decoding continue
  with the next {m} exactly? The share of passages where it does. Logged for every run after
  training (with the run's own numbers of words, shown under its loss curves).
- **`<unk>`** stands for every word a capped vocabulary leaves out. Loss and perplexity count a
  predicted `<unk>` as right, so on a text of rare words they look better than they are; the
  memorization figures never count it (no copied span, n-gram or recited passage holds `<unk>`).
- **Loss curves**: training loss keeps falling; validation loss (on a held-out tail of the text)
  bottoms out, then rises as the model learns the training text by heart. For windows-recipe
  runs the app loads the checkpoint with the lowest validation loss.
- **Temperature**: the app, the command line and the guide all default to 0, greedy decoding
  (always the likeliest word): the same text every time, and the one that shows the most
  recitation. A temperature above 0 samples instead, so copying falls.
- **Repeated 4-grams (a loop)**: the share of generated 4-word sequences that already occurred
  earlier in the generated text itself. Greedy decoding can go round in a loop ("the tower of the
  tower of…"); its short phrases may all be in the source, so the copy figure rises though nothing
  long is recited. High repetition with short copied spans reads as a loop, not recitation.
- **The "why" line** above the figures: how the chosen run was trained (recipe, cell, dropout,
  optimizer, steps), its final training and validation loss, its extractable memorization and
  the step the loaded weights come from. The list of where the copied spans come from shows a
  model that leaves the prompt's own passage at once yet copies: it stitches other passages.
- **Gates**: the input gate decides how much new information enters the cell, the forget gate how
  much of the old cell state is kept, the output gate how much of the cell is shown as the hidden state.
"""


def demo_runs_text() -> str:
    seed, windows = DEMO_RUNS["demo-seed"], DEMO_RUNS["demo-windows"]
    return f"""### How the demo runs were trained
Both learn from the project's own text (`corpus/lighthouse_keeper.txt`) with the same tokenizer
and the same held-out last {windows.val_fraction:.0%} of the text, so their validation losses
compare directly (`python -m training.demo` rebuilds them).
- **demo-seed** (seed recipe): the write-up's method, batches of {seed.batch_size} random prefix →
  next-word pairs, loss on the last word only, dropout {seed.dropout:g}, {seed.steps} steps. The app
  loads its final weights. It memorizes: greedy text from a prompt in the source recites it.
- **demo-windows** (windows recipe): every position of random {windows.seq_len}-word windows is a
  training target, with plain {windows.optimizer.upper()} (learning rate {windows.lr:g}, multiplied by
  {windows.lr_factor:g} when validation stops improving, gradients clipped at
  {windows.grad_clip:g}), dropout {windows.dropout:g} and tied input/output weights; the app loads
  the checkpoint with the lowest validation loss. It generalizes better (lower validation loss)
  and copies less.
"""


def store_text() -> str:
    """Which store the app logs to, and whether runs trained here survive a restart."""
    if os.environ.get("MLFLOW_TRACKING_URI", "").startswith(("http://", "https://")):
        return ("### Where runs are kept\nRuns are tracked in MLflow on the tracking server set in "
                "`MLFLOW_TRACKING_URI`; runs trained here are kept there when the app restarts.")
    return (f"### Where runs are kept\nRuns are tracked in MLflow in `{store_name()}`, and the "
            "table at the top lists them. Runs trained here are written to the "
            "app's own disk: on a Hugging Face Space (or any host with a disk that is reset) they "
            "**vanish when the app restarts**; the committed demo runs do not. To keep them, point "
            "`MLFLOW_TRACKING_URI` at an MLflow tracking server (in a Space, set it as a secret).")


def build() -> None:
    defaults = TrainConfig()
    figures = FIGURES.format(span=MIN_SPAN, k=defaults.memorization_prefix,
                             m=defaults.memorization_suffix)
    with gr.Tab("About", id="about"):
        gr.Markdown("\n".join([figures, demo_runs_text(), store_text()]))
