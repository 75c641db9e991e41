"""The About tab: what the figures mean, how the demo runs were trained, where runs are kept."""

from __future__ import annotations

import gradio as gr

ABOUT = """### What the figures mean
- **Copied span**: a run of at least 4 generated words that appears word for word in the training
  text. The table says where (paragraph and word, counted from 1; punctuation marks count as words).
- **Copied 4-grams**: the share of the generated 4-word sequences that occur in the training text.
  The **n-gram novelty** plot is its generalisation (McCoy et al. 2021, *How much do language models
  copy from their training data?*): the share of generated n-grams, for n = 1…8, that never occur in
  the training text. Human text has high novelty from n = 3 or 4; a model that recites has low novelty.
- **Extractable memorization** (Carlini et al. 2022, *Quantifying Memorization Across Neural
  Language Models*): give the model 8 words of its training text; does greedy decoding continue with
  the next 8 exactly? The share of passages where it does. Logged for every run after training.
- **Loss curves**: training loss keeps falling; validation loss (on a held-out tail of the text)
  bottoms out, then rises as the model learns the training text by heart. For windows-recipe
  runs the app loads the checkpoint with the lowest validation loss.
- **Temperature**: 0 always takes the likeliest word (greedy), which recites most; higher
  temperatures sample more freely, so copying falls.
- **Gates**: the input gate decides how much new information enters the cell, the forget gate how
  much of the old cell state is kept, the output gate how much of the cell is shown as the hidden state.

### How the demo runs were trained
Both learn from the project's own text (`corpus/lighthouse_keeper.txt`) with the same tokenizer
and the same held-out last 10% of the text, so their validation losses compare directly
(`python -m training.demo` rebuilds them).
- **demo-seed** (seed recipe): the write-up's method, batches of 128 random prefix → next-word
  pairs, loss on the last word only, no dropout, 600 steps. The app loads its final weights. It
  memorizes: greedy text from a prompt in the source recites it.
- **demo-windows** (windows recipe): every position of random 32-word windows is a training
  target, with plain SGD (learning rate 20, cut to a quarter when validation stops improving,
  gradients clipped at 0.25), dropout 0.4 and tied input/output weights; the app loads the
  checkpoint with the lowest validation loss. It generalizes better (lower validation loss) and
  copies less.

Runs are tracked in MLflow; the table at the top lists every logged run."""


def build() -> None:
    with gr.Tab("About", id="about"):
        gr.Markdown(ABOUT)
