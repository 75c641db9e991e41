"""MLflow models: each run's logged pyfunc model, its dataset input, and registering it.

A finished run logs its ``model.pt`` and vocabulary as a pyfunc model "from code"
(``training/mlflow_model.py``), which `mlflow models serve` and ``mlflow.pyfunc.load_model`` run
without this package. Registering one gives it a ``models:/NAME@ALIAS`` that
``training.runs.resolve_run_id`` accepts.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pandas as pd

from training.checkpoints import MODEL_FILE
from training.config import PROJECT_ROOT
from training.runs import get_run, is_alive, resolve_run_id, run_process
from training.store import (  # mlflow from here: imported after the settings it reads
    MlflowClient,
    artifact_path,
    mlflow,
    sha256_text,
    writing,
)

MODEL_CODE = Path(__file__).with_name("mlflow_model.py")  # the pyfunc model, "from code"
MODEL_NAME = "model"  # the logged model's name within its run
DIGEST_CHARS = 36  # MLflow's limit on a dataset digest
PINNED = ("torch", "mlflow", "pandas")  # the logged model's pip requirements, from requirements.txt


def pinned_requirements() -> list[str]:
    """The model's pip requirements, pinned as requirements.txt pins them (torch==2.13.0)."""
    lines = (PROJECT_ROOT / "requirements.txt").read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines
            if line.strip().split("=")[0].split(">")[0].strip() in PINNED]


def _model_signature():
    from mlflow.models import ModelSignature
    from mlflow.types.schema import AnyType, ColSpec, Schema

    # The optional columns are typed "any": a JSON request whose rows leave one out makes it
    # NaN (float), which a long column refuses, and MLflow refuses int -> double too. The model
    # checks each value itself (numbers, whole where they must be).
    inputs = [ColSpec("string", "prompt")] + [
        ColSpec(AnyType(), name, required=False)
        for name in ("length", "temperature", "top_k", "top_p", "seed")]
    return ModelSignature(inputs=Schema(inputs), outputs=Schema([ColSpec("string")]))


def log_run_model(run_id: str, example_prompt: str) -> str:
    """Log the run's model.pt and vocabulary as an MLflow pyfunc model; returns its model id.

    Called inside the active run. ``example_prompt`` (a word the model knows) makes the input
    example, which MLflow runs once to check the model.
    """
    info = mlflow.pyfunc.log_model(
        name=MODEL_NAME,
        python_model=str(MODEL_CODE),
        artifacts={"checkpoint": str(artifact_path(run_id, MODEL_FILE)),
                   "vocab": str(artifact_path(run_id, "vocab.json"))},
        code_paths=[str(PROJECT_ROOT / "lstm_core")],
        signature=_model_signature(),
        input_example=pd.DataFrame({"prompt": [example_prompt]}),
        pip_requirements=pinned_requirements(),
    )
    return info.model_id


def log_text_dataset(text: str, source: str, name: str) -> None:
    """Log the training text as the run's dataset input, its digest the text's sha256.

    MLflow caps a digest at 36 characters, so it holds the first 36 hex digits; the full
    sha256 is the run's ``corpus_sha256`` tag.
    """
    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.meta_dataset import MetaDataset

    with warnings.catch_warnings():  # "can be interpreted in multiple ways": both are local
        warnings.simplefilter("ignore", UserWarning)
        located = resolve_dataset_source(source)
    dataset = MetaDataset(located, name=name, digest=sha256_text(text)[:DIGEST_CHARS])
    mlflow.log_input(dataset, context="training")


def run_model_id(run_id: str) -> str:
    """The id (``m-...``) of the MLflow model a run logged; a clear error when it has none,
    with the reason: a run logs its model only once it has trained to its end."""
    run = get_run(run_id)
    models = mlflow.search_logged_models(
        experiment_ids=[run.info.experiment_id],
        filter_string=f"source_run_id = '{run_id}'", output_format="list",
        order_by=[{"field_name": "creation_timestamp", "ascending": False}])  # the newest
    if models:
        return models[0].model_id
    step = run.data.metrics.get("step")
    at = f" at step {step:.0f}" if step is not None else " before its first step"
    if is_alive(run):
        why = f"it is still training ({run_process(run)}): register it once it has finished"
    elif run.info.status == "FINISHED":
        why = "it was trained before runs logged one: retrain it to register it"
    else:
        status = "INTERRUPTED" if run.info.status == "RUNNING" else run.info.status
        why = (f"it ended {status}{at}, and a run logs its model only when it trains to its "
               f"end: finish it with python -m training --resume {run_id[:8]} (its "
               f"checkpoint is kept), then register it")
    raise ValueError(f"Run {run_id} has no logged MLflow model: {why}")


def register_run_model(reference: str, name: str, alias: str | None = None) -> str:
    """Register the model a run logged under ``name`` (and ``alias``); returns the version."""
    run_id = resolve_run_id(reference)
    model_id = run_model_id(run_id)
    with writing("register a model"):  # a read-only store: one line, not SQLAlchemy's page
        version = mlflow.register_model(f"models:/{model_id}", name).version
        if alias:
            MlflowClient().set_registered_model_alias(name, alias, version)
    return str(version)
