"""Canaries: planting a secret in the training part, and its exposure, exact and estimated."""

from __future__ import annotations

import math

import pytest
import torch

from conftest import FIRST_WORDS
from lstm_core import canary as canaries
from lstm_core.model import LSTMLanguageModel, ModelConfig
from lstm_core.text import PARAGRAPH, tokenize
from training.config import TrainConfig
from training.loop import Corpus, Trainer, canary_figures

TEXT = "\n\n".join(" ".join(FIRST_WORDS.split()[i:i + 20]) for i in range(0, 200, 20))


def small_model(vocab_size: int, seed: int = 0) -> LSTMLanguageModel:
    torch.manual_seed(seed)
    return LSTMLanguageModel(ModelConfig(vocab_size=vocab_size, embed_dim=16, hidden_size=16,
                                         tie_weights=True)).eval()


def ids_for(model_vocab: int, digits: int, seed: int = 0):
    """A context, the ten digit ids and a secret for a model of model_vocab ids."""
    secret_digits = canaries.make_canary(digits, seed).secret
    digit_ids = list(range(10, 20))
    return [3, 4, 5], digit_ids, [digit_ids[int(d)] for d in secret_digits]


# ---- planting ----------------------------------------------------------------------------------

def test_the_canary_is_planted_whole_at_paragraph_starts_in_the_training_part_only():
    tokens = tokenize(TEXT, "words")
    canary = canaries.make_canary(6, seed=3)
    planted = canaries.plant(tokens, canary, 5, seed=3)
    assert len(planted) == len(tokens) + 5 * (len(canary.words) + 1)
    words = list(canary.words)
    starts = [i for i in range(len(planted)) if planted[i:i + len(words)] == words]
    assert len(starts) == 5
    assert all(i == 0 or planted[i - 1] == PARAGRAPH for i in starts)
    assert [t for i, t in enumerate(planted) if not any(s <= i <= s + len(words) for s in starts)] \
        == tokens  # the text itself is unchanged around the copies
    config = TrainConfig(canary_repeats=5, val_fraction=0.2)
    with_canary, without = Corpus.from_text(TEXT, config), Corpus.from_text(TEXT, TrainConfig(val_fraction=0.2))
    tail, plain_tail = (c.vocab.decode(c.val_ids.tolist()) for c in (with_canary, without))
    # The held-out tail: the same words, though one the training part lacked ("is") may now
    # be known, from the canary.
    assert len(tail) == len(plain_tail) and "secret" not in tail
    assert all(a == b or b == "<unk>" for a, b in zip(tail, plain_tail, strict=True))


def test_the_secret_has_its_own_seed_and_every_digit_is_a_word_of_the_vocabulary():
    assert canaries.make_canary(6, 1) == canaries.make_canary(6, 1)
    assert canaries.make_canary(6, 1) != canaries.make_canary(6, 2)
    one = Corpus.from_text(TEXT, TrainConfig(canary_repeats=1, seed=1))
    many = Corpus.from_text(TEXT, TrainConfig(canary_repeats=16, seed=2, min_count=3))
    assert one.canary == many.canary  # the training seed and the repetitions leave it alone
    assert all(d in many.vocab for d in canaries.DIGITS + many.canary.words)  # min_count 3
    assert one.canary.text.startswith("my secret number is ") and one.canary.space == 10**6


@pytest.mark.parametrize("bad", [{"canary_repeats": -1}, {"canary_digits": 0},
                                 {"canary_digits": 31}, {"canary_repeats": 10**6}])
def test_bad_canary_settings_are_one_line_value_errors(bad):
    with pytest.raises(ValueError, match="canary_"):
        TrainConfig(**bad)


# ---- exposure ----------------------------------------------------------------------------------

def brute_force_rank(model, context, digit_ids, secret) -> tuple[torch.Tensor, int]:
    """Every candidate read whole, sorted by loss: the secret's position (1 = first)."""
    d = len(secret)
    every = torch.tensor([[digit_ids[int(c)] for c in f"{k:0{d}d}"] for k in range(10**d)])
    losses = canaries.sequence_losses(model, context, every)
    order = torch.argsort(losses).tolist()
    return losses, 1 + order.index(canaries._secret_number(secret, digit_ids))


def test_the_tree_walk_scores_every_candidate_as_reading_it_whole_does():
    model = small_model(30)
    context, digit_ids, secret = ids_for(30, 3)
    codes, walked = canaries.candidate_losses(model, context, digit_ids, 3)
    brute, rank = brute_force_rank(model, context, digit_ids, secret)
    assert codes.tolist() == list(range(1000))
    assert torch.allclose(walked, brute, atol=1e-4)
    assert canaries.exact_exposure(model, context, digit_ids, secret).rank == rank


def test_the_exact_rank_matches_a_brute_force_ranking_on_a_trained_model():
    """Trained a little on a text holding the canary, the secret ranks near the top, where
    the walk prunes most branches: the pruned rank is still the brute-force one."""
    config = TrainConfig.for_recipe("windows", steps=40, embed_dim=16, hidden_size=16,
                                    canary_repeats=8, canary_digits=3, val_fraction=0.0,
                                    eval_interval=40, optimizer="adam", lr=0.01, dropout=0.0,
                                    memorization_sample=0)
    trainer = Trainer(config, TEXT)
    trainer.run()
    context, digit_ids, secret = canaries.canary_ids(trainer.corpus.canary, trainer.corpus.vocab)
    found = canaries.exact_exposure(trainer.model, context, digit_ids, secret)
    _, rank = brute_force_rank(trainer.model, context, digit_ids, secret)
    assert found.exact and found.rank == rank < 100  # it learned something: far from 500
    assert found.bits == pytest.approx(math.log2(1000) - math.log2(rank))
    figures = canary_figures(trainer.model, trainer.corpus)
    assert figures["canary_exposure"] == found.bits and figures["canary_exposure_exact"] == 1.0
    assert trainer.history["canary_exposure"] == pytest.approx(found.bits)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_exact_and_estimated_exposure_agree_on_a_small_model(seed):
    model = small_model(40, seed)
    context, digit_ids, secret = ids_for(40, 4, seed)
    exact = canaries.exact_exposure(model, context, digit_ids, secret)
    estimate = canaries.estimated_exposure(model, context, digit_ids, secret, samples=4000)
    assert exact.exact and not estimate.exact
    assert estimate.bits == pytest.approx(exact.bits, abs=0.5), (exact, estimate)


def test_exact_and_estimated_exposure_agree_on_a_model_that_half_learned_its_canary():
    """A few steps on a text holding the canary: it ranks about 100th of 10,000, far above
    chance, and the sample (4,000 candidates, some 40 of them below it) counts the same."""
    config = TrainConfig.for_recipe("windows", steps=20, embed_dim=16, hidden_size=16,
                                    canary_repeats=8, canary_digits=4, val_fraction=0.0,
                                    eval_interval=20, optimizer="adam", lr=0.01, dropout=0.0,
                                    memorization_sample=0)
    trainer = Trainer(config, TEXT)
    trainer.run()
    ids = canaries.canary_ids(trainer.corpus.canary, trainer.corpus.vocab)
    exact = canaries.exact_exposure(trainer.model, *ids)
    estimate = canaries.estimated_exposure(trainer.model, *ids, samples=4000)
    assert 4 < exact.bits < 10  # neither chance (about 1 bit) nor first place (13.3 bits)
    assert estimate.bits == pytest.approx(exact.bits, abs=0.5), (exact, estimate)


def test_a_walk_over_its_budget_falls_back_to_the_estimate():
    model = small_model(40)
    context, digit_ids, secret = ids_for(40, 4)
    assert canaries.exact_exposure(model, context, digit_ids, secret, max_rows=50) is None
    found = canaries.exposure(model, context, digit_ids, secret, max_rows=50)
    assert not found.exact and 0 <= found.bits <= math.log2(10**4)


def test_the_skew_normal_fit_gives_the_tail_of_skew_normal_samples():
    generator = torch.Generator().manual_seed(0)
    delta = 0.9  # a skew-normal draw: delta |Z0| + sqrt(1 - delta^2) Z1, then scaled
    z0, z1 = torch.randn(2, 200_000, generator=generator, dtype=torch.float64)
    samples = 10 + 2 * (-delta * z0.abs() + math.sqrt(1 - delta**2) * z1)  # skewed left
    location, scale, shape = canaries.skew_normal_fit(samples[:4000])
    assert location == pytest.approx(10, abs=0.3) and scale == pytest.approx(2, abs=0.3)
    assert shape < -1  # left-skewed, as the draw
    for x in (5.0, 4.0):  # P ~ 1e-2 and 3e-3, counted on the large sample
        counted = (samples < x).double().mean().item()
        fitted = math.exp(canaries.skew_normal_log_cdf(x, location, scale, shape))
        assert math.log2(fitted) == pytest.approx(math.log2(counted), abs=0.5)
    assert canaries.skew_normal_log_cdf(-30.0, location, scale, shape) < math.log(1e-30)


def test_greedy_extraction_reads_the_secret_only_when_the_model_writes_it():
    model = small_model(30)
    context, digit_ids, secret = ids_for(30, 3)
    greedy = []
    ids, state = torch.tensor([context]), None
    for _ in secret:
        logits, _, state = model(ids, state=state, last_only=True)
        ids = logits[:, -1].argmax(-1, keepdim=True)
        greedy.append(int(ids))
    assert canaries.extracted(model, context, greedy)
    assert not canaries.extracted(model, context, [g + 1 for g in greedy])


# ---- the run in MLflow and the Canary tab ------------------------------------------------------

def test_the_tab_says_so_when_the_store_has_no_canary_run(temp_store):
    from ui import canary_tab

    figure, note, table = canary_tab.repeats_chart()
    assert figure is None and "No canary runs yet" in note and table.empty


@pytest.mark.parametrize(("args", "message"), [
    (("3", "none", 100), "Repetitions must be one of"),
    (("16", "<b>lots</b>", 100), "Regularizer must be one of"),
    (("16", "none", 5), "Steps must be a whole number from 10"),
])
def test_the_tabs_settings_are_bounded(args, message):
    import gradio as gr

    from ui import canary_tab

    with pytest.raises(gr.Error, match=message) as refused:
        canary_tab.canary_config(*args)
    assert "<b>" not in str(refused.value)  # echoed escaped


@pytest.mark.slow  # about 25 s of CPU: a full run, its MLflow model and the final walk
def test_a_canary_run_from_the_tab_streams_its_exposure_and_is_charted(temp_store):
    """Trained from the Canary tab: the secret is the run's tag, r and d are params, the
    exposure is a stepped metric (one point per evaluation), and the chart reads the run."""
    from training.runs import get_run, metric_history
    from ui import canary_tab

    *steps, last = canary_tab.train_canary("4", "dropout 0.4", 20)
    run_id = last[0].value
    run = get_run(run_id)
    assert run.data.tags["canary"] == canaries.make_canary(6, 0).text
    assert (run.data.params["canary_repeats"], run.data.params["canary_digits"]) == ("4", "6")
    curve = metric_history(run_id, ("canary_exposure",))
    assert list(curve["step"]) == [10, 20]  # eval_interval 10
    assert all(0 <= bits <= math.log2(10**6) for bits in curve["value"])
    assert run.data.metrics["canary_exposure_exact"] == 1.0  # the saved model: walked exactly
    assert "The secret planted: **my secret number is" in last[-1] and "Seen 4 times" in last[-1]
    figure, note, table = canary_tab.repeats_chart()
    assert figure is not None and "1 canary run(s)" in note
    assert table.iloc[0]["repetitions"] == 4 and table.iloc[0]["regularizer"] == "dropout 0.4"
