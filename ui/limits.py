"""Every bound the app puts on a caller, and the checks that enforce them.

A public Space serves strangers on two shared CPUs, so each input is bounded before it is used
or echoed, and each refusal is one line that names the field (docs/limits.md lists them all).
"""

from __future__ import annotations

import html
import math
import re
import sys
import threading
import time
from collections import deque

import gradio as gr

from lstm_core.generate import SamplingConfig
from training.store import public

# Generation
MAX_LENGTH = 400  # words one request may generate
MAX_PROMPT_WORDS = 200  # words a prompt may have
CHARS_PER_WORD = 10  # characters allowed per allowed word, counted before a text is split
MAX_TEMPERATURE = 2.0  # the slider's ceiling; the API refuses more with the same message
MAX_TOP_K = 100_000
MAX_REFERENCE = 300  # characters of a run id, run name or models:/ URI
MAX_COMPARED = 8  # runs one comparison may overlay

# Training in the app (a shared machine: one run at a time, each bounded in cost and time)
MAX_UPLOAD_BYTES = 2_000_000
# Any other request body (a call's JSON inputs): the largest real one, the overfitting map's
# table sent back on a click, is tens of kilobytes.
MAX_REQUEST_BYTES = 1_000_000
# Uploads a caller hands to Train in an hour, counted per client address (a session is free to
# renew): each sits in Gradio's cache until read, so a stream of them could fill the disk.
MAX_UPLOAD_BYTES_PER_HOUR = 10_000_000  # five full uploads
MAX_STEPS, MAX_HIDDEN = 2000, 256
MIN_APP_VOCAB, MAX_APP_VOCAB, DEFAULT_APP_VOCAB = 100, 5000, 2000
MAX_DROP, MAX_AR = 0.8, 10.0  # weight/embedding dropout and AR/TAR ceilings
# The arithmetic one app training may cost (training.config.training_flops: steps x positions
# read x the cell's and output layer's size): a few minutes on two CPUs.
MAX_TRAIN_FLOPS = 6e12
MAX_TRAIN_SECONDS = 600  # an app training is stopped (KILLED, checkpoint kept) after this long
KEEP_APP_RUNS = 10  # app-trained runs kept; older ones are deleted after each training
MAX_RUN_NAME = 80  # characters
MAX_FORGET_BIAS = 5.0  # the forget-gate bias a training or a rerun may start from, +- (sigmoid(5) = 0.993)

# The "Why an LSTM" tab's live rerun of the long-range task (one cell, one k)
MAX_LIVE_K = 40  # distractor words; a rerun at 40 takes seconds on one core
MAX_LIVE_SECONDS = 60  # a rerun still training after this long stops and shows what it reached

# Serving
QUEUE_MAX_SIZE = 24  # requests waiting at once; past that a caller is told the queue is full
# Model work runs two requests at once, one core each: a word's small matrix products gain
# nothing from a second core, and a second request keeps both cores busy.
COMPUTE_SLOT = dict(concurrency_id="compute", concurrency_limit=2)
SHOWN_CHARS = 60  # characters of a caller's value echoed back in an error
# Gradio keeps state for every session (page load or API client) it has seen, about 0.2 MB
# each here (a copy of every component's config), and drops the least recently used only past
# this many: its default of 10,000 would let a stream of new visitors take 2 GB.
MAX_SESSIONS = 500


_uploads: dict[str, deque] = {}  # caller -> (time, bytes) of their uploads in the last hour
_uploads_lock = threading.Lock()


def caller(request) -> str:
    """Who sent a request, for per-caller bounds: the client's address (or the session)."""
    client = getattr(request, "client", None)
    return getattr(client, "host", None) or getattr(request, "session_hash", None) or ""


def _last_hour(who: str, now: float) -> deque:
    """The caller's uploads of the last hour (older ones dropped); call under _uploads_lock."""
    seen = _uploads.get(who, deque())
    while seen and seen[0][0] <= now - 3600:
        seen.popleft()
    return seen


def charge_upload(who: str, size: int, now: float | None = None) -> None:
    """Count an upload of ``size`` bytes against the caller's hourly allowance, or refuse it."""
    now = time.monotonic() if now is None else now
    with _uploads_lock:
        if len(_uploads) >= 1000:  # forget callers with nothing left in the hour
            for key in [k for k in _uploads if not _last_hour(k, now)]:
                del _uploads[key]
        seen = _last_hour(who, now)
        used = sum(n for _, n in seen)
        if used + size > MAX_UPLOAD_BYTES_PER_HOUR:
            wait = math.ceil((seen[0][0] + 3600 - now) / 60) if seen else 60
            raise refusal(f"Uploads are limited to {MAX_UPLOAD_BYTES_PER_HOUR / 1e6:g} MB an hour "
                          f"from one visitor, and {used / 1e6:.1f} MB came in the last hour: try "
                          f"again in {wait} minute(s), or train on the default corpus.")
        seen.append((now, size))
        _uploads[who] = seen


def refusal(message: str) -> gr.Error:
    """The error a caller sees for input the app refuses. The server log gets one line for it,
    not a traceback: a refusal is the app working, not failing."""
    print(f"refused: {' '.join(message.split())[:200]}", file=sys.stderr, flush=True)
    return gr.Error(message, print_exception=False)


def shown(value) -> str:
    """A caller's value echoed back in an error: a short prefix, never rendered as HTML."""
    if isinstance(value, str):
        text = repr(value[:SHOWN_CHARS]) + ("…" if len(value) > SHOWN_CHARS else "")
    elif isinstance(value, int) and abs(value) >= 2**63:  # its digits could be thousands long
        text = "a very large integer"
    elif isinstance(value, (int, float, type(None))):
        text = repr(value)
    else:
        text = f"a {type(value).__name__}"
    return html.escape(text, quote=False)


def plain(text: str) -> str:
    """A stored text (a run name) shown in Markdown as itself: no HTML, no Markdown markup."""
    escaped = html.escape(text, quote=False)
    return re.sub(r"([\\`*_{}\[\]()#+\-.!|>~])", r"\\\1", escaped)


def number(value, name: str, low: float, high: float, whole: bool = False) -> float | int:
    """``value`` as a number from ``low`` to ``high`` (a whole one if ``whole``), or one line
    that names the field, its range and (briefly) what was sent."""
    kind = "a whole number" if whole else "a number"
    rule = f"{name} must be {kind} from {low:g} to {high:g}"
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise refusal(f"{rule}, got {shown(value)}")
    try:
        number = float(value[:SHOWN_CHARS] if isinstance(value, str) else value)
    except (ValueError, OverflowError):
        raise refusal(f"{rule}, got {shown(value)}") from None
    if not math.isfinite(number) or not low <= number <= high or (whole and number != int(number)):
        raise refusal(f"{rule}, got {shown(value)}")
    return int(number) if whole else number


def choice(value, name: str, options) -> str:
    if not isinstance(value, str) or value not in options:
        raise refusal(f"{name} must be one of {', '.join(options)}, got {shown(value)}")
    return value


def text(value, what: str = "The prompt", max_words: int = MAX_PROMPT_WORDS) -> str:
    """The one length check for every text a caller hands in for the model to read.

    Characters are counted first, so a huge text is refused before it is split into words.
    """
    if value is None:
        return ""
    if not isinstance(value, str):
        raise refusal(f"{what} must be text, got {shown(value)}")
    max_chars = max_words * CHARS_PER_WORD
    if len(value) > max_chars:
        raise refusal(f"{what} is {len(value):,} characters long; the limit is {max_chars:,} "
                       f"characters and {max_words} words.")
    words = len(value.split())
    if words > max_words:
        raise refusal(f"{what} has {words:,} words; the limit is {max_words} words.")
    return value


def reference(value) -> str:
    """A run id, run name or model URI as typed or picked: stripped, bounded, non-empty."""
    if value is None or (isinstance(value, str) and not value.strip()):
        raise refusal("No run selected. Pick one at the top, or train one in the Train tab.")
    if not isinstance(value, str):
        raise refusal(f"A run must be named by a text (id, name or models:/ URI), got "
                       f"{shown(value)}")
    if len(value) > MAX_REFERENCE:
        raise refusal(f"A run reference has at most {MAX_REFERENCE} characters; got "
                       f"{len(value):,} starting {shown(value)}")
    return value.strip()


def sampling(length, temperature, top_k, top_p, seed) -> SamplingConfig:
    """The generation controls as one value; top_k 0 and top_p 1 mean "no filtering"."""
    length = number(length, "Length", 1, MAX_LENGTH, whole=True)
    temperature = number(temperature, "Temperature", 0, MAX_TEMPERATURE)
    top_k = number(0 if top_k is None else top_k, "Top-k", 0, MAX_TOP_K, whole=True)
    top_p = number(1 if top_p is None else top_p, "Top-p", 0, 1)
    if top_p == 0:
        raise refusal("Top-p must be above 0 and at most 1 (1 = no nucleus filtering)")
    seed = number(0 if seed is None else seed, "Random seed", 0, 2**31 - 1, whole=True)
    try:
        return SamplingConfig(length, temperature, top_k or None, top_p, seed)
    except ValueError as err:
        raise refusal(public(str(err))) from None
