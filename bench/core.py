"""Speed benchmarks: our LSTM against PyTorch's fused kernel and against the write-up's method.

Run from the repository root::

    python -m bench.core [--quick] [--markdown] [--raw] [--threads N]

Rows of the table:

1. Training step on the write-up's configuration (embedding 128, hidden 128, batches of 128
   prefix pairs pre-padded to the longest prefix, loss on the last step): our ``scratch``
   backend against our ``torch`` backend (target: scratch reaches >= 0.8x the fused kernel's
   throughput), and the write-up's own code (``bench/writeup_baseline.py``) against scratch.
2. Training step on the windows configuration (batch 32, seq_len 32, every position scored,
   dropout 0.4, train mode): scratch against torch, same target. The ``autograd``
  backend (the readable cell) is timed beside them for reference.
3. Generation of 200 tokens, ms per token: ``generate_ids`` (prompt once, then one token at a
   time carrying the state) against the write-up's ``generate_sequence`` (pad to 55 tokens and
   re-run everything for every new token), with the same weights (target: >= 50x faster).
   The write-up runs with autograd on; a second row times it under ``torch.no_grad`` too, to
   show how much of the gap is the algorithm alone.

The machine is shared and noisy, so the variants of a row run interleaved in one loop (A, B,
then B, A, ...) after a warm-up; values are medians over rounds, and the ratio is the median of
the per-round ratios (each round's variants ran seconds apart, under the same load). Each
section stops early once its time budget is spent, and OpenMP threads sleep instead of spinning
while they wait (see the comment on OMP_WAIT_POLICY below). ``--raw`` prints every round.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

# On a shared 2-core machine, OpenMP threads that spin while they wait for each other stall
# for whole scheduler time slices whenever another process holds a core. With libgomp's
# default (spin 300,000 times, then sleep), and even with GOMP_SPINCOUNT=20000, we saw steps
# 5-100x slower in bursts at load 4, and one generation take a minute instead of a second: the
# medians then measure the scheduler. With PASSIVE (sleep at once) 2 threads gave steady
# timings at that load. The cost: a sleeping thread is slow to wake, so at load 2 absolute
# times came out up to 1.7x higher than with spinning (about 1-thread speed) while the ratios
# moved by a few percent. libgomp reads
# this when torch loads, so it is set before the import below; set OMP_WAIT_POLICY (or
# GOMP_SPINCOUNT) yourself to override it.
if "GOMP_SPINCOUNT" not in os.environ:
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
OMP_SETTINGS = ", ".join(f"{k}={os.environ[k]}" for k in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")
                         if k in os.environ) or "libgomp defaults"
OMP_SETTINGS_APPLIED = "torch" not in sys.modules

import torch  # noqa: E402

from bench import table  # noqa: E402
from bench import writeup_baseline as wb  # noqa: E402
from lstm_core.data import prefix_pairs, random_windows, split_at  # noqa: E402
from lstm_core.generate import SamplingConfig, generate_ids  # noqa: E402
from lstm_core.model import LSTMLanguageModel, ModelConfig  # noqa: E402
from lstm_core.text import PARAGRAPH, read_text, tokenize  # noqa: E402
from lstm_core.vocab import Vocabulary  # noqa: E402
from training.config import SPIKE  # noqa: E402

PROJECT_ROOT = Path(__file__).resolve().parents[1]
PROJECT_CORPUS = PROJECT_ROOT / "corpus" / "lighthouse_keeper.txt"
THREADS = 2
LR = 0.005  # the write-up's Adam learning rate (the seed recipe's; the windows default is SGD at 20)
GEN_TOKENS = 200
WRITEUP_MAX_LEN = 55  # generate_sequence's default window
SPEED_TARGET = 0.8  # scratch throughput relative to the fused kernel
GEN_TARGET = 50.0  # incremental generation speed-up over the full re-run


@dataclass
class Plan:
    """Interleaved rounds per section and calls per round; --quick cuts them.

    A section runs at most its ``*_rounds`` rounds, and stops early once its time budget is
    spent (after at least ``min_rounds``), so a heavily loaded machine still finishes.
    """

    seed_rounds: int = 15
    seed_steps: int = 2  # training steps per round, write-up configuration
    seed_budget_s: float = 60.0
    window_rounds: int = 30
    window_steps: int = 10  # training steps per round, windows configuration
    window_budget_s: float = 25.0
    gen_rounds: int = 9
    gen_repeats: int = 10  # incremental generations per round (one takes only ~20 ms)
    gen_budget_s: float = 60.0
    warmup: int = 2  # untimed rounds first
    min_rounds: int = 3


QUICK = Plan(seed_rounds=3, seed_steps=1, seed_budget_s=10.0, window_rounds=6, window_steps=5,
             window_budget_s=4.0, gen_rounds=2, gen_repeats=5, gen_budget_s=10.0, warmup=1,
             min_rounds=2)


@dataclass
class Row:
    measured: str
    values: str
    target: str
    ratio: str
    result: str


# ----------------------------------------------------------------------------------------------
# Data


@dataclass
class Data:
    name: str
    vocab: Vocabulary
    paragraphs: list[list[int]]  # paragraph ids, for prefix pairs
    ids: torch.Tensor  # the flat token stream (paragraph breaks included), for windows


def load_data() -> Data:
    """The write-up's essay with its "seed" tokenizer if present, else the project's corpus."""
    path = SPIKE if SPIKE.exists() else PROJECT_CORPUS
    tokens = tokenize(read_text(path), "seed")
    vocab = Vocabulary.build(tokens, scheme="seed")
    ids = vocab.encode(tokens)
    paragraph_id = vocab.token_to_id(PARAGRAPH) if PARAGRAPH in vocab else None
    name = "../shared/corpus/the_spike.txt" if path == SPIKE else "corpus/lighthouse_keeper.txt"
    return Data(name, vocab, split_at(ids, paragraph_id), torch.tensor(ids))


# ----------------------------------------------------------------------------------------------
# Timing


RAW: list[str] = []  # per-round times, printed with --raw


def interleaved(variants: dict[str, Callable[[], object]], rounds: int, warmup: int,
                label: str = "", budget_s: float = math.inf,
                min_rounds: int = 1) -> dict[str, list[float]]:
    """Seconds per call of each variant, round by round; the order flips every round.

    Stops after ``rounds`` rounds, or earlier once ``budget_s`` seconds (warm-up included)
    have passed and at least ``min_rounds`` rounds are done.
    """
    names = list(variants)
    section_start = time.perf_counter()
    for _ in range(warmup):
        for name in names:
            variants[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        gc.collect()
        for name in names if r % 2 == 0 else names[::-1]:
            start = time.perf_counter()
            variants[name]()
            times[name].append(time.perf_counter() - start)
        if r + 1 >= min_rounds and time.perf_counter() - section_start > budget_s:
            break
    for name, values in times.items():
        RAW.append(f"{label} / {name}: " + " ".join(f"{1000 * t:.1f}" for t in values) + " ms")
    return times


def median_ratio(numerator: list[float], denominator: list[float]) -> float:
    return statistics.median(n / d for n, d in zip(numerator, denominator, strict=True))


def fmt_ms(seconds: float) -> str:
    ms = seconds * 1000
    return f"{ms:.1f} ms" if ms >= 10 else f"{ms:.2f} ms"


def verdict(ratio: float, target: float) -> str:
    return "pass" if ratio >= target else "miss"


# ----------------------------------------------------------------------------------------------
# Training steps


def our_trainer(config: ModelConfig, backend: str, grad_clip: float):
    """A fresh model's training step, shaped like training/loop.py's ``train_step``."""
    torch.manual_seed(0)  # the same initial weights for both backends
    model = LSTMLanguageModel(dataclasses.replace(config, backend=backend))  # own config copy
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=LR)
    clip = grad_clip if grad_clip > 0 else math.inf

    def step(x: torch.Tensor, y: torch.Tensor) -> float:
        _, loss, _ = model(x, y)  # each batch starts from a zero state
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        optimizer.step()
        return loss.item()

    return step


def repeat(fn: Callable[[], object], n: int) -> Callable[[], None]:
    def run() -> None:
        for _ in range(n):
            fn()
    return run


def bench_seed_training(data: Data, plan: Plan) -> list[Row]:
    x_all, y_all = prefix_pairs(data.paragraphs)  # (N, L), (N,)
    V = len(data.vocab)
    config = ModelConfig(vocab_size=V, embed_dim=128, hidden_size=128, dropout=0.0,
                         tie_weights=False)
    variants: dict[str, Callable[[], object]] = {}
    for backend in ("scratch", "autograd", "torch"):
        step = our_trainer(config, backend, grad_clip=0.0)
        gen = torch.Generator().manual_seed(1)  # both backends draw the same batches

        def one(step=step, gen=gen) -> float:
            idx = torch.randint(0, x_all.size(0), (128,), generator=gen)
            return step(x_all[idx], y_all[idx])

        variants[backend] = repeat(one, plan.seed_steps)

    torch.manual_seed(0)
    X, Y, _ = wb.build_dataset(data.paragraphs)
    baseline = wb.WriteupLSTM(V, 128, 128, V)
    optimizer = wb.make_optimizer(baseline, LR)
    gen = torch.Generator().manual_seed(1)
    carried = {"state": None}

    def writeup_one() -> float:
        loss, carried["state"] = wb.train_step(baseline, optimizer, X, Y, carried["state"],
                                               128, gen)
        return loss

    variants["write-up"] = repeat(writeup_one, plan.seed_steps)
    times = interleaved(variants, plan.seed_rounds, plan.warmup,
                        f"write-up config, {plan.seed_steps} steps", plan.seed_budget_s,
                        plan.min_rounds)
    per_step = {k: [t / plan.seed_steps for t in v] for k, v in times.items()}
    med = {k: statistics.median(v) for k, v in per_step.items()}
    shape, n = f"B=128, T={x_all.size(1)}", len(times["scratch"])
    speed = median_ratio(per_step["torch"], per_step["scratch"])
    readable = median_ratio(per_step["torch"], per_step["autograd"])
    faster = median_ratio(per_step["write-up"], per_step["scratch"])
    return [
        Row(f"Train step, write-up config ({shape}, loss on last step): scratch vs torch",
            f"scratch {fmt_ms(med['scratch'])}, torch {fmt_ms(med['torch'])} (n={n})",
            f">= {SPEED_TARGET}x torch", f"{speed:.2f}x", verdict(speed, SPEED_TARGET)),
        Row(f"Train step, write-up config ({shape}): autograd (the readable cell) vs torch",
            f"autograd {fmt_ms(med['autograd'])}, torch {fmt_ms(med['torch'])} (n={n})",
            "info", f"{readable:.2f}x", "-"),
        Row(f"Train step, write-up config (B=128, T={X.size(1)}): scratch speed-up over the "
            "write-up's code",
            f"write-up {fmt_ms(med['write-up'])}, scratch {fmt_ms(med['scratch'])} (n={n})",
            "info", f"{faster:.1f}x", "-"),
    ]


def bench_window_training(data: Data, plan: Plan) -> list[Row]:
    config = ModelConfig(vocab_size=len(data.vocab), embed_dim=128, hidden_size=128,
                         dropout=0.4, tie_weights=True)  # the windows recipe's defaults
    variants = {}
    for backend in ("scratch", "autograd", "torch"):
        step = our_trainer(config, backend, grad_clip=0.25)
        gen = torch.Generator().manual_seed(2)

        def one(step=step, gen=gen) -> float:
            return step(*random_windows(data.ids, 32, 32, generator=gen))

        variants[backend] = repeat(one, plan.window_steps)
    times = interleaved(variants, plan.window_rounds, plan.warmup,
                        f"windows config, {plan.window_steps} steps", plan.window_budget_s,
                        plan.min_rounds)
    per_step = {k: [t / plan.window_steps for t in v] for k, v in times.items()}
    speed = median_ratio(per_step["torch"], per_step["scratch"])
    readable = median_ratio(per_step["torch"], per_step["autograd"])
    med = {k: fmt_ms(statistics.median(v)) for k, v in per_step.items()}
    n = len(times["torch"])
    return [Row("Train step, windows config (B=32, T=32, all positions, dropout 0.4): "
                "scratch vs torch", f"scratch {med['scratch']}, torch {med['torch']} (n={n})",
                f">= {SPEED_TARGET}x torch", f"{speed:.2f}x", verdict(speed, SPEED_TARGET)),
            Row("Train step, windows config: autograd (the readable cell) vs torch",
                f"autograd {med['autograd']}, torch {med['torch']} (n={n})", "info",
                f"{readable:.2f}x", "-")]


# ----------------------------------------------------------------------------------------------
# Generation


def copy_into_baseline(model: LSTMLanguageModel, baseline: wb.WriteupLSTM) -> None:
    """Give the write-up's model our one-layer model's weights (gate order i, f, g, o)."""
    weight_ih, weight_hh, bias = model.layer_weights(0)
    stacked = torch.cat([weight_ih, weight_hh], dim=1)  # (4H, E + H): acts on cat([x_t, h_t])
    H = model.config.hidden_size
    with torch.no_grad():
        for k, (w, b) in enumerate(((baseline.Wi, baseline.bi), (baseline.Wf, baseline.bf),
                                    (baseline.Wc, baseline.bc), (baseline.Wo, baseline.bo))):
            w.copy_(stacked[k * H:(k + 1) * H])
            b.copy_(bias[k * H:(k + 1) * H])
        baseline.embedding.copy_(model.embedding)
        baseline.Wv.copy_(model.output_weight)
        baseline.bv.copy_(model.out_bias)


def bench_generation(data: Data, plan: Plan) -> list[Row]:
    V = len(data.vocab)
    torch.manual_seed(0)
    model = LSTMLanguageModel(ModelConfig(vocab_size=V, tie_weights=False)).eval()
    baseline = wb.WriteupLSTM(V, 128, 128, V)
    copy_into_baseline(model, baseline)
    # Same weights, same function: on an unpadded sequence from a zero state both models must
    # give the same next-word logits.
    probe = data.paragraphs[0][:20]
    with torch.no_grad():
        ours = model(torch.tensor([probe]))[0][:, -1]
        theirs = baseline.forward(torch.tensor([probe]).unsqueeze(-1))[0]
    assert torch.allclose(ours, theirs, atol=1e-5), "weight transfer to the baseline is wrong"

    word = "scum" if "scum" in data.vocab else data.vocab.words[0]
    prompt = [data.vocab.token_to_id(word)]
    sampling = SamplingConfig(max_new_tokens=GEN_TOKENS)  # greedy, like the write-up

    def writeup_no_grad(n: int = GEN_TOKENS) -> list[int]:
        with torch.no_grad():
            return wb.generate_sequence_ids(baseline, prompt, n, WRITEUP_MAX_LEN)

    variants = {
        "incremental": repeat(lambda: generate_ids(model, prompt, sampling), plan.gen_repeats),
        "write-up": lambda: wb.generate_sequence_ids(baseline, prompt, GEN_TOKENS,
                                                     WRITEUP_MAX_LEN),
        "write-up, no_grad": writeup_no_grad,
    }
    for _ in range(plan.warmup):  # short warm-up: a full write-up run takes seconds
        generate_ids(model, prompt, SamplingConfig(max_new_tokens=20))
        wb.generate_sequence_ids(baseline, prompt, 5, WRITEUP_MAX_LEN)
        writeup_no_grad(5)
    times = interleaved(variants, plan.gen_rounds, 0, f"generation, {GEN_TOKENS} tokens "
                        f"(incremental x {plan.gen_repeats})", plan.gen_budget_s,
                        plan.min_rounds)
    times["incremental"] = [t / plan.gen_repeats for t in times["incremental"]]
    per_token = {k: [t / GEN_TOKENS for t in v] for k, v in times.items()}
    med = {k: statistics.median(v) for k, v in per_token.items()}
    rows = []
    for name, label in (("write-up", "autograd on, as written"),
                        ("write-up, no_grad", "under no_grad")):
        ratio = median_ratio(per_token[name], per_token["incremental"])
        target, result = (f">= {GEN_TARGET:.0f}x", verdict(ratio, GEN_TARGET)) \
            if name == "write-up" else ("info", "-")
        rows.append(Row(
            f"Generate {GEN_TOKENS} tokens, ms/token: incremental speed-up over write-up "
            f"re-run (pad to {WRITEUP_MAX_LEN}, {label})",
            f"incremental {fmt_ms(med['incremental'])}, write-up {fmt_ms(med[name])} "
            f"(n={len(times[name])})",
            target, f"{ratio:.1f}x", result))
    return rows


# ----------------------------------------------------------------------------------------------
# Report


def format_table(rows: list[Row], markdown: bool) -> str:
    header = Row("Measured", "Median values", "Target", "Ratio", "Result")
    cells = [dataclasses.astuple(r) for r in [header, *rows]]
    return table.format_table(cells, markdown, align=["---"] * 3 + ["---:", ":---:"])


def load_line(warn: bool = True) -> str:
    """The 1-minute load average, with a warning when other processes want the cores."""
    load, cpus = os.getloadavg()[0], os.cpu_count() or 1
    line = f"Load average (1 min): {load:.2f} on {cpus} CPUs"
    if warn and load > cpus - 0.5:
        line += " -- busy machine: expect noise; --raw shows every round"
    return line


def machine_line() -> str:
    return (f"Machine: {platform.platform()}, {platform.machine()}, {os.cpu_count()} CPUs, "
            f"Python {platform.python_version()}, torch {torch.__version__}, "
            f"{torch.get_num_threads()} threads, {OMP_SETTINGS}"
            + ("" if OMP_SETTINGS_APPLIED else " (not applied: torch was loaded first)"))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats (well under a minute)")
    parser.add_argument("--markdown", action="store_true", help="print a GitHub markdown table")
    parser.add_argument("--raw", action="store_true", help="also print every round's time")
    parser.add_argument("--threads", type=int, default=THREADS,
                        help=f"torch intra-op threads (default: {THREADS})")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    plan = QUICK if args.quick else Plan()
    start = time.perf_counter()

    data = load_data()
    x_all, _ = prefix_pairs(data.paragraphs)
    _, _, writeup_len = wb.build_dataset(data.paragraphs)
    print(f"Corpus: {data.name} (tokenizer 'seed'): {len(data.paragraphs)} paragraphs, "
          f"{len(data.ids)} tokens, vocabulary {len(data.vocab)} ids (2 reserved), "
          f"longest prefix {x_all.size(1)} tokens ({writeup_len} with the write-up's pairs)")
    print(f"Mode: {'quick' if args.quick else 'full'}. At most n rounds x calls per round: "
          f"write-up config {plan.seed_rounds} x {plan.seed_steps} step(s), windows "
          f"{plan.window_rounds} x {plan.window_steps} steps, generation {plan.gen_rounds} x "
          f"({plan.gen_repeats} incremental + 1 of each write-up); {plan.warmup} warm-up "
          f"round(s); a section stops early, after {plan.min_rounds} rounds or more, once its "
          "time budget is spent.")
    print(load_line() + " (before)")
    print()
    rows = bench_seed_training(data, plan) + bench_window_training(data, plan)
    rows += bench_generation(data, plan)
    print(format_table(rows, args.markdown))
    print()
    print("Values: medians over n interleaved rounds. Ratio: median of per-round ratios "
          "(scratch vs torch: torch/scratch step time = scratch's relative throughput; "
          "speed-ups: the write-up's time / ours).")
    if args.raw:
        print("Per-round times (whole round's calls per variant):")
        print("\n".join("  " + line for line in RAW))
    print(load_line(warn=False) + " (after; this run included)")
    print(machine_line())
    print(f"Total time: {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
