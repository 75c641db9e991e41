"""Runs: reading them back, the references people type for them, whether they are alive, and
deleting them.

A reference is a full run id, a unique prefix or name, or a ``models:/`` URI of a logged or
registered model (``resolve_run_id``). A RUNNING run whose process died (SIGKILL, power cut) is
shown as INTERRUPTED: a heartbeat in its tags tells a live run from a dead one.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import socket
import time
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from pathlib import Path

import pandas as pd

from lstm_core.memorization import SourceIndex
from lstm_core.model import LSTMLanguageModel
from lstm_core.text import PARAGRAPH, tokenize
from lstm_core.vocab import Vocabulary
from training.checkpoints import (
    LAST_FILE,
    MODEL_FILE,
    SOURCE_FILE,
    _checkpoint_path,
    _has_artifact,
    load_checkpoint,
    model_from_checkpoint,
)
from training.config import TrainConfig
from training.store import (  # mlflow from here: imported after the settings it reads
    MlflowClient,
    artifact_path,
    local_artifact_dir,
    local_path,
    mlflow,
    open_store,
    tracking_uri,
)

RUN_COLUMNS = ["run_id", "name", "recipe", "cell", "backend", "corpus", "steps", "train_loss", "val_loss",
               "val_perplexity", "best_val_loss", "best_val_perplexity", "best_step", "extractable_memorization", "sample_copied_4gram_fraction",
               "sample_longest_copied_span", "duration_s", "status", "start_time", "owner", "chart_only"]


# ----------------------------------------------------------------------------------------------
# Liveness: is a RUNNING run still training, or did its process die (SIGKILL, power cut)?

HOST_TAG, PID_TAG, HEARTBEAT_TAG = "process.host", "process.pid", "process.heartbeat"
HEARTBEAT_EVERY_S = 30  # how often a training run refreshes its heartbeat tag
STALE_AFTER_S = 900  # a run on another machine is taken for dead after this long without one
_TRAINING_HERE: set[str] = set()  # runs this process is training right now


class Heartbeat:
    """Tags a run with the host and process training it, and a time refreshed as it trains."""

    def __init__(self, run_id: str):
        self.run_id, self.last = run_id, time.time()
        _TRAINING_HERE.add(run_id)
        mlflow.set_tags({HOST_TAG: socket.gethostname(), PID_TAG: str(os.getpid()),
                         HEARTBEAT_TAG: f"{self.last:.0f}"})

    def beat(self) -> None:
        if time.time() - self.last >= HEARTBEAT_EVERY_S:
            self.last = time.time()
            MlflowClient().set_tag(self.run_id, HEARTBEAT_TAG, f"{self.last:.0f}")

    def stop(self) -> None:
        _TRAINING_HERE.discard(self.run_id)


def _pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, but belongs to another user
        return True
    return True


def _alive(run_id: str, status: str, tags: dict, start_time: float) -> bool:
    """Whether a run is being trained now. Errs on the side of alive, never the other way."""
    if status != "RUNNING":
        return False
    pid = str(tags.get(PID_TAG) or "")
    if tags.get(HOST_TAG) == socket.gethostname() and pid.isdigit():
        if int(pid) == os.getpid():  # our own pid: maybe a restarted app that reused it
            return run_id in _TRAINING_HERE
        return _pid_exists(int(pid))
    # Another machine (or no tags yet): only the heartbeat's age can tell.
    last = float(tags.get(HEARTBEAT_TAG) or start_time)
    return time.time() - last < STALE_AFTER_S


def is_alive(run) -> bool:
    """Whether an MLflow run object (``get_run``) is still being trained by a live process."""
    return _alive(run.info.run_id, run.info.status, run.data.tags, run.info.start_time / 1000)


def run_process(run) -> str:
    """Where a run is trained, e.g. "pid 4242 on host-a", for messages."""
    tags = run.data.tags
    return f"pid {tags.get(PID_TAG, '?')} on {tags.get(HOST_TAG, '?')}"


def _shown_status(runs: pd.DataFrame) -> pd.Series:
    """MLflow's status, with RUNNING runs whose process is gone shown as INTERRUPTED."""
    def tag_column(name):
        column = f"tags.{name}"
        return runs[column] if column in runs else pd.Series([None] * len(runs), index=runs.index)

    shown = runs["status"].copy()
    tags = pd.DataFrame({HOST_TAG: tag_column(HOST_TAG), PID_TAG: tag_column(PID_TAG),
                         HEARTBEAT_TAG: tag_column(HEARTBEAT_TAG)})
    for i in runs.index[runs["status"] == "RUNNING"]:
        row = {k: v for k, v in tags.loc[i].items() if isinstance(v, str)}
        started = pd.Timestamp(runs.at[i, "start_time"]).timestamp()
        if not _alive(runs.at[i, "run_id"], "RUNNING", row, started):
            shown[i] = "INTERRUPTED"
    return shown


# ----------------------------------------------------------------------------------------------
# Reading runs


# A run tagged with an owner is private: a caller who serves runs to strangers (the app) shows
# it only to that owner, since generating from a run recites its training text.
OWNER_TAG = "owner"


@dataclass
class LoadedRun:
    """A logged run, ready to generate: model, vocabulary and the text it was trained on."""

    run_id: str
    name: str
    model: LSTMLanguageModel
    vocab: Vocabulary
    config: TrainConfig
    source_text: str
    source_tokens: list[str]
    step: int  # the training step the loaded weights come from
    note: str = ""  # why other weights than model.pt were loaded, if they were
    metrics: dict = field(default_factory=dict)  # the run's last value of each metric, at load
    owner: str = ""  # the OWNER_TAG of a private run (only its owner may see it), else ""

    @cached_property
    def index(self) -> SourceIndex:
        """The source text indexed for copy look-ups."""
        return SourceIndex(self.source_tokens)

    @cached_property
    def paragraph_starts(self) -> list[int]:
        """The token offset where each paragraph of the source starts (the first at 0)."""
        return [0] + [i + 1 for i, t in enumerate(self.source_tokens) if t == PARAGRAPH]


def get_run(run_id: str):
    """The MLflow run of a full id; anything else ``resolve_run_id`` accepts is resolved first."""
    open_store()
    try:
        return MlflowClient().get_run(run_id)
    except Exception:  # MLflow raises MlflowException (or others for malformed ids)
        pass
    return MlflowClient().get_run(resolve_run_id(run_id))  # a prefix, a name, a models:/ URI


@lru_cache(maxsize=8)
def load_run(run_id: str) -> LoadedRun:
    """Load a run's best checkpoint and source text. Cached: the app calls this per request.

    A run stopped before its first evaluation has no model.pt yet, only last.pt: its weights
    are loaded then (the optimizer state in it is ignored), and ``note`` says so.
    """
    run = get_run(run_id)
    run_id = run.info.run_id  # the full id, when a unique prefix or name was given
    checkpoint, note = _best_checkpoint(run)
    model, vocab = model_from_checkpoint(checkpoint)
    source = artifact_path(run_id, SOURCE_FILE)
    if not source.exists():
        raise ValueError(f"Run {run_id} has no {SOURCE_FILE} artifact (were its artifacts deleted?)")
    text = source.read_text(encoding="utf-8")
    config = TrainConfig.from_dict(checkpoint["train_config"])
    return LoadedRun(run_id, run.info.run_name, model, vocab, config, text,
                     tokenize(text, vocab.scheme), checkpoint.get("step", 0), note,
                     dict(run.data.metrics), run.data.tags.get(OWNER_TAG, ""))


def _best_checkpoint(run) -> tuple[dict, str]:
    """(checkpoint, note): model.pt, else (when there is none) last.pt with a note on why.

    A model.pt that is there but truncated or corrupt is an error, never silently replaced.
    """
    if _has_artifact(run.info.run_id, MODEL_FILE) or not _has_artifact(run.info.run_id, LAST_FILE):
        return load_checkpoint(_checkpoint_path(run, MODEL_FILE)), ""
    checkpoint = load_checkpoint(artifact_path(run.info.run_id, LAST_FILE))
    return checkpoint, (f"this run stopped before its first evaluation, so it has no {MODEL_FILE}: "
                        f"the weights come from {LAST_FILE} (step {checkpoint.get('step', '?')})")


def list_runs() -> pd.DataFrame:
    """All runs of the experiment, newest first, one row each with the figures people compare."""
    experiment_id = open_store()
    runs = mlflow.search_runs(experiment_ids=[experiment_id], order_by=["start_time DESC"])
    if "tags.sweep" in runs:  # a sweep's parent run only groups its children: it has no model
        runs = runs[runs["tags.sweep"] != "parent"]
    if "params.task" in runs:  # a task's runs (training.longrange) are no language models
        runs = runs[runs["params.task"].isna()]
    if runs.empty:
        return pd.DataFrame(columns=RUN_COLUMNS)

    def column(name, default=math.nan):
        return runs[name] if name in runs else pd.Series([default] * len(runs), index=runs.index)

    table = pd.DataFrame({
        "run_id": runs["run_id"],
        "name": column("tags.mlflow.runName", ""),
        "recipe": column("params.recipe", ""),
        "cell": column("params.cell", "lstm").fillna("lstm"),  # runs logged before the cell was a choice: LSTMs
        "backend": column("params.backend", ""),
        "corpus": column("tags.corpus_name", ""),
        "steps": column("metrics.step", math.nan),
        "train_loss": column("metrics.train_loss"),
        "val_loss": column("metrics.val_loss"),
        "val_perplexity": column("metrics.val_perplexity"),
        "best_val_loss": column("metrics.best_val_loss"),
        # The figures of the weights model.pt holds (the ones the app loads): their held-out
        # perplexity and step (the lowest validation loss; the seed recipe's last step).
        "best_val_perplexity": column("metrics.best_val_perplexity"),
        "best_step": column("metrics.best_step"),
        "extractable_memorization": column("metrics.extractable_memorization"),
        "sample_copied_4gram_fraction": column("metrics.sample_copied_4gram_fraction"),
        "sample_longest_copied_span": column("metrics.sample_longest_copied_span"),
        # A run that is still going (or was killed with SIGKILL) has no end time yet.
        "duration_s": (pd.to_datetime(column("end_time", pd.NaT), utc=True)
                       - pd.to_datetime(runs["start_time"], utc=True)).dt.total_seconds(),
        "status": _shown_status(runs),  # RUNNING, or INTERRUPTED when its process is gone
        "start_time": runs["start_time"],
        "owner": column(f"tags.{OWNER_TAG}", "").fillna(""),
        # A run that only feeds a chart (the demo canary grid) kept no model to load.
        "chart_only": column(f"tags.{CHART_ONLY_TAG}", "").fillna("") == "true",
    })
    return table.reset_index(drop=True)


def metric_history(run_id: str, keys=("train_loss", "val_loss")) -> pd.DataFrame:
    """Long-format metric history: columns step, value, metric (one row per metric and step).

    A value logged twice at one step (the final figures are logged again, linked to the run's
    MLflow model) is one point of the curve: the first logged (earliest timestamp) is kept.
    """
    open_store()
    client = MlflowClient()
    rows = [{"step": m.step, "value": m.value, "metric": key, "timestamp": m.timestamp}
            for key in keys for m in client.get_metric_history(run_id, key)]
    history = pd.DataFrame(rows, columns=["step", "value", "metric", "timestamp"])
    history = history.sort_values(["metric", "step", "timestamp"], kind="stable")
    return history.drop_duplicates(["metric", "step"])[["step", "value", "metric"]]


CHART_ONLY_TAG = "chart_only"  # "true" on demo runs whose model was dropped (they feed a chart)
SAMPLES_FILE = "samples.json"  # each evaluation's greedy sample (mlflow.log_table's format)
MAX_SAMPLES_BYTES = 5_000_000  # a damaged or hostile artifact is not read whole


def run_samples(run_id: str) -> list[tuple[int, str]]:
    """The greedy samples a run logged while it trained, as (step, text), oldest first; empty
    for a run that logged none (or whose file cannot be read)."""
    open_store()
    try:
        path = artifact_path(run_id, SAMPLES_FILE)
        if path.stat().st_size > MAX_SAMPLES_BYTES:
            return []
        table = json.loads(path.read_text(encoding="utf-8"))
        column = {name: i for i, name in enumerate(table["columns"])}
        rows = [(int(row[column["step"]]), str(row[column["sample"]])) for row in table["data"]]
    except Exception:  # missing, unreadable or malformed (MLflow's own errors included)
        return []
    return sorted(rows)


# ----------------------------------------------------------------------------------------------
# References: what a user may type or pick for a run


def _run_of_model_uri(uri: str) -> str:
    """The run that logged the model a ``models:/`` URI names."""
    client = MlflowClient()
    target = uri.removeprefix("models:/").strip("/")
    try:
        if target.startswith("m-"):
            return client.get_logged_model(target).source_run_id
        if "@" in target:
            name, alias = target.split("@", 1)
            return client.get_model_version_by_alias(name, alias).run_id
        name, _, version = target.rpartition("/")
        if name and version.isdigit():
            return client.get_model_version(name, version).run_id
    except mlflow.exceptions.MlflowException:
        known = ", ".join(label for label, _ in registered_models()) or "none"
        raise ValueError(f"There is no model {uri} in the store {tracking_uri()} "
                         f"(registered: {known})") from None
    raise ValueError(f"{uri} is not a model URI this project reads: use models:/NAME@ALIAS, "
                     f"models:/NAME/VERSION or models:/m-ID")


def resolve_run_id(reference: str, owner: str | None = None) -> str:
    """The run id behind anything a user may type or pick.

    Accepts a full run id, a unique prefix of one, a unique run name, ``models:/NAME@ALIAS``,
    ``models:/NAME/VERSION``, ``models:/m-ID`` or a bare ``NAME@ALIAS``. An ambiguous prefix or
    name lists the candidates; an unknown one says so. Both in one line.
    ``owner`` (the app's callers): only public runs and this owner's private ones exist, so
    another page's private run is unknown, never a candidate, never confirmed.
    """
    reference = str(reference or "").strip()
    if not reference:
        raise ValueError("No run or model given: pass a run id, run name or models:/NAME@ALIAS")
    experiment_id = open_store()
    if reference.startswith("models:/"):
        return _run_of_model_uri(reference)
    if "@" in reference:
        return _run_of_model_uri(f"models:/{reference}")
    runs = mlflow.search_runs(experiment_ids=[experiment_id])
    if owner is not None and f"tags.{OWNER_TAG}" in runs:
        runs = runs[runs[f"tags.{OWNER_TAG}"].fillna("").isin(["", owner])]
    if runs.empty:
        raise ValueError(f"There is no run {reference!r}: the store {tracking_uri()} has no runs")
    names = runs.get("tags.mlflow.runName", pd.Series([""] * len(runs), index=runs.index))
    exact = runs[runs["run_id"] == reference]
    matches = exact if not exact.empty else runs[runs["run_id"].str.startswith(reference)
                                                 | (names == reference)]
    if len(matches) == 1:
        return matches["run_id"].iloc[0]
    if matches.empty:
        raise ValueError(f"There is no run with id {reference!r} (nor one whose id starts with "
                         f"it or whose name it is) in the store {tracking_uri()}")
    candidates = ", ".join(f"{rid[:8]} ({names[i]})" for i, rid in matches["run_id"].items())
    raise ValueError(f"{reference!r} matches {len(matches)} runs: {candidates}; "
                     f"give more of the id")


def registered_models() -> list[tuple[str, str]]:
    """Every alias of every registered model, for a picker: (``name@alias``, its models:/ URI)."""
    open_store()
    choices = []
    for model in MlflowClient().search_registered_models(order_by=["name ASC"]):
        for alias in sorted(model.aliases):
            choices.append((f"{model.name}@{alias}", f"models:/{model.name}@{alias}"))
    return choices


# ----------------------------------------------------------------------------------------------
# Deleting runs


def delete_run(run_id: str) -> None:
    """Delete a run (full id) with its files and the MLflow models it logged, and theirs.

    Refused (ValueError) for a run whose model is registered: its ``models:/NAME@ALIAS`` would
    stop working.
    """
    open_store()
    client = MlflowClient()
    try:
        run = client.get_run(run_id)
    except mlflow.exceptions.MlflowException:
        raise ValueError(f"There is no run with id {run_id!r} in the store {tracking_uri()}") from None
    versions = _registered_runs().get(run_id)
    if versions:
        raise ValueError(f"Run {run_id} is registered as {', '.join(versions)}: "
                         "delete those model versions first")
    models = mlflow.search_logged_models(
        experiment_ids=[run.info.experiment_id], filter_string=f"source_run_id = '{run_id}'",
        output_format="list")
    folder = local_artifact_dir(run_id)
    client.delete_run(run_id)
    _remove_folder(folder, run_id)
    for model in models:
        client.delete_logged_model(model.model_id)
        _remove_folder(local_path(model.artifact_location), model.model_id)
    load_run.cache_clear()


def _registered_runs() -> dict[str, list[str]]:
    """Run id -> its registered model versions (``name/version``); empty in a store that
    cannot register models."""
    try:
        versions = MlflowClient().search_model_versions()
    except mlflow.exceptions.MlflowException:
        return {}
    found: dict[str, list[str]] = {}
    for version in versions:
        found.setdefault(version.run_id, []).append(f"{version.name}/{version.version}")
    return found


def _remove_folder(folder: Path | None, owner: str) -> None:
    """Remove a local artifact folder: its parent when that is the owner's own folder
    (``<run_id>/artifacts``, ``models/<model_id>/artifacts``), else the folder itself."""
    if folder is None:  # on a tracking server: its files are the server's to delete
        return
    if folder.name == "artifacts" and folder.parent.name == owner:
        folder = folder.parent
    shutil.rmtree(folder, ignore_errors=True)


def prune_runs(tag: str, value: str, keep: int) -> list[str]:
    """Delete the runs tagged ``tag=value`` past the newest ``keep``; returns the deleted ids.

    Only runs no longer training count (a RUNNING run whose process is gone is interrupted,
    so it counts), and registered runs are never deleted. Untagged runs are never touched.
    """
    experiment_id = open_store()
    runs = mlflow.search_runs(experiment_ids=[experiment_id], order_by=["start_time DESC"],
                              filter_string=f"tags.`{tag}` = '{value}'")
    if runs.empty:
        return []
    registered = _registered_runs()
    done = [run_id for run_id in runs.loc[_shown_status(runs) != "RUNNING", "run_id"]
            if run_id not in registered]
    for run_id in done[keep:]:
        delete_run(run_id)
    return done[keep:]
