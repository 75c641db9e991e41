"""Command line: register a run's MLflow model under a name, with an alias.

``python -m training.register RUN NAME[@ALIAS]``, e.g.
``python -m training.register demo-seed lighthouse@reciter``. RUN is a run id, a unique id
prefix or a unique run name. Then ``python -m training.generate --model models:/NAME@ALIAS``,
``mlflow.pyfunc.load_model("models:/NAME@ALIAS")`` and ``mlflow models serve -m
models:/NAME@ALIAS`` all use it.
"""

from __future__ import annotations

import argparse
import re
import sys

# Registry names and aliases: letters, digits, '_', '-', '.'; an alias is not "latest" or "v<N>"
# (MLflow reserves those for versions).
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def parse_target(target: str) -> tuple[str, str | None]:
    """``NAME[@ALIAS]`` -> (name, alias or None), with a one-line error for anything else."""
    name, _, alias = target.partition("@")
    if not NAME.fullmatch(name) or (alias and not NAME.fullmatch(alias)):
        raise ValueError(f"{target!r} is not NAME[@ALIAS]: up to 64 letters, digits, '_', '-' "
                         f"or '.' each")
    if alias and (alias == "latest" or re.fullmatch(r"[vV]\d+", alias)):
        raise ValueError(f"alias {alias!r} is reserved by MLflow: pick another")
    return name, alias or None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.register",
                                     description="Register a run's MLflow model (name and alias).")
    parser.add_argument("run", help="run id, unique id prefix or unique run name")
    parser.add_argument("target", metavar="NAME[@ALIAS]", help="registered model name, alias")
    args = parser.parse_args(argv)
    from training.models import register_run_model  # MLflow loads only past --help

    try:
        name, alias = parse_target(args.target)
        version = register_run_model(args.run, name, alias)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    uri = f"models:/{name}@{alias}" if alias else f"models:/{name}/{version}"
    print(f"registered {name} version {version}: {uri}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
