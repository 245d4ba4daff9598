"""r1zero.cpu.attention: SDPA with each KV head's query heads folded onto it equals Hugging Face's ``sdpa``."""

import copy

import pytest
import torch

from r1zero.cpu import attention as gqa
from r1zero.train.forward import completion_outputs, prompt_prefix
from tests.rollout.fixtures import tiny_llama, tiny_qwen2
from tests.train.test_learner_shared import _batch


def _inputs(rows: int = 5, length: int = 23):
    """Token ids with left padding of 0-9 tokens, the learner's position ids."""
    g = torch.Generator().manual_seed(3)
    ids = torch.randint(4, 100, (rows, length), generator=g)
    mask = torch.ones_like(ids)
    for r in range(rows):
        mask[r, : 2 * r] = 0
    return ids, mask, (mask.cumsum(1) - 1).clamp(min=0)


def _loss_and_grads(model, ids, mask, positions):
    model.zero_grad()
    logits = model(input_ids=ids, attention_mask=mask, position_ids=positions).logits
    loss = (logits.log_softmax(-1)[..., 5] * mask).sum()
    loss.backward()
    return logits.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}


@pytest.mark.parametrize("heads, kv_heads", [(4, 2), (6, 2), (4, 1)])
def test_folded_attention_equals_sdpa_values_and_gradients(heads, kv_heads):
    plain = tiny_qwen2(
        seed=1, num_attention_heads=heads, num_key_value_heads=kv_heads, hidden_size=16 * heads
    )
    folded = copy.deepcopy(plain)
    assert gqa.use_folded_gqa(folded) and folded.config._attn_implementation == gqa.NAME
    calls = []
    sdpa = torch.nn.functional.scaled_dot_product_attention

    def spy(*args, **kwargs):
        calls.append(args[0].shape)
        return sdpa(*args, **kwargs)

    inputs = _inputs()
    logits, grads = _loss_and_grads(plain, *inputs)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(gqa.F, "scaled_dot_product_attention", spy)
        logits_f, grads_f = _loss_and_grads(folded, *inputs)
    groups = heads // kv_heads
    assert calls == [torch.Size([5, kv_heads, groups * 23, 16])] * 2  # both layers folded
    torch.testing.assert_close(logits_f, logits, rtol=1e-5, atol=1e-5)
    for name, grad in grads.items():
        torch.testing.assert_close(grads_f[name], grad, rtol=1e-4, atol=1e-5, msg=name)


def test_the_learners_shared_prompt_path_is_unchanged():
    """The prompt pass and the completions over its KV cache (the learner's update) on folded attention."""
    plain = tiny_qwen2(seed=4, num_attention_heads=4, num_key_value_heads=2, hidden_size=64, vocab_size=40)
    folded = copy.deepcopy(plain)
    gqa.use_folded_gqa(folded)
    batch = _batch()
    outs = [completion_outputs(m, batch, "logits", prompt_prefix(m, batch)) for m in (plain, folded)]
    real = batch.loss_mask.bool()  # past a row's end the folded (packed) path leaves zeros
    torch.testing.assert_close(outs[1][real], outs[0][real], rtol=1e-5, atol=1e-5)


def test_models_it_does_not_fold_keep_their_attention():
    llama = tiny_llama(seed=0)  # one query head per KV head: Hugging Face's sdpa unchanged
    assert gqa.use_folded_gqa(llama)
    eager = tiny_qwen2(seed=0, attn_implementation="eager")
    assert not gqa.use_folded_gqa(eager) and eager.config._attn_implementation == "eager"
    ids, mask, positions = _inputs(rows=3)
    plain = tiny_llama(seed=0)
    torch.testing.assert_close(
        llama(input_ids=ids, attention_mask=mask, position_ids=positions).logits,
        plain(input_ids=ids, attention_mask=mask, position_ids=positions).logits,
    )


@pytest.mark.parametrize("fused_kernels", [False, True])
def test_training_on_cpu_runs_the_learner_on_folded_attention(tmp_path, monkeypatch, fused_kernels):
    """Without the fused kernels the packed rows go through folded SDPA; with them (the default, where the
    kernel builds) through ``attention_ops.cpp``; never through transformers' ``repeat_kv``."""
    from r1zero.cpu import packed
    from r1zero.train.cli import build_config
    from r1zero.train.recipe import train
    from tests.train.conftest import make_tiny_model

    make_tiny_model(tmp_path / "model", hidden_size=64, kv_heads=1)
    argv = ["--preset", "smoke", "--model.name", str(tmp_path / "model"), "--data.template", "tiny-demo"]
    argv += ["--model.device", "cpu", "--reward.workers", "0", "--run.steps", "1", "--run.eval_every", "0"]
    argv += ["--run.out_dir", str(tmp_path / "runs"), "--run.progress", "false"]
    argv += ["--cpu.fused_kernels", str(fused_kernels).lower()]
    folded: list[torch.Size] = []  # the shapes of every SDPA query
    sdpa = torch.nn.functional.scaled_dot_product_attention
    monkeypatch.setattr(
        gqa.F, "scaled_dot_product_attention", lambda *a, **k: folded.append(a[0].shape) or sdpa(*a, **k)
    )
    kernel_calls: list[int] = []
    kernel = packed.fused_packed_attention
    monkeypatch.setattr(packed, "fused_packed_attention", lambda *a: kernel_calls.append(1) or kernel(*a))
    train(build_config(argv)[0])
    if fused_kernels and packed.load() is not None:
        assert kernel_calls  # the packed completions' attention ran in C++
    else:
        assert not kernel_calls
        assert any(
            shape[1] == 1 for shape in folded
        )  # [B, 1 KV head, 2 T, Dh] (unpadded batches: plain SDPA)
