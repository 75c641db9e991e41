"""The write-up's outcome on its own essay: the seed recipe memorizes The Spike.

Skipped where ../shared/corpus/the_spike.txt is absent. Takes a minute or two on two cores.
"""

from __future__ import annotations

import pytest

from conftest import SPIKE
from lstm_core.generate import SamplingConfig, encode_prompt, generate_ids
from lstm_core.memorization import analyze
from lstm_core.text import read_text, tokenize
from training.config import TrainConfig
from training.loop import Trainer

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not SPIKE.exists(), reason=f"{SPIKE} is not here"),
]


def test_seed_recipe_reproduces_the_writeup_on_the_spike():
    text = read_text(SPIKE)
    config = TrainConfig.for_recipe("seed", eval_interval=25)  # 300 steps, batch 128, Adam 0.005
    trainer = Trainer(config, text)
    assert len(trainer.corpus.vocab) == 1003 + 3  # the essay's 1,003 words, <pad>, <unk>, break
    logged = {}
    trainer.run(on_log=lambda step, metrics: logged.update({step: metrics["train_loss"]}))
    # The write-up: about 6.85 at the start, about 0.11 after 300 iterations.
    assert logged[25] > 3.0
    assert logged[300] < 0.25, logged
    vocab = trainer.corpus.vocab
    ids = generate_ids(trainer.model, encode_prompt("scum", vocab), SamplingConfig(max_new_tokens=60))
    report = analyze(vocab.decode(ids), tokenize(text, "seed"))
    # Greedy generation recites the essay: nearly every 4-gram is copied, in long spans.
    assert report.copied_4gram_fraction > 0.9, " ".join(vocab.decode(ids))
    assert report.longest_copied_span >= 20
