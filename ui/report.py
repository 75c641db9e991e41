"""The memorization report of a generated text: which words are copied from the training text,
from where, how novel the rest is, and what the source itself says next."""

from __future__ import annotations

import bisect
import shlex
from functools import lru_cache

import pandas as pd

from lstm_core.generate import SamplingConfig
from lstm_core.memorization import analyze
from lstm_core.text import detokenize
from training import runs
from training.runs import LoadedRun
from ui import limits
from ui.runs import kept_label, position

MIN_SPAN = 4  # shortest verbatim run (in words) that counts as a copied span
LOOP_REPEATED = 0.25  # a text repeating this share of its own 4-grams or more is read as looping
LONG_SPAN = 12  # a copied span this long (words) is recitation, whatever else the text does
MAX_PASSAGES_LISTED = 12  # copied spans named in the "which source passages" line
REPEATS = "repeats itself"  # the highlight's label for words the text already wrote
LOOP_TEMPERATURE = 0.8  # suggested to break a greedy loop
SPAN_COLUMNS = ["copied text", "words", "where in the source", "the source there (in context)"]


def report(reference: str, loaded: LoadedRun, prompt: list[str], new: list[str],
           sampling: SamplingConfig) -> tuple:
    """(highlighted text, figures, spans table, novelty, continuation note, the model's
    continuation, the source's): the outputs that follow the generated text."""
    scheme = loaded.vocab.scheme
    found = analyze(new, loaded.index, min_len=MIN_SPAN)
    figures = "\n\n".join(part for part in (
        run_summary(loaded), headline(found, len(new), sampling), passages_line(loaded, found.spans),
        cli_line(reference, loaded, prompt, sampling)) if part)
    return (highlight(prompt, new, found.spans, scheme), figures,
            spans_table(loaded, new, found.spans), novelty_frame(found),
            *continuation(loaded, prompt, new, found))


def repeated_positions(new: list[str], n: int = 4) -> set[int]:
    """Positions of ``new`` inside an n-gram that already occurred earlier in ``new``."""
    seen, repeated = set(), set()
    for i in range(len(new) - n + 1):
        gram = tuple(new[i:i + n])
        if gram in seen:
            repeated.update(range(i, i + n))
        seen.add(gram)
    return repeated


def highlight(prompt: list[str], new: list[str], spans, scheme: str) -> list[tuple[str, str | None]]:
    """HighlightedText value: the prompt, then each generated word labelled "repeats itself"
    (inside a 4-gram the text already wrote), else "copied" (inside a copied span), else plain.

    Repeats win over copies, so a model going round a loop of short source phrases does not
    look like one reciting its source. The pieces are cut from the detokenized text itself (the
    text of the first k tokens is always a prefix of the whole), so they join up to exactly the
    text shown above.
    """
    tokens, n = prompt + new, len(prompt)
    copied = {i for span in spans for i in range(span.start, span.end)}
    repeated = repeated_positions(new)
    labels = ["prompt"] * n + [REPEATS if i in repeated else "copied" if i in copied else None
                               for i in range(len(new))]
    parts, start = [], 0  # runs of tokens with one label: (start, end, label)
    for i in range(1, len(tokens) + 1):
        if i == len(tokens) or labels[i] != labels[start]:
            parts.append((start, i, labels[start]))
            start = i
    full = detokenize(tokens, scheme)
    at = {k: len(detokenize(tokens[:k], scheme)) for part in parts for k in part[:2]}
    out = []
    for start, end, label in parts:
        piece = full[at[start]:at[end]]
        words = piece.lstrip()
        if len(words) < len(piece):  # the space before a piece stays plain
            out.append((piece[:len(piece) - len(words)], None))
        if words:
            out.append((words, label))
    return out


def spans_table(loaded: LoadedRun, new: list[str], spans) -> pd.DataFrame:
    """One row per copied span: its text, length, where it sits in the source, with context."""
    source, scheme = loaded.source_tokens, loaded.vocab.scheme
    rows = []
    for s in spans:
        before = source[max(s.source_start - 6, 0):s.source_start]
        after = source[s.source_start + s.length:s.source_start + s.length + 6]
        copied = new[s.start:s.end]
        middle = detokenize(copied, scheme) if s.length <= 12 else \
            f"{detokenize(copied[:4], scheme)} … {detokenize(copied[-4:], scheme)}"
        context = (f"…{detokenize(before, scheme)} «{middle}» "
                   f"{detokenize(after, scheme)}…").replace("\n", " ")
        rows.append({"copied text": detokenize(copied, scheme).replace("\n", " ¶ "),
                     "words": s.length, "where in the source": position(loaded, s.source_start),
                     "the source there (in context)": context})
    return pd.DataFrame(rows, columns=SPAN_COLUMNS)


def looping(found) -> bool:
    """A text that mostly repeats itself without reciting anything long: a loop."""
    return (found.self_repeated_4gram_fraction >= LOOP_REPEATED
            and found.longest_copied_span < LONG_SPAN)


def headline(found, n_new: int, sampling: SamplingConfig) -> str:
    if n_new < 4:
        return "Generate at least 4 words to measure copied 4-grams."
    copied = sum(s.length for s in found.spans)
    figures = (f"Longest verbatim run: **{found.longest_copied_span} words** · **{copied} of "
               f"{n_new}** generated words sit in copied spans of {MIN_SPAN}+ words · "
               f"{len(found.spans)} span(s).")
    if looping(found):
        advice = (f" Greedy decoding always takes the likeliest word, so it goes round; try a "
                  f"temperature of {LOOP_TEMPERATURE:g}." if sampling.temperature == 0 else "")
        return (f"### A loop, not recitation: {found.self_repeated_4gram_fraction:.0%} of the "
                f"generated 4-grams repeat the text's own earlier ones\nThe model goes round "
                f"the same phrase (highlighted as *{REPEATS}*).{advice}\n\n"
                f"{found.copied_4gram_fraction:.0%} of the generated 4-grams also occur in the "
                f"training text: short phrases it uses too. {figures}")
    return (f"### {found.copied_4gram_fraction:.0%} of the generated 4-grams are copied from the "
            f"training text\n{figures}\n\n{repetition_line(found)}")


def repetition_line(found) -> str:
    """The model repeating its own output, set apart from copying the source."""
    repeated = found.self_repeated_4gram_fraction
    line = f"**{repeated:.0%}** of the generated 4-grams repeat the text's own earlier 4-grams"
    if repeated >= LOOP_REPEATED:
        return f"{line}: it loops, and what it loops over is recited from the source."
    return f"{line} (no loop)."


def passages_line(loaded: LoadedRun, spans) -> str:
    """Which source paragraph each copied span comes from, in the generated text's order."""
    if not spans:
        return ""
    paragraphs = [bisect.bisect_right(loaded.paragraph_starts, s.source_start) for s in spans]
    parts = [f"words {s.start + 1}-{s.end} ← ¶{p}"
             for s, p in zip(spans[:MAX_PASSAGES_LISTED], paragraphs, strict=False)]
    more = f", … ({len(spans) - MAX_PASSAGES_LISTED} more)" if len(spans) > MAX_PASSAGES_LISTED else ""
    distinct = len(set(paragraphs))
    reading = ("all from one paragraph of the source" if distinct == 1 else
               f"from {distinct} different paragraphs: the model stitches passages together")
    return ("**Where the copied spans come from** (generated words ← source paragraph): "
            + ", ".join(parts) + more + f"; {reading}.")


def run_summary(loaded: LoadedRun) -> str:
    """One line on why the run copies as it does: how it was trained and which weights these are."""
    cfg, metrics = loaded.config, loaded.metrics  # read at load: no store query per request
    regularizers = [f"{name} {value:g}" for name, value in (
        ("embedding dropout", cfg.embed_dropout), ("weight drop", cfg.weight_drop),
        ("AR", cfg.ar), ("TAR", cfg.tar), ("weight decay", cfg.weight_decay)) if value]
    regularizers += ["locked dropout"] if cfg.locked_dropout else []
    train_loss = metrics.get("best_train_loss", metrics.get("train_loss"))  # the loaded weights'
    losses = f"train loss {train_loss:.2f}" if train_loss is not None else "no losses logged"
    parts = [f"{cfg.recipe} recipe", cfg.cell.upper(),
             ", ".join([f"dropout {cfg.dropout:g}", *regularizers]),
             f"{cfg.optimizer} (lr {cfg.lr:g})", f"{int(metrics.get('step', cfg.steps))} steps",
             losses]
    if "extractable_memorization" in metrics:
        parts.append(f"extractable memorization {metrics['extractable_memorization']:.0%}")
    weights = f"weights from step {loaded.step}"
    if "best_val_perplexity" in metrics:
        weights += f" ({kept_label(cfg.recipe, metrics['best_val_perplexity'], loaded.step)})"
    elif "val_loss" not in metrics:
        weights += " (no text was held out for validation: the last step's weights)"
    parts.append(weights + (f": {loaded.note}" if loaded.note else ""))
    return f"**Why:** {limits.plain(loaded.name or '(unnamed)')} · " + " · ".join(parts)


def cli_line(reference: str, loaded: LoadedRun, prompt: list[str],
             sampling: SamplingConfig) -> str:
    """The same generation as a command to paste, naming the run by a short id or its model."""
    if reference.startswith("models:/") or "@" in reference:
        uri = reference if reference.startswith("models:/") else "models:/" + reference
        which = f"--model {shlex.quote(uri)}"
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

    Cached: for random 128-bit ids a later run sharing the 8 characters is 1 in 4 billion.
    """
    try:
        return run_id[:8] if runs.resolve_run_id(run_id[:8]) == run_id else run_id
    except ValueError:  # another run's id starts the same way
        return run_id


def novelty_frame(found) -> pd.DataFrame:
    return pd.DataFrame({"n": [str(n) for n in found.novelty],
                         "novel share": [round(v, 3) for v in found.novelty.values()]})


def continuation(loaded: LoadedRun, prompt: list[str], new: list[str], found):
    """(note, model's continuation, the source's continuation) where the prompt is in the source."""
    scheme = loaded.vocab.scheme
    model_text = detokenize(new, scheme)
    offset = loaded.index.locate(prompt)
    if offset is None:
        return ("The prompt does not occur word for word in the training text, so there is no "
                "source continuation to set beside the model's.", model_text, "")
    start = offset + len(prompt)
    source = loaded.source_tokens[start:start + len(new)]
    same = next((i for i, (a, b) in enumerate(zip(new, source, strict=False)) if a != b),
                min(len(new), len(source)))
    note = (f"The prompt occurs in the training text at **{position(loaded, offset)}**. The "
            f"model and the source agree on the first **{same} of {len(new)}** words that follow.")
    copied = sum(s.length for s in found.spans)
    if same < len(new) and copied > same:
        looping = found.self_repeated_4gram_fraction >= LOOP_REPEATED
        note += (f" Yet **{copied}** of its words are in copied spans: " + (
            "short phrases of the source, repeated in a loop (see the repetition figure above)."
            if looping else "after they part, the model recites *other* passages of the source, "
            "stitched together (where each comes from is listed above)."))
    return note, model_text, detokenize(source, scheme)
