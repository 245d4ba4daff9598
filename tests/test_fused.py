"""The fused RMSNorm/SwiGLU kernels against transformers' modules: values and gradients, then whole models."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from r1zero import fused
from r1zero.rollout import native

pytestmark = pytest.mark.skipif(fused.load() is None, reason="the C++ kernels cannot be built here")


@pytest.mark.parametrize("shape", [(3, 5, 256), (7, 40), (1, 1, 17), (2, 33, 128), (300, 64)])
def test_rmsnorm_matches_transformers(shape):
    from transformers.models.qwen2.modeling_qwen2 import Qwen2RMSNorm

    torch.manual_seed(0)
    norm = Qwen2RMSNorm(shape[-1], eps=1e-6)
    norm.weight.data.normal_()
    x = (torch.randn(shape) * 3).requires_grad_()
    dy = torch.randn(shape)
    expected = norm(x)
    expected.backward(dy)
    dx, dw = x.grad.clone(), norm.weight.grad.clone()
    x.grad, norm.weight.grad = None, None
    got = fused.rmsnorm(x, norm.weight, 1e-6)
    got.backward(dy)
    assert got.shape == expected.shape
    assert torch.allclose(got, expected, rtol=1e-5, atol=1e-5)
    assert torch.allclose(x.grad, dx, rtol=1e-4, atol=1e-5)
    assert torch.allclose(norm.weight.grad, dw, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(
    ("scale", "shape"), [(1.0, (4, 9, 77)), (30.0, (4, 9, 77)), (1.0, (3, 50, 96))]
)  # 30: exp's clamped range (|gate| up to ~150); (3, 50, 96): over 4096 elements, split over threads
def test_swiglu_matches_silu_times_up(scale, shape):
    torch.manual_seed(1)
    gate = (torch.randn(shape) * scale).requires_grad_()
    up = torch.randn(shape).requires_grad_()
    dy = torch.randn(shape)
    expected = torch.nn.functional.silu(gate) * up
    expected.backward(dy)
    dgate, dup = gate.grad.clone(), up.grad.clone()
    gate.grad, up.grad = None, None
    got = fused.swiglu(gate, up)
    got.backward(dy)
    assert torch.allclose(got, expected, rtol=1e-5, atol=1e-6)
    assert torch.allclose(gate.grad, dgate, rtol=1e-5, atol=1e-6)
    assert torch.allclose(up.grad, dup, rtol=1e-5, atol=1e-6)


@pytest.mark.skipif(sys.platform != "linux", reason="OpenMP is linked on Linux only")
def test_kernels_are_built_with_openmp():
    """Without ``-fopenmp``, ``at::parallel_for`` runs the whole loop on the calling thread (the kernels
    were built so until 2026-12-05): the extension must need the OpenMP runtime torch has loaded."""
    assert b"libgomp.so.1" in Path(fused.load().__file__).read_bytes()


def test_swiglu_on_non_contiguous_inputs():
    torch.manual_seed(2)
    both = torch.randn(6, 2 * 40)
    gate, up = both[:, :40], both[:, 40:]  # views with a row stride of 80
    assert torch.allclose(fused.swiglu(gate, up), torch.nn.functional.silu(gate) * up, rtol=1e-5, atol=1e-6)


def _tiny(kind: str, seed: int = 0) -> torch.nn.Module:
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(seed)
    sizes = dict(
        vocab_size=50, hidden_size=48, intermediate_size=96, num_hidden_layers=2, num_attention_heads=2,
        num_key_value_heads=1, max_position_embeddings=64,
    )  # fmt: skip
    if kind == "llama":
        return LlamaForCausalLM(LlamaConfig(**sizes))
    return Qwen2ForCausalLM(Qwen2Config(**sizes))


@pytest.mark.parametrize("kind", ["llama", "qwen2"])
def test_a_fused_model_gives_the_same_logits_and_gradients(kind):
    plain, model = _tiny(kind), _tiny(kind)
    assert fused.use_fused_kernels(model) == 2 * 2 + 1 + 2  # 2 norms per layer, the final norm, 2 MLPs
    model.train()  # stays fused (transformers' train() may reset instance forwards; classes stay)
    assert type(model.model.norm).__name__.startswith("Fused")
    assert model.state_dict().keys() == plain.state_dict().keys()
    ids = torch.randint(0, 50, (3, 12))
    outputs = {}
    for name, m in (("plain", plain), ("fused", model)):
        logits = m(input_ids=ids).logits
        logits.square().mean().backward()
        outputs[name] = (logits.detach(), {n: p.grad for n, p in m.named_parameters()})
    assert torch.allclose(outputs["fused"][0], outputs["plain"][0], atol=1e-5)
    for name, grad in outputs["plain"][1].items():
        assert torch.allclose(outputs["fused"][1][name], grad, rtol=1e-4, atol=1e-6), name


def test_left_alone_where_the_kernels_do_not_apply(monkeypatch):
    assert fused.use_fused_kernels(_tiny("qwen2").to(torch.bfloat16)) == 0
    model = _tiny("qwen2")
    native.build.cache_clear()
    monkeypatch.setenv(native.ENV_SWITCH, "0")
    try:
        assert fused.use_fused_kernels(model) == 0
        assert not type(model.model.norm).__name__.startswith("Fused")
    finally:
        native.build.cache_clear()


@pytest.mark.parametrize("enabled", [True, False])
def test_the_trainer_fuses_its_cpu_learner_as_configured(enabled, tmp_path):
    from r1zero.train.cli import build_config
    from r1zero.train.session import open_session
    from tests.train.conftest import make_tiny_model

    model_dir = make_tiny_model(tmp_path / "model")
    argv = ["--preset", "smoke", "--model.name", str(model_dir), "--model.device", "cpu"]
    argv += ["--model.fused_kernels", str(enabled).lower(), "--algo.beta", "0.01"]
    argv += ["--run.out_dir", str(tmp_path / "runs"), "--reward.workers", "0"]
    session = open_session(build_config(argv)[0], resume=False)
    for model in (session.learner, session.reference):
        assert type(model.model.norm).__name__.startswith("Fused") is enabled
