"""On a CUDA GPU: the backends agree there as they do on the CPU, the GPU computes what the CPU
computes, and a run trained there resumes exactly and loads on a machine without one.

Skipped where PyTorch sees no GPU (CI has none). On a GPU: ``pytest tests/test_cuda.py``; it
needs PyTorch alone, not MLflow or Gradio.
"""

import copy
import io

import pytest
import torch

from conftest import PROJECT_CORPUS
from lstm_core.generate import SamplingConfig, generate_ids
from lstm_core.memorization import extractable_memorization
from lstm_core.model import LSTMLanguageModel, ModelConfig
from training.config import TrainConfig
from training.loop import Trainer

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="PyTorch sees no CUDA GPU")

CUDA = torch.device("cuda")
# (dtype, absolute tolerance) for backends on one device, as in the CPU parity tests.
PRECISIONS = [(torch.float32, 1e-5), (torch.float64, 1e-10)]
# cuDNN's fused kernels (the "torch" backend) sum in their own order. On an H100, float32, 5 seeds:
# scratch vs autograd differed by at most 1.1e-7 everywhere; cuDNN's plain RNN under AR/TAR,
# whose gradients reach 6.5, by up to 7.7e-5 (float64 agrees to 1e-10, so it is rounding).
FUSED_FLOAT32_TOL = 1e-4
ALL_ON = dict(dropout=0.3, locked_dropout=True, embed_dropout=0.2, weight_drop=0.5, ar=2.0, tar=1.0)
BACKENDS = {"lstm": ("autograd", "scratch", "torch"), "gru": ("autograd", "torch"),
            "rnn": ("autograd", "torch")}


@pytest.fixture(autouse=True)
def full_float32():
    """cuDNN may use TF32 (10-bit mantissas) for float32 by default: these tests compare at
    float32's own precision, so it is switched off while they run."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def small_model(cell="lstm", dtype=torch.float32, **settings) -> LSTMLanguageModel:
    torch.manual_seed(0)
    config = ModelConfig(vocab_size=23, embed_dim=7, hidden_size=7, num_layers=2, cell=cell,
                         tie_weights=True, **settings)
    return LSTMLanguageModel(config).to(dtype)


def forward_backward(model, backend, idx, targets, seed=5):
    """One training forward + backward; masks drawn after the same seed."""
    model.set_backend(backend)
    model.zero_grad()
    torch.manual_seed(seed)  # seeds the GPU's generator too
    logits, loss, state = model(idx, targets)
    loss.backward()
    return logits, loss, state[0], {name: p.grad.clone() for name, p in model.named_parameters()}


def assert_same(result, reference, tol, label):
    def named(name):
        return lambda details: f"{label}, {name}: {details}"
    for got, want, name in zip(result[:3], reference[:3], ("logits", "loss", "h"), strict=True):
        torch.testing.assert_close(got, want, atol=tol, rtol=0, msg=named(name))
    for name, grad in reference[3].items():
        torch.testing.assert_close(result[3][name], grad, atol=tol, rtol=tol, msg=named(name))


def token_batch(seed=2):
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, 23, (2, 3, 11), generator=gen).to(CUDA)


@pytest.mark.parametrize("dtype,tol", PRECISIONS)
@pytest.mark.parametrize("regularized", [False, True])
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_backends_agree_on_the_gpu_under_the_same_masks(cell, regularized, dtype, tol):
    model = small_model(cell, dtype, **(ALL_ON if regularized else {})).to(CUDA).train()
    idx, targets = token_batch()
    first, *others = BACKENDS[cell]
    reference = forward_backward(model, first, idx, targets)
    if regularized:  # other masks give other logits: the comparison below is not vacuous
        assert not torch.allclose(reference[0], forward_backward(model, first, idx, targets, 6)[0])
    for backend in others:
        assert_same(forward_backward(model, backend, idx, targets), reference,
                    FUSED_FLOAT32_TOL if backend == "torch" and dtype == torch.float32 else tol, backend)


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.float64, 1e-10)])
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_the_gpu_computes_what_the_cpu_computes(cell, dtype, tol):
    cpu_model = small_model(cell, dtype).eval()  # no dropout: the two devices draw other masks
    gpu_model = copy.deepcopy(cpu_model).to(CUDA)
    idx, targets = token_batch()
    for backend in BACKENDS[cell]:
        on_gpu = forward_backward(gpu_model, backend, idx, targets)
        on_cpu = forward_backward(cpu_model, backend, idx.cpu(), targets.cpu())
        moved = (*(t.cpu() for t in on_gpu[:3]), {k: v.cpu() for k, v in on_gpu[3].items()})
        assert_same(moved, on_cpu, tol, f"{backend} on the GPU")


def test_generation_and_memorization_on_the_gpu_match_the_cpu():
    torch.manual_seed(0)
    cpu_model = LSTMLanguageModel(ModelConfig(vocab_size=40, embed_dim=16, hidden_size=16)).eval()
    gpu_model = copy.deepcopy(cpu_model).to(CUDA)
    greedy = SamplingConfig(max_new_tokens=30, temperature=0.0)
    assert generate_ids(gpu_model, [3, 4], greedy) == generate_ids(cpu_model, [3, 4], greedy)
    source = torch.randint(0, 40, (400,), generator=torch.Generator().manual_seed(1)).tolist()
    assert extractable_memorization(gpu_model, source, 8, 8) == \
        extractable_memorization(cpu_model, source, 8, 8)


def train_config(device: str, steps: int, **overrides) -> TrainConfig:
    return TrainConfig(recipe="windows", steps=steps, eval_interval=10, device=device,
                       embed_dim=32, hidden_size=32, batch_size=16, seq_len=16, seed=3,
                       memorization_sample=8, **overrides)


def val_losses(trainer: Trainer) -> list[float]:
    losses = []
    trainer.run(on_log=lambda step, metrics: losses.append(metrics["val_loss"]))
    return losses


def test_training_on_the_gpu_follows_the_cpu_run():
    text = PROJECT_CORPUS.read_text()
    on_gpu = val_losses(Trainer(train_config("cuda", 30, dropout=0.0), text))
    on_cpu = val_losses(Trainer(train_config("cpu", 30, dropout=0.0), text))
    assert len(on_gpu) == len(on_cpu) == 3
    # Summation order differs between the devices, so allow float32 rounding to accumulate.
    assert on_gpu == pytest.approx(on_cpu, rel=1e-4)
    assert on_gpu[-1] < on_gpu[0]


def cpu_tensors_only(value) -> bool:
    if isinstance(value, torch.Tensor):
        return value.device.type == "cpu"
    if isinstance(value, dict):
        return all(cpu_tensors_only(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return all(cpu_tensors_only(v) for v in value)
    return True


def test_a_gpu_run_resumes_exactly_and_its_checkpoint_loads_without_a_gpu():
    text = PROJECT_CORPUS.read_text()
    config = train_config("cuda", 20, dropout=0.3, weight_drop=0.3)  # masks from the GPU's RNG
    uninterrupted = val_losses(Trainer(config, text))

    first = Trainer(config, text)
    saved = {}
    first.run(on_checkpoint=saved.__setitem__, should_stop=lambda: first.step >= 10)
    assert cpu_tensors_only(saved["last"])  # optimizer state and RNG states included
    buffer = io.BytesIO()
    torch.save(saved["last"], buffer)
    buffer.seek(0)
    checkpoint = torch.load(buffer, map_location="cpu", weights_only=True)

    resumed = val_losses(Trainer(config, text, checkpoint=checkpoint))
    assert resumed == pytest.approx(uninterrupted[1:], rel=1e-5)

    on_cpu = Trainer(train_config("cpu", 20, dropout=0.3, weight_drop=0.3), text, checkpoint)
    idx = torch.randint(0, len(on_cpu.corpus.vocab), (2, 12))
    with torch.no_grad():
        want = first.model.eval()(idx.to(CUDA))[0].cpu()
        torch.testing.assert_close(on_cpu.model.eval()(idx)[0], want, atol=1e-5, rtol=1e-5)
