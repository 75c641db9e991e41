"""Deleting and pruning runs, metric histories, train_run's tags and on_start, and the import graph."""

from __future__ import annotations

import ast
import time

import pytest
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from conftest import ROOT
from training.config import TrainConfig
from training.models import run_model_id
from training.runs import delete_run, list_runs, load_run, metric_history, prune_runs
from training.store import local_artifact_dir, local_path, open_store
from training.tracking import train_run

TAG = "trained_in_app"


def tiny_run(**kwargs) -> str:
    config = TrainConfig.for_recipe("windows", steps=20, embed_dim=16, hidden_size=16,
                                    eval_interval=10)
    return train_run(config, on_log=lambda line: None, **kwargs)


def test_train_run_sets_tags_at_the_start_and_delete_run_removes_everything(temp_store):
    seen = {}

    def on_start(run_id):  # called once the run exists: its tags are already there
        seen[run_id] = MlflowClient().get_run(run_id).data.tags.get(TAG)

    run_id = tiny_run(run_name="doomed", tags={TAG: "true"}, on_start=on_start)
    assert seen == {run_id: "true"}
    assert MlflowClient().get_run(run_id).data.tags[TAG] == "true"
    folder = local_artifact_dir(run_id)
    model_id = run_model_id(run_id)
    model_folder = local_path(MlflowClient().get_logged_model(model_id).artifact_location)
    assert (folder / "model.pt").exists() and (model_folder / "MLmodel").exists()
    load_run(run_id)  # cached: delete_run must forget it

    delete_run(run_id)
    assert list_runs().empty
    assert not folder.parent.exists()  # artifacts/<run_id>/, not just its artifacts/ folder
    assert not model_folder.parent.exists()  # artifacts/models/<model_id>/
    with pytest.raises(MlflowException, match="not found"):
        MlflowClient().get_logged_model(model_id)
    assert load_run.cache_info().currsize == 0
    with pytest.raises(ValueError, match="There is no run"):
        delete_run("0123456789abcdef0123456789abcdef")


def test_prune_runs_keeps_the_newest_tagged_and_never_touches_others(temp_store):
    experiment_id = open_store()
    client = MlflowClient()

    def run(start, tags, finished=True):
        run_id = client.create_run(experiment_id, start_time=start, tags=tags).info.run_id
        if finished:
            client.set_terminated(run_id, "FINISHED", end_time=start + 1)
        return run_id

    now = int(time.time() * 1000)
    oldest, old, new = (run(now - 3000 + i, {TAG: "true"}) for i in range(3))
    other = run(now - 3000, {TAG: "false"})
    untagged = run(now - 4000, {})
    training = run(now - 10, {TAG: "true"}, finished=False)  # RUNNING, and recent: alive

    assert prune_runs(TAG, "true", keep=2) == [oldest]
    kept = set(list_runs()["run_id"])
    assert kept == {old, new, other, untagged, training}
    assert prune_runs(TAG, "true", keep=0) == [new, old]
    assert set(list_runs()["run_id"]) == {other, untagged, training}


def test_metric_history_keeps_the_first_value_logged_at_a_step(temp_store):
    experiment_id = open_store()
    client = MlflowClient()
    run_id = client.create_run(experiment_id).info.run_id
    # Logged out of time order: the value with the earlier timestamp is the first logged.
    client.log_metric(run_id, "val_loss", 2.0, timestamp=2000, step=10)
    client.log_metric(run_id, "val_loss", 1.0, timestamp=1000, step=10)
    client.log_metric(run_id, "val_loss", 3.0, timestamp=500, step=5)
    client.log_metric(run_id, "extractable_memorization", 0.5, timestamp=3000, step=10)
    history = metric_history(run_id, keys=("val_loss",))
    assert history.to_dict("list") == {"step": [5, 10], "value": [3.0, 1.0],
                                       "metric": ["val_loss", "val_loss"]}
    assert list(metric_history(run_id, keys=("extractable_memorization",))["value"]) == [0.5]


# ----------------------------------------------------------------------------------------------
# The import graph: no cycles, and nothing below app.py imports it


def project_modules() -> dict[str, ast.Module]:
    files = [ROOT / "app.py"] + [p for pkg in ("lstm_core", "training", "ui")
                                 for p in sorted((ROOT / pkg).rglob("*.py"))]
    modules = {}
    for path in files:
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = ast.parse(path.read_text(encoding="utf-8"))
    return modules


def imports_of(tree: ast.Module, known) -> set[str]:
    """The project modules a module imports, anywhere in it (function bodies too)."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # `from x import y` imports the module x.y when there is one, else x.
            candidates = [f"{node.module}.{alias.name}" if f"{node.module}.{alias.name}" in known
                          else node.module for alias in node.names]
        else:
            continue
        found |= {name for name in candidates if name in known}
    return found


def test_no_import_cycles_and_nothing_imports_the_app():
    modules = project_modules()
    graph = {name: imports_of(tree, modules) - {name} for name, tree in modules.items()}
    assert [name for name, deps in graph.items() if "app" in deps] == []

    done, path = set(), []

    def visit(name):
        if name in path:
            pytest.fail("import cycle: " + " -> ".join(path[path.index(name):] + [name]))
        if name in done:
            return
        path.append(name)
        for dep in sorted(graph[name]):
            visit(dep)
        path.pop()
        done.add(name)

    for name in sorted(graph):
        visit(name)
