"""The MLflow model of a run, logged "from code": this file is the model's definition.

``mlflow.pyfunc.log_model(python_model=<this file>, artifacts={"checkpoint": ..., "vocab": ...},
code_paths=["lstm_core"])`` stores this file, the weights-only checkpoint, the vocabulary and the
``lstm_core`` package with the model: nothing is pickled. Loading runs ``load_context``, which
rebuilds the model from the checkpoint with ``torch.load(..., weights_only=True)``.

``predict`` takes a DataFrame with a ``prompt`` column (and optionally ``length``,
``temperature``, ``top_k``, ``top_p``, ``seed``; absent or empty cells take the CLI's
defaults) and returns one string per row: the prompt followed by the generated words, exactly as
``python -m training.generate`` prints it. A request is bounded as the app bounds one (rows,
prompt words and characters, length), so `mlflow models serve` cannot be made to work for
minutes; a refusal is a one-line ValueError.

It imports only ``lstm_core``, mlflow, pandas and torch: ``training`` is not shipped with the
model.
"""

from __future__ import annotations

import math

import mlflow
import pandas as pd
import torch

from lstm_core.generate import SamplingConfig, encode_prompt, generate_ids
from lstm_core.model import LSTMLanguageModel, ModelConfig
from lstm_core.text import detokenize
from lstm_core.vocab import Vocabulary

DEFAULTS = SamplingConfig()  # the CLI's defaults: 50 tokens, greedy
# The bounds of one request: the app's (ui/limits.py: MAX_PROMPT_WORDS, CHARS_PER_WORD,
# MAX_LENGTH), repeated here because the served model ships without ui/ or training/.
MAX_PROMPT_WORDS = 200  # words a prompt may have
MAX_PROMPT_CHARS = MAX_PROMPT_WORDS * 10  # characters (10 a word), counted before splitting
MAX_LENGTH = 400  # words one row may generate
MAX_ROWS = 16  # rows (prompts) one request may hold


def _cell(row: pd.Series, column: str, cast, default):
    """One optional cell: its value cast to int/float, or the default when absent or empty."""
    value = row.get(column)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return default
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{column} must be a number, got {value!r}") from None
    if cast is int and not number.is_integer():
        raise ValueError(f"{column} must be a whole number, got {value}")
    return cast(number)


def prompt_of(row: pd.Series) -> str:
    """A row's prompt, refused when longer than the app allows (characters first)."""
    prompt = str(row["prompt"])
    if len(prompt) > MAX_PROMPT_CHARS:
        raise ValueError(f"prompt is {len(prompt):,} characters long; the limit is "
                         f"{MAX_PROMPT_CHARS:,} characters and {MAX_PROMPT_WORDS} words")
    words = len(prompt.split())
    if words > MAX_PROMPT_WORDS:
        raise ValueError(f"prompt has {words:,} words; the limit is {MAX_PROMPT_WORDS} words")
    return prompt


def sampling_for(row: pd.Series) -> SamplingConfig:
    length = _cell(row, "length", int, DEFAULTS.max_new_tokens)
    if not 1 <= length <= MAX_LENGTH:
        raise ValueError(f"length must be from 1 to {MAX_LENGTH}, got {length}")
    return SamplingConfig(
        max_new_tokens=length,
        temperature=_cell(row, "temperature", float, DEFAULTS.temperature),
        top_k=_cell(row, "top_k", int, DEFAULTS.top_k) or None,  # 0 = off, as in the app
        top_p=_cell(row, "top_p", float, DEFAULTS.top_p),
        seed=_cell(row, "seed", int, DEFAULTS.seed),
    )


class LSTMTextGenerator(mlflow.pyfunc.PythonModel):
    def load_context(self, context) -> None:
        checkpoint = torch.load(context.artifacts["checkpoint"], map_location="cpu",
                                weights_only=True)
        self.model = LSTMLanguageModel(ModelConfig(**checkpoint["model_config"]))
        self.model.load_state_dict(checkpoint["state_dict"])
        self.model.eval()
        self.vocab = Vocabulary.load_json(context.artifacts["vocab"])

    def predict(self, context, model_input: pd.DataFrame, params=None) -> list[str]:
        if "prompt" not in model_input:
            raise ValueError("the input needs a 'prompt' column")
        if len(model_input) > MAX_ROWS:
            raise ValueError(f"the input has {len(model_input):,} rows; the limit is {MAX_ROWS} "
                             "per request")
        rows = [(prompt_of(row), sampling_for(row)) for _, row in model_input.iterrows()]
        texts = []
        for prompt, sampling in rows:  # every row checked before the first is generated
            ids = generate_ids(self.model, encode_prompt(prompt, self.vocab), sampling)
            texts.append(detokenize(self.vocab.decode(ids), self.vocab.scheme))
        return texts


mlflow.models.set_model(LSTMTextGenerator())
