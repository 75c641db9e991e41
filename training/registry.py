"""The run registry: the one module that knows where MLflow keeps runs and how to load them.

The committed demo store is ``mlruns/`` (``mlflow.db``, SQLite, with each run's files in
``artifacts/<run_id>/artifacts/`` and each logged model's in ``artifacts/models/<model_id>/``).
It is only ever read: on first use ``open_store()`` copies it to ``.mlruns-local/`` (ignored by
git), and every run, model and registry change goes there, so a clone stays clean. MLflow
records artifact locations as absolute paths; the committed store records them relative
(``artifacts/...``) and the copy's are rewritten to wherever the copy is (again when the folder
moves), so every run and model loads at any path.

``MLFLOW_TRACKING_URI`` overrides the project store (another SQLite file, or a tracking server).
"""

from __future__ import annotations

import hashlib
import math
import os
import shutil
import socket
import sqlite3
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from urllib.parse import unquote, urlparse

import pandas as pd
import torch

from lstm_core.model import LSTMLanguageModel, ModelConfig
from lstm_core.text import tokenize
from lstm_core.vocab import Vocabulary
from training.config import PROJECT_ROOT, TrainConfig

os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
# MLflow retries an unreachable tracking server 7 times with growing waits (about 4 minutes);
# 2 quick retries with a 5 s timeout give up within about 15 s. Set these to wait longer.
HTTP_RETRY_SETTINGS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
                       "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
                       "MLFLOW_HTTP_REQUEST_TIMEOUT": "5"}
for _name, _value in HTTP_RETRY_SETTINGS.items():
    os.environ.setdefault(_name, _value)
import mlflow  # noqa: E402  (after the environment settings above, which it reads on import)
from mlflow.tracking import MlflowClient  # noqa: E402

EXPERIMENT = "lstm-language-model"
# Makes `mlflow ui` open the experiment in its model-training view, not the GenAI one.
EXPERIMENT_TAGS = {"mlflow.experimentKind": "custom_model_development"}
COMMITTED_STORE = PROJECT_ROOT / "mlruns"  # tracked by git, only ever read
WORKING_STORE = PROJECT_ROOT / ".mlruns-local"  # git-ignored copy that runs are written into
PROJECT_STORE = WORKING_STORE / "mlflow.db"
MODEL_FILE = "model.pt"  # best-validation weights: what the app and the sampling CLI load
LAST_FILE = "last.pt"  # the latest step with optimizer state: what --resume continues from
SOURCE_FILE = "source.txt"  # the exact training text, to measure memorization against
RUN_COLUMNS = ["run_id", "name", "recipe", "cell", "backend", "corpus", "steps", "train_loss", "val_loss",
               "val_perplexity", "best_val_loss", "extractable_memorization", "sample_copied_4gram_fraction",
               "sample_longest_copied_span", "duration_s", "status", "start_time"]


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{PROJECT_STORE}"


def _sqlite_path(uri: str) -> Path | None:
    """The database file of a sqlite:/// URI, or None for other stores."""
    return Path(uri.removeprefix("sqlite:///")) if uri.startswith("sqlite:///") else None


def _artifact_root(uri: str) -> str | None:
    """Where a SQLite store keeps artifacts: an ``artifacts`` folder beside the database."""
    db = _sqlite_path(uri)
    return (db.resolve().parent / "artifacts").as_uri() if db else None


# Where MLflow's tables record artifact locations. Rewriting them is the one place this
# project writes into MLflow's own tables, so it runs only on schemas it has been checked
# against (alembic revisions below) and stops with a clear error on any other.
LOCATION_COLUMNS = [("experiments", "artifact_location"), ("runs", "artifact_uri"),
                    ("logged_models", "artifact_location"), ("model_versions", "storage_location"),
                    ("model_versions", "source")]
KNOWN_SCHEMAS = {"dc11669786a5"}  # MLflow 3.17.2's schema


def _check_schema(conn: sqlite3.Connection, db: Path) -> None:
    (revision,) = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    if revision not in KNOWN_SCHEMAS:
        raise StoreError(f"The MLflow store {db} has schema revision {revision}, which "
                         f"training/registry.py does not know (it knows {sorted(KNOWN_SCHEMAS)}): "
                         f"check LOCATION_COLUMNS against it, then add it to KNOWN_SCHEMAS")
    for table, column in LOCATION_COLUMNS:
        columns = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
        if column not in columns:
            raise StoreError(f"The MLflow store {db} has no column {table}.{column}")


def _relocate(db: Path, root: str) -> None:
    """Point the recorded artifact locations of a copied or moved store at its current folder."""
    if not db.exists():
        return
    with sqlite3.connect(db) as conn:
        row = conn.execute("SELECT artifact_location FROM experiments WHERE name = ?",
                           (EXPERIMENT,)).fetchone()
        if row is None or row[0] == root:
            return
        _check_schema(conn, db)
        old = row[0]
        for table, column in LOCATION_COLUMNS:
            conn.execute(f"UPDATE {table} SET {column} = ? || substr({column}, ?) "
                         f"WHERE substr({column}, 1, ?) = ?", (root, len(old) + 1, len(old), old))


COPIED_FROM = "copied-from.sha256"  # in the working store: the committed mlflow.db it copies
_CHECKED_COMMITTED: tuple | None = None  # (size, mtime) of the committed DB last checked


def _ensure_working_copy() -> None:
    """Copy the committed store to the git-ignored working store, and again when it is stale.

    The copy records the sha256 of the committed ``mlflow.db`` it was made from. When a pull
    brings a newer committed store, the old copy is moved aside (never deleted: it may hold
    the user's own runs) and a fresh one is made. Checked once per change of the committed file.
    """
    global _CHECKED_COMMITTED
    committed = COMMITTED_STORE / "mlflow.db"
    if not committed.exists():
        return
    stat = committed.stat()
    if (WORKING_STORE / "mlflow.db").exists() and _CHECKED_COMMITTED == (stat.st_size, stat.st_mtime):
        return
    digest = hashlib.sha256(committed.read_bytes()).hexdigest()
    if (WORKING_STORE / "mlflow.db").exists():
        recorded = WORKING_STORE / COPIED_FROM
        if recorded.exists() and recorded.read_text(encoding="utf-8").strip() == digest:
            _CHECKED_COMMITTED = (stat.st_size, stat.st_mtime)
            return
        _move_aside_stale_copy()
    _copy_committed_store(digest)
    _CHECKED_COMMITTED = (stat.st_size, stat.st_mtime)


def _move_aside_stale_copy() -> None:
    aside = WORKING_STORE.with_name(f"{WORKING_STORE.name}.stale-{time.strftime('%Y%m%d-%H%M%S')}")
    try:
        WORKING_STORE.rename(aside)
    except FileNotFoundError:  # another process moved it first
        return
    print(f"The committed store {COMMITTED_STORE.name}/ is newer than the working copy: moved the "
          f"old copy (with any runs trained in it) to {aside.name}/ and made a fresh one")


def _copy_committed_store(digest: str) -> None:
    partial = WORKING_STORE.with_name(f"{WORKING_STORE.name}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    shutil.copytree(COMMITTED_STORE, partial)
    (partial / COPIED_FROM).write_text(digest + "\n", encoding="utf-8")
    try:
        partial.rename(WORKING_STORE)  # atomic: another process never sees half a copy
    except OSError:  # another process made it first (or an empty folder is in the way)
        shutil.rmtree(partial, ignore_errors=True)
        if not (WORKING_STORE / "mlflow.db").exists():
            raise


class StoreError(ValueError):
    """The tracking store cannot be used (locked, read-only, unreachable, not a store)."""


def open_store() -> str:
    """Point MLflow at the store and make sure the experiment exists; returns its id."""
    uri = tracking_uri()
    root = _artifact_root(uri)
    try:
        if uri == f"sqlite:///{PROJECT_STORE}":
            _ensure_working_copy()
        if root is not None:
            _sqlite_path(uri).parent.mkdir(parents=True, exist_ok=True)
            _relocate(_sqlite_path(uri), root)
        mlflow.set_tracking_uri(uri)
        experiment = mlflow.get_experiment_by_name(EXPERIMENT)
        if experiment is None:
            return mlflow.create_experiment(EXPERIMENT, artifact_location=root, tags=EXPERIMENT_TAGS)
        return experiment.experiment_id
    except (OSError, sqlite3.Error, mlflow.exceptions.MlflowException) as err:
        # A locked or read-only SQLite file, a folder we may not write, a server that is down:
        # say which store and why, in one line, instead of a page of SQLAlchemy traceback.
        reason = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
        if not uri.startswith(("sqlite:", "file:", "/")) and "://" in uri:
            reason += (f" (gave up after {os.environ['MLFLOW_HTTP_REQUEST_MAX_RETRIES']} retries of "
                       f"{os.environ['MLFLOW_HTTP_REQUEST_TIMEOUT']} s; raise "
                       "MLFLOW_HTTP_REQUEST_MAX_RETRIES / MLFLOW_HTTP_REQUEST_TIMEOUT to wait longer)")
        raise StoreError(f"The MLflow store {uri} cannot be used: {reason}") from None


# ----------------------------------------------------------------------------------------------
# Artifacts


def local_artifact_dir(run_id: str) -> Path | None:
    """The run's artifact folder when it is on this machine's disk, else None."""
    uri = MlflowClient().get_run(run_id).info.artifact_uri
    parsed = urlparse(uri)
    if parsed.scheme in ("", "file"):
        return Path(unquote(parsed.path))
    return None


def save_artifact_file(run_id: str, name: str, write) -> None:
    """Write an artifact atomically: ``write(path)`` fills a temporary file that is then renamed.

    A process killed mid-write leaves the previous version intact, never half a file.
    """
    folder = local_artifact_dir(run_id)
    if folder is None:  # a remote store: write locally, then upload through MLflow
        with tempfile.TemporaryDirectory() as tmp:
            write(Path(tmp) / name)
            mlflow.log_artifact(str(Path(tmp) / name), run_id=run_id)
        return
    partial = folder / f".{name}.partial"  # same folder, so the rename below is atomic
    try:
        folder.mkdir(parents=True, exist_ok=True)
        write(partial)
        os.replace(partial, folder / name)
    except OSError as err:  # a full disk, a quota, a folder turned read-only
        partial.unlink(missing_ok=True)
        reason = os.strerror(err.errno) if err.errno else one_line(err)
        raise StoreError(f"Could not write {name} of run {run_id}: {reason}") from None


def artifact_path(run_id: str, name: str) -> Path:
    """A local path to one of a run's artifacts (downloaded first from a remote store)."""
    folder = local_artifact_dir(run_id)
    if folder is None:
        return Path(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=name))
    return folder / name


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


def one_line(err: BaseException, limit: int = 200) -> str:
    """An exception's message squeezed onto one line (load_state_dict's span several)."""
    text = " ".join(str(err).split()) or type(err).__name__
    return text if len(text) <= limit else text[:limit - 1] + "…"


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


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


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
                     dict(run.data.metrics))


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
    if runs.empty:
        return pd.DataFrame(columns=RUN_COLUMNS)

    def column(name, default=math.nan):
        return runs[name] if name in runs else pd.Series([default] * len(runs), index=runs.index)

    table = pd.DataFrame({
        "run_id": runs["run_id"],
        "name": column("tags.mlflow.runName", ""),
        "recipe": column("params.recipe", ""),
        "cell": column("params.cell", "lstm").fillna("lstm"),  # runs from before #14: LSTMs
        "backend": column("params.backend", ""),
        "corpus": column("tags.corpus_name", ""),
        "steps": column("metrics.step", math.nan),
        "train_loss": column("metrics.train_loss"),
        "val_loss": column("metrics.val_loss"),
        "val_perplexity": column("metrics.val_perplexity"),
        "best_val_loss": column("metrics.best_val_loss"),
        "extractable_memorization": column("metrics.extractable_memorization"),
        "sample_copied_4gram_fraction": column("metrics.sample_copied_4gram_fraction"),
        "sample_longest_copied_span": column("metrics.sample_longest_copied_span"),
        # A run that is still going (or was killed with SIGKILL) has no end time yet.
        "duration_s": (pd.to_datetime(column("end_time", pd.NaT), utc=True)
                       - pd.to_datetime(runs["start_time"], utc=True)).dt.total_seconds(),
        "status": _shown_status(runs),  # RUNNING, or INTERRUPTED when its process is gone
        "start_time": runs["start_time"],
    })
    return table.reset_index(drop=True)


def metric_history(run_id: str, keys=("train_loss", "val_loss")) -> pd.DataFrame:
    """Long-format metric history: columns step, value, metric (one row per metric and step).

    A value logged twice at one step (the final figures are logged again, linked to the run's
    MLflow model) is one point of the curve: the first logged is kept.
    """
    open_store()
    client = MlflowClient()
    rows = [{"step": m.step, "value": m.value, "metric": key}
            for key in keys for m in client.get_metric_history(run_id, key)]
    history = pd.DataFrame(rows, columns=["step", "value", "metric"])
    return history.drop_duplicates(["metric", "step"]).sort_values(["metric", "step"])


def project_relative(path: str | Path) -> str:
    """A path inside the project as relative to it (``corpus/x.txt``); others unchanged."""
    try:
        return Path(path).resolve().relative_to(PROJECT_ROOT).as_posix()
    except ValueError:
        return str(path)


# ----------------------------------------------------------------------------------------------
# MLflow models: logging, resolving references, the registry

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
    """The id (``m-...``) of the MLflow model a run logged; a clear error when it has none."""
    models = mlflow.search_logged_models(
        experiment_ids=[get_run(run_id).info.experiment_id],
        filter_string=f"source_run_id = '{run_id}'", output_format="list",
        order_by=[{"field_name": "creation_timestamp", "ascending": False}])  # the newest
    if not models:
        raise ValueError(f"Run {run_id} has no logged MLflow model (it was trained before "
                         f"runs logged one); retrain it to register it")
    return models[0].model_id


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


def resolve_run_id(reference: str) -> str:
    """The run id behind anything a user may type or pick.

    Accepts a full run id, a unique prefix of one, a unique run name, ``models:/NAME@ALIAS``,
    ``models:/NAME/VERSION``, ``models:/m-ID`` or a bare ``NAME@ALIAS``. An ambiguous prefix or
    name lists the candidates; an unknown one says so. Both in one line.
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


def register_run_model(reference: str, name: str, alias: str | None = None) -> str:
    """Register the model a run logged under ``name`` (and ``alias``); returns the version."""
    run_id = resolve_run_id(reference)
    model_id = run_model_id(run_id)
    version = mlflow.register_model(f"models:/{model_id}", name).version
    if alias:
        MlflowClient().set_registered_model_alias(name, alias, version)
    return str(version)
