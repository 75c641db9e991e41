"""Rebuild the demo runs that ship in mlruns/: ``python -m training.demo``.

Two runs on the project's default corpus, so the app's overfitting comparison means something on
first start:

- ``demo-seed``: the write-up's recipe (prefix pairs, loss on the last word, no dropout). It
  memorizes: greedy generation recites the text.
- ``demo-windows``: the default recipe (every position scored, SGD, dropout 0.4, tied weights,
  best-validation checkpoint). It generalizes better: lower validation loss.

Both use the ``words`` tokenizer and hold out the same last 10% of the text, so their
validation losses are comparable. To keep the committed store small, the demo runs ship their
best weights (model.pt) but not last.pt (the optimizer state that --resume needs).
"""

from __future__ import annotations

import sys

from training import registry
from training.config import TrainConfig
from training.tracking import train_run

DEMO_RUNS = {
    # The default text is longer than the write-up's essay, so the seed recipe gets 600 steps
    # instead of 300 to memorize it.
    "demo-seed": TrainConfig.for_recipe("seed", tokenizer="words", val_fraction=0.1, steps=600,
                                        eval_interval=25),
    "demo-windows": TrainConfig.for_recipe("windows"),
}


def main() -> int:
    registry.open_store()
    existing = registry.list_runs()
    for name, config in DEMO_RUNS.items():
        if name in set(existing["name"]):
            print(f"{name}: already in the store, skipped (delete it in `mlflow ui` to rebuild)")
            continue
        print(f"training {name} ({config.recipe} recipe, {config.steps} steps)")
        run_id = train_run(config, run_name=name)
        (registry.local_artifact_dir(run_id) / registry.LAST_FILE).unlink(missing_ok=True)
        print(f"{name}: run_id={run_id}")
    print(registry.list_runs()[["name", "recipe", "train_loss", "val_loss", "best_val_loss",
                                "sample_copied_4gram_fraction"]].to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
