"""The Gradio app: pick a logged run, generate text, and see how much of it is recited.

Layout (as in gradio-app/testing-gradio-apps): plain functions first, each raising gr.Error for
bad input, then ``build_demo()`` with the UI, then ``main()``. Importing this module loads no
model and opens no store; ``python app.py`` does both (and trains a small default model first
when the store is empty).

    python app.py            # http://127.0.0.1:7860 (GRADIO_SERVER_NAME / _PORT, MLFLOW_TRACKING_URI)
"""

from __future__ import annotations

import bisect
import html
import math
import os
import threading
import time
from functools import lru_cache
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

from lstm_core.generate import SamplingConfig, encode_prompt, stream_ids  # noqa: E402
from lstm_core.memorization import SourceIndex, analyze  # noqa: E402
from lstm_core.text import PARAGRAPH, decode_text, detokenize, tokenize  # noqa: E402
from training import registry  # noqa: E402
from training.config import DEFAULT_CORPUS, RECIPES, TrainConfig  # noqa: E402

MAX_LENGTH = 400  # words one request may generate
MIN_SPAN = 4  # shortest verbatim run (in words) that counts as a copied span
# Send the growing text at most this often: each update costs Gradio several ms of server work
# for every output, far more than a word costs the model (bench.load).
STREAM_SECONDS = 0.1
SWEEP_TEMPERATURES = (0.0, 0.5, 0.8, 1.0, 1.3, 1.6)
SWEEP_SEEDS = 3  # samples per temperature above 0 (greedy needs only one)
SWEEP_MAX_LENGTH = 80  # words per sample in the temperature sweep
HEATMAP_MAX_WORDS = 150  # words shown in the gate heatmap
HEATMAP_UNITS = 6  # single cell units shown under the means
MAX_UPLOAD_BYTES = 2_000_000
MAX_STEPS, MAX_HIDDEN = 2000, 256
DEFAULT_RUN_NAME = "demo-windows-default"
BUSY = "A training run is already in progress, try again in a minute."
EMPTY_STORE = ("**No runs are logged yet.** Train one in the **Train** tab (the default corpus "
               "takes a minute or two); it is selected here when done.")
SPAN_COLUMNS = ["copied text", "words", "where in the source", "the source there (in context)"]
_TRAIN_LOCK = threading.Lock()  # one training at a time on a shared machine


# ----------------------------------------------------------------------------------------------
# Runs


def run_choices(runs: pd.DataFrame) -> list[tuple[str, str]]:
    """(label, run_id) for every usable run (runs still training are left out)."""
    rows = runs[runs["status"] != "RUNNING"].fillna({"name": "(unnamed)", "recipe": "?"})
    return [(f"{r.name or '(unnamed)'} · {r.recipe or '?'}"
             + (f" · val loss {r.val_loss:.2f}" if pd.notna(r.val_loss) else "")
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
        raise gr.Error(f"Cannot read the run store {registry.tracking_uri()}: {err}") from None


def refresh_runs(selected: str | None = None):
    """Re-read the store: (run selector, runs table, compare selector, empty-store notice)."""
    runs = list_runs()
    choices = run_choices(runs)
    ids = [run_id for _, run_id in choices]
    value = selected if selected in ids else default_run(runs[runs["run_id"].isin(ids)])
    return (gr.Dropdown(choices=choices, value=value), runs_table(runs),
            gr.Dropdown(choices=choices, value=ids[:2], multiselect=True),
            gr.Markdown(EMPTY_STORE if not ids else "", visible=not ids))


def load(run_id: str | None) -> registry.LoadedRun:
    """The run's model, vocabulary and source text (cached by the registry)."""
    if not run_id:
        raise gr.Error("No run selected. Pick one at the top, or train one in the Train tab.")
    try:
        return registry.load_run(str(run_id))
    except ValueError as err:
        raise gr.Error(str(err)) from None


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


def _number(value, name: str, low: float, high: float, whole: bool = False) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise gr.Error(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(number) or not low <= number <= high or (whole and number != int(number)):
        kind = "a whole number" if whole else "a number"
        raise gr.Error(f"{name} must be {kind} from {low:g} to {high:g}, got {value!r}")
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
        raise gr.Error(str(err)) from None


def suggest_seed(run_id: str | None, seed_text: str):
    """Keep the seed when the run knows its words, else offer the first words of its source."""
    if not run_id:
        return gr.skip()
    try:
        loaded = registry.load_run(str(run_id))
    except ValueError:
        return gr.skip()  # the error shows when generating
    scheme = loaded.vocab.scheme
    tokens = tokenize(seed_text or "", scheme)
    if tokens and not loaded.vocab.unknown_words(tokens):
        return gr.skip()
    return detokenize([t for t in loaded.source_tokens[:12] if t != PARAGRAPH][:4], scheme)


def encode_seed(seed_text: str, loaded: registry.LoadedRun) -> list[int]:
    try:
        return encode_prompt(seed_text, loaded.vocab)
    except ValueError as err:  # empty prompt, or unknown words (named in the message)
        raise gr.Error(str(err)) from None


# ----------------------------------------------------------------------------------------------
# Generation and the memorization report


def highlight(prompt: list[str], new: list[str], spans, scheme: str) -> list[tuple[str, str | None]]:
    """HighlightedText value: the seed, each copied span labelled "copied", novel words plain.

    The pieces are cut from the detokenized text itself (the text of the first k tokens is
    always a prefix of the whole), so they join up to exactly the text shown above.
    """
    tokens, n = prompt + new, len(prompt)
    parts, i = [(0, n, "seed")], 0
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
            f"(highlighted below) · {len(report.spans)} span(s).")


def novelty_frame(report) -> pd.DataFrame:
    return pd.DataFrame({"n": [str(n) for n in report.novelty],
                         "novel share": [round(v, 3) for v in report.novelty.values()]})


def continuation(run_id: str, prompt: list[str], new: list[str], scheme: str):
    """(note, model's continuation, the source's continuation) where the seed is in the source."""
    model_text = detokenize(new, scheme)
    offset = source_index(run_id)[0].locate(prompt)
    if offset is None:
        return ("The seed does not occur word for word in the training text, so there is no "
                "source continuation to set beside the model's.", model_text, "")
    start = offset + len(prompt)
    source = load(run_id).source_tokens[start:start + len(new)]
    same = next((i for i, (a, b) in enumerate(zip(new, source, strict=False)) if a != b),
                min(len(new), len(source)))
    note = (f"The seed occurs in the training text at **{position(run_id, offset)}**. The model "
            f"and the source agree on the first **{same} of {len(new)}** words that follow.")
    return note, model_text, detokenize(source, scheme)


def generate(run_id: str, seed_text: str, length: float = 60, temperature: float = 0.8,
             top_k: float = 0, top_p: float = 1.0, seed: float = 0):
    """Generate text from a seed with a logged run, then measure how much of it is copied.

    Args:
        run_id: the MLflow run id of the model to use.
        seed_text: the words the text starts with (they must be in the model's vocabulary).
        length: how many words to generate (1 to 400).
        temperature: 0 = greedy (always the likeliest word); higher = more random.
        top_k: sample only among the k likeliest words (0 = no limit).
        top_p: sample only among the likeliest words whose probabilities add up to p (1 = all).
        seed: random seed, so the same settings give the same text.
    Returns:
        The text (seed + generated words) first, then the memorization report: highlighted
        text, headline figures, copied spans, n-gram novelty, and the source's continuation.
    """
    loaded = load(run_id)
    sampling = sampling_config(length, temperature, top_k, top_p, seed)
    prompt_ids = encode_seed(seed_text, loaded)
    scheme = loaded.vocab.scheme
    prompt, new = loaded.vocab.decode(prompt_ids), []
    # While streaming, the report's outputs are sent as these plain values, never gr.skip():
    # Gradio answers a skip by rebuilding the component and its config (a profile of the server
    # under load: a third of its time), and an unchanged value costs it next to nothing.
    cleared = (None, "*Generating… the report follows when the text is done.*", None, None, "", "", "")
    last_sent = 0.0
    for i, token_id in enumerate(stream_ids(loaded.model, prompt_ids, sampling)):
        new.append(loaded.vocab.id_to_token(token_id))
        if i == 0 or time.perf_counter() - last_sent >= STREAM_SECONDS:  # first words at once
            yield (detokenize(prompt + new, scheme), *cleared)
            last_sent = time.perf_counter()
    report = analyze(new, source_index(loaded.run_id)[0], min_len=MIN_SPAN)
    yield (detokenize(prompt + new, scheme), highlight(prompt, new, report.spans, scheme),
           headline(report, len(new)), spans_table(loaded.run_id, new, report.spans, scheme),
           novelty_frame(report), *continuation(loaded.run_id, prompt, new, scheme))


# ----------------------------------------------------------------------------------------------
# Loss curves and the temperature sweep


def history(run_id: str) -> pd.DataFrame:
    try:
        return registry.metric_history(run_id)
    except Exception as err:  # MLflow errors for unknown or malformed ids
        raise gr.Error(f"Cannot read the metrics of run {run_id!r}: {err}") from None


def loss_curves(run_id: str | None):
    """The run's train and validation loss by step, with the lowest validation loss marked."""
    if not run_id:
        return pd.DataFrame(columns=["step", "value", "metric"]), "No run selected."
    curves = history(run_id)
    try:
        run = registry.get_run(run_id)
    except ValueError as err:
        raise gr.Error(str(err)) from None
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
        note += (f"\n\nExtractable memorization: **{metrics['extractable_memorization']:.0%}** of "
                 "tested source passages are continued exactly (given 8 words, the next 8).")
    return curves, note


def temperature_sweep(run_id: str, seed_text: str, length: float = 60,
                      progress=gr.Progress()):  # noqa: B008
    """Copied 4-gram share and copied-word share against temperature, for one run and seed."""
    loaded = load(run_id)
    prompt_ids = encode_seed(seed_text, loaded)
    length = min(_number(length, "Length", 1, MAX_LENGTH, whole=True), SWEEP_MAX_LENGTH)
    index, rows = source_index(loaded.run_id)[0], []
    for k, temperature in enumerate(SWEEP_TEMPERATURES):
        progress(k / len(SWEEP_TEMPERATURES), desc=f"temperature {temperature}")
        reports = []
        for seed in range(1 if temperature == 0 else SWEEP_SEEDS):
            sampling = SamplingConfig(length, temperature, seed=seed)
            new = loaded.vocab.decode(stream_ids(loaded.model, prompt_ids, sampling))
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


def _fmt(value) -> str:
    if value is None or pd.isna(value):
        return "—"
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.4g}"


def compare_runs(run_ids: list[str] | None):
    """Loss curves of two or more runs overlaid, the params that differ, the final metrics."""
    run_ids = [r for r in (run_ids or []) if r]
    if len(run_ids) < 2:
        raise gr.Error("Pick at least two runs to compare.")
    runs = list_runs().set_index("run_id")
    missing = [r for r in run_ids if r not in runs.index]
    if missing:
        raise gr.Error(f"There is no run with id {missing[0]!r} in the store.")
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
    metric_table = pd.DataFrame([{"metric": f, **{names[r]: _fmt(runs.loc[r, f]) for r in run_ids}}
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


def gate_heatmap(run_id: str, text: str, layer: float = 1, unit: float = -1) -> str:
    """An HTML heatmap of the input, forget and output gates and the cell state, word by word."""
    loaded = load(run_id)
    cfg = loaded.model.config
    layer = _number(layer, "Layer", 1, cfg.num_layers, whole=True)
    unit = _number(unit, "Unit", -1, cfg.hidden_size - 1, whole=True)
    tokens = tokenize(text or "", loaded.vocab.scheme)[:HEATMAP_MAX_WORDS]
    if not tokens:
        raise gr.Error("There is no text to look inside: generate one first (or type one).")
    unknown = loaded.vocab.unknown_words(tokens)
    if unknown:
        raise gr.Error(f"These words are not in the model's vocabulary: {', '.join(unknown[:10])}")
    acts = {k: v[layer - 1] for k, v in  # each (T, H)
            loaded.model.inspect(torch.tensor([loaded.vocab.encode(tokens)])).items()}
    pick = (lambda v: v.mean(-1)) if unit < 0 else (lambda v: v[:, unit])
    rows = [("input gate i", pick(acts["input"]), False), ("forget gate f", pick(acts["forget"]), False),
            ("output gate o", pick(acts["output"]), False), ("cell state c", pick(acts["cell"]), True)]
    if unit < 0:  # a mean hides what single units do: add the cells that change most
        busiest = acts["cell"].var(0).topk(min(HEATMAP_UNITS, cfg.hidden_size)).indices.tolist()
        rows += [(f"cell c, unit {u}", acts["cell"][:, u], True) for u in busiest]
    head = "".join(f"<th>{html.escape('¶' if t == PARAGRAPH else t)}</th>" for t in tokens)
    body = []
    for label, values, signed in rows:
        values = values.tolist()
        scale = max(max(abs(v) for v in values), 1e-6)
        cells = "".join(f'<td title="{html.escape(t)}: {v:.3f}" style="background:'
                        f'{_cell_color(v, signed, scale)}">{v:.2f}</td>'
                        for t, v in zip(tokens, values, strict=True))
        body.append(f"<tr><th class='rowname'>{label}</th>{cells}</tr>")
    what = (f"gates and cell state averaged over all {cfg.hidden_size} units, then the "
            f"{HEATMAP_UNITS} units whose cell state varies most") if unit < 0 else f"unit {unit}"
    return (f"<div class='gates'><p>Layer {layer}, {what}; first {len(tokens)} words. Gates run "
            "from 0 (white: closed) to 1 (blue: open); a cell state is blue when positive, red "
            f"when negative.</p><div class='scroll'><table><tr><th class='rowname'></th>{head}</tr>"
            f"{''.join(body)}</table></div></div>")


def gates_after_generate(run_id: str, text: str, layer: float, unit: float):
    try:
        return gate_heatmap(run_id, text, layer, unit)
    except gr.Error:
        return gr.skip()


# ----------------------------------------------------------------------------------------------
# Training in the browser


def read_upload(path: str | None) -> tuple[str, str]:
    """(text, name) of an uploaded .txt, or of the default corpus when nothing was uploaded."""
    if not path:
        return DEFAULT_CORPUS.read_text(encoding="utf-8"), DEFAULT_CORPUS.name
    name = Path(path).name
    if os.path.getsize(path) > MAX_UPLOAD_BYTES:
        raise gr.Error(f"{name} is larger than {MAX_UPLOAD_BYTES // 1_000_000} MB; upload a "
                       "shorter text.")
    try:
        return decode_text(Path(path).read_bytes(), name), name
    except ValueError as err:  # binary, not UTF-8, or empty
        raise gr.Error(str(err)) from None


def train_config(recipe: str, steps, hidden_size, dropout, lr) -> TrainConfig:
    if recipe not in RECIPES:
        raise gr.Error(f"Recipe must be one of {', '.join(RECIPES)}, got {recipe!r}")
    steps = _number(steps, "Steps", 10, MAX_STEPS, whole=True)
    hidden = _number(hidden_size, "Hidden size", 8, MAX_HIDDEN, whole=True)
    try:
        return TrainConfig.for_recipe(
            recipe, steps=steps, hidden_size=hidden, embed_dim=hidden,
            dropout=_number(dropout, "Dropout", 0, 0.8), lr=_number(lr, "Learning rate", 1e-5, 100),
            eval_interval=max(10, steps // 20))
    except ValueError as err:
        raise gr.Error(str(err)) from None


def recipe_defaults(recipe: str):
    """The recipe's own dropout and learning rate, and a default run name.

    The seed recipe uses Adam at 0.005 and no dropout; the windows recipe plain SGD at 20.
    """
    config = TrainConfig.for_recipe(recipe if recipe in RECIPES else "windows")
    return config.dropout, config.lr, gr.Textbox(placeholder=f"app-{recipe}")


def train(upload: str | None, recipe: str = "windows", steps: float = 300,
          hidden_size: float = 64, dropout: float = 0.4, lr: float = 20.0,
          run_name: str = "", progress=gr.Progress()):  # noqa: B008
    """Train a run on the uploaded text (or the default corpus), log it to MLflow, select it."""
    from training.tracking import train_run  # the trainer is only needed here

    config = train_config(recipe, steps, hidden_size, dropout, lr)
    text, corpus_name = read_upload(upload)
    if not _TRAIN_LOCK.acquire(blocking=False):
        raise gr.Error(BUSY)
    lines, state = [f"training on {corpus_name} ({len(text):,} characters)…"], {"step": 0, "loss": math.nan}

    def work():
        try:
            state["run_id"] = train_run(
                config, run_name=(run_name or "").strip() or f"app-{recipe}", text=text,
                corpus_name=corpus_name, on_log=lines.append,
                on_step=lambda step, total, loss: state.update(step=step, loss=loss))
        except Exception as err:  # handed to the event below, shown as a gr.Error
            state["error"] = err
        finally:
            _TRAIN_LOCK.release()

    worker = threading.Thread(target=work, daemon=True)
    worker.start()
    while worker.is_alive():
        worker.join(0.5)
        loss = "…" if math.isnan(state["loss"]) else f"{state['loss']:.3f}"
        readout = f"step {state['step']}/{config.steps} · loss {loss}"
        progress(state["step"] / config.steps, desc=readout)
        yield (*[gr.skip()] * 4, readout, "\n".join(lines[-12:]))
    if "error" in state:
        raise gr.Error(f"Training failed: {state['error']}")
    done = f"Done: run {state['run_id']} is logged to MLflow and selected above."
    yield (*refresh_runs(state["run_id"]), done, "\n".join([*lines[-11:], done]))


# ----------------------------------------------------------------------------------------------
# The UI

INTRO = """# How much does a small LSTM recite?
Pick a logged run, give it a few words, and see which parts of what it writes are copied word for
word from its training text (highlighted), and why: loss curves, runs side by side, its gates at work."""

ABOUT = """### What the figures mean
- **Copied span**: a run of at least 4 generated words that appears word for word in the training
  text. The table says where (paragraph and word, counted from 1; punctuation marks count as words).
- **Copied 4-grams**: the share of the generated 4-word sequences that occur in the training text.
  The **n-gram novelty** plot is its generalisation (McCoy et al. 2021, *How much do language models
  copy from their training data?*): the share of generated n-grams, for n = 1…8, that never occur in
  the training text. Human text has high novelty from n = 3 or 4; a model that recites has low novelty.
- **Extractable memorization** (Carlini et al. 2022, *Quantifying Memorization Across Neural
  Language Models*): give the model 8 words of its training text; does greedy decoding continue with
  the next 8 exactly? The share of passages where it does. Logged for every run after training.
- **Loss curves**: training loss keeps falling; validation loss (on a held-out tail of the text)
  bottoms out, then rises as the model learns the training text by heart. For windows-recipe
  runs the app loads the checkpoint with the lowest validation loss.
- **Temperature**: 0 always takes the likeliest word (greedy), which recites most; higher
  temperatures sample more freely, so copying falls.
- **Gates**: the input gate decides how much new information enters the cell, the forget gate how
  much of the old cell state is kept, the output gate how much of the cell is shown as the hidden state.

### How the demo runs were trained
Both learn from the project's own text (`corpus/lighthouse_keeper.txt`) with the same tokenizer
and the same held-out last 10% of the text, so their validation losses compare directly
(`python -m training.demo` rebuilds them).
- **demo-seed** (seed recipe): the write-up's method, batches of 128 random prefix → next-word
  pairs, loss on the last word only, no dropout, 600 steps. The app loads its final weights. It
  memorizes: greedy text from a seed in the source recites it.
- **demo-windows** (windows recipe): every position of random 32-word windows is a training
  target, with plain SGD (learning rate 20, cut to a quarter when validation stops improving,
  gradients clipped at 0.25), dropout 0.4 and tied input/output weights; the app loads the
  checkpoint with the lowest validation loss. It generalizes better (lower validation loss) and
  copies less.

Runs are tracked in MLflow; the table at the top lists every logged run."""

CSS = """
#highlight .textfield { display: block; word-break: normal; line-height: 1.9; }
#highlight .token-container { display: inline; }
#highlight .token { display: inline; -webkit-box-decoration-break: clone; box-decoration-break: clone; }
#highlight .token.highlighted { margin: 0; padding: 2px 3px; border-left: 3px solid rgba(0, 0, 0, 0.3); }
#refresh-btn { align-self: center; }
.gates .scroll { overflow-x: auto; }
.gates table { border-collapse: collapse; font-size: 11px; color: #111; }
.gates th { font-weight: normal; writing-mode: vertical-rl; transform: rotate(180deg);
            padding: 4px 1px; color: var(--body-text-color); white-space: nowrap; }
.gates th.rowname { writing-mode: horizontal-tb; transform: none; text-align: right;
                    padding-right: 8px; position: sticky; left: 0; background: var(--background-fill-primary); }
.gates td { min-width: 30px; text-align: center; padding: 4px 1px; border: 1px solid #fff; }
"""


def build_demo() -> gr.Blocks:
    """The Blocks UI. Builds without touching the store; run lists are filled on page load."""
    with gr.Blocks(title="LSTM memorization demo") as demo:
        gr.Markdown(INTRO)
        notice = gr.Markdown(visible=False, elem_id="notice")
        with gr.Row(equal_height=False):
            run = gr.Dropdown(label="Model (an MLflow run)", allow_custom_value=True, scale=5,
                              info="Each logged training run; newest demo run first.", elem_id="run")
            refresh = gr.Button("↻ Refresh runs", scale=0, min_width=150, size="sm",
                                elem_id="refresh-btn")
        with gr.Accordion("All logged runs", open=False):
            table = gr.Dataframe(label="Runs in the MLflow store (newest first)", interactive=False,
                                 elem_id="runs-table")
        with gr.Tabs():
            with gr.Tab("Generate", id="generate"):
                with gr.Row():
                    with gr.Column(scale=1, min_width=280):
                        seed = gr.Textbox(label="Seed text", value="i was twenty-three when",
                                          info="The words the text starts with; they must occur "
                                               "in the training text.", elem_id="seed")
                        length = gr.Slider(1, MAX_LENGTH, value=60, step=1, label="Length (words)",
                                           info="How many words to generate.", elem_id="length")
                        temperature = gr.Slider(0, 2, value=0.7, step=0.05, label="Temperature",
                                                info="0 = greedy (always the likeliest word); "
                                                     "higher = more random.", elem_id="temperature")
                        top_k = gr.Slider(0, 200, value=0, step=1, label="Top-k",
                                          info="Sample only among the k likeliest words (0 = all).")
                        top_p = gr.Slider(0.05, 1, value=1, step=0.05, label="Top-p",
                                          info="Sample only among the likeliest words whose "
                                               "probabilities add up to p (1 = all).")
                        rng_seed = gr.Number(value=0, precision=0, minimum=0, label="Random seed",
                                             info="The same seed and settings give the same text.")
                        gen_btn = gr.Button("Generate", variant="primary", elem_id="gen-btn")
                    with gr.Column(scale=2):
                        out = gr.Textbox(label="Generated text", lines=5, elem_id="out",
                                         buttons=["copy"], interactive=False)
                        figures = gr.Markdown(elem_id="figures")
                        marked = gr.HighlightedText(
                            label="Copied from the training text (spans of 4+ words)",
                            color_map={"copied": "#f97316", "seed": "#94a3b8"}, show_legend=True,
                            show_inline_category=False, elem_id="highlight")
                        spans = gr.Dataframe(pd.DataFrame(columns=SPAN_COLUMNS), wrap=True,
                                             label="Copied spans", interactive=False,
                                             elem_id="spans", max_height=320,
                                             column_widths=["38%", "9%", "18%", "35%"])
                with gr.Row():
                    novelty = gr.BarPlot(x="n", y="novel share", y_lim=[0, 1], height=260,
                                         title="n-gram novelty (share never in the source)",
                                         x_title="n (words)", scale=1, min_width=280,
                                         elem_id="novelty")
                    with gr.Column(scale=2):
                        seed_note = gr.Markdown("Where the seed occurs in the training text, "
                                                "its own continuation shows beside the model's.")
                        with gr.Row():
                            model_cont = gr.Textbox(label="The model's continuation", lines=5,
                                                    interactive=False)
                            source_cont = gr.Textbox(label="The training text's own continuation",
                                                     lines=5, interactive=False)
            with gr.Tab("Loss & temperature", id="loss"):
                loss_plot = gr.LinePlot(x="step", y="value", color="metric", height=320,
                                        title="Loss by training step", y_title="cross-entropy loss",
                                        elem_id="loss-plot")
                loss_note = gr.Markdown()
                gr.Markdown("**Memorization against temperature**: a few samples per temperature "
                            "from the seed and length on the Generate tab.")
                sweep_btn = gr.Button("Measure copying at temperatures 0 … 1.6", elem_id="sweep-btn")
                sweep_plot = gr.LinePlot(x="temperature", y="share", color="measure", height=300,
                                         y_lim=[0, 1], title="Copying against temperature",
                                         elem_id="sweep-plot")
                sweep_note = gr.Markdown()
            with gr.Tab("Compare runs", id="compare"):
                compare = gr.Dropdown(label="Runs to compare", multiselect=True,
                                      allow_custom_value=True, elem_id="compare",
                                      info="Pick two or more runs.")
                compare_btn = gr.Button("Compare", variant="primary", elem_id="compare-btn")
                compare_plot = gr.LinePlot(x="step", y="value", color="series", height=340,
                                           title="Loss curves overlaid", elem_id="compare-plot")
                with gr.Row():
                    params = gr.Dataframe(label="Params that differ", interactive=False)
                    finals = gr.Dataframe(label="Final metrics", interactive=False)
            with gr.Tab("Look inside", id="inside"):
                gr.Markdown("The gates while the model reads the last generated text, one column "
                            "per word (drawn after each generation).")
                with gr.Row():
                    layer = gr.Number(value=1, precision=0, minimum=1, label="Layer",
                                      info="Which LSTM layer (1 = nearest the words).")
                    unit = gr.Number(value=-1, precision=0, minimum=-1, label="Unit",
                                     info="-1 = mean over all units; 0, 1, … = one unit of the cell.")
                    gates_btn = gr.Button("Show the gates", elem_id="gates-btn")
                gates = gr.HTML(elem_id="gates")
            with gr.Tab("Train", id="train"):
                with gr.Row():
                    with gr.Column():
                        upload = gr.File(label="Training text (.txt, UTF-8, up to 2 MB)",
                                         file_types=[".txt"], elem_id="upload")
                        gr.Markdown("Leave empty to train on the default corpus "
                                    f"({DEFAULT_CORPUS.name}).")
                        recipe = gr.Radio(list(RECIPES), value="windows", label="Recipe",
                                          info="seed: the write-up's prefix pairs, memorizes; "
                                               "windows: every position, with validation.")
                        run_name = gr.Textbox(label="Run name", placeholder="app-windows",
                                              info="A name for the MLflow run (optional).")
                    with gr.Column():
                        steps = gr.Slider(10, MAX_STEPS, value=300, step=10, label="Steps", elem_id="train-steps",
                                          info="Optimizer steps; 300 take a minute or two on "
                                               "two CPUs.")
                        hidden = gr.Slider(16, MAX_HIDDEN, value=64, step=16, label="Hidden size",
                                           info="LSTM state size (also the word-vector size).")
                        dropout = gr.Slider(0, 0.8, value=0.4, step=0.05, label="Dropout",
                                            info="Randomly zeroes activations while training; "
                                                 "fights memorization.")
                        lr = gr.Number(value=20.0, minimum=1e-5, maximum=100, label="Learning rate",
                                       info="Step size: the windows recipe uses plain SGD (20), "
                                            "the seed recipe Adam (0.005).")
                train_btn = gr.Button("Train", variant="primary", elem_id="train-btn")
                train_status = gr.Textbox(label="Progress", interactive=False, elem_id="train-status",
                                          value="The progress bar and the latest loss show here.")
                readout = gr.Textbox(label="Training log", lines=8, interactive=False,
                                     elem_id="train-log")
            with gr.Tab("About", id="about"):
                gr.Markdown(ABOUT)

        run_outputs = [run, table, compare, notice]
        loaded = demo.load(refresh_runs, None, run_outputs, api_visibility="private")
        loaded.then(compare_if_ready, compare, [compare_plot, params, finals],
                    api_visibility="private")
        refresh.click(refresh_runs, run, run_outputs, api_visibility="private")
        run.change(loss_curves, run, [loss_plot, loss_note], api_name="loss_curves")
        run.change(suggest_seed, [run, seed], seed, api_visibility="private")
        gen = gen_btn.click(
            generate, [run, seed, length, temperature, top_k, top_p, rng_seed],
            [out, marked, figures, spans, novelty, seed_note, model_cont, source_cont],
            api_name="generate", show_progress_on=out,
            api_description="Generate text with a logged run; the first output is the final text.")
        gen.success(gates_after_generate, [run, out, layer, unit], gates, api_visibility="private")
        sweep_btn.click(temperature_sweep, [run, seed, length], [sweep_plot, sweep_note],
                        api_name="temperature_sweep", show_progress_on=sweep_plot)
        compare_btn.click(compare_runs, compare, [compare_plot, params, finals],
                          api_name="compare_runs", show_progress_on=compare_plot)
        gates_btn.click(gate_heatmap, [run, out, layer, unit], gates, api_name="gates")
        train_btn.click(train, [upload, recipe, steps, hidden, dropout, lr, run_name],
                        [*run_outputs, train_status, readout], api_name="train", concurrency_limit=2,
                        show_progress_on=train_status)
        recipe.change(recipe_defaults, recipe, [dropout, lr, run_name], api_visibility="private")
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
    # max_file_size makes Gradio refuse an oversized upload before it is even stored.
    return demo.queue(default_concurrency_limit=2).launch(
        theme=gr.themes.Soft(), css=CSS, max_file_size=MAX_UPLOAD_BYTES, **kwargs)


def main() -> None:
    ensure_runs()
    launch(build_demo(), server_name=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"))


if __name__ == "__main__":
    main()
