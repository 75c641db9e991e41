"""The Look inside tab: the gates and states, word by word, of the last generated text (an LSTM's
input, forget and output gates and cell state; a GRU's reset and update gates; an RNN's h)."""

from __future__ import annotations

import html

import gradio as gr
import torch

from lstm_core.generate import encode_prompt
from lstm_core.text import PARAGRAPH, tokenize
from lstm_core.vocab import UNK
from training.store import public
from ui import fields, limits
from ui.runs import load

HEATMAP_MAX_WORDS = 150  # words shown in the gate heatmap
HEATMAP_UNITS = 6  # single cell units shown under the means
# What the heatmap draws for each cell: (label, recorded name, signed). Gates run from 0 to 1;
# signed values (states, candidates) from negative to positive.
INSIDE_ROWS = {
    "lstm": [("input gate i", "input", False), ("forget gate f", "forget", False),
             ("output gate o", "output", False), ("cell state c", "cell", True)],
    "gru": [("reset gate r", "reset", False), ("update gate z", "update", False),
            ("candidate n", "candidate", True), ("hidden state h", "hidden", True)],
    "rnn": [("hidden state h", "hidden", True)],
}
STATE_OF = {"lstm": "cell", "gru": "hidden", "rnn": "hidden"}  # whose single units are shown


def _cell_color(value: float, signed: bool, scale: float) -> str:
    """Gates (0..1): white to blue. Signed states: red (negative), white, blue (positive)."""
    x = max(-1.0, min(1.0, value / scale)) if signed else max(0.0, min(1.0, value))
    target = (37, 99, 235) if x >= 0 else (220, 38, 38)
    return "rgb({},{},{})".format(*(round(255 + (c - 255) * abs(x)) for c in target))


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
    tokens = _merge_unk(tokenize(text, vocab.scheme))[:HEATMAP_MAX_WORDS]
    if not tokens:
        raise limits.refusal("There is no text to look inside: generate one first (or type one).")
    try:  # the library's one check, as for a prompt: unknown words are named
        if UNK not in tokens:
            return tokens, encode_prompt(text, vocab)[:HEATMAP_MAX_WORDS]
        unknown = vocab.unknown_words(t for t in tokens if t != UNK)
        if unknown:
            encode_prompt(" ".join(unknown), vocab)  # raises, naming exactly those words
        return tokens, vocab.encode(tokens, unknown="unk")
    except ValueError as err:
        raise limits.refusal(public(str(err))) from None


def gate_heatmap(run_id: str, text: str, layer: float = 1, unit: float = -1,
                 request: gr.Request = None) -> str:
    """An HTML heatmap of the cell's gates and state, word by word: an LSTM's input, forget and
    output gates and cell state; a GRU's reset and update gates, candidate and hidden state; a
    plain RNN's hidden state (it has no gates)."""
    loaded = load(run_id, request)
    cfg = loaded.model.config
    layer = limits.number(layer, "Layer", 1, cfg.num_layers, whole=True)
    unit = limits.number(unit, "Unit", -1, cfg.hidden_size - 1, whole=True)
    # The generated text is a prompt plus up to MAX_LENGTH words; only the first words are drawn.
    text = limits.text(text, "The text to look inside",
                       limits.MAX_PROMPT_WORDS + limits.MAX_LENGTH)
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


def gates_on_open(run_id: str, text: str, layer: float, unit: float, request: gr.Request = None):
    """The heatmap as the tab opens; nothing new (no error) while there is no text."""
    try:
        return gate_heatmap(run_id, text, layer, unit, request)
    except gr.Error:
        return gr.skip()


def build(run: gr.Dropdown, generated: gr.Textbox) -> None:
    """generated: the Generate tab's text box, whose text the heatmap reads."""
    with gr.Tab("Look inside", id="inside") as tab:
        gr.Markdown("The gates while the model reads the last generated text, one column per word "
                    "(drawn when this tab opens).")
        with gr.Row():
            layer = fields.number(value=1, precision=0, minimum=1, label="Layer",
                                  info="Which layer (1 = nearest the words).")
            unit = fields.number(value=-1, precision=0, minimum=-1, label="Unit",
                                 info="-1 = mean over all units; 0, 1, … = one unit of the state.")
            button = gr.Button("Show the gates", elem_id="gates-btn")
        gates = gr.HTML(elem_id="gates")
    inputs = [run, generated, layer, unit]
    # Drawn when the tab opens, not after every generation: one event per Generate click.
    tab.select(gates_on_open, inputs, gates, api_visibility="private", **limits.COMPUTE_SLOT)
    button.click(gate_heatmap, inputs, gates, api_name="gates", **limits.COMPUTE_SLOT)
