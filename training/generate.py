"""Command line: sample from a logged run.

``python -m training.generate (--run RUN | --model models:/NAME@ALIAS) --prompt TEXT
[--length N] [--temperature T] [--top-k K] [--top-p P] [--seed S] [--json]``

``--run`` takes a full run id, a unique id prefix (the 8 characters the app shows) or a unique
run name; ``--model`` a registered model (``models:/NAME@ALIAS``, ``models:/NAME/VERSION``) or
a logged one (``models:/m-ID``).

Plain output is the text; ``--json`` prints one object with the text, its tokens and how much
of the generated part (not the prompt) is copied from the run's own training text.
"""

from __future__ import annotations

import argparse
import json
import sys

from lstm_core.generate import SamplingConfig, encode_prompt, stream_ids
from lstm_core.memorization import analyze
from lstm_core.text import detokenize


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m training.generate",
                                     description="Generate text from a logged run.")
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--run", metavar="RUN",
                       help="the MLflow run: its id, a unique id prefix or a unique run name")
    which.add_argument("--model", metavar="URI",
                       help="a logged or registered model: models:/NAME@ALIAS, models:/NAME/VERSION "
                            "or models:/m-ID")
    parser.add_argument("--prompt", required=True, help="the words to start from; every word must be known")
    parser.add_argument("--length", type=int, default=50, help="tokens to generate (default 50)")
    parser.add_argument("--temperature", type=float, default=0.0,
                        help="0 = greedy (default); higher = more random")
    parser.add_argument("--top-k", type=int, default=None, help="sample among the k likeliest")
    parser.add_argument("--top-p", type=float, default=None, help="nucleus sampling mass (0, 1]")
    parser.add_argument("--seed", type=int, default=None, help="random seed for sampling")
    parser.add_argument("--json", action="store_true", help="print a JSON object with metrics")
    return parser


def generate_report(run_id: str, prompt: str, sampling: SamplingConfig) -> dict:
    """Generate from a run and measure the generated words against the run's training text.

    Only the generated words are measured, as in the app: the prompt is the caller's text, and
    counting it would credit the model with copying words it was given. ``copied_spans`` index
    ``tokens`` (prompt included), so ``tokens[start:end]`` is the copied passage.

    ``run_id`` may be anything ``training.runs.resolve_run_id`` accepts (prefix, name, models:/ URI);
    the report's ``run_id`` is the full id.
    """
    from training.runs import load_run, resolve_run_id

    run_id = resolve_run_id(run_id)
    run = load_run(run_id)
    prompt_ids = encode_prompt(prompt, run.vocab)
    prompt_tokens = run.vocab.decode(prompt_ids)
    new = run.vocab.decode(list(stream_ids(run.model, prompt_ids, sampling)))
    report = analyze(new, run.source_tokens)
    shift = len(prompt_tokens)
    return {
        "run_id": run_id,
        "text": detokenize(prompt_tokens + new, run.vocab.scheme),
        "tokens": prompt_tokens + new,
        "prompt_tokens": shift,
        "novelty": {str(n): share for n, share in report.novelty.items()},
        "copied_4gram_fraction": report.copied_4gram_fraction,
        "longest_copied_span": report.longest_copied_span,
        # Repetition of the model's own output (a loop), reported apart from copying the source.
        "self_repeated_4gram_fraction": report.self_repeated_4gram_fraction,
        "copied_spans": [{"start": s.start + shift, "end": s.end + shift,
                          "source_start": s.source_start} for s in report.spans],
    }


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        sampling = SamplingConfig(max_new_tokens=args.length, temperature=args.temperature,
                                  top_k=args.top_k, top_p=args.top_p, seed=args.seed)
        if args.model is not None and not args.model.startswith("models:/"):
            raise ValueError(f"--model takes a models:/ URI, got {args.model!r}")
        result = generate_report(args.run or args.model, args.prompt, sampling)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(json.dumps(result) if args.json else result["text"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
