"""training.sweep: a bounded grid trained as nested MLflow runs, and the map's data."""

import math

import mlflow
import pytest

from training import sweep
from training.runs import list_runs

TINY = ["--steps", "4", "--eval-interval", "2", "--hidden-size", "16", "--embed-dim", "16",
        "--batch-size", "4", "--memorization-sample", "8"]


def test_grid_is_every_combination_and_bounded():
    points = sweep.grid_points({"recipe": ["seed", "windows"], "dropout": [0.0, 0.4], "steps": []})
    assert points == [{"recipe": "seed", "dropout": 0.0}, {"recipe": "seed", "dropout": 0.4},
                      {"recipe": "windows", "dropout": 0.0}, {"recipe": "windows", "dropout": 0.4}]
    with pytest.raises(ValueError, match="the grid has 25 runs .* at most 24"):
        sweep.grid_points({"dropout": [0.1] * 5, "weight_drop": [0.2] * 5})


def test_too_big_a_grid_is_a_one_line_error_before_any_run(temp_store, capsys):
    code = sweep.main(["--dropout", *["0.1"] * 5, "--weight-drop", *["0.2"] * 5])
    assert code == 2
    assert "at most 24" in capsys.readouterr().err
    assert list_runs().empty


@pytest.mark.slow
def test_sweep_trains_nested_children_and_maps_them(temp_store, capsys):
    code = sweep.main(["--recipe", "seed", "windows", "--weight-drop", "0", "0.5",
                       "--val-fraction", "0.1", "--name", "tiny", *TINY])
    assert code == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-1].startswith("run_id=")
    parent = lines[-1].removeprefix("run_id=")
    assert len(lines) == 5 and all(": " in line for line in lines[:4])  # one line per child

    points = sweep.sweep_points(parent)
    assert len(points) == 4
    assert set(points["parent_run_id"]) == {parent}
    assert sorted(points["recipe"]) == ["seed", "seed", "windows", "windows"]
    assert sorted(p["weight_drop"] for p in points["params"]) == ["0.0", "0.0", "0.5", "0.5"]
    assert points["held_out_perplexity"].map(math.isfinite).all()
    assert points["extractable_memorization"].between(0, 1).all()
    # The seed children kept the seed recipe's own settings (Adam), not the windows defaults.
    seed_params = points[points["recipe"] == "seed"]["params"].iloc[0]
    assert seed_params["optimizer"] == "adam"
    # Without a parent id: every run except the sweep's parent.
    assert set(sweep.sweep_points()["run_id"]) == set(points["run_id"])
    parent_run = mlflow.get_run(parent)
    assert parent_run.data.params["grid.recipe"] == "seed windows"
