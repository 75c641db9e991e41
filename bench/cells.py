"""A plain RNN, a GRU and the LSTM side by side on the write-up's essay, at equal size and time.

    python -m bench.cells [--seconds 30] [--markdown]

For each cell, at (nearly) the LSTM's parameter count (the hidden size adjusted, see
lstm_core.gradient_flow.equal_size_configs) and with the same wall-clock budget:

- held-out perplexity: the windows recipe's defaults, ``--seconds`` of training, best validation
  perplexity on the essay's last 10% (as bench/heldout.py);
- time to memorize: the windows recipe with dropout off and nothing held out, the write-up's
  tokenizer, until the mean training loss of 10 steps is <= 0.11 (as bench/memorize.py), given
  at most 2 x ``--seconds``; then the longest verbatim span of the essay in 400 greedy words from
  its first word;
- gradient flow at distances 10/20/40 (|d loss / d input word|, 1 at distance 0; 8 passages of
  60 words), untrained and after the held-out training.

Every cell runs on the ``torch`` backend (nn.LSTM / nn.GRU / nn.RNN kernels with our weights) so
that the budget buys each the same kind of compiled step; ``--backend`` changes that.
"""

from __future__ import annotations

import argparse
import math
import platform
import time
from collections import deque
from pathlib import Path

import torch

from bench.table import print_table
from lstm_core.cells import CELLS
from lstm_core.generate import SamplingConfig, generate_ids
from lstm_core.gradient_flow import at_distances, equal_size_configs, gradient_flow
from lstm_core.memorization import analyze
from lstm_core.model import BACKENDS
from lstm_core.text import read_text
from training.config import TrainConfig
from training.loop import Trainer, evaluate, model_config_for

SPIKE = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "the_spike.txt"
THRESHOLD, WINDOW = 0.11, 10  # memorized: mean training loss of the last 10 steps <= 0.11
DISTANCES = (10, 20, 40)
RECITE_LENGTH = 400


def flow_at(model, ids: torch.Tensor) -> dict[int, float]:
    starts = torch.linspace(0, len(ids) - 62, 8).long()
    return at_distances(gradient_flow(model, torch.stack([ids[s:s + 61] for s in starts])), DISTANCES)


def heldout(config: TrainConfig, text: str, seconds: float) -> dict:
    """Best validation perplexity within the budget, and gradient flow before and after."""
    trainer = Trainer(config, text)
    ids = torch.cat([trainer.corpus.train_ids, trainer.corpus.val_ids])
    before = flow_at(trainer.model, ids)
    best, state, started = math.inf, None, time.perf_counter()
    while time.perf_counter() - started < seconds:
        for _ in range(config.eval_interval):
            state = trainer.train_step(state).state  # advances trainer.step
        val = evaluate(trainer.model, trainer.corpus.val_ids, config.seq_len, torch.device("cpu"))
        best = min(best, val)
        trainer.scheduler.step(val)
    return {"perplexity": math.exp(best), "steps": trainer.step, "flow_init": before,
            "flow_trained": flow_at(trainer.model, ids)}


def memorize(config: TrainConfig, text: str, max_seconds: float) -> dict:
    """Seconds to the loss threshold (None if not reached), then the longest recited span."""
    trainer = Trainer(config, text)
    recent: deque[float] = deque(maxlen=WINDOW)
    state, seconds, started = None, None, time.perf_counter()
    while time.perf_counter() - started < max_seconds:
        result = trainer.train_step(state)  # advances trainer.step
        state = result.state
        recent.append(result.loss)
        if len(recent) == WINDOW and sum(recent) / WINDOW <= THRESHOLD:
            seconds = time.perf_counter() - started
            break
    ids = trainer.corpus.train_ids
    sample = generate_ids(trainer.model.eval(), ids[:1].tolist(),
                          SamplingConfig(max_new_tokens=RECITE_LENGTH))
    vocab = trainer.corpus.vocab
    span = analyze(vocab.decode(sample), vocab.decode(ids.tolist())).longest_copied_span
    return {"seconds": seconds, "steps": trainer.step, "loss": sum(recent) / len(recent),
            "span": span}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30,
                        help="training budget per cell for perplexity (memorizing gets twice this)")
    parser.add_argument("--backend", choices=BACKENDS, default="torch")
    parser.add_argument("--markdown", action="store_true", help="print a markdown table")
    args = parser.parse_args(argv)
    if not 1 <= args.seconds <= 3600:
        parser.error("--seconds must be between 1 and 3600")
    if not SPIKE.exists():
        print(f"skipped: {SPIKE} is not here (the write-up's essay)")
        return 0
    torch.set_num_threads(2)
    text = read_text(SPIKE)
    base = TrainConfig.for_recipe("windows", steps=10**6, backend=args.backend)
    vocab_size = len(Trainer(base, text).corpus.vocab)
    sizes = {cell: c.hidden_size for cell, c in
             equal_size_configs(model_config_for(base, vocab_size)).items()}
    rows = [("cell", "hidden", "params", f"val perplexity in {args.seconds:.0f} s (steps)",
             "s to loss <= 0.11 (steps)", "longest recited span",
             "gradient at 10 / 20 / 40, untrained", "after training")]
    for cell in CELLS:
        size = dict(hidden_size=sizes[cell], embed_dim=sizes[cell], cell=cell, backend=args.backend)
        held = heldout(TrainConfig.for_recipe("windows", steps=10**6, **size), text, args.seconds)
        mem = memorize(TrainConfig.for_recipe("windows", steps=10**6, tokenizer="seed", dropout=0.0,
                                              val_fraction=0.0, lr_patience=0, **size),
                       text, 2 * args.seconds)
        params = Trainer(TrainConfig.for_recipe("windows", **size), text).model.num_parameters()
        reached = (f"{mem['seconds']:.1f} ({mem['steps']})" if mem["seconds"] is not None else
                   f"not in {2 * args.seconds:.0f} s (loss {mem['loss']:.2f}, {mem['steps']} steps)")
        rows.append((cell, str(sizes[cell]), f"{params:,}",
                     f"{held['perplexity']:.1f} ({held['steps']})", reached, str(mem["span"]),
                     " / ".join(f"{v:.1e}" for v in held["flow_init"].values()),
                     " / ".join(f"{v:.1e}" for v in held["flow_trained"].values())))
        print(f"done: {cell}", flush=True)
    print_table(rows, args.markdown)
    print(f"\nbackend {args.backend}; machine: {platform.platform()}, {torch.get_num_threads()} "
          f"threads, torch {torch.__version__}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
