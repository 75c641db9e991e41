"""The scratch LSTM computes exactly what torch.nn.LSTM computes, forwards and backwards."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lstm_core import model as model_module
from lstm_core.bptt import lstm_layer_bptt
from lstm_core.model import LAYERS, LSTMLanguageModel, ModelConfig, lstm_layer, torch_layer

# (dtype, absolute tolerance): float32 within 1e-5, float64 within 1e-10.
PRECISIONS = [(torch.float32, 1e-5), (torch.float64, 1e-10)]


def reference_lstm(model: LSTMLanguageModel) -> nn.LSTM:
    """An independent nn.LSTM holding copies of the model's weights."""
    cfg = model.config
    ref = nn.LSTM(cfg.embed_dim, cfg.hidden_size, num_layers=cfg.num_layers, batch_first=True)
    ref = ref.to(model.embedding.dtype)
    with torch.no_grad():
        for layer in range(cfg.num_layers):
            weight_ih, weight_hh, bias = model.layer_weights(layer)
            getattr(ref, f"weight_ih_l{layer}").copy_(weight_ih)
            getattr(ref, f"weight_hh_l{layer}").copy_(weight_hh)
            getattr(ref, f"bias_ih_l{layer}").copy_(bias)
            getattr(ref, f"bias_hh_l{layer}").zero_()
    return ref


def make_model(num_layers, dtype, **kwargs):
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=23, embed_dim=7, hidden_size=5, num_layers=num_layers, **kwargs)
    return LSTMLanguageModel(cfg).to(dtype)


def random_state(model, batch, dtype, scale=1.0):
    shape = (model.config.num_layers, batch, model.config.hidden_size)
    return torch.randn(shape, dtype=dtype) * scale, torch.randn(shape, dtype=dtype) * scale


@pytest.mark.parametrize("dtype,tol", PRECISIONS)
@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("with_state", [False, True])
@pytest.mark.parametrize("backend", ["autograd", "scratch"])
def test_scratch_matches_nn_lstm_forward_and_backward(dtype, tol, num_layers, with_state, backend):
    model = make_model(num_layers, dtype, backend=backend)
    ref = reference_lstm(model)
    idx = torch.randint(0, 23, (4, 9), generator=torch.Generator().manual_seed(1))
    state = random_state(model, 4, dtype) if with_state else None

    hidden, (h, c) = model.run_lstm(idx, state)
    emb_ref = nn.functional.embedding(idx, model.embedding.detach())
    ref_out, (ref_h, ref_c) = ref(emb_ref, state)

    torch.testing.assert_close(hidden, ref_out, atol=tol, rtol=0)
    torch.testing.assert_close(h, ref_h, atol=tol, rtol=0)
    # The cell state is unbounded, so compare it relative to its size.
    torch.testing.assert_close(c, ref_c, atol=tol, rtol=tol)

    # Backward: the same scalar loss through both must give the same gradient everywhere.
    weights = torch.randn_like(hidden)
    (hidden * weights).sum().backward()
    (ref_out * weights).sum().backward()
    for layer in range(num_layers):
        weight_ih, weight_hh, bias = model.layer_weights(layer)
        torch.testing.assert_close(weight_ih.grad, getattr(ref, f"weight_ih_l{layer}").grad, atol=tol, rtol=tol)
        torch.testing.assert_close(weight_hh.grad, getattr(ref, f"weight_hh_l{layer}").grad, atol=tol, rtol=tol)
        torch.testing.assert_close(bias.grad, getattr(ref, f"bias_ih_l{layer}").grad, atol=tol, rtol=tol)
    # The embedding and output layer are compared in test_embedding_gradient_matches_reference.


@pytest.mark.parametrize("dtype,tol", PRECISIONS)
@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("with_state", [False, True])
def test_backends_agree_on_logits_loss_and_every_gradient(dtype, tol, num_layers, with_state):
    model = make_model(num_layers, dtype)
    gen = torch.Generator().manual_seed(2)
    idx = torch.randint(0, 23, (3, 11), generator=gen)
    targets = torch.randint(0, 23, (3, 11), generator=gen)
    state = random_state(model, 3, dtype, scale=3.0) if with_state else None

    results = {}
    for backend in ("autograd", "scratch", "torch"):
        model.set_backend(backend)
        model.zero_grad()
        logits, loss, (h, c) = model(idx, targets, state)
        loss.backward()
        grads = {name: p.grad.clone() for name, p in model.named_parameters()}
        results[backend] = (logits, loss, h, c, grads)

    # The readable autograd cell is the reference; the other two must match it.
    l1, loss1, h1, c1, g1 = results["autograd"]
    for backend in ("scratch", "torch"):
        l2, loss2, h2, c2, g2 = results[backend]
        torch.testing.assert_close(l1, l2, atol=tol, rtol=0)
        torch.testing.assert_close(loss1, loss2, atol=tol, rtol=0)
        torch.testing.assert_close(h1, h2, atol=tol, rtol=0)
        torch.testing.assert_close(c1, c2, atol=tol, rtol=tol)
        assert g1.keys() == g2.keys()
        for name in g1:
            torch.testing.assert_close(g1[name], g2[name], atol=tol, rtol=tol, msg=f"{backend}: {name}")


def test_the_layer_function_is_chosen_when_the_backend_is_set():
    model = make_model(2, torch.float64)
    assert model.layer_fns == [LAYERS["lstm", "scratch"]] * 2
    model.set_backend("torch")  # nn.LSTM, each layer bound to its own shell
    assert [fn.func for fn in model.layer_fns] == [torch_layer] * 2
    assert [fn.args[0] for fn in model.layer_fns] == model._torch_shells
    model.set_backend("autograd")
    assert model.layer_fns == [LAYERS["lstm", "autograd"]] * 2


def test_scratch_runs_the_hand_written_backward_only_when_gradients_are_on(monkeypatch):
    calls = []
    real = model_module.lstm_layer_bptt
    monkeypatch.setattr(model_module, "lstm_layer_bptt", lambda *args: calls.append(1) or real(*args))
    model = make_model(2, torch.float64)  # backend "scratch"
    idx = torch.randint(0, 23, (2, 6), generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        without, _, _ = model(idx)
    assert calls == []  # generation and evaluation: the readable cell
    with_grad, _, _ = model(idx)
    assert len(calls) == 2  # training: bptt.py, once per layer
    torch.testing.assert_close(without, with_grad.detach(), atol=1e-12, rtol=0)


def test_embedding_gradient_matches_reference():
    # The reference path: nn.Embedding + nn.LSTM + nn.Linear with copied weights.
    model = make_model(2, torch.float64)
    ref_lstm = reference_lstm(model)
    emb = nn.Embedding(23, 7).double()
    out = nn.Linear(5, 23).double()
    with torch.no_grad():
        emb.weight.copy_(model.embedding)
        out.weight.copy_(model.out_weight)
        out.bias.copy_(model.out_bias)
    idx = torch.randint(0, 23, (2, 6), generator=torch.Generator().manual_seed(3))
    targets = torch.randint(0, 23, (2, 6), generator=torch.Generator().manual_seed(4))
    _, loss, _ = model(idx, targets)
    loss.backward()
    ref_hidden, _ = ref_lstm(emb(idx))
    ref_loss = nn.functional.cross_entropy(out(ref_hidden).reshape(-1, 23), targets.reshape(-1))
    ref_loss.backward()
    torch.testing.assert_close(loss, ref_loss, atol=1e-10, rtol=0)
    torch.testing.assert_close(model.embedding.grad, emb.weight.grad, atol=1e-10, rtol=1e-10)
    torch.testing.assert_close(model.out_weight.grad, out.weight.grad, atol=1e-10, rtol=1e-10)
    torch.testing.assert_close(model.out_bias.grad, out.bias.grad, atol=1e-10, rtol=1e-10)


def test_forward_contract_shapes_and_loss():
    model = make_model(1, torch.float32)
    idx = torch.randint(0, 23, (2, 5))
    logits, loss, (h, c) = model(idx)
    assert logits.shape == (2, 5, 23) and loss is None
    assert h.shape == c.shape == (1, 2, 5)
    # Targets of shape (B,) score only the last position (the write-up's prefix pairs).
    logits, loss, _ = model(idx, torch.tensor([1, 2]))
    assert logits.shape == (2, 1, 23) and loss.ndim == 0
    full, _, _ = model(idx)
    torch.testing.assert_close(logits[:, 0], full[:, -1])
    with pytest.raises(ValueError, match="batch, time"):
        model(torch.tensor([1, 2, 3]))


def test_label_smoothing_changes_the_training_loss_only():
    """Training scores smoothed targets (some mass on every word); evaluation the plain loss."""
    torch.manual_seed(0)
    model = LSTMLanguageModel(ModelConfig(vocab_size=23, embed_dim=8, hidden_size=8,
                                          label_smoothing=0.2))
    idx, targets = torch.randint(0, 23, (2, 5)), torch.randint(0, 23, (2, 5))
    logits, train_loss, _ = model(idx, targets)
    flat = logits.reshape(-1, 23), targets.reshape(-1)
    torch.testing.assert_close(train_loss, F.cross_entropy(*flat, label_smoothing=0.2))
    assert train_loss.item() != pytest.approx(F.cross_entropy(*flat).item())
    model.eval()
    logits, eval_loss, _ = model(idx, targets)
    torch.testing.assert_close(eval_loss, F.cross_entropy(logits.reshape(-1, 23), targets.reshape(-1)))


def test_state_carries_across_calls():
    # Running a sequence in two halves, carrying the state, equals running it at once.
    model = make_model(2, torch.float64)
    idx = torch.randint(0, 23, (3, 10))
    whole, _, _ = model(idx)
    first, _, state = model(idx[:, :4])
    second, _, _ = model(idx[:, 4:], state=state)
    torch.testing.assert_close(torch.cat([first, second], 1), whole, atol=1e-12, rtol=0)


def test_xavier_init_per_gate_block_and_forget_bias():
    model = make_model(1, torch.float32)
    H, E = 5, 7
    weight_ih, weight_hh, bias = model.layer_weights(0)
    bound_ih = (6 / (H + E)) ** 0.5  # Xavier bound of one (H, E) gate block, not of (4H, E)
    assert weight_ih.abs().max() <= bound_ih
    assert weight_ih.abs().max() > (6 / (4 * H + E)) ** 0.5  # wider than a whole-matrix init
    assert weight_hh.abs().max() <= (6 / (2 * H)) ** 0.5
    assert torch.equal(bias[H:2 * H], torch.ones(H)) and bias[:H].abs().sum() == 0


def test_dropout_only_in_training_and_weight_tying():
    torch.manual_seed(0)
    model = LSTMLanguageModel(ModelConfig(vocab_size=30, embed_dim=6, hidden_size=6, dropout=0.5,
                                          tie_weights=True))
    assert model.out_weight is None and model.output_weight is model.embedding
    names = [n for n, _ in model.named_parameters()]
    assert "out_weight" not in names
    idx = torch.randint(0, 30, (2, 8))
    model.eval()
    a, _, _ = model(idx)
    b, _, _ = model(idx)
    assert torch.equal(a, b)  # no dropout at inference
    model.train()
    c, _, _ = model(idx)
    assert not torch.equal(a, c)
    with pytest.raises(ValueError, match="embed_dim == hidden_size"):
        ModelConfig(vocab_size=30, embed_dim=4, hidden_size=6, tie_weights=True)


@pytest.mark.parametrize("kwargs,message", [
    ({"vocab_size": 2}, "vocab_size"),
    ({"vocab_size": 10, "dropout": 1.0}, "dropout"),
    ({"vocab_size": 10, "backend": "cuda"}, "backend"),
    ({"vocab_size": 10, "hidden_size": 0}, "positive"),
    ({"vocab_size": 10, "label_smoothing": 1.0}, "label_smoothing"),
])
def test_config_validation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ModelConfig(**kwargs)


def test_inspect_returns_gates_matching_the_forward_pass():
    model = make_model(2, torch.float64)
    idx = torch.randint(0, 23, (1, 6))
    record = model.inspect(idx)
    assert set(record) == {"input", "forget", "candidate", "output", "cell", "hidden"}
    assert record["forget"].shape == (2, 6, 5)
    hidden, _ = model.run_lstm(idx)
    torch.testing.assert_close(record["hidden"][-1], hidden[0].detach())
    # Gates are sigmoids, the candidate a tanh.
    assert 0 <= record["forget"].min() and record["forget"].max() <= 1
    assert -1 <= record["candidate"].min() and record["candidate"].max() <= 1
    # And h = o * tanh(c) holds at every step.
    torch.testing.assert_close(record["hidden"], record["output"] * torch.tanh(record["cell"]))


def test_hand_written_backward_passes_gradcheck():
    torch.manual_seed(6)
    B, T, E, H = 2, 4, 3, 5
    args = [torch.randn(*shape, dtype=torch.float64, requires_grad=True)
            for shape in ((B, T, E), (B, H), (B, H), (4 * H, E), (4 * H, H), (4 * H,))]
    assert torch.autograd.gradcheck(lstm_layer_bptt, args)


def test_lstm_layer_is_the_textbook_equations():
    torch.manual_seed(5)
    B, E, H = 2, 3, 4
    x = torch.randn(B, 1, E, dtype=torch.float64)
    h, c = torch.randn(B, H, dtype=torch.float64), torch.randn(B, H, dtype=torch.float64)
    w_ih, w_hh, b = (torch.randn(4 * H, E, dtype=torch.float64),
                     torch.randn(4 * H, H, dtype=torch.float64), torch.randn(4 * H, dtype=torch.float64))
    _, h1, c1 = lstm_layer(x, h, c, w_ih, w_hh, b)
    z = x[:, 0] @ w_ih.T + h @ w_hh.T + b
    i, f, g, o = z[:, :H].sigmoid(), z[:, H:2 * H].sigmoid(), z[:, 2 * H:3 * H].tanh(), z[:, 3 * H:].sigmoid()
    torch.testing.assert_close(c1, f * c + i * g)
    torch.testing.assert_close(h1, o * torch.tanh(f * c + i * g))
