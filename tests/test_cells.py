"""The plain RNN and the GRU compute what nn.RNN and nn.GRU compute, and fit every LSTM path."""

import json

import pytest
import torch
import torch.nn.functional as F
from mlflow.tracking import MlflowClient
from torch import nn

from lstm_core.generate import SamplingConfig, generate_ids
from lstm_core.memorization import extractable_memorization
from lstm_core.model import LSTMLanguageModel, ModelConfig
from training import runs, store
from training.config import TrainConfig
from training.tracking import train_run

PRECISIONS = [(torch.float32, 1e-5), (torch.float64, 1e-10)]
NEW_CELLS = ["gru", "rnn"]


def make_model(cell, num_layers, dtype=torch.float64, **kwargs):
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=23, embed_dim=7, hidden_size=5, num_layers=num_layers, cell=cell,
                      **kwargs)
    model = LSTMLanguageModel(cfg).to(dtype)
    with torch.no_grad():  # random biases, so a misplaced one (b_hn above all) shows
        for name, p in model.named_parameters():
            if "bias" in name:
                p.normal_()
    return model


def reference(model: LSTMLanguageModel) -> nn.Module:
    """An independent nn.GRU / nn.RNN (tanh) holding copies of the model's weights."""
    cfg = model.config
    module = nn.GRU if cfg.cell == "gru" else nn.RNN
    ref = module(cfg.embed_dim, cfg.hidden_size, num_layers=cfg.num_layers, batch_first=True)
    ref = ref.to(model.embedding.dtype)
    with torch.no_grad():
        for layer in range(cfg.num_layers):
            weight_ih, weight_hh, bias, *bias_hn = model.layer_weights(layer)
            getattr(ref, f"weight_ih_l{layer}").copy_(weight_ih)
            getattr(ref, f"weight_hh_l{layer}").copy_(weight_hh)
            getattr(ref, f"bias_ih_l{layer}").copy_(bias)
            bias_hh = getattr(ref, f"bias_hh_l{layer}")
            bias_hh.zero_()
            if bias_hn:  # PyTorch's b_hn: inside r * (W_hn h + b_hn), the last H entries
                bias_hh[-cfg.hidden_size:].copy_(bias_hn[0])
    return ref


@pytest.mark.parametrize("dtype,tol", PRECISIONS)
@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("with_state", [False, True])
@pytest.mark.parametrize("backend", ["autograd", "torch"])
@pytest.mark.parametrize("cell", NEW_CELLS)
def test_cell_matches_torch_forward_and_backward(cell, backend, with_state, num_layers, dtype, tol):
    model = make_model(cell, num_layers, dtype, backend=backend)
    ref = reference(model)
    idx = torch.randint(0, 23, (4, 9), generator=torch.Generator().manual_seed(1))
    h0 = torch.randn(num_layers, 4, 5, dtype=dtype, requires_grad=True) if with_state else None
    ref_h0 = h0.detach().clone().requires_grad_(True) if with_state else None
    emb = model.embedding.detach().clone().requires_grad_(True)

    hidden, state = model.run_lstm(idx, None if h0 is None else (h0,))
    ref_out, ref_h = ref(F.embedding(idx, emb), ref_h0)
    assert len(state) == 1  # (h,): no cell state
    torch.testing.assert_close(hidden, ref_out, atol=tol, rtol=0)
    torch.testing.assert_close(state[0], ref_h, atol=tol, rtol=0)

    weights = torch.randn_like(hidden)
    ((hidden * weights).sum() + state[0].sum()).backward()
    ((ref_out * weights).sum() + ref_h.sum()).backward()
    H = model.config.hidden_size
    for layer in range(num_layers):
        weight_ih, weight_hh, bias, *bias_hn = model.layer_weights(layer)
        close = dict(atol=tol, rtol=tol)
        torch.testing.assert_close(weight_ih.grad, getattr(ref, f"weight_ih_l{layer}").grad, **close)
        torch.testing.assert_close(weight_hh.grad, getattr(ref, f"weight_hh_l{layer}").grad, **close)
        torch.testing.assert_close(bias.grad, getattr(ref, f"bias_ih_l{layer}").grad, **close)
        if bias_hn:
            torch.testing.assert_close(bias_hn[0].grad, getattr(ref, f"bias_hh_l{layer}").grad[-H:], **close)
    torch.testing.assert_close(model.embedding.grad, emb.grad, atol=tol, rtol=tol)
    if with_state:
        torch.testing.assert_close(h0.grad, ref_h0.grad, atol=tol, rtol=tol)


@pytest.mark.parametrize("cell", NEW_CELLS)
def test_forward_contract_state_and_carry(cell):
    model = make_model(cell, 2)
    idx = torch.randint(0, 23, (3, 10))
    logits, loss, state = model(idx)
    assert logits.shape == (3, 10, 23) and loss is None
    assert len(state) == 1 and state[0].shape == (2, 3, 5)
    assert len(model.initial_state(3)) == 1
    first, _, state = model(idx[:, :4])
    second, _, _ = model(idx[:, 4:], state=state)
    torch.testing.assert_close(torch.cat([first, second], 1), logits, atol=1e-12, rtol=0)
    _, loss, _ = model(idx, idx)
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())


@pytest.mark.parametrize("cell", NEW_CELLS)
def test_generation_memorization_and_checkpoint_round_trip(cell):
    model = make_model(cell, 1, torch.float32)
    model.eval()
    source = torch.randint(2, 23, (40,), generator=torch.Generator().manual_seed(3))
    ids = generate_ids(model, [2, 3], SamplingConfig(max_new_tokens=8))
    assert len(ids) == 10
    assert 0.0 <= extractable_memorization(model, source, 4, 4) <= 1.0
    copy = LSTMLanguageModel(ModelConfig(**model.config.to_dict()))
    copy.load_state_dict(model.state_dict())
    assert generate_ids(copy.eval(), [2, 3], SamplingConfig(max_new_tokens=8)) == ids


def test_scratch_means_autograd_for_new_cells_and_bad_cell_is_refused():
    assert ModelConfig(vocab_size=10, cell="gru").backend == "autograd"
    assert ModelConfig(vocab_size=10, cell="lstm").backend == "scratch"
    assert TrainConfig(cell="rnn").backend == "autograd"
    assert TrainConfig(cell="gru", backend="torch").backend == "torch"
    with pytest.raises(ValueError, match="cell must be one of"):
        ModelConfig(vocab_size=10, cell="transformer")
    with pytest.raises(ValueError, match="cell must be one of"):
        TrainConfig(cell="lstm2")


def test_parameter_shapes_per_cell():
    shapes = {cell: {n: tuple(p.shape) for n, p in make_model(cell, 1).named_parameters()}
              for cell in ("lstm", "gru", "rnn")}
    assert shapes["lstm"]["weight_hh_l0"] == (20, 5) and "bias_hn_l0" not in shapes["lstm"]
    assert shapes["gru"]["weight_hh_l0"] == (15, 5) and shapes["gru"]["bias_hn_l0"] == (5,)
    assert shapes["rnn"]["weight_ih_l0"] == (5, 7) and shapes["rnn"]["bias_l0"] == (5,)


def test_gru_update_gate_starts_at_bias_one():
    model = LSTMLanguageModel(ModelConfig(vocab_size=10, hidden_size=4, cell="gru"))
    _, _, bias, bias_hn = model.layer_weights(0)
    assert torch.equal(bias[4:8], torch.ones(4)) and bias[:4].abs().sum() == 0
    assert bias_hn.abs().sum() == 0


def test_inspect_gru_gates_follow_the_equations():
    model = make_model("gru", 2)
    idx = torch.randint(0, 23, (1, 6))
    record = model.inspect(idx)
    assert set(record) == {"reset", "update", "candidate", "hidden"}
    assert record["update"].shape == (2, 6, 5)
    hidden, _ = model.run_lstm(idx)
    torch.testing.assert_close(record["hidden"][-1], hidden[0].detach())
    h, z, n = record["hidden"], record["update"], record["candidate"]
    previous = torch.cat([torch.zeros_like(h[:, :1]), h[:, :-1]], dim=1)
    torch.testing.assert_close(h, (1 - z) * n + z * previous)  # h_t = (1 - z) n + z h_{t-1}
    assert set(make_model("rnn", 1).inspect(idx)) == {"hidden"}


@pytest.mark.slow  # 15-30 s each on a busy 2-CPU machine
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_each_cell_trains_logs_and_generates(temp_store, cell):
    config = TrainConfig.for_recipe("windows", steps=6, eval_interval=3, embed_dim=12, hidden_size=12,
                                    batch_size=4, seq_len=12, cell=cell)
    run_id = train_run(config, on_log=lambda line: None)
    run = MlflowClient().get_run(run_id)
    assert run.data.params["cell"] == cell and run.data.tags["cell"] == cell
    # The LSTM keeps its hand-written backward; for the others scratch falls back, and says so.
    assert run.data.params["backend"] == ("scratch" if cell == "lstm" else "autograd")
    assert list(runs.list_runs()["cell"]) == [cell]
    loaded = runs.load_run(run_id)
    assert loaded.model.config.cell == cell
    assert len(loaded.model.initial_state(1)) == (2 if cell == "lstm" else 1)
    ids = generate_ids(loaded.model, loaded.vocab.encode(["the"]), SamplingConfig(max_new_tokens=5))
    assert len(ids) == 6
    flow = json.loads(store.artifact_path(run_id, "gradient_flow.json").read_text())
    assert flow["distance"] == list(range(60)) and flow["grad_norm"][0] == pytest.approx(1.0)
    assert all(v > 0 for v in flow["grad_norm"])
    assert store.artifact_path(run_id, "gradient_flow.png").read_bytes()[:4] == b"\x89PNG"
