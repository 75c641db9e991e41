"""The docs say what the code does: README.md and docs/*.md are checked against the repository.

- Every code block marked as runnable (its fence is ```python runnable) runs as printed, each in
  a fresh interpreter from the repository root against a temporary MLflow store.
- Every relative link resolves to a file, and every #anchor into a Markdown file resolves to one
  of its headings.
- README.md stays a front door (under 250 lines) whose test command is the one CI runs.
- No issue numbers ("#14", "issue 13"): the docs state rules and reasons, and the tracker keeps
  the history.
- Every bound in ui/limits.py is listed in docs/limits.md, and every bound of training and
  serving in a row naming its module; every benchmark that `make bench` runs
  has its section in docs/benchmarks.md, and the tables that are due to be re-measured carry
  their markers.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import ROOT

README = ROOT / "README.md"
DOCS = [README, *sorted((ROOT / "docs").glob("*.md"))]
_BLOCK_RE = re.compile(r"^```python runnable\n(.*?)^```", re.S | re.M)
_FENCE_RE = re.compile(r"^ *```.*?^ *```", re.S | re.M)
_LINK_RE = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
_HEADING_RE = re.compile(r"^#{1,6} +(.+?) *#* *$", re.M)
# "#14" (not "&#14;", not a URL's "/#/"), and "issue 13" / "issues #13".
_ISSUE_RE = re.compile(r"(?<![\w/&])#\d+\b|\bissues? +#?\d+", re.I)


def _text(doc) -> str:
    return doc.read_text(encoding="utf-8")


def _prose(doc) -> str:
    """The doc without its fenced code blocks, where '#' starts comments, not headings."""
    return _FENCE_RE.sub("", _text(doc))


def runnable_blocks() -> list[tuple[str, str]]:
    blocks = []
    for doc in DOCS:
        for number, match in enumerate(_BLOCK_RE.finditer(_text(doc)), 1):
            blocks.append((f"{doc.name}#{number}", match.group(1)))
    return blocks


def test_the_guide_has_runnable_blocks():
    assert any(name.startswith("guide.md") for name, _ in runnable_blocks())


@pytest.mark.parametrize(("name", "code"), runnable_blocks(), ids=[n for n, _ in runnable_blocks()])
def test_runnable_block_runs(name, code, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT),
           "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, f"{name} failed:\n{result.stderr[-2000:]}"


_PYTHON_RE = re.compile(r"^ *```python[^\n]*\n(.*?)^ *```", re.S | re.M)
_PROJECT = ("lstm_core", "training", "ui", "bench")


@pytest.mark.parametrize("doc", DOCS, ids=lambda d: d.name)
def test_every_name_a_python_block_imports_from_the_project_exists(doc):
    """A renamed module or function must not leave a doc's example behind (blocks that are not
    run still get their imports checked)."""
    import importlib

    for block in _PYTHON_RE.findall(_text(doc)):
        tree = ast.parse(textwrap.dedent(block))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(_PROJECT):
                module = importlib.import_module(node.module)
                for alias in node.names:
                    assert hasattr(module, alias.name), f"{doc.name}: {node.module}.{alias.name}"


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"[`*_]", "", heading).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(doc) -> set[str]:
    return {slug(h) for h in _HEADING_RE.findall(_prose(doc))}


@pytest.mark.parametrize("doc", DOCS, ids=lambda d: d.name)
def test_relative_links_resolve(doc):
    broken = []
    for target in _LINK_RE.findall(_prose(doc)):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        linked = (doc.parent / path).resolve() if path else doc
        if not linked.exists():
            broken.append(f"{target}: no such file")
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
            broken.append(f"{target}: no heading with that anchor in {linked.name}")
    assert not broken, f"{doc.name}: " + "; ".join(broken)


def test_readme_is_a_front_door():
    lines = len(_text(README).splitlines())
    assert lines < 250, f"README.md has {lines} lines; move detail to docs/ (see its links)"


def test_readme_test_command_is_what_ci_runs():
    ci = [line.strip() for line in (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()]
    commands = [line for line in ci if line.startswith("make ")]
    assert commands == ["make test"], f".ci/run runs {commands}"
    shown = [line.split("#")[0].strip() for block in _FENCE_RE.findall(_text(README))
             for line in block.splitlines()]
    assert "make test" in shown and "make app" in shown


@pytest.mark.parametrize("doc", DOCS, ids=lambda d: d.name)
def test_no_issue_numbers(doc):
    found = _ISSUE_RE.findall(_text(doc))
    assert not found, f"{doc.name} cites issues {found}: state the rule and its reason instead"


def test_every_app_bound_is_in_docs_limits():
    source = ROOT / "ui" / "limits.py"
    if not source.exists():
        pytest.skip("ui/limits.py is not there yet")
    names = [target.id for node in ast.parse(source.read_text(encoding="utf-8")).body
             if isinstance(node, ast.Assign) for target in ast.walk(node)
             if isinstance(target, ast.Name) and isinstance(target.ctx, ast.Store)
             and target.id.isupper()]
    limits_doc = _text(ROOT / "docs" / "limits.md")
    missing = [name for name in names if f"`{name}`" not in limits_doc]
    assert names and not missing, f"docs/limits.md does not list {missing}"


def _bound_names(path: Path, prefix: str = "MAX_") -> list[str]:
    """The module-level constants of a file whose name starts with ``prefix``."""
    return [target.id for node in ast.parse(path.read_text(encoding="utf-8")).body
            if isinstance(node, ast.Assign) for target in node.targets
            if isinstance(target, ast.Name) and target.id.startswith(prefix)]


# The bounds of training and serving outside the app: each module's MAX_* constants (and the
# flags that bound one step or one evaluation) must sit in a row of docs/limits.md that names
# the module, so a reader finds where a bound lives and what happens at it.
TRAINING_BOUNDS = {
    "training/config.py": ["--max-prefix", "--eval-tokens"],
    "training/mlflow_model.py": [],
    "training/sweep.py": [],
    "training/tracking.py": ["FINAL_MEMORIZATION_WINDOWS"],
    "lstm_core/text.py": [],
    "lstm_core/generate.py": [],
}


@pytest.mark.parametrize("module", sorted(TRAINING_BOUNDS))
def test_every_training_bound_is_in_docs_limits(module):
    names = _bound_names(ROOT / module) + TRAINING_BOUNDS[module]
    rows = [line for line in _text(ROOT / "docs" / "limits.md").splitlines()
            if line.startswith("|") and f"`{module}" in line]
    missing = [name for name in names if not any(f"`{name}`" in row for row in rows)]
    assert names and not missing, f"docs/limits.md has no row naming {module} for {missing}"


def test_every_benchmark_has_its_section():
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    ran = set(re.findall(r"-m (bench\.\w+)", makefile))
    written = set(re.findall(r"python -m (bench\.\w+)", _text(ROOT / "docs" / "benchmarks.md")))
    assert ran and ran <= written, f"docs/benchmarks.md has no command for {sorted(ran - written)}"
    modules = {f"bench.{p.stem}" for p in (ROOT / "bench").glob("*.py")} - {
        "bench.__init__", "bench.table", "bench.writeup_baseline"}
    assert modules <= written, f"docs/benchmarks.md has no command for {sorted(modules - written)}"
