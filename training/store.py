"""Where runs are kept: the MLflow store, its working copy, and the files of each run.

The committed demo store is ``mlruns/`` (``mlflow.db``, SQLite, with each run's files in
``artifacts/<run_id>/artifacts/`` and each logged model's in ``artifacts/models/<model_id>/``).
It is only ever read: on first use ``open_store()`` copies it to ``.mlruns-local/`` (ignored by
git), and every run, model and registered model goes there, so a clone stays clean. MLflow
records artifact locations as absolute paths; the committed store records them relative
(``artifacts/...``) and the copy's are rewritten to wherever the copy is (again when the folder
moves), so every run and model loads at any path.

``MLFLOW_TRACKING_URI`` overrides the project store (another SQLite file, or a tracking server).
Importing this module sets MLflow's environment (below) before MLflow itself is imported.
"""

from __future__ import annotations

import contextlib
import errno
import gc
import hashlib
import html
import logging
import os
import shutil
import sqlite3
import tempfile
import time
from pathlib import Path
from urllib.parse import unquote, urlparse

from training.config import PROJECT_ROOT

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


class _RaisedAnyway(logging.Filter):
    """MLflow's SQL store logs a database error (read-only, full, locked) with its whole
    traceback, then raises it; the raise is what this project reports, in one line."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("SQLAlchemy database error")


logging.getLogger("mlflow.store.db.utils").addFilter(_RaisedAnyway())

EXPERIMENT = "lstm-language-model"
# Makes `mlflow ui` open the experiment in its model-training view, not the GenAI one.
EXPERIMENT_TAGS = {"mlflow.experimentKind": "custom_model_development"}
COMMITTED_STORE = PROJECT_ROOT / "mlruns"  # tracked by git, only ever read
WORKING_STORE = PROJECT_ROOT / ".mlruns-local"  # git-ignored copy that runs are written into
PROJECT_STORE = WORKING_STORE / "mlflow.db"


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{PROJECT_STORE}"


def store_name() -> str:
    """The store as remote callers may see it: a SQLite file's folder and name, never its
    full path; for a server, where it is set."""
    uri = tracking_uri()
    if uri.startswith("sqlite:///"):
        path = Path(uri.removeprefix("sqlite:///"))
        return f"{path.parent.name}/{path.name}"
    return "the tracking server set in MLFLOW_TRACKING_URI"


def public(message: str) -> str:
    """A message fit for a remote caller's error toast, which renders HTML: the store's name
    instead of its path, and whatever it echoes (run ids, words, file names) escaped."""
    uri = tracking_uri()
    message = message.replace(uri, store_name())
    db = _sqlite_path(uri)
    if db is not None:
        # The file and its folder as messages may spell them: as given, made absolute, or with
        # symlinks resolved (the integrity check and artifact paths resolve them).
        for path, shown in ((db, store_name()), (db.parent, "the store")):
            forms = {str(path.absolute()), str(path.resolve())}
            for form in sorted(forms - {"/"}, key=len, reverse=True):
                message = message.replace(form, shown)
    return html.escape(message, quote=False)


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
                         f"training/store.py does not know (it knows {sorted(KNOWN_SCHEMAS)}): "
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
    """The tracking store cannot be used (locked, read-only, full, damaged, unreachable)."""


# The errors that mean the store itself failed, not the caller: a read-only, full, locked or
# damaged database, a disk or quota that is full, a tracking server that does not answer.
STORE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO}


def store_reason(err: BaseException) -> str | None:
    """Why the store failed, in one line, when ``err`` (or what caused it) is a failure of the
    store itself; None for any other error (a bug, a bad argument)."""
    import requests  # MLflow's own HTTP client
    import sqlalchemy.exc  # MLflow's SQL stores

    seen = err
    while seen is not None:
        if isinstance(seen, sqlalchemy.exc.SQLAlchemyError):  # .orig: the driver's own error
            return one_line(getattr(seen, "orig", None) or seen)
        if isinstance(seen, sqlite3.Error) or isinstance(seen, (requests.ConnectionError,
                                                               requests.Timeout)):
            return one_line(seen)
        if isinstance(seen, OSError) and seen.errno in STORE_ERRNOS:
            return os.strerror(seen.errno)
        seen = seen.__cause__ or seen.__context__
    return None


def store_error(err: BaseException, doing: str) -> StoreError | None:
    """A one-line StoreError ("The MLflow store X cannot <doing>: <why>") when ``err`` is a
    failure of the store itself (``store_reason``), else None."""
    if isinstance(err, StoreError):
        return err
    reason = store_reason(err)
    return None if reason is None else StoreError(
        f"The MLflow store {tracking_uri()} cannot {doing}: {reason}")


@contextlib.contextmanager
def writing(doing: str):
    """Turn a failure of the store while ``doing`` (e.g. "register a model") into one line."""
    try:
        yield
    except Exception as err:
        failure = store_error(err, doing)
        if failure is None:
            raise
        raise failure from None


def end_active_run(status: str = "FINISHED") -> str:
    """End the active MLflow run with ``status``: "" when done, else why the store refused
    (one line). MLflow forgets the active run even when the store refuses."""
    try:
        mlflow.end_run(status=status)
    except Exception as err:
        reason = store_reason(err)
        if reason is None:
            raise
        return reason
    return ""


_CHECKED_FILES: set[Path] = set()  # SQLite stores that passed PRAGMA quick_check in this process


def check_integrity(db: Path) -> None:
    """Refuse a damaged SQLite store: ``PRAGMA quick_check``, once per file per process.

    A database with a page overwritten still opens and answers some queries, then fails on
    others: MLflow would train into it and tracebacks would follow. Opened read-only here, so
    a missing file is not created and nothing is ever changed.
    """
    db = db.resolve()
    if db in _CHECKED_FILES or not db.is_file():
        return
    try:
        with contextlib.closing(sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True,
                                                timeout=10)) as conn:
            problems = [row[0] for row in conn.execute("PRAGMA quick_check")]
    except sqlite3.OperationalError as err:
        if "locked" in str(err):  # busy, not damaged: check again next time
            return
        problems = [one_line(err)]
    except sqlite3.DatabaseError as err:  # "file is not a database", "disk image is malformed"
        problems = [one_line(err)]
    if problems != ["ok"]:
        raise StoreError(
            f"The MLflow store {db} is damaged (SQLite's quick_check: {one_line(problems[0], 120)}): "
            f"restore it from a backup, or move it aside (or delete it) to start with an empty "
            f"store; this program does not change it")
    _CHECKED_FILES.add(db)


def open_store() -> str:
    """Point MLflow at the store and make sure the experiment exists; returns its id."""
    uri = tracking_uri()
    root = _artifact_root(uri)
    try:
        if uri == f"sqlite:///{PROJECT_STORE}":
            _ensure_working_copy()
        if root is not None:
            _sqlite_path(uri).parent.mkdir(parents=True, exist_ok=True)
            check_integrity(_sqlite_path(uri))
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
# Artifacts and small helpers


def local_artifact_dir(run_id: str) -> Path | None:
    """The run's artifact folder when it is on this machine's disk, else None."""
    return local_path(MlflowClient().get_run(run_id).info.artifact_uri)


def local_path(uri: str) -> Path | None:
    """The folder an artifact URI names when it is on this machine's disk, else None."""
    parsed = urlparse(uri)
    if parsed.scheme in ("", "file"):
        return Path(unquote(parsed.path))
    return None


def save_artifact_file(run_id: str, name: str, write) -> None:
    """Write an artifact atomically: ``write(path)`` fills a temporary file that is then renamed.

    A process killed mid-write leaves the previous version intact, never half a file. A write
    that fails (a full disk, a quota, a folder turned read-only) leaves no partial file behind
    and raises one line (StoreError).
    """
    folder = local_artifact_dir(run_id)
    if folder is None:  # a remote store: write locally, then upload through MLflow
        with tempfile.TemporaryDirectory() as tmp:
            try:
                write(Path(tmp) / name)
            except (OSError, RuntimeError) as err:
                raise StoreError(f"Could not write {name} of run {run_id}: "
                                 f"{_write_failure(err, Path(tmp))}") from None
            mlflow.log_artifact(str(Path(tmp) / name), run_id=run_id)
        return
    partial = folder / f".{name}.partial"  # same folder, so the rename below is atomic
    try:
        folder.mkdir(parents=True, exist_ok=True)
        write(partial)
        os.replace(partial, folder / name)
        return
    # torch.save raises RuntimeError ("unexpected pos ...", "file write failed") where a file
    # write raises OSError.
    except (OSError, RuntimeError) as err:
        failure = f"Could not write {name} of run {run_id}: {_write_failure(err, folder)}"
    # Out of the except block, the error's traceback is gone, and with it torch's writer that
    # held the partial file open: removing it now gives its room back (on a full disk, the
    # room the database needs to record that the run failed).
    gc.collect()
    partial.unlink(missing_ok=True)
    raise StoreError(failure)


FULL_BELOW = 1 << 20  # bytes: a disk with less free is taken for full when a write failed


def _write_failure(err: BaseException, folder: Path) -> str:
    """Why a write into ``folder`` failed, for people: the OS's words, or "No space left on
    device" for torch's own wording of it."""
    if isinstance(err, OSError) and err.errno:
        return os.strerror(err.errno)
    with contextlib.suppress(OSError):
        if shutil.disk_usage(folder).free < FULL_BELOW:
            return f"{os.strerror(errno.ENOSPC)} ({one_line(err, 80)})"
    return one_line(err)


def artifact_path(run_id: str, name: str) -> Path:
    """A local path to one of a run's artifacts (downloaded first from a remote store)."""
    folder = local_artifact_dir(run_id)
    if folder is None:
        return Path(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=name))
    return folder / name


def one_line(err: BaseException, limit: int = 200) -> str:
    """An exception's message squeezed onto one line (load_state_dict's span several)."""
    text = " ".join(str(err).split()) or type(err).__name__
    return text if len(text) <= limit else text[:limit - 1] + "…"


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def project_relative(path: str | Path) -> str:
    """A path inside the project as relative to it (``corpus/x.txt``); others unchanged."""
    try:
        return Path(path).resolve().relative_to(PROJECT_ROOT).as_posix()
    except ValueError:
        return str(path)
