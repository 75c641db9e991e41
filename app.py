"""The Gradio app: pick a logged run, generate text, and see how much of it is recited.

Layout (as in gradio-app/testing-gradio-apps): plain functions first, each raising gr.Error for
bad input, then ``build_demo()``, which assembles the tabs built in ``ui/`` (one module per tab),
then ``main()``. Importing this module loads no
model and opens no store; ``python app.py`` does both (and trains a small default model first
when the store is empty).

    python app.py            # http://127.0.0.1:7860 (GRADIO_SERVER_NAME / _PORT, MLFLOW_TRACKING_URI)
"""

from __future__ import annotations

import bisect
import html
import math
import os
import re
import shlex
import shutil
import signal
import sys
import threading
import time
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
if __name__ == "__main__":  # `python app.py`: the ui/ modules' `import app` must find this module,
    sys.modules.setdefault("app", sys.modules[__name__])  # not load a second copy of it

import gradio as gr  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

from lstm_core.cells import CELLS  # noqa: E402
from lstm_core.generate import SamplingConfig, encode_prompt, stream_ids  # noqa: E402
from lstm_core.memorization import SourceIndex, analyze  # noqa: E402
from lstm_core.model import LSTMLanguageModel, ModelConfig  # noqa: E402
from lstm_core.text import PARAGRAPH, decode_text, detokenize, tokenize  # noqa: E402
from lstm_core.vocab import UNK  # noqa: E402
from training import registry  # noqa: E402
from training.config import DEFAULT_CORPUS, OPTIMIZERS, RECIPES, TrainConfig  # noqa: E402
from training.tracking import format_number  # noqa: E402

MAX_LENGTH = 400  # words one request may generate
MAX_PROMPT_WORDS = 200  # words a prompt may have
CHARS_PER_WORD = 10  # a text may have 10 characters per allowed word, checked before splitting
MIN_SPAN = 4  # shortest verbatim run (in words) that counts as a copied span
# Send the growing text at most this often: each update costs Gradio several ms of server work
# for every output, far more than a word costs the model (bench.load).
STREAM_SECONDS = 0.1
# A text the model will finish within this much work (CPU time; 30 words and their report take
# ~15 ms) goes out once, whole: one event, not two. A longer one sends its first words as soon
# as the pace of its first FIRST_WORDS_MIN words projects it past this (the first word also
# reads the prompt, so it is not timed alone), or once the model has worked this long. The
# work is read every FIRST_WORDS_MIN words, not every word: under bench.load's callers, reading
# this thread's CPU clock (a system call, unlike perf_counter) at every word cost the server
# 3-4 ms more per 30-word call (5 alternated rounds), where the reads themselves take ~0.1 ms.
FIRST_WORDS_SECONDS = 0.02
FIRST_WORDS_MIN = 3
SWEEP_TEMPERATURES = (0.0, 0.5, 0.8, 1.0, 1.3, 1.6)
SWEEP_SEEDS = 3  # samples per temperature above 0 (greedy needs only one)
SWEEP_MAX_LENGTH = 80  # words per sample in the temperature sweep
HEATMAP_MAX_WORDS = 150  # words shown in the gate heatmap
HEATMAP_UNITS = 6  # single cell units shown under the means
MAX_UPLOAD_BYTES = 2_000_000
MAX_STEPS, MAX_HIDDEN = 2000, 256  # the Train tab's steps and hidden size
MIN_APP_VOCAB, MAX_APP_VOCAB = 100, 5000  # the Train tab's vocabulary cap (most frequent words)
MAX_DROP, MAX_AR = 0.8, 10.0  # the Train tab's weight/embedding dropout and AR/TAR ceilings
DEFAULT_APP_VOCAB = 2000
MAX_PARAM_STEPS = 300_000_000  # model parameters x steps one app training may cost
MAX_TRAIN_SECONDS = 600  # an app training is stopped (KILLED, checkpoint kept) after this long
KEEP_APP_RUNS = 10  # app-trained runs kept; older ones are deleted after each training
APP_TAG = "trained_in_app"  # set to "true" on runs the app trained: only those are ever pruned
MAX_RUN_NAME = 80  # characters
SHUTDOWN_WAIT_S = 20  # on shutdown, how long to wait for a training run to end as KILLED
DEFAULT_RUN_NAME = "demo-windows-default"
BUSY = "A training run is already in progress, try again in a minute."
EMPTY_STORE = ("**No runs are logged yet.** Train one in the **Train** tab (the default corpus "
               "takes a minute or two); it is selected here when done.")
SPAN_COLUMNS = ["copied text", "words", "where in the source", "the source there (in context)"]
_TRAIN_LOCK = threading.Lock()  # one training at a time on a shared machine
_GENERATING = [0]  # generations in progress in this process (they pace their first words)
_GENERATING_LOCK = threading.Lock()
# A request's model work runs on one core: two requests run at once (COMPUTE_SLOT) on a 2-CPU
# Space, and splitting one word's small matrix products over both cores cost a 30-word
# generation 9 ms more CPU than it saved (25 against 16 ms). A training run keeps every core.
SERVE_THREADS, TRAIN_THREADS = 1, torch.get_num_threads()
QUEUE_MAX_SIZE = 24  # requests waiting at once; past that a caller is told the queue is full
COMPUTE_SLOT = dict(concurrency_id="compute", concurrency_limit=2)  # generate, sweep, gates, compare
FULL_RUN_ID = re.compile(r"[0-9a-f]{32}")  # MLflow's run ids; anything else is resolved first
LOOP_REPEATED = 0.25  # a text repeating this share of its own 4-grams or more is read as looping
LONG_SPAN = 12  # a copied span this long (words) is recitation, whatever else the text does
MAX_PASSAGES_LISTED = 12  # copied spans named in the "which source passages" line


# ----------------------------------------------------------------------------------------------
# Runs


def run_choices(runs: pd.DataFrame) -> list[tuple[str, str]]:
    """(label, run_id) for every usable run (runs still training are left out).

    A run that was stopped (KILLED) or whose process died (INTERRUPTED) is listed with its
    status: its last checkpoint is still there to use.
    """
    rows = runs[runs["status"] != "RUNNING"].fillna({"name": "(unnamed)", "recipe": "?"})
    return [(f"{r.name or '(unnamed)'} · {r.recipe or '?'} · {getattr(r, 'cell', None) or 'lstm'}"
             + (f" · val loss {r.val_loss:.2f}" if pd.notna(r.val_loss) else "")
             + (f" · {str(r.status).lower()}" if r.status != "FINISHED" else "")
             + f" · {r.run_id[:8]}", r.run_id) for r in rows.itertuples()]


def default_run(runs: pd.DataFrame) -> str | None:
    """The newest run named "demo-…", else the newest run, else None."""
    if runs.empty:
        return None
    demo = runs[runs["name"].fillna("").astype(str).str.startswith("demo-")]
    return str((demo if not demo.empty else runs)["run_id"].iloc[0])


def runs_table(runs: pd.DataFrame) -> pd.DataFrame:
    """The runs as people compare them: rounded figures, short ids."""
    table = runs[["name", "recipe", "corpus", "steps", "val_loss", "val_perplexity",
                  "extractable_memorization", "sample_copied_4gram_fraction", "status"]].copy()
    table.insert(0, "run", runs["run_id"].str[:8])
    table["steps"] = table["steps"].astype("Int64")
    table["started"] = runs["start_time"].astype(str).str[:16]
    return table.round(3).rename(columns={
        "val_loss": "val loss", "val_perplexity": "val perplexity",
        "extractable_memorization": "extractable", "sample_copied_4gram_fraction": "copied 4-grams"})


def list_runs() -> pd.DataFrame:
    try:
        return registry.list_runs()
    except Exception as err:  # MLflow raises several types for an unreachable store
        raise gr.Error(public(f"Cannot read the run store {registry.tracking_uri()}: {err}")) from None


def model_choices() -> list[tuple[str, str]]:
    """(``name@alias``, ``models:/name@alias``) for every registered model's alias."""
    try:
        return registry.registered_models()
    except Exception:  # a store without a model registry still lists its runs
        return []


def refresh_runs(selected: str | None = None):
    """Re-read the store: (run selector, runs table, compare selector, empty-store notice).

    The selector lists registered models (``name@alias``) first, then every usable run.
    """
    runs = list_runs()
    choices = run_choices(runs)
    ids = [run_id for _, run_id in choices]
    models = model_choices() if ids else []
    values = ids + [uri for _, uri in models]
    value = selected if selected in values else default_run(runs[runs["run_id"].isin(ids)])
    return (gr.Dropdown(choices=models + choices, value=value), runs_table(runs),
            gr.Dropdown(choices=choices, value=ids[:2], multiselect=True),
            gr.Markdown(EMPTY_STORE if not ids else "", visible=not ids))


def needs_store_lookup(reference) -> bool:
    """Whether ``resolve`` asks the store who ``reference`` is: for anything but a full run id
    (a prefix, a run name, a registered model). Such requests stay off the paths that must not
    wait on the store (the page's first words, steps on the event loop)."""
    return not FULL_RUN_ID.fullmatch(str(reference))


def resolve(reference: str | None) -> str:
    """The full run id behind a picker value or an API input: a run id, a unique id prefix, a
    unique run name or a model URI (``models:/NAME@ALIAS``). One clear line otherwise."""
    if not reference or not str(reference).strip():
        raise gr.Error("No run selected. Pick one at the top, or train one in the Train tab.")
    reference = str(reference).strip()
    if not needs_store_lookup(reference):
        return reference  # the picker's own values: no look-up (load_run says if it is unknown)
    try:
        return registry.resolve_run_id(reference)
    except ValueError as err:  # unknown, ambiguous (candidates listed), or not a model URI
        raise gr.Error(public(str(err))) from None


def load(run_id: str | None) -> registry.LoadedRun:
    """The run's model, vocabulary and source text (cached by the registry). ``run_id`` may be
    anything ``resolve`` accepts; the loaded run's ``run_id`` is the full id."""
    run_id = resolve(run_id)
    try:
        return registry.load_run(run_id)
    except ValueError as err:
        raise gr.Error(public(str(err))) from None


@lru_cache(maxsize=8)
def source_index(run_id: str) -> tuple[SourceIndex, list[int]]:
    """The run's source indexed for copy look-ups, and where each paragraph starts."""
    tokens = load(run_id).source_tokens
    starts = [0] + [i + 1 for i, t in enumerate(tokens) if t == PARAGRAPH]
    return SourceIndex(tokens), starts


def position(run_id: str, offset: int) -> str:
    """A source token offset as "paragraph P, word W" (both counted from 1)."""
    starts = source_index(run_id)[1]
    p = bisect.bisect_right(starts, offset)
    return f"paragraph {p}, word {offset - starts[p - 1] + 1}"


# ----------------------------------------------------------------------------------------------
# Input checks


def store_name() -> str:
    """The store as callers may see it: a SQLite file's folder and name, never its full path."""
    uri = registry.tracking_uri()
    if uri.startswith("sqlite:///"):
        path = Path(uri.removeprefix("sqlite:///"))
        return f"{path.parent.name}/{path.name}"
    return "the tracking server set in MLFLOW_TRACKING_URI"


def public(message: str) -> str:
    """A message fit for a remote caller's error toast, which renders HTML: the store's name
    instead of its path, and whatever it echoes (run ids, words, file names) escaped."""
    uri = registry.tracking_uri()
    message = message.replace(uri, store_name())
    if uri.startswith("sqlite:///"):  # also the folder, as in artifact paths
        message = message.replace(str(Path(uri.removeprefix("sqlite:///")).parent), "the store")
    return html.escape(message, quote=False)


def _shown(value) -> str:
    """A caller's value echoed back in an error: short, and never rendered as HTML."""
    text = repr(value)
    return html.escape(text if len(text) <= 60 else text[:57] + "…", quote=False)


def _number(value, name: str, low: float, high: float, whole: bool = False) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise gr.Error(f"{name} must be a number, got {_shown(value)}") from None
    if not math.isfinite(number) or not low <= number <= high or (whole and number != int(number)):
        kind = "a whole number" if whole else "a number"
        raise gr.Error(f"{name} must be {kind} from {low:g} to {high:g}, got {_shown(value)}")
    return int(number) if whole else number


def sampling_config(length, temperature, top_k, top_p, seed) -> SamplingConfig:
    """Check the generation controls; top_k 0 and top_p 1 mean "no filtering"."""
    length = _number(length, "Length", 1, MAX_LENGTH, whole=True)
    temperature = _number(temperature, "Temperature", 0, 10)
    top_k = _number(0 if top_k is None else top_k, "Top-k", 0, 100_000, whole=True)
    top_p = _number(1 if top_p is None else top_p, "Top-p", 0, 1)
    if top_p == 0:
        raise gr.Error("Top-p must be above 0 and at most 1 (1 = no nucleus filtering)")
    seed = _number(0 if seed is None else seed, "Random seed", 0, 2**31 - 1, whole=True)
    try:
        return SamplingConfig(length, temperature, top_k or None, top_p, seed)
    except ValueError as err:
        raise gr.Error(public(str(err))) from None


def suggest_prompt(run_id: str | None, prompt: str):
    """Keep the prompt when the run knows its words, else offer the first words of its source."""
    if not run_id:
        return gr.skip()
    try:
        loaded = load(run_id)
    except gr.Error:
        return gr.skip()  # the error shows when generating
    scheme = loaded.vocab.scheme
    tokens = tokenize(prompt or "", scheme)
    if tokens and not loaded.vocab.unknown_words(tokens):
        return gr.skip()
    return detokenize([t for t in loaded.source_tokens[:12] if t != PARAGRAPH][:4], scheme)


def check_prompt(text: str | None, what: str = "The prompt",
                 max_words: int = MAX_PROMPT_WORDS) -> str:
    """The one length check for every text a caller hands in for the model to read.

    Characters are counted first, so a huge text is refused before it is split into words.
    """
    text = "" if text is None else str(text)
    max_chars = max_words * CHARS_PER_WORD
    if len(text) > max_chars:
        raise gr.Error(f"{what} is {len(text):,} characters long; the limit is {max_chars:,} "
                       f"characters and {max_words} words.")
    words = len(text.split())
    if words > max_words:
        raise gr.Error(f"{what} has {words:,} words; the limit is {max_words} words.")
    return text


def prompt_ids(prompt: str, loaded: registry.LoadedRun) -> list[int]:
    prompt = check_prompt(prompt)
    try:
        return encode_prompt(prompt, loaded.vocab)
    except ValueError as err:  # empty prompt, or unknown words (named in the message)
        raise gr.Error(public(str(err))) from None


# ----------------------------------------------------------------------------------------------
# Generation and the memorization report


def highlight(prompt: list[str], new: list[str], spans, scheme: str) -> list[tuple[str, str | None]]:
    """HighlightedText value: the prompt, each copied span labelled "copied", novel words plain.

    The pieces are cut from the detokenized text itself (the text of the first k tokens is
    always a prefix of the whole), so they join up to exactly the text shown above.
    """
    tokens, n = prompt + new, len(prompt)
    parts, i = [(0, n, "prompt")], 0
    for span in spans:
        if span.start > i:
            parts.append((n + i, n + span.start, None))
        parts.append((n + span.start, n + span.end, "copied"))
        i = span.end
    parts.append((n + i, len(tokens), None))
    full = detokenize(tokens, scheme)
    at = {k: len(detokenize(tokens[:k], scheme)) for part in parts for k in part[:2]}
    out = []
    for start, end, label in parts:
        text = full[at[start]:at[end]]
        words = text.lstrip()
        if len(words) < len(text):  # the space before a piece stays plain
            out.append((text[:len(text) - len(words)], None))
        if words:
            out.append((words, label))
    return out


def spans_table(run_id: str, new: list[str], spans, scheme: str) -> pd.DataFrame:
    """One row per copied span: its text, length, where it sits in the source, with context."""
    source = load(run_id).source_tokens
    rows = []
    for s in spans:
        before = source[max(s.source_start - 6, 0):s.source_start]
        after = source[s.source_start + s.length:s.source_start + s.length + 6]
        copied = new[s.start:s.end]
        middle = detokenize(copied, scheme) if s.length <= 12 else \
            f"{detokenize(copied[:4], scheme)} … {detokenize(copied[-4:], scheme)}"
        context = (f"…{detokenize(before, scheme)} «{middle}» "
                   f"{detokenize(after, scheme)}…").replace("\n", " ")
        rows.append({"copied text": detokenize(new[s.start:s.end], scheme).replace("\n", " ¶ "),
                     "words": s.length, "where in the source": position(run_id, s.source_start),
                     "the source there (in context)": context})
    return pd.DataFrame(rows, columns=SPAN_COLUMNS)


def headline(report, n_new: int) -> str:
    if n_new < 4:
        return "Generate at least 4 words to measure copied 4-grams."
    copied = sum(s.length for s in report.spans)
    return (f"### {report.copied_4gram_fraction:.0%} of the generated 4-grams are copied from the "
            f"training text\nLongest verbatim run: **{report.longest_copied_span} words** · "
            f"**{copied} of {n_new}** generated words sit in copied spans of {MIN_SPAN}+ words "
            f"(highlighted below) · {len(report.spans)} span(s).\n\n{repetition_line(report)}")


def repetition_line(report) -> str:
    """The model repeating its own output, set apart from copying the source."""
    repeated = report.self_repeated_4gram_fraction
    line = f"**{repeated:.0%}** of the generated 4-grams repeat the text's own earlier 4-grams"
    if repeated >= LOOP_REPEATED and report.longest_copied_span < LONG_SPAN:
        return (f"{line}: **a loop, not recitation**: the model goes round the same phrase, and "
                "the copied 4-grams are short phrases the source also uses.")
    if repeated >= LOOP_REPEATED:
        return f"{line}: it loops, and what it loops over is recited from the source."
    return f"{line} (no loop)."


def passages_line(run_id: str, spans) -> str:
    """Which source paragraph each copied span comes from, in the generated text's order."""
    if not spans:
        return ""
    starts = source_index(run_id)[1]
    paragraphs = [bisect.bisect_right(starts, s.source_start) for s in spans]
    parts = [f"words {s.start + 1}-{s.end} ← ¶{p}"
             for s, p in zip(spans[:MAX_PASSAGES_LISTED], paragraphs, strict=False)]
    more = f", … ({len(spans) - MAX_PASSAGES_LISTED} more)" if len(spans) > MAX_PASSAGES_LISTED else ""
    distinct = len(set(paragraphs))
    reading = ("all from one paragraph of the source" if distinct == 1 else
               f"from {distinct} different paragraphs: the model stitches passages together")
    return ("**Where the copied spans come from** (generated words ← source paragraph): "
            + ", ".join(parts) + more + f"; {reading}.")


def run_summary(loaded: registry.LoadedRun) -> str:
    """One line on why the run copies as it does: how it was trained and which weights these are."""
    cfg, metrics = loaded.config, loaded.metrics  # read at load: no store query per request
    regularizers = [f"{name} {value:g}" for name, value in (
        ("embedding dropout", cfg.embed_dropout), ("weight drop", cfg.weight_drop),
        ("AR", cfg.ar), ("TAR", cfg.tar), ("weight decay", cfg.weight_decay)) if value]
    regularizers += ["locked dropout"] if cfg.locked_dropout else []
    losses = " vs ".join(f"{what} {metrics[key]:.2f}" for what, key in
                         (("train loss", "train_loss"), ("validation loss", "val_loss"))
                         if key in metrics) or "no losses logged"
    parts = [f"{cfg.recipe} recipe", cfg.cell.upper(),
             ", ".join([f"dropout {cfg.dropout:g}", *regularizers]),
             f"{cfg.optimizer} (lr {cfg.lr:g})", f"{int(metrics.get('step', cfg.steps))} steps",
             losses]
    if "extractable_memorization" in metrics:
        parts.append(f"extractable memorization {metrics['extractable_memorization']:.0%}")
    weights = f"weights from step {loaded.step}"
    if "best_step" in metrics:
        weights += f" (lowest validation loss at step {int(metrics['best_step'])})"
    parts.append(weights + (f": {loaded.note}" if loaded.note else ""))
    return f"**Why:** {html.escape(loaded.name or '(unnamed)')} · " + " · ".join(parts)


def cli_line(reference: str, loaded: registry.LoadedRun, prompt: list[str],
             sampling: SamplingConfig) -> str:
    """The same generation as a command to paste, naming the run by a short id or its model."""
    reference = str(reference).strip()
    if reference.startswith("models:/") or "@" in reference:
        which = f"--model {shlex.quote(reference if reference.startswith('models:/') else 'models:/' + reference)}"
    else:
        which = f"--run {short_id(loaded.run_id)}"
    options = f" --length {sampling.max_new_tokens}"
    if sampling.temperature > 0:
        options += f" --temperature {sampling.temperature:g} --seed {sampling.seed}"
        options += f" --top-k {sampling.top_k}" if sampling.top_k else ""
        options += f" --top-p {sampling.top_p:g}" if sampling.top_p and sampling.top_p < 1 else ""
    text = detokenize(prompt, loaded.vocab.scheme)
    command = f"python -m training.generate {which} --prompt {shlex.quote(text)}{options}"
    if "`" in command:  # it could not be shown as code
        return ""
    return f"The same from the command line:\n```bash\n{command}\n```"


@lru_cache(maxsize=64)
def short_id(run_id: str) -> str:
    """The run id's first 8 characters when no other run shares them, else the whole id.

    Cached (a store query per request was most of a generation's server time): a run logged
    later could share the 8 characters, but for random 128-bit ids that is 1 in 4 billion.
    """
    try:
        return run_id[:8] if registry.resolve_run_id(run_id[:8]) == run_id else run_id
    except ValueError:  # another run's id starts the same way
        return run_id


def novelty_frame(report) -> pd.DataFrame:
    return pd.DataFrame({"n": [str(n) for n in report.novelty],
                         "novel share": [round(v, 3) for v in report.novelty.values()]})


def continuation(run_id: str, prompt: list[str], new: list[str], scheme: str, report=None):
    """(note, model's continuation, the source's continuation) where the prompt is in the source."""
    model_text = detokenize(new, scheme)
    offset = source_index(run_id)[0].locate(prompt)
    if offset is None:
        return ("The prompt does not occur word for word in the training text, so there is no "
                "source continuation to set beside the model's.", model_text, "")
    start = offset + len(prompt)
    source = load(run_id).source_tokens[start:start + len(new)]
    same = next((i for i, (a, b) in enumerate(zip(new, source, strict=False)) if a != b),
                min(len(new), len(source)))
    note = (f"The prompt occurs in the training text at **{position(run_id, offset)}**. The model "
            f"and the source agree on the first **{same} of {len(new)}** words that follow.")
    copied = sum(s.length for s in report.spans) if report is not None else 0
    if same < len(new) and copied > same:
        looping = report.self_repeated_4gram_fraction >= LOOP_REPEATED
        note += (f" Yet **{copied}** of its words are in copied spans: " + (
            "short phrases of the source, repeated in a loop (see the repetition figure above)."
            if looping else "after they part, the model recites *other* passages of the source, "
            "stitched together (where each comes from is listed above)."))
    return note, model_text, detokenize(source, scheme)


def words_with_updates(loaded, ids: list[int], sampling: SamplingConfig, new: list[str],
                       first_words_now: bool = False):
    """Generate into ``new``, yielding (None) whenever the growing text should be sent.

    Alone on the server, a text starts on screen within FIRST_WORDS_SECONDS of work. Beside
    other generations the first update waits STREAM_SECONDS of work instead: a short text then
    goes out once, whole, while the server has the least time to spare for a second event
    (in a probe with 16 callers inside the server's own process, per-word CPU time was 2-4x
    the quiet figure, and with the 20 ms rule nearly every 30-word text went out in two or
    three events; with this rule 78% went out in one). ``first_words_now`` keeps the quiet
    rule in any case (the page's first-words event, whose words are generated again later)."""
    with _GENERATING_LOCK:
        _GENERATING[0] += 1
        busy = _GENERATING[0] > 1
    try:
        budget = STREAM_SECONDS if busy and not first_words_now else FIRST_WORDS_SECONDS
        started = time.thread_time()  # this thread's CPU time: the model's work (SERVE_THREADS)
        send_at = None  # when the next update is due, once the first words are out
        for token_id in stream_ids(loaded.model, ids, sampling):
            new.append(loaded.vocab.id_to_token(token_id))
            if send_at is None:  # the first words: due by the work so far, read every few words
                due = len(new) % FIRST_WORDS_MIN == 0 and first_words_due(
                    time.thread_time() - started, len(new), sampling.max_new_tokens, budget)
            else:
                due = time.perf_counter() >= send_at
            if due:
                yield
                send_at = time.perf_counter() + STREAM_SECONDS
    finally:
        with _GENERATING_LOCK:
            _GENERATING[0] -= 1


def first_words_due(cpu: float, words: int, length: int,
                    budget: float = FIRST_WORDS_SECONDS) -> bool:
    """Whether to send the first words now: once the model has worked ``budget`` seconds, or
    as soon as the pace of the first few words says the whole text will take longer than that
    (so a text that will be streamed anyway starts on screen at once, not 20 ms later). Work is
    this thread's CPU time, not the clock: under load a thread also waits for the GIL or a
    core, and waiting is no sign of a long text (``words_with_updates`` has the figures)."""
    projected = cpu / words * length if words >= FIRST_WORDS_MIN else 0.0
    return max(cpu, projected) >= budget


# The report's outputs while the text streams (after generate's first output, the text). They
# are sent as plain values, never gr.skip(): Gradio answers a skip by rebuilding the component
# and its config (a profile of the server under load: a third of its time), and an unchanged
# value costs it next to nothing. The spans table keeps its own column names meanwhile (None
# would show Gradio's default columns, "1 2 3").
GENERATING_NOTE = "*Generating… the report follows when the text is done.*"
REPORT_WHILE_GENERATING = (None, GENERATING_NOTE, pd.DataFrame(columns=SPAN_COLUMNS), None,
                           "", "", "")


class PendingReport(NamedTuple):
    """What the report of a generated text needs, handed from the page's text events to its
    report event (first_words_on_page and rest_on_page, then report_outputs)."""

    reference: str  # the run as the user named it (the command line in the report repeats it)
    prompt: list[str]
    new: list[str]
    sampling: SamplingConfig


def generate(run_id: str, prompt: str, length: float = 60, temperature: float = 0.0,
             top_k: float = 0, top_p: float = 1.0, seed: float = 0):
    """Generate text from a prompt with a logged run, then measure how much of it is copied.

    Args:
        run_id: the model to use: an MLflow run id, a unique id prefix, a unique run name or a
            registered model (models:/NAME@ALIAS).
        prompt: the words the text starts with (they must be in the model's vocabulary).
        length: how many words to generate (1 to 400).
        temperature: 0 = greedy (always the likeliest word); higher = more random.
        top_k: sample only among the k likeliest words (0 = no limit).
        top_p: sample only among the likeliest words whose probabilities add up to p (1 = all).
        seed: random seed, so the same settings give the same text.
    Returns:
        The text (prompt + generated words) first, then the memorization report: highlighted
        text, headline figures, copied spans, n-gram novelty, and the source's continuation.
    """
    text = None
    for text, _, pending in _streamed_text(run_id, prompt, length, temperature, top_k, top_p, seed):
        if pending is None:
            yield (text, *REPORT_WHILE_GENERATING)
    yield (text, *report_outputs(pending))


class FirstWords(NamedTuple):
    """What the Generate button's first event (first_words_on_page) hands to its second
    (rest_on_page)."""

    request: tuple  # (run_id, prompt, length, temperature, top_k, top_p, seed) as the page sent it
    text: str  # what is on screen
    shown: int  # generated words on screen
    pending: PendingReport | None  # set when the text was finished in the first event


# The first event's answer when it leaves the whole request to the second: nothing on screen.
LEAVE_TO_QUEUE = (gr.skip(), gr.skip(), None)


def first_words_on_page(run_id: str, prompt: str, length: float = 60, temperature: float = 0.0,
                        top_k: float = 0, top_p: float = 1.0, seed: float = 0):
    """The Generate button's first event: the first words of ``generate``'s text, outside the
    queue (a plain request and its answer), then ``rest_on_page`` streams the rest.

    The page does not call ``generate`` (the /generate API does), for two reasons measured in
    Chromium. Going through the queue (join, then open the event's stream) cost ~55 ms before
    the first words could show, where one plain request costs ~30. And every update of a report
    output makes the browser redraw it: tearing down the old report (table, plot, highlight) or
    drawing the new one held the first words back whenever it came close behind them. So the
    text events send only the text and the figures line ("Generating…"), the page hides the
    rest of the old report itself on the click (ui.generate_tab), and the report follows in its
    own event (``report_outputs``).

    Outside the queue nothing bounds how many run at once, so this event does little: the
    first words (the quiet rule of ``words_with_updates``: 3 words, or a short text whole), and
    only for a run named by its full id (the picker's values; a name is a look-up in the
    store), else it answers LEAVE_TO_QUEUE. Gradio shows no error raised outside the queue
    (the browser gets an HTTP 500 and the page shows nothing), so the page answers
    LEAVE_TO_QUEUE for a refused request too (ui.generate_tab), and ``rest_on_page`` refuses
    it in the queue with the usual message. Returns (text, figures line, FirstWords)."""
    request = (run_id, prompt, length, temperature, top_k, top_p, seed)
    if needs_store_lookup(run_id):  # a name or prefix is a store query: in the queue
        return LEAVE_TO_QUEUE
    updates = _streamed_text(*request, first_words_now=True)
    try:
        text, shown, pending = next(updates)
    finally:
        updates.close()  # a text that goes on is generated again by rest_on_page
    return text, GENERATING_NOTE, FirstWords(request, text, shown, pending)


def rest_on_page(first: FirstWords | None, run_id: str, prompt: str, length: float = 60,
                 temperature: float = 0.0, top_k: float = 0, top_p: float = 1.0, seed: float = 0):
    """The Generate button's second event: the rest of the text (in the queue, streamed),
    then what its report needs. Yields (text, figures line, PendingReport or gr.skip(), which
    for a gr.State costs Gradio nothing).

    With words on screen (``first``), it continues their request: the same request gives the
    same text (a random seed is always set), so those words are generated again and not sent;
    that is a few milliseconds of model time, against a second way of carrying the model's
    state and random generator from one event to the next. With none (``first`` is None: the
    first event left it all to the queue), it runs the request the page sends now."""
    if first is None:
        first = FirstWords((run_id, prompt, length, temperature, top_k, top_p, seed), "", 0, None)
    if first.pending is not None:  # finished in the first event
        yield first.text, GENERATING_NOTE, first.pending
        return
    for text, shown, pending in _streamed_text(*first.request):
        if pending is not None or shown > first.shown:
            yield text, GENERATING_NOTE, pending if pending is not None else gr.skip()


def warm_run(run_id: str | None, *_) -> bool:
    """Load a request's run, index its source and look up its short id (each reads the store
    the first time): the warm-up of ``generate`` and ``rest_on_page``, run in a worker thread.
    Returns whether their steps may then run on Gradio's event loop (ui.events says why they
    do): only for a run named by its full id, since any other name (a prefix, a run name, a
    registered model) is looked up in the store again at every request."""
    loaded = load(run_id)
    source_index(loaded.run_id)
    short_id(loaded.run_id)
    return not needs_store_lookup(run_id)


def warm_rest(first: FirstWords | None, run_id: str | None, *_) -> bool:
    """``warm_run`` for ``rest_on_page``: the run of the request the first event started."""
    return warm_run(first.request[0] if first is not None else run_id)


def _streamed_text(run_id, prompt, length, temperature, top_k, top_p, seed, first_words_now=False):
    """(text so far, generated words, None) at each update the text should be sent, then
    (text, generated words, PendingReport)."""
    loaded = load(run_id)
    sampling = sampling_config(length, temperature, top_k, top_p, seed)
    ids = prompt_ids(prompt, loaded)
    scheme = loaded.vocab.scheme
    start, new = loaded.vocab.decode(ids), []
    for _ in words_with_updates(loaded, ids, sampling, new, first_words_now):
        yield detokenize(start + new, scheme), len(new), None
    yield detokenize(start + new, scheme), len(new), PendingReport(run_id, start, new, sampling)


def report_outputs(pending: PendingReport) -> tuple:
    """The memorization report of a generated text: ``generate``'s outputs after the text (the
    Generate button's third event)."""
    if not isinstance(pending, PendingReport):  # the page's state holds none (a direct call)
        raise gr.Error("There is no generated text to report on: generate one first.")
    loaded = load(pending.reference)
    start, new, scheme = pending.prompt, pending.new, loaded.vocab.scheme
    report = analyze(new, source_index(loaded.run_id)[0], min_len=MIN_SPAN)
    figures = "\n\n".join(part for part in (
        run_summary(loaded), headline(report, len(new)), passages_line(loaded.run_id, report.spans),
        cli_line(pending.reference, loaded, start, pending.sampling)) if part)
    return (highlight(start, new, report.spans, scheme), figures,
            spans_table(loaded.run_id, new, report.spans, scheme), novelty_frame(report),
            *continuation(loaded.run_id, start, new, scheme, report))


# ----------------------------------------------------------------------------------------------
# Loss curves and the temperature sweep


def history(run_id: str) -> pd.DataFrame:
    run_id = resolve(run_id)
    try:
        return registry.metric_history(run_id)
    except Exception as err:  # MLflow errors for unknown or malformed ids
        raise gr.Error(public(f"Cannot read the metrics of run {run_id!r}: {err}")) from None


def loss_curves(run_id: str | None):
    """The run's train and validation loss by step, with the lowest validation loss marked, and
    its extractable memorization by step with the first step at 50% or more marked."""
    if not run_id:
        return pd.DataFrame(columns=["step", "value", "metric"]), "No run selected."
    curves = history(run_id)
    try:
        run = registry.get_run(run_id)
    except ValueError as err:
        raise gr.Error(public(str(err))) from None
    metrics = run.data.metrics
    keeps_best = run.data.params.get("recipe") != "seed"  # the seed recipe keeps its last step
    val = curves[curves["metric"] == "val_loss"]
    if val.empty:
        note = ("This run held no text out for validation (like the write-up, which trains "
                "on all of it), so only the training loss is shown; the app uses its last step.")
    else:
        best = val.loc[val["value"].idxmin()]
        low, high = curves["value"].min(), curves["value"].max()
        marker = pd.DataFrame({"step": [best.step] * 2, "value": [low, high],
                               "metric": ["lowest val loss"] * 2})
        curves = pd.concat([curves, marker], ignore_index=True)
        loaded = ("the app loads that checkpoint" if keeps_best else
                  "this seed-recipe run keeps its last step, as the write-up did")
        note = (f"**Validation loss is lowest at step {int(best.step)}: {best.value:.3f}** "
                f"(the vertical line; {loaded}). Where training loss keeps "
                "falling while validation loss rises, the model is learning the text by heart.")
    if "extractable_memorization" in metrics:
        params = run.data.params  # the run's own k and m, not today's defaults
        k, m = (params.get(f"memorization_{x}", "?") for x in ("prefix", "suffix"))
        note += (f"\n\nExtractable memorization: **{metrics['extractable_memorization']:.0%}** of "
                 f"tested source passages are continued exactly (given {k} words, the next {m}).")
    memorized = memorization_curve(run_id)
    curves = pd.concat([curves, memorized], ignore_index=True) if not memorized.empty else curves
    return curves, note + reciting_note(memorized, run.data.params)


def temperature_sweep(run_id: str, prompt: str, length: float = 60,
                      progress=gr.Progress()):  # noqa: B008
    """Copied 4-gram share and copied-word share against temperature, for one run and prompt."""
    loaded = load(run_id)
    ids = prompt_ids(prompt, loaded)
    length = min(_number(length, "Length", 1, MAX_LENGTH, whole=True), SWEEP_MAX_LENGTH)
    index, rows = source_index(loaded.run_id)[0], []
    for k, temperature in enumerate(SWEEP_TEMPERATURES):
        progress(k / len(SWEEP_TEMPERATURES), desc=f"temperature {temperature}")
        reports = []
        for seed in range(1 if temperature == 0 else SWEEP_SEEDS):
            sampling = SamplingConfig(length, temperature, seed=seed)
            new = loaded.vocab.decode(stream_ids(loaded.model, ids, sampling))
            reports.append(analyze(new, index, min_len=MIN_SPAN))
        for name, key in (("copied 4-grams", "copied_4gram_fraction"),
                          ("words in copied spans", "copied_token_fraction")):
            share = sum(getattr(r, key) for r in reports) / len(reports)
            rows.append({"temperature": temperature, "share": round(share, 3), "measure": name})
    frame = pd.DataFrame(rows)
    four = frame[frame["measure"] == "copied 4-grams"]["share"].tolist()
    note = (f"Copied 4-grams: **{four[0]:.0%}** when greedy, **{four[-1]:.0%}** at temperature "
            f"{SWEEP_TEMPERATURES[-1]} ({SWEEP_SEEDS} samples of {length} words per temperature).")
    return frame, note


# ----------------------------------------------------------------------------------------------
# Comparing runs


def compare_runs(run_ids: list[str] | None):
    """Loss curves of two or more runs overlaid, the params that differ, the final metrics."""
    run_ids = [resolve(r) for r in (run_ids or []) if r]
    if len(run_ids) < 2:
        raise gr.Error("Pick at least two runs to compare.")
    runs = list_runs().set_index("run_id")
    missing = [r for r in run_ids if r not in runs.index]
    if missing:
        raise gr.Error(f"There is no run with id {_shown(missing[0])} in the store.")
    names = {r: f"{runs.loc[r, 'name']} ({r[:4]})" for r in run_ids}
    curves = pd.concat([history(r).assign(run=names[r]) for r in run_ids], ignore_index=True)
    curves["series"] = curves["metric"].str.replace("_loss", "") + " · " + curves["run"]
    params = {names[r]: registry.get_run(r).data.params for r in run_ids}
    keys = sorted(set().union(*params.values()))
    keys = [k for k in keys if k.removeprefix("model.") == k or k.removeprefix("model.") not in keys]
    differ = [k for k in keys if len({p.get(k, "—") for p in params.values()}) > 1]
    param_table = pd.DataFrame([{"param": k, **{n: p.get(k, "—") for n, p in params.items()}}
                                for k in differ], columns=["param", *params])
    figures = ["steps", "train_loss", "val_loss", "val_perplexity", "extractable_memorization",
               "sample_copied_4gram_fraction", "sample_longest_copied_span", "duration_s"]
    metric_table = pd.DataFrame([{"metric": f, **{names[r]: format_number(runs.loc[r, f]) for r in run_ids}}
                                 for f in figures])
    return curves[["step", "value", "series"]], param_table, metric_table


def compare_if_ready(run_ids):
    """compare_runs when two or more runs are picked; leaves the outputs alone otherwise."""
    if len(run_ids or []) < 2:
        return gr.skip(), gr.skip(), gr.skip()
    return compare_runs(run_ids)


# ----------------------------------------------------------------------------------------------
# Looking inside: the gates as a heatmap


def _cell_color(value: float, signed: bool, scale: float) -> str:
    """Gates (0..1): white to blue. Signed states: red (negative), white, blue (positive)."""
    x = max(-1.0, min(1.0, value / scale)) if signed else max(0.0, min(1.0, value))
    target = (37, 99, 235) if x >= 0 else (220, 38, 38)
    return "rgb({},{},{})".format(*(round(255 + (c - 255) * abs(x)) for c in target))


# What "Look inside" draws for each cell: (label, recorded name, signed). Gates run from 0 to 1;
# signed values (states, candidates) from negative to positive.
INSIDE_ROWS = {
    "lstm": [("input gate i", "input", False), ("forget gate f", "forget", False),
             ("output gate o", "output", False), ("cell state c", "cell", True)],
    "gru": [("reset gate r", "reset", False), ("update gate z", "update", False),
            ("candidate n", "candidate", True), ("hidden state h", "hidden", True)],
    "rnn": [("hidden state h", "hidden", True)],
}
STATE_OF = {"lstm": "cell", "gru": "hidden", "rnn": "hidden"}  # whose single units are shown


def _merge_unk(tokens: list[str]) -> list[str]:
    """Put back the <unk> a generated text holds: the words tokenizer splits it into <, unk, >."""
    out: list[str] = []
    for token in tokens:
        out.append(token)
        if out[-3:] == ["<", "unk", ">"]:
            out[-3:] = [UNK]
    return out


def inside_ids(text: str, vocab) -> tuple[list[str], list[int]]:
    """(tokens, ids) of a text to look inside. A capped vocabulary makes a model write <unk>:
    that is read as the unknown-word id; any other unknown word is named, as for a prompt."""
    tokens = _merge_unk([t for t in tokenize(text, vocab.scheme) if t])[:HEATMAP_MAX_WORDS]
    if not tokens:
        raise gr.Error("There is no text to look inside: generate one first (or type one).")
    try:  # the library's one check, as for a prompt: unknown words are named
        if UNK not in tokens:
            return tokens, encode_prompt(text, vocab)[:HEATMAP_MAX_WORDS]
        unknown = vocab.unknown_words(t for t in tokens if t != UNK)
        if unknown:
            encode_prompt(" ".join(unknown), vocab)  # raises, naming exactly those words
        return tokens, vocab.encode(tokens, unknown="unk")
    except ValueError as err:
        raise gr.Error(public(str(err))) from None


def gate_heatmap(run_id: str, text: str, layer: float = 1, unit: float = -1) -> str:
    """An HTML heatmap of the cell's gates and state, word by word: an LSTM's input, forget and
    output gates and cell state; a GRU's reset and update gates, candidate and hidden state; a
    plain RNN's hidden state (it has no gates)."""
    loaded = load(run_id)
    cfg = loaded.model.config
    layer = _number(layer, "Layer", 1, cfg.num_layers, whole=True)
    unit = _number(unit, "Unit", -1, cfg.hidden_size - 1, whole=True)
    # The generated text is a prompt plus up to MAX_LENGTH words; only the first words are drawn.
    text = check_prompt(text, "The text to look inside", MAX_PROMPT_WORDS + MAX_LENGTH)
    tokens, ids = inside_ids(text, loaded.vocab)
    acts = {k: v[layer - 1] for k, v in  # each (T, H)
            loaded.model.inspect(torch.tensor([ids])).items()}
    pick = (lambda v: v.mean(-1)) if unit < 0 else (lambda v: v[:, unit])
    rows = [(label, pick(acts[name]), signed) for label, name, signed in INSIDE_ROWS[cfg.cell]]
    state = STATE_OF[cfg.cell]
    if unit < 0:  # a mean hides what single units do: add the states that change most
        busiest = acts[state].var(0).topk(min(HEATMAP_UNITS, cfg.hidden_size)).indices.tolist()
        rows += [(f"{state} {state[0]}, unit {u}", acts[state][:, u], True) for u in busiest]
    return _heatmap_page(tokens, rows, cfg, layer, unit, state)


def _heatmap_page(tokens, rows, cfg, layer: int, unit: int, state: str) -> str:
    head = "".join(f"<th>{html.escape('¶' if t == PARAGRAPH else t)}</th>" for t in tokens)
    body = []
    for label, values, signed in rows:
        values = values.tolist()
        scale = max(max(abs(v) for v in values), 1e-6)
        cells = "".join(f'<td title="{html.escape(t)}: {v:.3f}" style="background:'
                        f'{_cell_color(v, signed, scale)}">{v:.2f}</td>'
                        for t, v in zip(tokens, values, strict=True))
        body.append(f"<tr><th class='rowname'>{label}</th>{cells}</tr>")
    shown = "gates and states" if cfg.cell != "rnn" else "the hidden state (a plain RNN has no gates)"
    what = (f"{shown} averaged over all {cfg.hidden_size} units, then the {HEATMAP_UNITS} units "
            f"whose {state} state varies most") if unit < 0 else f"unit {unit}"
    return (f"<div class='gates'><p>{cfg.cell.upper()}, layer {layer}, {what}; first "
            f"{len(tokens)} words. Gates run from 0 (white: closed) to 1 (blue: open); a state "
            "is blue when positive, red when negative.</p><div class='scroll'><table><tr>"
            f"<th class='rowname'></th>{head}</tr>{''.join(body)}</table></div></div>")


def gates_on_open(run_id: str, text: str, layer: float, unit: float):
    """The heatmap as the Look inside tab opens; nothing new (no error) while there is no text."""
    try:
        return gate_heatmap(run_id, text, layer, unit)
    except gr.Error:
        return gr.skip()


# ----------------------------------------------------------------------------------------------
# Memorization while training, the overfitting map and gradient flow (#13, #14). The charts are
# matplotlib Figures (no pyplot: no global state shared between the app's threads).

MEMORIZATION = "extractable_memorization"
RECITING = 0.5  # "starts reciting": the first evaluation at which half the passages are recited
MAP_COLOR_BY = ("recipe", "cell")
# Params the map's hover shows when they differ between runs (all of them when only one run).
MAP_SETTINGS = ("cell", "recipe", "optimizer", "steps", "hidden_size", "dropout", "weight_drop",
                "locked_dropout", "embed_dropout", "ar", "tar", "lr", "max_vocab")
MAP_COLUMNS = ["held_out_perplexity", "memorization", "group", "name", "run", "settings", "run_id"]
CELL_COLORS = {"lstm": "tab:blue", "gru": "tab:green", "rnn": "tab:red"}
FLOW_DISTANCES = (10, 20, 40)
NO_MAP = ("**No run to map yet.** Each point is a finished run with held-out text. Train a few in "
          "the **Train** tab, or a grid with `python -m training.sweep --dropout 0 0.4 "
          "--weight-drop 0 0.5`.")


def memorization_curve(run_id: str) -> pd.DataFrame:
    """The run's extractable memorization at every evaluation (step, value, metric).

    The last step carries two values: the evaluation's, then (logged after training) the saved
    model's; the curve keeps the first. A run logged before #13 has only the final value, and
    so no curve.
    """
    from mlflow.tracking import MlflowClient

    registry.open_store()
    try:
        history = MlflowClient().get_metric_history(run_id, MEMORIZATION)
    except Exception as err:  # MLflow errors for unknown or malformed ids
        raise gr.Error(public(f"Cannot read the metrics of run {run_id!r}: {err}")) from None
    first: dict[int, float] = {}
    for metric in sorted(history, key=lambda m: (m.step, m.timestamp)):
        first.setdefault(metric.step, metric.value)
    if len(first) < 2:
        return pd.DataFrame(columns=["step", "value", "metric"])
    return pd.DataFrame({"step": list(first), "value": list(first.values()),
                         "metric": MEMORIZATION})


def reciting_step(memorized: pd.DataFrame) -> int | None:
    """The first step at which at least RECITING of the sampled passages are recited."""
    over = memorized[memorized["value"] >= RECITING]
    return int(over["step"].min()) if not over.empty else None


def reciting_note(memorized: pd.DataFrame, params: dict) -> str:
    if memorized.empty:
        return ""
    sample = params.get("memorization_sample", "?")
    step = reciting_step(memorized)
    if step is None:
        peak = memorized.loc[memorized["value"].idxmax()]
        return (f"\n\nWhile training (right axis, {sample} training passages at each evaluation), "
                f"memorization stays below {RECITING:.0%}: at most {peak.value:.0%}, at step "
                f"{int(peak.step)}.")
    return (f"\n\n**Starts reciting at step {step}**: from there at least {RECITING:.0%} of "
            f"{sample} sampled training passages are continued exactly (the dashed red line; "
            "memorization is on the right axis).")


def loss_figure(curves: pd.DataFrame, title: str):
    """Train and validation loss (left axis) and memorization (right axis) against the step."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(9, 3.8), dpi=100, layout="constrained")
    axes = figure.add_subplot()
    for metric, color in (("train_loss", "tab:blue"), ("val_loss", "tab:orange")):
        part = curves[curves["metric"] == metric]
        axes.plot(part["step"], part["value"], color=color, label=metric.replace("_", " "))
    lowest = curves[curves["metric"] == "lowest val loss"]
    if not lowest.empty:
        step = lowest["step"].iloc[0]
        axes.axvline(step, color="tab:orange", linestyle=":", label=f"lowest val loss ({step:g})")
    axes.set(xlabel="training step", ylabel="cross-entropy loss", title=title)
    axes.grid(alpha=0.3)
    memorized = curves[curves["metric"] == MEMORIZATION]
    handles, labels = axes.get_legend_handles_labels()
    if not memorized.empty:
        right = axes.twinx()
        right.plot(memorized["step"], memorized["value"] * 100, color="tab:red", marker=".",
                   label="extractable memorization")
        step = reciting_step(memorized)
        if step is not None:
            right.axvline(step, color="tab:red", linestyle="--", label=f"starts reciting ({step})")
        right.set(ylim=(0, 100), ylabel="training passages recited (%)")
        more = right.get_legend_handles_labels()
        handles, labels = handles + more[0], labels + more[1]
    axes.legend(handles, labels, loc="upper right", fontsize=8)
    return figure


def loss_chart(run_id: str | None):
    """The Loss tab's chart: loss_curves's numbers and note, and the figure drawn from them."""
    curves, note = loss_curves(run_id)
    if curves.empty:
        return curves, note, None
    return curves, note, loss_figure(curves, f"Run {run_id[:8]}")


def _settings(params: dict, keys: list[str]) -> str:
    return ", ".join(f"{k}={params[k]}" for k in keys if k in params)


def overfitting_map(color_by: str = "recipe"):
    """Every finished run with held-out text as one point: held-out perplexity across,
    extractable memorization up, colored by recipe or cell.

    Returns the points (held_out_perplexity, memorization, group, name, run, settings,
    run_id), a note, and the points again for the table under the map. Runs without
    validation (the seed recipe's default) are left out and counted in the note.
    """
    from training.sweep import sweep_points

    if color_by not in MAP_COLOR_BY:
        raise gr.Error(f"Color by must be one of {', '.join(MAP_COLOR_BY)}, got {_shown(color_by)}")
    try:
        runs = sweep_points()
    except Exception as err:  # MLflow raises several types for an unreachable store
        raise gr.Error(public(f"Cannot read the run store {registry.tracking_uri()}: {err}")) from None
    usable = runs.dropna(subset=["held_out_perplexity", MEMORIZATION])
    if usable.empty:
        empty = pd.DataFrame(columns=MAP_COLUMNS)
        return empty, NO_MAP, empty
    params = list(usable["params"])
    keys = [k for k in MAP_SETTINGS if len(params) == 1 or len({p.get(k) for p in params}) > 1]
    points = pd.DataFrame({
        "held_out_perplexity": usable["held_out_perplexity"].round(1),
        "memorization": usable[MEMORIZATION].round(3),
        "group": [p.get(color_by) or ("lstm" if color_by == "cell" else "?") for p in params],
        "name": usable["name"], "run": usable["run_id"].str[:8],
        "settings": [_settings(p, keys) for p in params], "run_id": usable["run_id"],
    }, columns=MAP_COLUMNS).reset_index(drop=True)
    left_out = len(runs) - len(usable)
    note = (f"**{len(points)} run(s)**, one point each: further right is worse on held-out text, "
            "higher recites more of its training text. Hover a point for its settings; drag "
            "across points (or click a row below) to load a run.")
    if left_out:
        note += f" {left_out} finished run(s) without held-out text are left out."
    return points, note, points


def pick_from_map(points: pd.DataFrame | None, evt: gr.SelectData):
    """Load the run picked on the map: a dragged range of perplexities selects the point
    nearest its middle; a clicked row of the table selects that row's run.

    points: the table of overfitting_map's points. Returns (run picker value, note)."""
    if points is None or len(points) == 0:
        return gr.skip(), gr.skip()
    if evt.row_value is not None:  # a row of the table (its last column is the run id)
        run_id = str(evt.row_value[-1])
    else:
        low, high = sorted(float(x) for x in evt.index)
        inside = points[points["held_out_perplexity"].between(low, high)]
        if inside.empty:
            return gr.skip(), "No run in the range you dragged across; try a wider one."
        middle = (inside["held_out_perplexity"] - (low + high) / 2).abs()
        run_id = str(inside.loc[middle.idxmin(), "run_id"])
    return run_id, f"Loaded run `{html.escape(run_id[:8])}`: it is selected at the top."


def flow_if_run(run_id: str | None):
    """gradient_flow_view when a run is selected (on opening the tab); nothing otherwise."""
    return gradient_flow_view(run_id) if run_id else (gr.skip(), gr.skip(), gr.skip())


def _flow_passages(loaded: registry.LoadedRun) -> torch.Tensor:
    """The passages training logs gradient flow on: spread evenly over the run's own text."""
    from training.tracking import FLOW_LENGTH, FLOW_PASSAGES

    ids = torch.tensor(loaded.vocab.encode(loaded.source_tokens, unknown="unk"))
    length = min(FLOW_LENGTH, len(ids) - 1)
    starts = torch.linspace(0, len(ids) - length - 1, FLOW_PASSAGES).long().unique()
    return torch.stack([ids[s:s + length + 1] for s in starts])


@lru_cache(maxsize=8)
def untrained_flows(run_id: str) -> dict[str, dict]:
    """Gradient flow of untrained LSTM, GRU and RNN models the size of the run's model (equal
    parameter count, its vocabulary), on the run's text."""
    from lstm_core.gradient_flow import equal_size_models, gradient_flow

    loaded = load(run_id)
    passages = _flow_passages(loaded)
    models = equal_size_models(loaded.model.config, seed=0)
    return {cell: gradient_flow(model, passages) for cell, model in models.items()}


def trained_flow(run_id: str) -> dict | None:
    """The run's own logged gradient_flow.json, or None (runs from before #14 have none)."""
    import json

    from training.tracking import GRADIENT_FLOW_FILE

    try:
        path = registry.artifact_path(run_id, GRADIENT_FLOW_FILE)
        return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None
    except Exception:  # a remote store raises when the file is not there
        return None


def flow_figure(curves: dict[str, dict], title: str):
    from matplotlib.figure import Figure

    figure = Figure(figsize=(9, 3.8), dpi=100, layout="constrained")
    axes = figure.add_subplot()
    for label, (flow, color, style) in curves.items():
        axes.semilogy(flow["distance"], flow["grad_norm"], color=color, linestyle=style,
                      label=label)
    axes.set(xlabel="distance back from the last word (steps)", title=title,
             ylabel="|d loss / d input|, 1 at distance 0")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=8)
    return figure


def gradient_flow_view(run_id: str | None):
    """How far back a gradient reaches: untrained LSTM, GRU and RNN at the selected run's size
    (dashed), and the run itself after training (solid) when it logged its gradient flow.

    Returns the figure, a note, and a table of the curves at distances 10, 20 and 40.
    """
    from lstm_core.gradient_flow import at_distances

    if not run_id:
        raise gr.Error("No run selected. Pick one at the top, or train one in the Train tab.")
    loaded = load(run_id)
    cell = loaded.model.config.cell
    curves = {f"{c} untrained": (flow, CELL_COLORS[c], "--")
              for c, flow in untrained_flows(loaded.run_id).items()}
    trained = trained_flow(loaded.run_id)
    if trained is not None:
        curves[f"this run ({cell}), trained"] = (trained, CELL_COLORS[cell], "-")
    rows = [{"curve": label, **{f"distance {d}": f"{v:.2g}" for d, v in
                                at_distances(flow, FLOW_DISTANCES).items()}}
            for label, (flow, _, _) in curves.items()]
    untrained = untrained_flows(loaded.run_id)
    at20 = {c: at_distances(f, (20,)).get(20) for c, f in untrained.items()}
    note = (f"Untrained models of **{loaded.model.num_parameters():,} parameters** each (the "
            "run's size and vocabulary), reading passages of its text.")
    if None not in at20.values():
        note += (f" Twenty words back, the untrained RNN keeps **{at20['rnn']:.1g}** of the "
                 f"gradient, the GRU {at20['gru']:.1g}, the LSTM {at20['lstm']:.1g}.")
    note += (" The solid line is the run itself after training." if trained is not None else
             " This run logged no gradient flow (it predates #14), so only untrained curves show.")
    title = f"Gradient flow, log scale (run {loaded.run_id[:8]}, a {cell.upper()})"
    return flow_figure(curves, title), note, pd.DataFrame(rows)


# ----------------------------------------------------------------------------------------------
# Training in the browser, within limits: one run at a time, a cost ceiling, a time limit, a
# Stop button, and only the newest app-trained runs kept.


class TrainingJob:
    """The one training the app runs at a time: its thread, its stop switch, who started it."""

    def __init__(self, session: str | None, seconds: float):
        self.session = session  # the browser session (or API client) allowed to stop it
        self.stop = threading.Event()  # set by Stop, the time limit or shutdown
        self.deadline = time.monotonic() + seconds
        self.stopped_because = ""
        self.thread: threading.Thread | None = None
        self.run_id: str | None = None


_JOB: TrainingJob | None = None  # the training in progress, if any (set under _TRAIN_LOCK)


def read_upload(path: str | None) -> tuple[str, str]:
    """(text, name) of an uploaded .txt, or of the default corpus when nothing was uploaded."""
    if not path:
        return DEFAULT_CORPUS.read_text(encoding="utf-8"), DEFAULT_CORPUS.name
    name = Path(path).name
    if os.path.getsize(path) > MAX_UPLOAD_BYTES:
        raise gr.Error(f"{html.escape(name)} is larger than {MAX_UPLOAD_BYTES / 1e6:g} MB; upload "
                       "a shorter text.")
    try:
        return decode_text(Path(path).read_bytes(), name), name
    except ValueError as err:  # binary, not UTF-8, or empty
        raise gr.Error(html.escape(str(err))) from None


def train_config(recipe: str, steps, hidden_size, dropout, lr, max_vocab=DEFAULT_APP_VOCAB,
                 cell="lstm", optimizer=None, weight_drop=0.0, locked_dropout=False,
                 embed_dropout=0.0, ar=0.0, tar=0.0) -> TrainConfig:
    """The run's config from the Train tab's controls, each checked against the app's limits.

    optimizer None (or "") keeps the recipe's own; the regularizers default to off.
    """
    if recipe not in RECIPES:
        raise gr.Error(f"Recipe must be one of {', '.join(RECIPES)}, got {_shown(recipe)}")
    if cell not in CELLS:
        raise gr.Error(f"Cell must be one of {', '.join(CELLS)}, got {_shown(cell)}")
    if optimizer not in (None, "", *OPTIMIZERS):
        raise gr.Error(f"Optimizer must be one of {', '.join(OPTIMIZERS)}, got {_shown(optimizer)}")
    if locked_dropout not in (True, False, None):
        raise gr.Error(f"Locked dropout must be true or false, got {_shown(locked_dropout)}")
    steps = _number(steps, "Steps", 10, MAX_STEPS, whole=True)
    hidden = _number(hidden_size, "Hidden size", 8, MAX_HIDDEN, whole=True)
    try:
        return TrainConfig.for_recipe(
            recipe, steps=steps, hidden_size=hidden, embed_dim=hidden,
            dropout=_number(dropout, "Dropout", 0, 0.8), lr=_number(lr, "Learning rate", 1e-5, 100),
            max_vocab=_number(max_vocab, "Vocabulary cap", MIN_APP_VOCAB, MAX_APP_VOCAB, whole=True),
            eval_interval=max(10, steps // 20), cell=cell, optimizer=optimizer or None,
            weight_drop=_number(weight_drop, "Weight drop", 0, MAX_DROP),
            locked_dropout=bool(locked_dropout),
            embed_dropout=_number(embed_dropout, "Embedding dropout", 0, MAX_DROP),
            ar=_number(ar, "AR", 0, MAX_AR), tar=_number(tar, "TAR", 0, MAX_AR))
    except ValueError as err:
        raise gr.Error(public(str(err))) from None


def model_parameters(config: TrainConfig, vocab_size: int) -> int:
    """How many parameters the run's model will have (built on the meta device: no memory)."""
    with torch.device("meta"):
        model = LSTMLanguageModel(ModelConfig(
            vocab_size=vocab_size, embed_dim=config.embed_dim, hidden_size=config.hidden_size,
            num_layers=config.num_layers, dropout=config.dropout, tie_weights=config.tie_weights,
            cell=config.cell))
    return sum(p.numel() for p in model.parameters())


def check_cost(config: TrainConfig, text: str) -> int:
    """Refuse a run whose parameters x steps exceed the app's ceiling; returns the parameters."""
    words = len(set(tokenize(text, config.tokenizer)))
    params = model_parameters(config, min(words, config.max_vocab) + 2)  # + <pad>, <unk>
    if params * config.steps > MAX_PARAM_STEPS:
        raise gr.Error(
            f"This run is too big for the app: {params:,} parameters x {config.steps} steps = "
            f"{params * config.steps:.2g}, over the limit of {MAX_PARAM_STEPS:.2g}. Lower the "
            "steps, the hidden size or the vocabulary cap (or train it with python -m training).")
    return params


def recipe_defaults(recipe: str):
    """The recipe's own dropout, learning rate and optimizer, and a default run name.

    The seed recipe uses Adam at 0.005 and no dropout; the windows recipe plain SGD at 20.
    """
    config = TrainConfig.for_recipe(recipe if recipe in RECIPES else "windows")
    return config.dropout, config.lr, gr.Textbox(placeholder=f"app-{recipe}"), config.optimizer


def check_run_name(run_name, recipe: str) -> str:
    name = " ".join(str(run_name or "").split())
    if len(name) > MAX_RUN_NAME:
        raise gr.Error(f"The run name may have at most {MAX_RUN_NAME} characters.")
    if name.startswith("demo-"):
        raise gr.Error('Run names starting with "demo-" are kept for the demo runs; pick another.')
    return name or f"app-{recipe}"


def prune_app_runs(keep: int | None = None) -> list[str]:
    """Delete app-trained runs past the newest ``keep``, oldest first, with their files.

    Only runs tagged as trained in the app and no longer training are counted; demo runs and
    runs trained with ``python -m training`` are never touched.
    """
    from mlflow.tracking import MlflowClient

    keep = KEEP_APP_RUNS if keep is None else keep
    runs = registry.list_runs()  # newest first
    finished = runs.loc[runs["status"] != "RUNNING", "run_id"]
    mine = [r for r in finished if registry.get_run(r).data.tags.get(APP_TAG) == "true"]
    for run_id in mine[keep:]:
        folder = registry.local_artifact_dir(run_id)
        MlflowClient().delete_run(run_id)
        if folder is not None:  # artifacts/<run_id>/artifacts: remove the run's whole folder
            shutil.rmtree(folder.parent, ignore_errors=True)
    registry.load_run.cache_clear()
    source_index.cache_clear()
    return mine[keep:]


def _train_worker(job: TrainingJob, config: TrainConfig, text: str, corpus_name: str,
                  run_name: str, state: dict, lines: list[str]) -> None:
    """The worker thread: train, tag the run as the app's, then prune old app runs."""
    from mlflow.tracking import MlflowClient

    from training.tracking import train_run  # the trainer is only needed here

    def on_step(step, total, loss):
        if job.run_id is None:  # the first step: the run exists, so mark it as the app's
            job.run_id = mlflow_active_run_id()
            MlflowClient().set_tag(job.run_id, APP_TAG, "true")
        if time.monotonic() > job.deadline and not job.stop.is_set():
            job.stopped_because = f"the app's time limit of {MAX_TRAIN_SECONDS // 60} minutes"
            job.stop.set()
        state.update(step=step, loss=loss)

    torch.set_num_threads(TRAIN_THREADS)  # this thread's own setting: training uses every core
    try:
        job.run_id = train_run(config, run_name=run_name, text=text, corpus_name=corpus_name,
                               on_log=lines.append, on_step=on_step, stop_event=job.stop)
        removed = prune_app_runs()
        if removed:
            lines.append(f"removed {len(removed)} older app run(s): the app keeps the newest "
                         f"{KEEP_APP_RUNS}")
    except Exception as err:  # handed to the event, shown as a gr.Error
        state["error"] = err
    finally:
        _end_job()


def mlflow_active_run_id() -> str:
    import mlflow

    return mlflow.active_run().info.run_id  # the worker thread's own run (MLflow keeps it per thread)


def _start_job(request: gr.Request | None) -> TrainingJob:
    global _JOB
    if not _TRAIN_LOCK.acquire(blocking=False):
        raise gr.Error(BUSY)
    _JOB = TrainingJob(getattr(request, "session_hash", None), MAX_TRAIN_SECONDS)
    return _JOB


def _end_job() -> None:
    global _JOB
    _JOB = None
    _TRAIN_LOCK.release()


def train(upload: str | None, recipe: str = "windows", steps: float = 300,
          hidden_size: float = 64, dropout: float = 0.4, lr: float = 20.0, run_name: str = "",
          max_vocab: float = DEFAULT_APP_VOCAB, cell: str = "lstm", optimizer: str | None = None,
          weight_drop: float = 0.0, locked_dropout: bool = False, embed_dropout: float = 0.0,
          ar: float = 0.0, tar: float = 0.0, request: gr.Request = None,
          progress=gr.Progress()):  # noqa: B008
    """Train a run on the uploaded text (or the default corpus), log it to MLflow, select it.

    cell: "lstm", "gru" or "rnn"; optimizer: "sgd", "adam" or "ntasgd" (empty: the recipe's);
    weight_drop, embed_dropout (0 to 0.8), locked_dropout, ar, tar (0 to 10): the regularizers.
    """
    config = train_config(recipe, steps, hidden_size, dropout, lr, max_vocab, cell, optimizer,
                          weight_drop, locked_dropout, embed_dropout, ar, tar)
    name = check_run_name(run_name, recipe)
    text, corpus_name = read_upload(upload)
    params = check_cost(config, text)
    job = _start_job(request)
    lines = [f"training on {corpus_name} ({len(text):,} characters, {params:,} parameters)…"]
    state = {"step": 0, "loss": math.nan}
    job.thread = threading.Thread(target=_train_worker, daemon=True,
                                  args=(job, config, text, corpus_name, name, state, lines))
    job.thread.start()  # the worker releases the job when done, even if this page goes away
    while job.thread.is_alive():
        job.thread.join(0.5)
        loss = "…" if math.isnan(state["loss"]) else f"{state['loss']:.3f}"
        readout = f"step {state['step']}/{config.steps} · loss {loss}"
        progress(state["step"] / config.steps, desc=readout)
        yield (*[gr.skip()] * 4, readout, "\n".join(lines[-12:]))
    if "error" in state:
        raise gr.Error(f"Training failed: {html.escape(registry.one_line(state['error']))}")
    done = _done_message(job)
    yield (*refresh_runs(job.run_id), done, "\n".join([*lines[-11:], done]))


def _done_message(job: TrainingJob) -> str:
    if not job.stop.is_set():
        return f"Done: run {job.run_id} is logged to MLflow and selected above."
    why = job.stopped_because or "Stop was pressed"
    return (f"Stopped ({why}): run {job.run_id} ended as KILLED with its last checkpoint, and "
            "is selected above.")


def stop_training(request: gr.Request = None) -> str:
    """Stop the training in progress between two steps; the run ends KILLED, checkpoint saved."""
    job = _JOB
    if job is None:
        raise gr.Error("No training is in progress.")
    if job.session != getattr(request, "session_hash", None):
        raise gr.Error("Only the page that started this training can stop it; it ends by "
                       f"itself within {MAX_TRAIN_SECONDS // 60} minutes.")
    job.stopped_because = "Stop was pressed"
    job.stop.set()
    return "Stopping after the current step…"


def stop_training_for_shutdown(wait_s: float = SHUTDOWN_WAIT_S) -> str | None:
    """When the app shuts down: end its training run as KILLED (checkpoint saved) and wait."""
    job = _JOB
    if job is None or job.thread is None:
        return None
    job.stopped_because = "the app shut down"
    job.stop.set()
    job.thread.join(wait_s)
    return job.run_id


# ----------------------------------------------------------------------------------------------
# The UI

INTRO = """# How much does a small LSTM recite?
Pick a logged run, give it a few words, and see which parts of what it writes are copied word for
word from its training text (highlighted), and why: loss curves, runs side by side, its gates at work."""

CSS = """
#highlight .textfield { display: block; word-break: normal; line-height: 1.9; }
#highlight .token-container { display: inline; }
#highlight .token { display: inline; -webkit-box-decoration-break: clone; box-decoration-break: clone; }
#highlight .token.highlighted { margin: 0; padding: 2px 3px; border-left: 3px solid rgba(0, 0, 0, 0.3); }
#refresh-btn { align-self: center; }
.report-stale .report-part { visibility: hidden; }
.report-stale #gen-btn { cursor: progress; opacity: 0.6; }
.gates .scroll { overflow-x: auto; }
.gates table { border-collapse: collapse; font-size: 11px; color: #111; }
.gates th { font-weight: normal; writing-mode: vertical-rl; transform: rotate(180deg);
            padding: 4px 1px; color: var(--body-text-color); white-space: nowrap; }
.gates th.rowname { writing-mode: horizontal-tb; transform: none; text-align: right;
                    padding-right: 8px; position: sticky; left: 0; background: var(--background-fill-primary); }
.gates td { min-width: 30px; text-align: center; padding: 4px 1px; border: 1px solid #fff; }
"""


def build_demo() -> gr.Blocks:
    """The Blocks UI, one builder per tab (ui/). Builds without touching the store: the run
    lists are filled on page load."""
    from ui import (
        about_tab,
        compare_tab,
        generate_tab,
        gradient_tab,
        inside_tab,
        loss_tab,
        map_tab,
        runs_header,
        train_tab,
    )

    with gr.Blocks(title="LSTM memorization demo") as demo:
        gr.Markdown(INTRO)
        header = runs_header.build()
        with gr.Tabs():
            generate = generate_tab.build(header.run)
            loss_tab.build(header.run, generate.prompt, generate.length)
            compare = compare_tab.build()
            inside_tab.build(header.run, generate)
            map_tab.build(header.run)
            gradient_tab.build(header.run)
            run_outputs = [header.run, header.table, compare.picker, header.notice]
            train_tab.build(run_outputs)
            about_tab.build()
        loaded = demo.load(refresh_runs, None, run_outputs, api_visibility="private")
        loaded.then(compare_if_ready, compare.picker, compare.outputs, api_visibility="private")
        header.refresh.click(refresh_runs, header.run, run_outputs, api_visibility="private")
    return demo


def ensure_runs(steps: int = 300) -> None:
    """Train a small default model when the store is empty, so the app has something to show."""
    runs = registry.list_runs()
    if not runs.empty:
        print(f"{len(runs)} run(s) in {registry.tracking_uri()}")
        return
    from training.tracking import train_run

    print(f"The store {registry.tracking_uri()} has no runs: training a small default model "
          f"({DEFAULT_RUN_NAME}: windows recipe, {DEFAULT_CORPUS.name}, {steps} steps) first…")
    config = TrainConfig.for_recipe("windows", steps=steps, embed_dim=64, hidden_size=64)
    run_id = train_run(config, run_name=DEFAULT_RUN_NAME, corpus_name=DEFAULT_CORPUS.name)
    print(f"trained run {run_id}")


def launch(demo: gr.Blocks, **kwargs):
    """Launch with the app's theme and styles (Gradio 6 takes them in launch())."""
    # After every event Gradio's queue rebuilds a traffic summary for its /monitoring page: a
    # pandas table of up to 10,000 past events, 5 ms per event at a few hundred and 19 ms at
    # 10,000 (measured), paid by every request of a long-lived Space. The page is turned off
    # here (its summary of our traffic was public), so the summary is never rebuilt.
    os.environ.setdefault("GRADIO_ANALYTICS_CACHE_FREQUENCY", str(10**12))
    # max_file_size makes Gradio refuse an oversized upload before it is even stored.
    return demo.queue(default_concurrency_limit=2, max_size=QUEUE_MAX_SIZE).launch(
        theme=gr.themes.Soft(), css=CSS, max_file_size=MAX_UPLOAD_BYTES,
        enable_monitoring=False, **kwargs)


def _sigterm_as_ctrl_c(signum, frame):
    raise KeyboardInterrupt  # Gradio's launch() stops the server on it, as on Ctrl-C


def main() -> int:
    try:
        ensure_runs()
    except registry.StoreError as err:  # locked, corrupt, unreachable: one line, no traceback
        print(f"app.py: {err}", file=sys.stderr)
        return 1
    signal.signal(signal.SIGTERM, _sigterm_as_ctrl_c)
    torch.set_num_threads(SERVE_THREADS)  # threads started from now on (the request workers)
    try:
        launch(build_demo(), server_name=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"))
    finally:  # Ctrl-C or SIGTERM: end a training run in progress as KILLED, checkpoint saved
        run_id = stop_training_for_shutdown()
        if run_id:
            print(f"app.py: stopped training run {run_id} (KILLED, last checkpoint saved)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
