"""The Hugging Face Space folder: what it holds, its LFS rules, and that it runs as a Space would.

The slow test builds the Space, copies it outside the checkout, installs a fresh virtual
environment from the folder's own requirements.txt (without the CPU index line, which cannot be
reached here; pip's local wheel of torch 2.13.0 is the CPU build), starts `python app.py` there
on loopback and calls /generate with gradio_client.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT, free_port
from deploy import space


def lfs_filter(folder: Path, name: str) -> str:
    """What `git check-attr filter` says for a file in a git repository made of folder."""
    if not (folder / ".git").exists():
        subprocess.run(["git", "init", "-q", str(folder)], check=True, timeout=60)
    out = subprocess.run(["git", "check-attr", "filter", "--", name], cwd=folder, check=True,
                         capture_output=True, text=True, timeout=60).stdout
    return out.rsplit(": ", 1)[-1].strip()


def uncovered_binaries(folder: Path) -> list[str]:
    files = [p for p in folder.rglob("*") if p.is_file() and ".git" not in p.relative_to(folder).parts]
    return [p.relative_to(folder).as_posix() for p in files
            if space.is_binary(p) and lfs_filter(folder, p.relative_to(folder).as_posix()) != "lfs"]


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    return space.build(tmp_path_factory.mktemp("space") / "space")


# ---- fast: the builder's parts --------------------------------------------------------------

def test_packages_are_found_by_following_imports(tmp_path):
    (tmp_path / "app.py").write_text("import os\nfrom ui.tabs import build\nimport gradio\n")
    for package, source in (("ui", "from helpers import x\n"), ("helpers", "import json\n"),
                            ("unused", "")):
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text(source)
    (tmp_path / "ui" / "tabs.py").write_text("def build(): from late import y\n")
    (tmp_path / "late").mkdir()
    (tmp_path / "late" / "__init__.py").write_text("")
    assert space.project_packages(tmp_path) == ["helpers", "late", "ui"]
    assert {"lstm_core", "training", "ui"} <= set(space.project_packages())
    assert not {"tests", "bench", "deploy"} & set(space.project_packages())


def test_binary_is_decided_by_content(tmp_path):
    cases = {"notes.txt": "plain words, ¶ and ü\n".encode(), "nul.txt": b"text\0more",
             "latin1.txt": "caf\xe9".encode("latin-1"), "blob": bytes(range(256))}
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
    assert {n for n in cases if space.is_binary(tmp_path / n)} == {"nul.txt", "latin1.txt", "blob"}
    (tmp_path / "weights.pt").write_bytes(b"\x80\x02PK\0")
    rules = space.gitattributes(tmp_path)
    (tmp_path / ".gitattributes").write_text(rules)
    assert uncovered_binaries(tmp_path) == []
    assert lfs_filter(tmp_path, "notes.txt") != "lfs"  # text stays plain git


def test_requirements_pin_ours_with_the_cpu_index_first():
    text = space.requirements(space.front_matter())
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert lines[0] == space.CPU_INDEX
    ours = (ROOT / "requirements.txt").read_text().splitlines()
    assert "torch==2.13.0" in lines and [p for p in ours if p.startswith("torch")] == ["torch==2.13.0"]
    with pytest.raises(ValueError, match="sdk_version"):
        space.requirements(space.front_matter().replace("6.31.0", "5.0.0"))


def test_the_folder_holds_what_the_space_runs_and_nothing_else(built):
    names = {p.relative_to(built).as_posix() for p in built.rglob("*") if p.is_file()}
    assert {"README.md", "app.py", "requirements.txt", ".gitattributes", "mlruns/mlflow.db",
            "corpus/lighthouse_keeper.txt", "lstm_core/model.py", "training/store.py",
            "training/runs.py", "training/checkpoints.py", "ui/__init__.py",
            "ui/generate_tab.py"} <= names
    assert sum(n.endswith("/model.pt") for n in names) >= 2
    assert not [n for n in names if n.split("/")[0] in {"tests", "bench", "docs", "deploy", "build"}
                or "__pycache__" in n or n in {"Makefile", "requirements-dev.txt"}]
    readme = (built / "README.md").read_text(encoding="utf-8")
    assert readme.startswith("---\n") and "sdk: gradio" in readme and "app_file: app.py" in readme
    assert "vanish" in readme and "MLFLOW_TRACKING_URI" in readme


def test_every_binary_file_in_the_space_goes_through_lfs(built):
    binaries = [p for p in built.rglob("*") if p.is_file() and space.is_binary(p)]
    assert len(binaries) >= 3  # the store's mlflow.db and each run's model.pt
    assert uncovered_binaries(built) == []


def test_push_refuses_without_a_token_or_with_a_bad_id(monkeypatch, capsys):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr(space, "build", lambda: pytest.fail("built before checking the token"))
    with pytest.raises(SystemExit):
        space.main(["--push", "someone/lstm"])
    assert "HF_TOKEN" in capsys.readouterr().err
    monkeypatch.setenv("HF_TOKEN", "hf_x")
    with pytest.raises(SystemExit):
        space.main(["--push", "not a repo"])
    assert "owner/name" in capsys.readouterr().err


def test_a_folder_that_is_not_a_build_is_never_replaced(tmp_path):
    (tmp_path / "precious.txt").write_text("keep me")
    with pytest.raises(ValueError, match="refusing"):
        space.build(tmp_path)
    assert (tmp_path / "precious.txt").read_text() == "keep me"


# ---- slow: the folder runs as a Space would run it -------------------------------------------

def install(folder: Path, venv: Path) -> Path:
    """A fresh venv from the folder's requirements.txt, minus the unreachable CPU index line."""
    lines = (folder / "requirements.txt").read_text().splitlines()
    local = venv.parent / "requirements-local.txt"
    local.write_text("\n".join(line for line in lines if line != space.CPU_INDEX) + "\n")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "-r", str(local)], check=True,
                   timeout=1500)
    return python


def wait_for_port(process: subprocess.Popen, port: int, log: Path, seconds: float = 180) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert process.poll() is None, f"app.py exited: {log.read_text()[-2000:]}"
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"app.py did not serve within {seconds} s: {log.read_text()[-2000:]}")


@pytest.mark.slow
def test_the_space_folder_installs_and_serves_generate(tmp_path_factory):
    from gradio_client import Client

    work = tmp_path_factory.mktemp("space-run")
    assert not work.resolve().is_relative_to(ROOT)
    folder = work / "space"
    shutil.copytree(space.build(work / "build"), folder)
    assert uncovered_binaries(folder) == []
    python = install(folder, work / "venv")
    port, log = free_port(), work / "app.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "PYTHON", "VIRTUAL_ENV"))}
    env.update(GRADIO_SERVER_NAME="127.0.0.1", GRADIO_SERVER_PORT=str(port),
               GRADIO_ANALYTICS_ENABLED="False", MLFLOW_DISABLE_TELEMETRY="true")
    with log.open("w") as out:
        app = subprocess.Popen([str(python), "app.py"], cwd=folder, env=env, stdout=out,
                               stderr=subprocess.STDOUT)
    try:
        wait_for_port(app, port, log)
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        runs = subprocess.run(  # the default run, as the app's own picker chooses it
            [str(python), "-c", "from ui.runs import default_run, list_runs; "
                              "print(default_run(list_runs()))"], cwd=folder,
            env=env, check=True, capture_output=True, text=True, timeout=120).stdout.split()
        text, *report = client.predict(runs[-1], "the lamp", 20, 0.0, 0, 1.0, 0,
                                       api_name="/generate")
        # 20 tokens after the prompt; a comma or a full stop is a token that joins its word.
        assert text.startswith("the lamp") and len(text.split()) >= 2 + 10
        assert any("copied" in str(part) for part in report)  # the memorization report
    finally:
        app.terminate()
        app.wait(timeout=30)
    assert "no runs" not in log.read_text()  # it served the shipped demo store, untrained
