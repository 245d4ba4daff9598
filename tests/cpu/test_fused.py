"""The fused RMSNorm/SwiGLU/RoPE kernels against transformers' code: values and gradients, then whole models."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
import torch
from torch.utils import cpp_extension

from r1zero.cpu import extensions as native
from r1zero.cpu import fused

#: skipped only where the kernels truly cannot be built (no compiler or no ninja); where they can, a failed
#: build fails ``test_the_kernels_build_where_a_compiler_is``
CAN_BUILD = shutil.which("c++") is not None and cpp_extension.is_ninja_available()
pytestmark = pytest.mark.skipif(not CAN_BUILD, reason="no C++ compiler or no ninja to build the kernels")


def test_the_kernels_build_where_a_compiler_is():
    assert fused.load() is not None, "a C++ compiler is here but fused_ops.cpp did not build (see the log)"


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


def _transformers_rope(kind: str = "qwen2"):
    """transformers' own ``apply_rotary_pos_emb`` (the one ``use_fused_rope`` replaced, if it did)."""
    import importlib

    module = importlib.import_module(f"transformers.models.{kind}.modeling_{kind}")
    current = module.apply_rotary_pos_emb
    return getattr(current, "r1zero_original", current)


def _rope_inputs(batch: int, heads: int, kv_heads: int, length: int, dim: int, cos_batch: int):
    """q, k as the attention makes them (a projection's output viewed and transposed), cos and sin."""
    torch.manual_seed(3)
    q = torch.randn(batch, length, heads * dim).view(batch, length, heads, dim).transpose(1, 2)
    k = torch.randn(batch, length, kv_heads * dim).view(batch, length, kv_heads, dim).transpose(1, 2)
    angles = torch.rand(cos_batch, length, dim // 2) * 50
    angles = torch.cat([angles, angles], dim=-1)  # [cos_batch, T, D], halves repeated as transformers does
    return q.requires_grad_(), k.requires_grad_(), angles.cos(), angles.sin()


@pytest.mark.parametrize(
    ("batch", "heads", "kv_heads", "length", "dim", "cos_batch"),
    [(1, 4, 2, 300, 64, 1), (3, 2, 1, 17, 16, 3), (2, 4, 4, 9, 128, 1)],
)  # packed [1, N] rows; a padded batch with per-row positions; cos broadcast over a batch
def test_rope_matches_transformers(batch, heads, kv_heads, length, dim, cos_batch):
    q, k, cos, sin = _rope_inputs(batch, heads, kv_heads, length, dim, cos_batch)
    dq, dk = torch.randn(batch, heads, length, dim), torch.randn(batch, kv_heads, length, dim)
    expected = _transformers_rope()(q, k, cos, sin)
    expected_grads = torch.autograd.grad(expected, (q, k), (dq, dk))
    got = (fused.rope(q, cos, sin), fused.rope(k, cos, sin))
    got_grads = torch.autograd.grad(got, (q, k), (dq, dk))
    for a, b in zip((*got, *got_grads), (*expected, *expected_grads), strict=True):
        assert a.shape == b.shape
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-5)


def test_use_fused_rope_replaces_transformers_function_and_falls_back(monkeypatch):
    from transformers.models.qwen2 import modeling_qwen2

    fused.use_fused_rope()
    assert fused.use_fused_rope() == 0  # once per process
    patched = modeling_qwen2.apply_rotary_pos_emb
    assert patched.r1zero_original is _transformers_rope()
    q, k, cos, sin = _rope_inputs(2, 2, 1, 5, 16, 2)
    calls = []
    kernel = fused.rope
    monkeypatch.setattr(fused, "rope", lambda *a: calls.append(1) or kernel(*a))
    patched(q, k, cos, sin)
    assert len(calls) == 2  # q and k through the kernel
    low = [t.detach().to(torch.bfloat16) for t in (q, k, cos, sin)]
    for got, want in zip(patched(*low), _transformers_rope()(*low), strict=True):
        assert torch.equal(got, want)  # bfloat16: transformers' own code
    assert len(calls) == 2


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
def test_a_fused_model_gives_the_same_logits_and_gradients(kind, monkeypatch):
    import importlib

    plain, model = _tiny(kind), _tiny(kind)
    assert fused.use_fused_kernels(model) == 2 * 2 + 1 + 2  # 2 norms per layer, the final norm, 2 MLPs
    model.train()  # stays fused (transformers' train() may reset instance forwards; classes stay)
    assert type(model.model.norm).__name__.startswith("Fused")
    assert model.state_dict().keys() == plain.state_dict().keys()
    modeling = importlib.import_module(f"transformers.models.{kind}.modeling_{kind}")
    fused_rope = modeling.apply_rotary_pos_emb
    assert hasattr(fused_rope, "r1zero_original")
    ids = torch.randint(0, 50, (3, 12))
    outputs = {}
    for name, m in (("plain", plain), ("fused", model)):
        # the plain model on transformers' own RoPE (use_fused_rope replaced it for the process)
        monkeypatch.setattr(
            modeling, "apply_rotary_pos_emb", fused_rope.r1zero_original if m is plain else fused_rope
        )
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
    argv += ["--cpu.fused_kernels", str(enabled).lower(), "--algo.beta", "0.01"]
    argv += ["--run.out_dir", str(tmp_path / "runs"), "--reward.workers", "0"]
    session = open_session(build_config(argv)[0], resume=False)
    for model in (session.learner, session.reference):
        assert type(model.model.norm).__name__.startswith("Fused") is enabled
