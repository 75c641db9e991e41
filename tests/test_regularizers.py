"""The AWD-LSTM regularizers: what each mask does, and that the hand-written backward agrees
with autograd (and nn.LSTM's kernel) under the very same masks."""

import pytest
import torch

from lstm_core import regularizers
from lstm_core.model import LSTMLanguageModel, ModelConfig

# (dtype, absolute tolerance): float32 within 1e-5, float64 within 1e-10.
PRECISIONS = [(torch.float32, 1e-5), (torch.float64, 1e-10)]
ALL_ON = dict(dropout=0.3, locked_dropout=True, embed_dropout=0.2, weight_drop=0.5, ar=2.0, tar=1.0)


def test_locked_dropout_uses_one_mask_for_every_time_step():
    torch.manual_seed(0)
    out = regularizers.locked_dropout(torch.ones(4, 9, 6), 0.5)
    assert torch.equal(out, out[:, :1].expand_as(out))  # every step equals the first
    assert set(out.unique().tolist()) == {0.0, 2.0}  # dropped, or scaled by 1 / (1 - p)
    assert not torch.equal(out[0], out[1])  # each sequence has its own mask


def test_embedding_dropout_drops_whole_words():
    torch.manual_seed(0)
    dropped = regularizers.embedding_dropout(torch.ones(50, 8), 0.5)
    rows = dropped.sum(dim=1)
    assert set(rows.tolist()) <= {0.0, 16.0}  # a row is all zero or all 1 / (1 - p)
    assert 0 < (rows == 0).sum() < 50


def test_weight_drop_masks_single_connections_and_p0_is_identity():
    torch.manual_seed(0)
    w = torch.randn(20, 5)
    masked = regularizers.weight_drop(w, 0.5)
    kept = masked != 0
    assert 0 < kept.sum() < w.numel()
    torch.testing.assert_close(masked[kept], 2 * w[kept])
    for fn in (regularizers.weight_drop, regularizers.locked_dropout, regularizers.embedding_dropout):
        x = torch.randn(3, 4, 5) if fn is regularizers.locked_dropout else w
        assert fn(x, 0.0) is x
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        regularizers.dropout_mask(w, (2,), 1.0)


def test_activation_penalties_are_the_textbook_formulas():
    h = torch.tensor([[[1.0, -1.0], [3.0, 1.0]]])  # (B=1, T=2, H=2)
    assert regularizers.activation_penalty(h, 2.0).item() == pytest.approx(2.0 * (1 + 1 + 9 + 1) / 4)
    # changes between the two steps: (2, 2) -> mean of squares 4
    assert regularizers.temporal_activation_penalty(h, 0.5).item() == pytest.approx(0.5 * 4)
    assert regularizers.temporal_activation_penalty(h[:, :1], 0.5).item() == 0.0


def run_backend(model, backend, idx, targets, seed):
    """One training forward + backward; the masks come from a generator seeded the same way."""
    model.set_backend(backend)
    model.zero_grad()
    torch.manual_seed(seed)
    logits, loss, (h, c) = model(idx, targets)
    loss.backward()
    return logits, loss, h, c, {name: p.grad.clone() for name, p in model.named_parameters()}


@pytest.mark.parametrize("dtype,tol", PRECISIONS)
@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("regularizer", ["all", "weight_drop", "locked_dropout", "embed_dropout", "ar_tar"])
def test_backends_agree_under_the_same_masks(dtype, tol, num_layers, regularizer):
    settings = ALL_ON if regularizer == "all" else (
        dict(ar=2.0, tar=1.0) if regularizer == "ar_tar" else
        dict(dropout=0.3, locked_dropout=True) if regularizer == "locked_dropout" else
        {regularizer: 0.5})
    torch.manual_seed(0)
    model = LSTMLanguageModel(ModelConfig(vocab_size=23, embed_dim=7, hidden_size=7,
                                          num_layers=num_layers, tie_weights=True, **settings)).to(dtype)
    model.train()
    gen = torch.Generator().manual_seed(2)
    idx, targets = torch.randint(0, 23, (2, 3, 11), generator=gen)
    reference = run_backend(model, "autograd", idx, targets, seed=5)
    if regularizer == "ar_tar":  # no masks: the penalty itself must be there
        assert model.last_penalty > 0
    else:  # another seed draws other masks: the comparison below is not vacuous
        assert not torch.allclose(reference[0], run_backend(model, "autograd", idx, targets, seed=6)[0])
    for backend in ("scratch", "torch"):
        logits, loss, h, c, grads = run_backend(model, backend, idx, targets, seed=5)
        torch.testing.assert_close(logits, reference[0], atol=tol, rtol=0)
        torch.testing.assert_close(loss, reference[1], atol=tol, rtol=0)
        torch.testing.assert_close(h, reference[2], atol=tol, rtol=0)
        torch.testing.assert_close(c, reference[3], atol=tol, rtol=tol)
        for name, grad in reference[4].items():
            torch.testing.assert_close(grads[name], grad, atol=tol, rtol=tol, msg=f"{backend}: {name}")


def test_regularizers_change_training_but_never_evaluation():
    torch.manual_seed(0)
    plain = LSTMLanguageModel(ModelConfig(vocab_size=23, embed_dim=6, hidden_size=6, tie_weights=True))
    regular = LSTMLanguageModel(ModelConfig(vocab_size=23, embed_dim=6, hidden_size=6,
                                            tie_weights=True, **ALL_ON))
    regular.load_state_dict(plain.state_dict())
    idx, targets = torch.randint(0, 23, (2, 3, 9))
    plain.eval()
    regular.eval()
    logits_a, loss_a, _ = plain(idx, targets)
    logits_b, loss_b, _ = regular(idx, targets)
    assert torch.equal(logits_a, logits_b) and torch.equal(loss_a, loss_b)  # no mask, no penalty
    regular.train()
    torch.manual_seed(1)
    _, loss_train, _ = regular(idx, targets)
    assert regular.last_penalty > 0
    assert not torch.allclose(loss_train, loss_a)


def test_penalty_is_added_to_the_training_loss_only_once():
    torch.manual_seed(0)
    cfg = dict(vocab_size=23, embed_dim=6, hidden_size=6, tie_weights=True)
    model = LSTMLanguageModel(ModelConfig(**cfg, ar=3.0, tar=2.0))
    idx, targets = torch.randint(0, 23, (2, 3, 9))
    _, loss, _ = model(idx, targets)
    hidden, _ = model.run_lstm(idx)
    cross_entropy = torch.nn.functional.cross_entropy(
        torch.nn.functional.linear(hidden, model.output_weight, model.out_bias).reshape(-1, 23),
        targets.reshape(-1))
    expected = (cross_entropy + regularizers.activation_penalty(hidden, 3.0)
                + regularizers.temporal_activation_penalty(hidden, 2.0))
    torch.testing.assert_close(loss, expected)
    assert model.last_penalty == pytest.approx((expected - cross_entropy).item(), rel=1e-3)


@pytest.mark.parametrize("kwargs,message", [
    (dict(weight_drop=1.0), "weight_drop"), (dict(embed_dropout=-0.1), "embed_dropout"),
    (dict(ar=-1.0), "ar and tar"), (dict(tar=1e9), "ar and tar")])
def test_config_bounds(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ModelConfig(vocab_size=23, **kwargs)


def test_trainer_logs_memorization_best_step_and_ntasgd_averages():
    from lstm_core.text import read_text
    from training.config import TrainConfig
    from training.loop import Trainer
    from training.tracking import saved_model_note

    config = TrainConfig.for_recipe(
        "windows", steps=12, eval_interval=2, hidden_size=16, embed_dim=16, batch_size=4,
        memorization_sample=8, optimizer="ntasgd", lr_patience=1, locked_dropout=True,
        embed_dropout=0.1, weight_drop=0.5, ar=1.0, tar=1.0, lr=200.0)  # lr 200: it will stall
    trainer = Trainer(config, read_text(config.corpus))
    logged, saved = [], []
    trainer.run(on_log=lambda step, metrics: logged.append(dict(metrics)),
                on_checkpoint=lambda name, ckpt: saved.append((name, ckpt["step"])))
    assert all(0 <= m["extractable_memorization"] <= 1 for m in logged)  # a curve, every eval
    assert all("memorization_seconds" in m for m in logged)
    best_val = min(m["val_loss"] for m in logged)
    best_step = next(2 * (i + 1) for i, m in enumerate(logged) if m["val_loss"] == best_val)
    assert logged[-1]["best_step"] == trainer.best_step
    assert trainer.average is not None  # validation stalled: averaging started
    assert ("best", trainer.best_step) in saved
    note = saved_model_note(trainer)
    assert note.startswith(f"model.pt holds step {trainer.best_step} of 12")
    assert best_step == trainer.best_step
