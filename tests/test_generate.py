"""Generation: greedy is deterministic, seeded sampling reproducible, filters respected."""

import math

import pytest
import torch

from lstm_core.generate import (
    SamplingConfig,
    encode_prompt,
    filter_logits,
    generate_ids,
    pick_next,
    stream_ids,
)
from lstm_core.model import LSTMLanguageModel, ModelConfig
from lstm_core.vocab import PAD_ID, UNK_ID, UnknownWordsError, Vocabulary


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return LSTMLanguageModel(ModelConfig(vocab_size=40, embed_dim=16, hidden_size=16, num_layers=2))


def test_greedy_is_deterministic_and_matches_full_rerun(model):
    out1 = generate_ids(model, [5, 6], SamplingConfig(max_new_tokens=12))
    out2 = generate_ids(model, [5, 6], SamplingConfig(max_new_tokens=12))
    assert out1 == out2 and len(out1) == 14 and out1[:2] == [5, 6]
    # Carrying the state gives the same tokens as re-reading the whole sequence every time.
    seq = [5, 6]
    with torch.no_grad():
        for _ in range(12):
            logits, _, _ = model(torch.tensor([seq]))
            seq.append(int(pick_next(logits[:, -1], temperature=0)))
    assert seq == out1


def test_seeded_sampling_is_reproducible(model):
    config = SamplingConfig(max_new_tokens=30, temperature=1.5, seed=7)
    assert generate_ids(model, [3], config) == generate_ids(model, [3], config)
    other = generate_ids(model, [3], SamplingConfig(max_new_tokens=30, temperature=1.5, seed=8))
    assert other != generate_ids(model, [3], config)


def test_temperature_near_zero_equals_greedy(model):
    greedy = generate_ids(model, [4, 9], SamplingConfig(max_new_tokens=20))
    cold = generate_ids(model, [4, 9], SamplingConfig(max_new_tokens=20, temperature=1e-4, seed=1))
    assert cold == greedy


def test_reserved_ids_are_never_generated():
    logits = torch.zeros(1, 10)
    logits[0, PAD_ID] = logits[0, UNK_ID] = 100.0  # the model "wants" them badly
    assert int(pick_next(logits, temperature=0)) not in (PAD_ID, UNK_ID)
    gen = torch.Generator().manual_seed(0)
    picks = {int(pick_next(logits, 1.0, generator=gen)) for _ in range(200)}
    assert not picks & {PAD_ID, UNK_ID}


def test_greedy_is_the_argmax_over_words():
    logits = torch.randn(6, 30, generator=torch.Generator().manual_seed(3))
    logits[:3, PAD_ID] = logits[:3, UNK_ID] = 50.0  # some rows "prefer" a reserved id
    words = logits[:, 2:].argmax(-1) + 2  # the best real word of each row
    assert torch.equal(pick_next(logits, temperature=0), words)


@pytest.mark.parametrize("temperature", [1.0, 0.5, 2.0])
def test_sampled_frequencies_follow_the_distribution(temperature):
    probs = torch.tensor([0.0, 0.0, 0.4, 0.3, 0.2, 0.1])
    logits = probs.log().expand(40_000, -1)  # 40,000 independent draws in one call
    gen = torch.Generator().manual_seed(0)
    picks = pick_next(logits, temperature, generator=gen)
    counts = torch.bincount(picks, minlength=6).double() / len(picks)
    expected = probs.double() ** (1 / temperature)  # softmax(log p / T) is p^(1/T), normalized
    expected /= expected.sum()
    # A share's standard error is at most 0.0025 here; 0.015 is six of them.
    torch.testing.assert_close(counts, expected, atol=0.015, rtol=0)


def test_top_k_never_picks_outside_the_k_best():
    logits = torch.randn(2000, 40, generator=torch.Generator().manual_seed(5)) * 2
    logits[:, [PAD_ID, UNK_ID]] = -math.inf
    best = logits.topk(4, dim=-1).indices  # (N, 4)
    picks = pick_next(logits, 1.5, top_k=4, generator=torch.Generator().manual_seed(6))
    assert (best == picks[:, None]).any(-1).all()
    assert len(set(picks.tolist())) > 4  # the rows differ, so the test is not vacuous


def test_top_k_never_emits_excluded_tokens():
    logits = torch.tensor([[0.0, 0.0, 3.0, 2.9, 2.8, 1.0, 0.5, 0.1]])
    gen = torch.Generator().manual_seed(0)
    picks = {int(pick_next(logits, 2.0, top_k=3, generator=gen)) for _ in range(500)}
    assert picks == {2, 3, 4}


def test_top_p_keeps_the_smallest_nucleus():
    probs = torch.tensor([[0.5, 0.3, 0.15, 0.05]])
    kept = filter_logits(probs.log(), top_p=0.8)
    assert torch.isfinite(kept).tolist() == [[True, True, False, False]]
    # The most likely token survives any top_p.
    assert torch.isfinite(filter_logits(probs.log(), top_p=0.01)).tolist() == [[True, False, False, False]]
    logits = torch.zeros(1, 12)
    logits[0, 2:6] = torch.tensor([5.0, 4.0, 3.0, -1.0])
    gen = torch.Generator().manual_seed(1)
    picks = {int(pick_next(logits, 1.0, top_p=0.85, generator=gen)) for _ in range(500)}
    assert picks <= {2, 3} and 2 in picks


def test_stream_yields_new_tokens_one_by_one(model):
    stream = stream_ids(model, [1 + 1, 3], SamplingConfig(max_new_tokens=5))
    first = next(stream)
    assert isinstance(first, int)
    rest = list(stream)
    assert [first] + rest == generate_ids(model, [2, 3], SamplingConfig(max_new_tokens=5))[2:]


def test_generation_restores_training_mode(model):
    model.train()
    generate_ids(model, [3], SamplingConfig(max_new_tokens=3))
    assert model.training
    model.eval()


@pytest.mark.parametrize("kwargs,message", [
    ({"max_new_tokens": -1}, "length"),
    ({"max_new_tokens": 10**9}, "length"),
    ({"temperature": -0.5}, "temperature"),
    ({"temperature": math.nan}, "temperature"),
    ({"top_p": 0.0}, "top_p"),
    ({"top_p": 1.5}, "top_p"),
    ({"top_k": 0}, "top_k"),
])
def test_sampling_config_rejects_bad_values(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SamplingConfig(**kwargs)


def test_prompt_errors_name_unknown_words():
    vocab = Vocabulary.build("the keeper climbed the stairs".split(), scheme="words")
    assert encode_prompt("The keeper", vocab) == vocab.encode(["the", "keeper"])
    with pytest.raises(UnknownWordsError, match="'walrus'") as err:
        encode_prompt("the walrus and the carpenter", vocab)
    assert err.value.words == ["walrus", "and", "carpenter"]
    for empty in ("", "   ", None):
        with pytest.raises(ValueError, match="empty"):
            encode_prompt(empty, vocab)
