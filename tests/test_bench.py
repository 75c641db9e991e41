"""The benchmark commands docs/benchmarks.md quotes still run (at a 1-CPU-second budget: a smoke test,
not a measurement; the figures themselves live in docs/benchmarks.md)."""

from __future__ import annotations

import re

from bench import heldout, tune

PERPLEXITY_CELL = re.compile(r"\d+\.\d \(\d+\)")  # "155.6 (30)": perplexity (steps)


def test_tune_prints_a_perplexity_for_each_chosen_row(capsys):
    assert tune.main(["generalize", "--seconds", "1", "--only", "0", "17"]) == 0
    table = capsys.readouterr().out.split("---")[-1]
    rows = [line for line in table.splitlines() if "CPU s" in line]
    assert len(rows) == 2  # the classic yardstick and the chosen setting
    assert rows[0].startswith("classic") and all(PERPLEXITY_CELL.search(row) for row in rows)


def test_heldout_prints_both_recipes_and_their_ratio(capsys):
    assert heldout.main(["--seconds", "1", "--ablation-seconds", "0",
                         "--text", "persuasion_ch1-2.txt"]) == 0
    out = capsys.readouterr().out
    ratio = re.search(r"recommended / classic perplexity .*: persuasion_ch1-2.txt (\d+\.\d+)", out)
    assert ratio and 0.1 < float(ratio.group(1)) < 10
    assert re.search(r"\d+\.\d \(\d+; known \d+\.\d, <unk> \d+\.\d\d\)", out)
