"""r1zero.cpu.onednn: F.linear's maths (values and gradients) on oneDNN's GEMM, and where it is used."""

import os
import platform
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from r1zero.cpu import onednn
from tests.rollout.fixtures import char_tokenizer, tiny_qwen2

needs_onednn = pytest.mark.skipif(not onednn.available(), reason="this torch build has no oneDNN linear op")


def _reference(x, w, b):
    """The float64 result and gradients (of the sum of ``out * probe``) of ``F.linear``."""
    leaves = [t.detach().double().requires_grad_() for t in (x, w, *([b] if b is not None else []))]
    out = F.linear(*leaves)
    (out * _probe(out)).sum().backward()
    return out, [t.grad for t in leaves]


def _probe(out: torch.Tensor) -> torch.Tensor:
    return torch.linspace(-1, 1, out.numel(), dtype=out.dtype).view(out.shape)


CASES = {
    "2d, bias": ((37, 24), (19, 24), True),
    "3d, no bias": ((3, 11, 24), (19, 24), False),
    "transposed input": ("t", (19, 24), True),
    "transposed weight": ((37, 24), "t", False),
}


@needs_onednn
@pytest.mark.parametrize("case", CASES)
def test_linear_gives_f_linears_values_and_gradients(case):
    torch.manual_seed(0)
    x_shape, w_shape, with_bias = CASES[case]
    x = torch.randn(24, 37).t() if x_shape == "t" else torch.randn(*x_shape)
    w = torch.randn(24, 19).t() if w_shape == "t" else torch.randn(*w_shape)
    b = torch.randn(19) if with_bias else None
    leaves = [t.clone().requires_grad_() for t in (x, w, *([b] if with_bias else []))]
    out = onednn.linear(*leaves)
    (out * _probe(out)).sum().backward()
    expected, grads = _reference(x, w, b)
    assert out.dtype == torch.float32 and out.shape == expected.shape
    assert (out.double() - expected).abs().max() < 1e-4
    for leaf, grad in zip(leaves, grads, strict=True):
        assert (leaf.grad.double() - grad).abs().max() < 1e-4


@needs_onednn
def test_linear_runs_on_onednn_for_float32_cpu_only(monkeypatch):
    calls = []
    gemm = onednn._gemm
    monkeypatch.setattr(onednn, "_gemm", lambda *a: calls.append(a[0].shape) or gemm(*a))
    x, w = torch.randn(5, 4), torch.randn(3, 4)
    onednn.linear(x, w)
    assert calls == [(5, 4)]
    for dtype in (torch.float64, torch.bfloat16):  # other dtypes: F.linear itself, bit for bit
        assert torch.equal(onednn.linear(x.to(dtype), w.to(dtype)), F.linear(x.to(dtype), w.to(dtype)))
    assert len(calls) == 1
    empty = onednn.linear(torch.randn(0, 4), w)
    assert empty.shape == (0, 3) and len(calls) == 1


@needs_onednn
def test_add_linear_adds_the_product_without_touching_the_residual():
    torch.manual_seed(1)
    x, h, w = torch.randn(6, 8), torch.randn(6, 5), torch.randn(8, 5)
    before = x.clone()
    out = onednn.add_linear(x, h, w)
    assert torch.equal(x, before)
    assert (out.double() - (x.double() + h.double() @ w.double().T)).abs().max() < 1e-5


@needs_onednn
@pytest.mark.parametrize("rows", [1, 7, 16, 33, 64, 100, 300])
def test_a_packed_weight_gives_the_plain_weights_results(rows):
    """``pack`` changes the layout only: the same GEMM results up to float32 rounding. Bit for bit on the
    project's Zen 4 hosts from 2 rows up; oneDNN may pick another kernel for either layout on other CPUs
    (7 rows differed in the last bit on a GPU machine's host), and a single plain row takes its GEMV."""
    torch.manual_seed(rows)
    w, b = torch.randn(96, 40), torch.randn(96)
    x, x3, residual = torch.randn(rows, 40), torch.randn(2, rows, 40), torch.randn(rows, 96)
    packed = onednn.pack(w)
    assert packed.is_mkldnn and packed.shape == w.shape
    assert (onednn.linear(x, packed).double() - x.double() @ w.double().T).abs().max() < 1e-4
    pairs = [
        (onednn.linear(x, packed), onednn.linear(x, w)),
        (onednn.linear(x, packed, b), onednn.linear(x, w, b)),
        (onednn.linear(x3, packed), onednn.linear(x3, w)),
        (onednn.add_linear(residual, x, packed), onednn.add_linear(residual, x, w)),
    ]
    for got, plain in pairs:
        assert got.shape == plain.shape
        assert (got - plain).abs().max() <= 1e-5 * plain.abs().max()  # a few float32 ulps of the largest


def test_pack_leaves_weights_oneDNN_does_not_take_as_they_are():
    w = torch.randn(5, 4, dtype=torch.float64)
    assert onednn.pack(w) is w
    assert not onednn.pack(torch.randn(5, 4).to(torch.bfloat16)).is_mkldnn


@needs_onednn
def test_use_onednn_routes_a_models_linear_layers_forward_and_backward(monkeypatch):
    """A Qwen2 forward/backward after ``use_onednn``: every projection (7 per layer + the head) and its
    backward's input gradient go through oneDNN (the weight gradient through ``torch.mm``); loss,
    gradients and state dict equal the plain model's."""
    torch.manual_seed(3)
    plain, model = tiny_qwen2(seed=0), tiny_qwen2(seed=0)
    ids = torch.randint(3, 60, (3, 9))
    calls = []
    gemm = onednn._gemm
    monkeypatch.setattr(onednn, "_gemm", lambda *a: calls.append(1) or gemm(*a))

    def loss_and_grads(m):
        loss = m(input_ids=ids).logits.log_softmax(-1).mean()
        loss.backward()
        return loss.item(), [p.grad for p in m.parameters() if p.grad is not None]

    plain_loss, plain_grads = loss_and_grads(plain)
    assert calls == []
    layers = model.config.num_hidden_layers
    assert onednn.use_onednn(model) == 7 * layers + 1
    loss, grads = loss_and_grads(model)
    assert len(calls) == 2 * (7 * layers + 1)  # forward + grad input of each linear
    assert abs(loss - plain_loss) < 1e-6
    for a, b in zip(grads, plain_grads, strict=True):
        assert (a - b).abs().max() < 1e-5
    assert model.state_dict().keys() == plain.state_dict().keys()
    assert all(isinstance(m, torch.nn.Linear) for m in model.modules() if isinstance(m, onednn.Linear))


@needs_onednn
def test_fast_engine_draws_the_same_tokens_on_either_gemm():
    from r1zero.rollout.base import SamplingParams
    from r1zero.rollout.fast import FastEngine

    model, tokenizer = tiny_qwen2(seed=2), char_tokenizer()
    prompts = ["1 + 2 = ?", "what is 12 * 3?", "9 - 4 = ?"]
    sampling = SamplingParams(n=3, temperature=1.0, max_new_tokens=16, seed=5)
    on = FastEngine(model, tokenizer).generate(prompts, sampling)
    off = FastEngine(model, tokenizer, onednn=False).generate(prompts, sampling)
    for group_on, group_off in zip(on, off, strict=True):
        for a, b in zip(group_on, group_off, strict=True):
            assert a.completion_ids == b.completion_ids
            assert max(abs(x - y) for x, y in zip(a.logprobs, b.logprobs, strict=True)) < 1e-5


@needs_onednn
@pytest.mark.parametrize("enabled", [True, False])
def test_training_uses_onednn_as_configured(enabled, tmp_path, monkeypatch):
    """cpu.onednn reaches the learner (its linear layers: their backward GEMMs) and the fast engine."""
    from r1zero.train.build import make_engine
    from r1zero.train.cli import build_config
    from r1zero.train.recipe import train
    from tests.train.conftest import make_tiny_model

    model_dir = make_tiny_model(tmp_path / "model")
    argv = ["--preset", "smoke", "--model.name", str(model_dir), "--data.template", "tiny-demo"]
    argv += [
        "--model.device",
        "cpu",
        "--reward.workers",
        "0",
        "--rollout.backend",
        "fast",
        "--run.steps",
        "1",
        "--run.eval_every",
        "0",
    ]
    argv += [
        "--cpu.onednn",
        str(enabled).lower(),
        "--run.out_dir",
        str(tmp_path),
        "--run.progress",
        "false",
    ]
    config, _ = build_config(argv)
    backward_calls = []
    backward = onednn._Linear.backward
    monkeypatch.setattr(
        onednn._Linear, "backward", staticmethod(lambda *a: backward_calls.append(1) or backward(*a))
    )
    train(config)
    assert bool(backward_calls) is enabled
    engine = make_engine(config, tiny_qwen2(seed=0), char_tokenizer())
    assert (engine._linear is onednn.linear) is enabled
    assert engine.lm_head.is_mkldnn is enabled  # the decode's weights packed in oneDNN's layout
    assert all(layer.gate_up_w.is_mkldnn is enabled for layer in engine.layers)


@needs_onednn
def test_a_run_of_ever_new_shapes_keeps_its_memory_bounded():
    """oneDNN caches one entry per GEMM shape; unbounded, 200 shapes grew a fresh process by ~600 MB."""
    code = """
import random, resource, torch
from r1zero.cpu import onednn
w = torch.randn(1024, 256, requires_grad=True)
start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
for m in random.Random(0).sample(range(1, 3000), 200):
    onednn.linear(torch.randn(m, 256, requires_grad=True), w).sum().backward()
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - start) / 1024)
"""
    env = {k: v for k, v in os.environ.items() if k not in onednn._CACHE_VARIABLES}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert float(done.stdout) < 250, f"peak RSS grew by {float(done.stdout):.0f} MB"


@pytest.mark.parametrize(
    ("vendor", "machine", "expected"),
    [
        ("AuthenticAMD", "x86_64", True),
        ("HygonGenuine", "x86_64", True),
        ("GenuineIntel", "x86_64", False),  # MKL's own AVX-512 kernels
        ("", "x86_64", False),  # unknown: PyTorch's default
        ("AuthenticAMD", "aarch64", False),
    ],
)
def test_preferred_follows_the_cpu_vendor(vendor, machine, expected, monkeypatch):
    monkeypatch.setattr(onednn, "cpu_vendor", lambda: vendor)
    monkeypatch.setattr(onednn.platform, "machine", lambda: machine)
    assert onednn.preferred() is (expected and onednn.available())
    assert onednn.resolve(None) is onednn.preferred()
    assert onednn.resolve(True) is True
    assert onednn.resolve(False) is False


def test_cpu_vendor_reads_this_machine():
    vendor = onednn.cpu_vendor()
    if platform.system() == "Linux" and platform.machine() == "x86_64":
        assert vendor in ("GenuineIntel", "AuthenticAMD", "HygonGenuine"), vendor
    assert isinstance(vendor, str)
