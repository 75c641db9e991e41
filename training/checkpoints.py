"""Checkpoints: the files a run's weights are saved in, and loading them back safely.

``model.pt`` holds the best-validation weights (what the app and the sampling CLI load),
``last.pt`` the latest step with its optimizer state (what ``--resume`` continues from).
"""

from __future__ import annotations

from pathlib import Path

import torch

from lstm_core.model import LSTMLanguageModel, ModelConfig
from lstm_core.vocab import Vocabulary
from training.store import artifact_path, one_line

MODEL_FILE = "model.pt"  # best-validation weights: what the app and the sampling CLI load
LAST_FILE = "last.pt"  # the latest step with optimizer state: what --resume continues from
SOURCE_FILE = "source.txt"  # the exact training text, to measure memorization against


def load_checkpoint(path: Path) -> dict:
    """Load a checkpoint safely: plain tensors and builtins only, never arbitrary objects."""
    if not path.exists():
        raise ValueError(f"Checkpoint {path.name} is missing (were the run's artifacts deleted?)")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for truncated or hostile files
        raise ValueError(f"Checkpoint {path.name} cannot be loaded safely: it is truncated, "
                         f"corrupt or holds objects other than tensors ({type(err).__name__})") from None
    if not isinstance(checkpoint, dict) or not {"model_config", "state_dict", "vocab"} <= checkpoint.keys():
        raise ValueError(f"Checkpoint {path.name} is not a checkpoint of this project")
    return checkpoint


def model_from_checkpoint(checkpoint: dict) -> tuple[LSTMLanguageModel, Vocabulary]:
    """The model and vocabulary of a checkpoint; one clear line when they do not fit together."""
    try:
        vocab = Vocabulary.from_dict(checkpoint["vocab"])
        model = LSTMLanguageModel(ModelConfig(**checkpoint["model_config"]))
        if model.config.vocab_size != len(vocab):
            raise ValueError(f"its model has {model.config.vocab_size} word ids but its "
                             f"vocabulary {len(vocab)}")
        model.load_state_dict(checkpoint["state_dict"])
    except (KeyError, TypeError, ValueError, RuntimeError) as err:
        raise ValueError(f"The checkpoint does not hold a usable model: {one_line(err)}") from None
    model.eval()
    return model, vocab


def _checkpoint_path(run, name: str) -> Path:
    """The local path of a run's checkpoint, or a ValueError that says why there is none."""
    run_id = run.info.run_id
    try:
        path = artifact_path(run_id, name)
    except Exception:  # a remote store raises when the file is not there
        path = None
    if path is not None and path.exists():
        return path
    has_model = name != MODEL_FILE and _has_artifact(run_id, MODEL_FILE)
    if has_model:
        why = (f"it keeps only {MODEL_FILE}, the weights to use, without the optimizer state "
               f"(the demo runs ship that way to keep the store small); train a new run instead")
    elif "step" not in run.data.metrics:
        why = (f"it stopped before its first checkpoint (status {run.info.status}, no step was "
               "logged), so there is nothing to load; train a new run instead")
    else:
        why = f"{name} is missing from its artifacts (were they deleted?)"
    raise ValueError(f"Run {run_id} has no {name}: {why}")


def _has_artifact(run_id: str, name: str) -> bool:
    try:
        return artifact_path(run_id, name).exists()
    except Exception:
        return False


RESUME_KEYS = {"train_config", "optimizer", "scheduler", "generator", "torch_rng", "step",
               "best_val", "evals_since_best", "metrics"}


def load_resume_checkpoint(run) -> dict:
    """A run's last.pt, checked to hold everything ``--resume`` needs, or one clear line."""
    checkpoint = load_checkpoint(_checkpoint_path(run, LAST_FILE))
    missing = sorted(RESUME_KEYS - checkpoint.keys())
    if missing:
        raise ValueError(f"Checkpoint {LAST_FILE} of run {run.info.run_id} cannot be resumed: it "
                         f"lacks {', '.join(missing)}")
    model_from_checkpoint(checkpoint)  # the same one-line error when model and vocab disagree
    return checkpoint

