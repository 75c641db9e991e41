"""Picking a run: the choices at the top of the page, the runs table, and loading what a caller
named (a run id, a unique id prefix, a unique run name or a registered model)."""

from __future__ import annotations

import bisect
import hashlib
import re

import gradio as gr
import pandas as pd

from training import runs
from training.runs import LoadedRun
from training.store import public, tracking_uri
from ui import limits

FULL_RUN_ID = re.compile(r"[0-9a-f]{32}")  # MLflow's run ids: the picker's own values
EMPTY_STORE = ("**No runs are logged yet.** Train one in the **Train** tab (the default corpus "
               "takes a minute or two); it is selected here when done.")


def run_choices(table: pd.DataFrame) -> list[tuple[str, str]]:
    """(label, run_id) for every usable run (runs still training are left out).

    A run that was stopped (KILLED) or whose process died (INTERRUPTED) is listed with its
    status: its last checkpoint is still there to use.
    """
    usable = (table["status"] != "RUNNING") & ~chart_only(table)
    rows = table[usable].fillna({"name": "(unnamed)", "recipe": "?"})
    return [(f"{r.name or '(unnamed)'} · {r.recipe or '?'} · {r.cell or 'lstm'}"
             + (f" · {kept_label(r.recipe, r.best_val_perplexity, r.best_step)}"
                if pd.notna(r.best_val_perplexity) else "")
             + (f" · {str(r.status).lower()}" if r.status != "FINISHED" else "")
             + f" · {r.run_id[:8]}", r.run_id) for r in rows.itertuples()]


def kept_label(recipe: str, perplexity: float, step: float) -> str:
    """The held-out figure of the weights a run keeps (the ones loaded), named as such:
    the lowest validation loss, or the seed recipe's final weights. <unk> counts as one word."""
    which = "final" if recipe == "seed" else "best"
    return f"{which}: perplexity {perplexity:.1f} at step {int(step)}"


def chart_only(table: pd.DataFrame) -> pd.Series:
    """Which runs only feed a chart (they kept no model to load)."""
    if "chart_only" not in table:
        return pd.Series(False, index=table.index)
    return table["chart_only"].fillna(False).astype(bool)


def default_run(table: pd.DataFrame) -> str | None:
    """The newest run named "demo-…", else the newest run, else None."""
    table = table[~chart_only(table)]  # nothing to load in a chart's run
    if table.empty:
        return None
    demo = table[table["name"].fillna("").astype(str).str.startswith("demo-")]
    return str((demo if not demo.empty else table)["run_id"].iloc[0])


def runs_table(table: pd.DataFrame) -> pd.DataFrame:
    """The runs as people compare them: rounded figures, short ids."""
    shown = table[["name", "recipe", "corpus", "steps", "best_step", "best_val_perplexity",
                   "extractable_memorization", "sample_copied_4gram_fraction", "status"]].copy()
    shown.insert(0, "run", table["run_id"].str[:8])
    shown["steps"] = shown["steps"].astype("Int64")
    shown["best_step"] = shown["best_step"].astype("Int64")
    shown["started"] = table["start_time"].astype(str).str[:16]
    # Every figure is of the weights the run keeps (the ones the app loads).
    return shown.round(3).rename(columns={
        "best_step": "loaded step", "best_val_perplexity": "held-out perplexity (<unk> one word)",
        "extractable_memorization": "extractable", "sample_copied_4gram_fraction": "copied 4-grams"})


def viewer(request: gr.Request | None) -> str:
    """Who is asking, as the owner tag of the runs they train on an upload: a digest of the
    page's session, "" for a caller without one (such a caller sees only public runs)."""
    session = getattr(request, "session_hash", None)
    return hashlib.sha256(session.encode()).hexdigest()[:16] if session else ""


def list_runs(request: gr.Request | None = None) -> pd.DataFrame:
    """The runs this caller may see: the public ones and their own private ones."""
    try:
        table = runs.list_runs()
    except Exception as err:  # MLflow raises several types for an unreachable store
        raise limits.refusal(public(f"Cannot read the run store {tracking_uri()}: {err}")) from None
    return table[table["owner"].isin(["", viewer(request)])].reset_index(drop=True)


def refresh_runs(selected: str | None = None, request: gr.Request = None):
    """Re-read the store: (run selector, runs table, compare selector, empty-store notice).

    The selector lists registered models (``name@alias``) first, then every usable run.
    """
    table = list_runs(request)
    choices = run_choices(table)
    ids = [run_id for _, run_id in choices]
    try:
        registered = runs.registered_models() if ids else []
    except Exception:  # a store without a model registry still lists its runs
        registered = []
    values = ids + [uri for _, uri in registered]
    value = selected if selected in values else default_run(table[table["run_id"].isin(ids)])
    return (gr.Dropdown(choices=registered + choices, value=value), runs_table(table),
            gr.Dropdown(choices=choices, value=ids[:2], multiselect=True),
            gr.Markdown(EMPTY_STORE if not ids else "", visible=not ids))


def resolve(reference, request: gr.Request | None = None) -> str:
    """The full run id behind a picker value or an API input, or one clear line. Another
    page's private runs do not exist for this caller: never matched, listed or confirmed."""
    reference = limits.reference(reference)
    if FULL_RUN_ID.fullmatch(reference):
        return reference  # the picker's own values: no look-up (load says if it is unknown)
    try:
        return runs.resolve_run_id(reference, owner=viewer(request))
    except ValueError as err:  # unknown, ambiguous (candidates listed), or not a model URI
        raise limits.refusal(public(str(err))) from None


def unknown_run(reference) -> gr.Error:
    """The refusal for a run that does not exist, word for word training.runs.resolve_run_id's,
    and so for another page's private run too."""
    return limits.refusal(public(
        f"There is no run with id {limits.shown(reference)} (nor one whose id starts with it "
        f"or whose name it is) in the store {tracking_uri()}"))


def _check_owner(owner: str, reference, request: gr.Request | None) -> None:
    """Another page's private run reads exactly as a run that does not exist."""
    if owner and owner != viewer(request):
        raise unknown_run(reference)


def load(reference, request: gr.Request | None = None) -> LoadedRun:
    """The run's model, vocabulary and source text (cached in training.runs), if this caller
    may see the run."""
    run_id = resolve(reference, request)
    try:
        loaded = runs.load_run(run_id)
    except ValueError as err:
        raise limits.refusal(public(str(err))) from None
    _check_owner(loaded.owner, reference, request)
    return loaded


def get_run(reference, request: gr.Request | None = None):
    """The MLflow run behind a reference (its params, metrics and tags), if this caller may see it."""
    run_id = resolve(reference, request)  # refuses an unknown or another page's reference
    try:
        run = runs.get_run(run_id)
    except ValueError as err:  # unknown: the same line as for another page's private run
        raise limits.refusal(public(str(err))) from None
    except Exception as err:  # MLflow errors for malformed ids
        raise limits.refusal(public(f"Cannot read run {limits.shown(reference)}: {err}")) from None
    _check_owner(run.data.tags.get(runs.OWNER_TAG, ""), reference, request)
    return run


def history(run_id: str, keys=("train_loss", "val_loss")) -> pd.DataFrame:
    try:
        return runs.metric_history(run_id, keys)
    except Exception as err:  # MLflow errors for unknown or malformed ids
        raise limits.refusal(public(f"Cannot read the metrics of run {run_id[:8]}: {err}")) from None


def position(loaded: LoadedRun, offset: int) -> str:
    """A source token offset as "paragraph P, word W" (both counted from 1)."""
    starts = loaded.paragraph_starts
    p = bisect.bisect_right(starts, offset)
    return f"paragraph {p}, word {offset - starts[p - 1] + 1}"
