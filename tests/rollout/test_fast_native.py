"""The fast engine's C++ decode step (``decode_step.cpp``) computes what its Python step computes."""

from __future__ import annotations

import logging
import shutil
import threading

import pytest
import torch
from torch.utils import cpp_extension

from r1zero.cpu import extensions as native
from r1zero.rollout.base import SamplingParams
from r1zero.rollout.fast import FastEngine
from tests.rollout.fixtures import tiny_llama, tiny_qwen2
from tests.rollout.test_fast import PROMPTS

#: skipped only where the step truly cannot be built (no compiler or no ninja); where it can, a failed
#: build fails these tests rather than skipping them
needs_compiler = pytest.mark.skipif(
    shutil.which("c++") is None or not cpp_extension.is_ninja_available(),
    reason="no C++ compiler or no ninja to build the step",
)


@needs_compiler
def test_extension_builds_here(caplog, monkeypatch):
    monkeypatch.delenv(native.ENV_SWITCH, raising=False)
    native.build.cache_clear()  # build (or load the cached build) now, so that its error is captured
    with caplog.at_level(logging.WARNING, logger=native.__name__):
        module = native.load_decode_step()
    # a failed build would silently leave every engine on its Python step
    assert module is not None, f"a C++ compiler is here but decode_step.cpp did not build:\n{caplog.text}"


@needs_compiler
@pytest.mark.parametrize(
    "make_model, head_dim, heads, kv_heads",
    [
        (tiny_llama, 32, 2, 2),
        (tiny_qwen2, 32, 2, 1),
        (tiny_qwen2, 64, 2, 1),
        (tiny_llama, 16, 4, 4),
        (tiny_qwen2, 16, 8, 1),  # 8 query heads per KV head: two chunks of 4
        (tiny_qwen2, 16, 14, 2),  # 7 per KV head: chunks of 4, 2 and 1
        (tiny_llama, 128, 3, 1),  # wide heads: chunks of 2 and 1
    ],
    ids=["llama-32", "qwen2-gqa-bias-32", "qwen2-gqa-bias-64", "llama-16", "gqa-8", "gqa-7", "gqa-3-128"],
)
def test_native_step_samples_what_the_python_step_samples(make_model, head_dim, heads, kv_heads, tokenizer):
    model = make_model(
        seed=5, hidden_size=heads * head_dim, num_attention_heads=heads, num_key_value_heads=kv_heads
    )
    sampling = SamplingParams(n=5, temperature=1.0, max_new_tokens=40, seed=1, stop=("e",))
    python = FastEngine(model, tokenizer, native=False)
    fast = FastEngine(model, tokenizer)
    assert python._native is None and fast._native is not None
    a, b = python.generate(PROMPTS, sampling), fast.generate(PROMPTS, sampling)
    lengths = set()
    for group_a, group_b in zip(a, b, strict=True):
        for x, y in zip(group_a, group_b, strict=True):
            assert x.completion_ids == y.completion_ids and x.finish_reason == y.finish_reason
            assert max((abs(p - q) for p, q in zip(x.logprobs, y.logprobs, strict=True)), default=0) < 1e-4
            lengths.add(len(x.completion_ids))
    assert len(lengths) > 3  # rows finished at different steps: compaction ran on the C++ caches


@needs_compiler
def test_native_logits_match_python_step_to_float_rounding(tokenizer):
    model = tiny_qwen2(seed=2, hidden_size=128, num_attention_heads=2)
    python, fast = FastEngine(model, tokenizer, native=False), FastEngine(model, tokenizer)
    captured: dict[str, list[torch.Tensor]] = {"python": [], "native": []}
    for name, engine in (("python", python), ("native", fast)):
        step = engine._step

        def record(*args, _step=step, _name=name, **kwargs):
            out = _step(*args, **kwargs)
            captured[_name].append(out.clone())
            return out

        engine._step = record
        engine.generate(PROMPTS, SamplingParams(n=3, temperature=0.0, max_new_tokens=12, seed=0))
    assert len(captured["python"]) == len(captured["native"]) > 5
    for a, b in zip(captured["python"], captured["native"], strict=True):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-4)


@needs_compiler
def test_native_step_runs_in_parallel_decode_threads(tokenizer):
    model = tiny_llama(seed=1)
    sampling = SamplingParams(n=4, temperature=1.0, max_new_tokens=20, seed=3)
    a = FastEngine(model, tokenizer, decode_threads=2, native=False).generate(PROMPTS, sampling)
    b = FastEngine(model, tokenizer, decode_threads=2).generate(PROMPTS, sampling)
    assert [[r.completion_ids for r in g] for g in a] == [[r.completion_ids for r in g] for g in b]
    assert threading.active_count() >= 1


def test_python_step_where_the_native_one_does_not_apply(tokenizer, monkeypatch):
    model = tiny_llama(seed=0, hidden_size=48, num_attention_heads=2)  # head_dim 24: not compiled for
    assert FastEngine(model, tokenizer)._native is None
    assert FastEngine(tiny_llama(seed=0), tokenizer, native=False)._native is None
    assert not native.applies(torch.device("cpu"), torch.float16, 32)
    native.build.cache_clear()
    monkeypatch.setenv(native.ENV_SWITCH, "0")
    try:
        assert native.load_decode_step() is None
        assert FastEngine(tiny_llama(seed=0), tokenizer)._native is None
    finally:
        native.build.cache_clear()


def test_build_directories_differ_by_source_path_and_torch_install(tmp_path, monkeypatch):
    """Two checkouts of one source, or two venvs of one torch version, must not share a build directory:
    ninja would rebuild in turn."""
    sources = []
    for place in ("a", "b"):
        (tmp_path / place).mkdir()
        sources.append(tmp_path / place / "ext.cpp")
        sources[-1].write_text("// the same text in both checkouts\n")
    a, b = (native.build_name(source, "r1zero_test", ["-O3"]) for source in sources)
    assert a != b and a == native.build_name(sources[0], "r1zero_test", ["-O3"])
    assert a != native.build_name(sources[0], "r1zero_test", ["-O3", "-fopenmp"])  # flags count too
    monkeypatch.setattr(torch, "__file__", str(tmp_path / "other-venv" / "torch" / "__init__.py"))
    assert a != native.build_name(sources[0], "r1zero_test", ["-O3"])  # another venv's torch headers
