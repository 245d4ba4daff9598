"""r1zero.cpu.packed: the learner's completions laid end to end give the padded computation's outputs and gradients."""

import logging
import shutil

import pytest
import torch
from torch.utils import cpp_extension

from r1zero.cpu import attention as gqa
from r1zero.cpu import packed
from r1zero.cpu import runs_packed as packs
from r1zero.train.config import AlgoConfig, CriticConfig
from r1zero.train.critic import batch_values, critic_update
from r1zero.train.forward import completion_outputs, prompt_prefix
from r1zero.train.learner import policy_update, split_rows
from tests.train.test_learner_shared import _batch, _grads, _model, _plain, plain_update

torch.set_num_threads(1)


def _packed_model(kind: str) -> torch.nn.Module:
    model = _model(kind)
    assert gqa.use_folded_gqa(model) and packs(model)
    return model


def _decoder_inputs(model: torch.nn.Module) -> tuple[list[tuple[int, ...]], object]:
    shapes: list[tuple[int, ...]] = []

    def record(_, args, kwargs):
        shapes.append(tuple((kwargs.get("input_ids") if "input_ids" in kwargs else args[0]).shape))

    return shapes, model.model.register_forward_pre_hook(record, with_kwargs=True)


@pytest.mark.parametrize("kind", ["llama", "qwen2", "critic"])
def test_packed_outputs_and_gradients_equal_the_full_forward(kind):
    model = _packed_model(kind)
    batch = _batch()  # completions of 1-7 tokens behind prompts of 2-6 tokens
    shapes, hook = _decoder_inputs(model)
    out = completion_outputs(model, batch, "logits")
    hook.remove()
    lengths = batch.attention_mask[:, batch.prompt_width :].sum(dim=1)
    # the 3 prompts, then one packed sequence of every row's completion tokens but its last
    assert shapes == [(3, 6), (1, int((lengths - 1).sum()))]
    plain = _plain(model, batch, "logits")
    mask = batch.loss_mask.bool()
    assert out.shape == plain.shape
    torch.testing.assert_close(out[mask], plain[mask], rtol=1e-5, atol=1e-5)
    expected, got = _grads(model, plain, batch), _grads(model, out, batch)
    assert got.keys() == expected.keys()
    for name, grad in expected.items():
        torch.testing.assert_close(got[name], grad, rtol=1e-4, atol=1e-5, msg=name)


def test_packed_micro_batches_of_sorted_rows_keep_each_rows_prompt():
    model = _packed_model("qwen2")
    batch = _batch().by_length()
    prefix = prompt_prefix(model, batch)
    with torch.no_grad():
        whole = _plain(model, batch, "logits")
        for start in range(0, 9, 4):
            rows = slice(start, start + 4)
            micro = batch.rows(rows)
            part = completion_outputs(model, micro, "logits", prefix.rows(rows))
            keep = micro.loss_mask.bool()
            torch.testing.assert_close(part[keep], whole[rows, : part.shape[1]][keep], rtol=1e-5, atol=1e-5)


def test_one_token_completions_need_no_packed_pass():
    model = _packed_model("llama")
    batch = _batch(((1, 1, 1), (1, 1, 1), (1, 1, 1)))
    shapes, hook = _decoder_inputs(model)
    with torch.no_grad():
        out = completion_outputs(model, batch, "logits")
    hook.remove()
    assert shapes == [(3, 6)]  # the prompts' last positions predict every token
    torch.testing.assert_close(out, _plain(model, batch, "logits"), rtol=1e-5, atol=1e-5)


def test_buckets_cover_every_token_once_in_order():
    lengths = [1, 2, 2, 9, 30, 31]
    prompts = torch.tensor([0, 0, 1, 1, 2, 2])
    mask = torch.tensor([[0, 1, 1], [1, 1, 1], [0, 0, 1]])
    kv = [torch.zeros(3, 1, 3, 4)]
    packing = packed.packing_for(lengths, prompts, mask, kv, kv, groups=2)
    assert len(packing.buckets) >= 2  # short and long rows are not padded to the same length
    assert packing.buckets[0].tokens.start == 0 and packing.buckets[-1].tokens.stop == sum(lengths)
    for before, after in zip(packing.buckets, packing.buckets[1:], strict=False):
        assert before.tokens.stop == after.tokens.start
    for b in packing.buckets:
        assert b.slots.numel() == b.tokens.stop - b.tokens.start
        assert b.bias.shape == (b.rows, 1, 2 * b.length, 3 + b.length)
        # row 0 of the bucket: prompt padding masked, then causal over its completion
        first = b.bias[0, 0, : b.length]
        assert torch.equal(first[:, :3] == 0, mask[b.prompts[0]].bool().expand(b.length, 3))
        assert torch.equal(first[:, 3:] == 0, torch.ones(b.length, b.length).tril().bool())


@pytest.mark.parametrize("loss_agg", ["grpo", "dapo"])
def test_policy_update_packed_equals_the_plain_gradient(loss_agg):
    model = _packed_model("qwen2")
    batch = _batch()
    loss, expected = plain_update(model, batch, loss_agg)
    shapes, hook = _decoder_inputs(model)
    algo = AlgoConfig(loss_agg=loss_agg, micro_batch_size=9)
    stats = policy_update(model, torch.optim.SGD(model.parameters(), lr=0.0), batch, algo, max_len=8)
    hook.remove()
    assert shapes[0] == (3, 6) and shapes[1][0] == 1 and len(shapes) == 2  # prompts, one packed pass
    assert stats["loss"] == pytest.approx(loss.item(), abs=1e-6)
    for name, grad in expected.items():
        torch.testing.assert_close(model.get_parameter(name).grad, grad, rtol=1e-4, atol=1e-6, msg=name)


@pytest.mark.parametrize("loss_agg", ["grpo", "dapo", "dr_grpo", "bnpo"])
def test_policy_update_packed_equals_padded(loss_agg):
    """Same micro-batches (bnpo's are fixed), packed or padded: the same loss and gradient."""
    results = []
    for packed_rows in (True, False):
        model = _packed_model("qwen2")
        if not packed_rows:
            packed.disable(model)
        algo = AlgoConfig(loss_agg=loss_agg, micro_batch_size=4 if loss_agg == "bnpo" else 9)
        stats = policy_update(model, torch.optim.SGD(model.parameters(), lr=0.0), _batch(), algo, max_len=8)
        results.append((stats, {n: p.grad.clone() for n, p in model.named_parameters()}))
    (packed_stats, packed_grads), (padded_stats, padded_grads) = results
    assert packed_stats["loss"] == pytest.approx(padded_stats["loss"], abs=1e-6) and packed_stats["loss"] != 0
    for name, grad in padded_grads.items():
        torch.testing.assert_close(packed_grads[name], grad, rtol=1e-4, atol=1e-6, msg=name)


def test_critic_update_packed_equals_the_plain_gradient():
    from r1zero.algo import ppo

    critic = _packed_model("critic")
    critic.dropout.p = 0.0
    batch = _batch()
    plain = _plain(critic, batch, "logits")[..., 0]
    old = batch_values(critic, batch, 4)
    torch.testing.assert_close(old * batch.loss_mask, plain.detach() * batch.loss_mask, rtol=1e-5, atol=1e-5)
    returns = torch.randn(old.shape, generator=torch.Generator().manual_seed(3))
    loss, _ = ppo.value_loss(plain, old, returns, batch.loss_mask, 0.2, batch.loss_mask.sum().item())
    critic.zero_grad()
    loss.backward()
    expected = {n: p.grad.clone() for n, p in critic.named_parameters()}
    stats = critic_update(
        critic, torch.optim.SGD(critic.parameters(), lr=0.0), batch, old, returns, CriticConfig(grad_clip=0.0),
        micro_batch_size=4,
    )  # fmt: skip
    assert stats["value_loss"] == pytest.approx(loss.item(), abs=1e-6)
    for name, grad in expected.items():
        torch.testing.assert_close(critic.get_parameter(name).grad, grad, rtol=1e-4, atol=1e-6, msg=name)


def test_split_rows_packed_takes_the_fewest_micro_batches():
    model = _packed_model("qwen2")
    prefix = prompt_prefix(model, _batch())
    lengths = [1, 1, 2, 2, 50, 60]
    assert split_rows(model, lengths, 4, prefix) == [slice(0, 2), slice(2, 6)]
    assert split_rows(model, lengths, 4, None) == [slice(0, 4), slice(4, 6)]  # padded: by length


class _DropsKeyword(torch.nn.Module):
    """A wrapper that forwards everything but the packing keyword (as a careless adapter might)."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner, self.config, self.model = inner, inner.config, inner.model

    def forward(
        self, input_ids=None, attention_mask=None, position_ids=None, cache=None, use_cache=None, **kw
    ):
        kw.pop(packed.KWARG, None)
        return self.inner(
            input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, cache=cache,
            use_cache=use_cache, **kw,
        )  # fmt: skip


def test_a_model_that_drops_the_packing_runs_padded_with_a_warning(caplog):
    inner = _packed_model("qwen2")
    model = _DropsKeyword(inner)
    batch = _batch()
    with caplog.at_level(logging.WARNING), torch.no_grad():
        out = completion_outputs(model, batch, "logits")
    assert "did not pass packed rows" in caplog.text and not packs(model)
    mask = batch.loss_mask.bool()
    with torch.no_grad():
        torch.testing.assert_close(out[mask], _plain(inner, batch, "logits")[mask], rtol=1e-5, atol=1e-5)


def test_a_lora_wrapped_model_runs_packed():
    peft = pytest.importorskip("peft", reason="peft is not installed (extra [lora])")
    base = _packed_model("qwen2")
    model = peft.get_peft_model(base, peft.LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.1)  # adapters that change the outputs
    batch = _batch()
    assert packs(model)
    shapes, hook = _decoder_inputs(base)
    with torch.no_grad():
        out = completion_outputs(model, batch, "logits")
    hook.remove()
    # the prompts once (through the wrapper too), then one packed pass that reached every attention layer
    assert shapes[0] == (3, 6) and shapes[1][0] == 1 and packs(model)
    packed.disable(model)
    with torch.no_grad():
        padded = completion_outputs(model, batch, "logits")
    mask = batch.loss_mask.bool()
    torch.testing.assert_close(out[mask], padded[mask], rtol=1e-5, atol=1e-5)
    with torch.no_grad():
        plain = _plain(model, batch, "logits")
    torch.testing.assert_close(out[mask], plain[mask], rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------- the fused kernel (attention_ops.cpp)
needs_kernel = pytest.mark.skipif(
    shutil.which("c++") is None or not cpp_extension.is_ninja_available(),
    reason="no C++ compiler or no ninja for attention_ops.cpp",
)


@needs_kernel
def test_the_kernel_builds_where_a_compiler_is():
    assert packed.load() is not None, (
        "a C++ compiler is here but attention_ops.cpp did not build (see the log)"
    )


def _attention_inputs(lengths, prompt_lengths, width, heads, kv_heads, dim, seed=0):
    """Packed q/k/v ``[1, heads, N, dim]`` and left-padded prompt keys/values, all requiring grad."""
    g = torch.Generator().manual_seed(seed)
    prompts = torch.tensor([r % len(prompt_lengths) for r in range(len(lengths))])
    mask = torch.zeros(len(prompt_lengths), width, dtype=torch.long)
    for u, p in enumerate(prompt_lengths):
        mask[u, width - p :] = 1
    n = sum(lengths)

    def leaf(*shape):
        return torch.randn(*shape, generator=g).requires_grad_()

    q, k, v = leaf(1, heads, n, dim), leaf(1, kv_heads, n, dim), leaf(1, kv_heads, n, dim)
    pk, pv = leaf(len(prompt_lengths), kv_heads, width, dim), leaf(len(prompt_lengths), kv_heads, width, dim)
    return prompts, mask, (q, k, v, pk, pv)


def _attend(lengths, prompts, mask, tensors, fused):
    q, k, v, pk, pv = tensors
    packing = packed.packing_for(lengths, prompts, mask, [pk], [pv], q.shape[1] // k.shape[1], fused=fused)
    assert (packing.rows is not None) == fused and (len(packing.buckets) == 0) == fused
    layer = torch.nn.Module()
    layer.layer_idx = 0
    out = packed.packed_attention(layer, q, k, v, packing, q.shape[-1] ** -0.5)
    upstream = torch.randn(out.shape, generator=torch.Generator().manual_seed(9))
    return out, torch.autograd.grad(out, tensors, upstream)


@needs_kernel
@pytest.mark.parametrize(
    ("lengths", "prompt_lengths", "width", "heads", "kv_heads", "dim"),
    [
        ([1, 2, 5, 7, 3, 30], [3, 5, 2], 6, 4, 2, 64),  # rows shorter and longer than a 16-key panel
        ([0, 4, 0, 9, 1], [1, 4], 4, 4, 1, 128),  # empty rows; 4 query heads on one KV head
        ([17, 33, 2], [16, 1, 7], 16, 2, 2, 32),  # no grouping; a full-width prompt
    ],
)
def test_fused_attention_equals_the_bucketed_sdpa(lengths, prompt_lengths, width, heads, kv_heads, dim):
    prompts, mask, tensors = _attention_inputs(lengths, prompt_lengths, width, heads, kv_heads, dim)
    out, grads = _attend(lengths, prompts, mask, tensors, fused=True)
    ref_out, ref_grads = _attend(lengths, prompts, mask, tensors, fused=False)
    torch.testing.assert_close(out, ref_out, rtol=1e-5, atol=1e-5)
    for name, got, expected in zip(("q", "k", "v", "prompt k", "prompt v"), grads, ref_grads, strict=True):
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5, msg=name)
    pad = ~mask.bool()  # prompt padding is never attended: no gradient reaches it
    assert grads[3].transpose(1, 2)[pad].abs().max() == 0 and grads[4].transpose(1, 2)[pad].abs().max() == 0


@needs_kernel
def test_fused_attention_is_the_same_on_one_and_two_threads():
    prompts, mask, tensors = _attention_inputs([5, 40, 3, 22, 9, 1], [7, 12, 3], 12, 4, 2, 64, seed=4)
    results = []
    for threads in (1, 2):
        before = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            results.append(_attend([5, 40, 3, 22, 9, 1], prompts, mask, tensors, fused=True))
        finally:
            torch.set_num_threads(before)
    (out1, grads1), (out2, grads2) = results
    assert torch.equal(out1, out2)  # each (prompt, KV head) is one thread's work: no reduction order changes
    assert all(torch.equal(a, b) for a, b in zip(grads1, grads2, strict=True))


@needs_kernel
def test_fused_attention_needs_left_padded_float32_prompts():
    _, mask, (*_, pk, pv) = _attention_inputs([3, 4], [2, 3], 4, 4, 2, 64)
    assert packed.kernel_applies(mask, pk)
    assert not packed.kernel_applies(mask.flip(1), pk)  # right-padded: the buckets' mask handles it
    assert not packed.kernel_applies(mask, pk.double())
    assert not packed.kernel_applies(mask, pk[..., :48])  # head dim 48 is not compiled
    packing = packed.packing_for([3, 4], torch.tensor([0, 1]), mask.flip(1), [pk], [pv], 2, fused=True)
    assert packing.rows is None and packing.buckets


@needs_kernel
def test_fused_attention_rejects_rows_that_do_not_cover_the_tokens():
    _, mask, (q, k, v, pk, pv) = _attention_inputs([3, 4], [2, 3], 4, 4, 2, 64)
    flat = [t[0].transpose(0, 1).contiguous().detach() for t in (q, k, v)]
    lengths = torch.tensor([3, 3])  # 6 of the 7 tokens
    with pytest.raises(RuntimeError, match="the rows hold 6 tokens, the tensors 7"):
        packed.load().forward(
            *flat, pk.detach(), pv.detach(), torch.tensor([0, 3]), lengths, torch.tensor([0, 1]),
            mask.sum(1), 0.125,
        )  # fmt: skip
    with pytest.raises(RuntimeError, match="row 1 has prompt 5 of 2"):
        packed.load().forward(
            *flat, pk.detach(), pv.detach(), torch.tensor([0, 3]), torch.tensor([3, 4]), torch.tensor([0, 5]),
            mask.sum(1), 0.125,
        )  # fmt: skip


def _model_with_head_dim_32() -> torch.nn.Module:
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    config = Qwen2Config(
        vocab_size=40, hidden_size=64, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
        num_key_value_heads=1, max_position_embeddings=64, pad_token_id=0,
    )  # fmt: skip
    model = Qwen2ForCausalLM(config)
    assert gqa.use_folded_gqa(model) and packs(model)
    return model


@needs_kernel
@pytest.mark.parametrize("loss_agg", ["grpo", "dapo", "dr_grpo"])
def test_policy_update_with_fused_attention_equals_padded(loss_agg, monkeypatch):
    calls = []
    kernel = packed.fused_packed_attention
    monkeypatch.setattr(packed, "fused_packed_attention", lambda *a: calls.append(1) or kernel(*a))
    results = []
    for mode in ("fused", "padded"):
        model = _model_with_head_dim_32()
        if mode == "fused":
            assert packed.use_fused_attention(model) and packed.uses_fused_attention(model)
        else:
            packed.disable(model)
        algo = AlgoConfig(loss_agg=loss_agg, micro_batch_size=9)
        stats = policy_update(model, torch.optim.SGD(model.parameters(), lr=0.0), _batch(), algo, max_len=8)
        results.append((stats, {n: p.grad.clone() for n, p in model.named_parameters()}))
    assert len(calls) == 2  # both layers of the fused run went through the kernel
    (fused_stats, fused_grads), (padded_stats, padded_grads) = results
    assert fused_stats["loss"] == pytest.approx(padded_stats["loss"], abs=1e-6) and fused_stats["loss"] != 0
    for name, grad in padded_grads.items():
        torch.testing.assert_close(fused_grads[name], grad, rtol=1e-4, atol=1e-6, msg=name)
