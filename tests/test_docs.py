"""Every code block that README.md or docs/guide.md marks as runnable runs as printed.

A block is marked by its fence: ```python runnable. Each runs in a fresh interpreter from the
repository root, against a temporary MLflow store, so a doc that drifts from the code fails here.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from conftest import ROOT

DOCS = [ROOT / "README.md", ROOT / "docs" / "guide.md"]
_BLOCK_RE = re.compile(r"^```python runnable\n(.*?)^```", re.S | re.M)


def runnable_blocks() -> list[tuple[str, str]]:
    blocks = []
    for doc in DOCS:
        for number, match in enumerate(_BLOCK_RE.finditer(doc.read_text(encoding="utf-8")), 1):
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
