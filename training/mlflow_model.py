"""The MLflow model of a run, logged "from code": this file is the model's definition.

``mlflow.pyfunc.log_model(python_model=<this file>, artifacts={"checkpoint": ..., "vocab": ...},
code_paths=["lstm_core"])`` stores this file, the weights-only checkpoint, the vocabulary and the
``lstm_core`` package with the model: nothing is pickled. Loading runs ``load_context``, which
rebuilds the model from the checkpoint with ``torch.load(..., weights_only=True)``.

``predict`` takes a DataFrame with a ``prompt`` column (and optionally ``length``,
``temperature``, ``top_k``, ``top_p``, ``seed``; absent or empty cells take the CLI's
defaults) and returns one string per row: the prompt followed by the generated words, exactly as
``python -m training.generate`` prints it.

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


def sampling_for(row: pd.Series) -> SamplingConfig:
    return SamplingConfig(
        max_new_tokens=_cell(row, "length", int, DEFAULTS.max_new_tokens),
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
        texts = []
        for _, row in model_input.iterrows():
            ids = generate_ids(self.model, encode_prompt(str(row["prompt"]), self.vocab),
                               sampling_for(row))
            texts.append(detokenize(self.vocab.decode(ids), self.vocab.scheme))
        return texts


mlflow.models.set_model(LSTMTextGenerator())
