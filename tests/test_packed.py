"""r1zero.packed: the learner's completions laid end to end give the padded computation's outputs and gradients."""

import logging

import pytest
import torch

from r1zero import gqa, packed
from r1zero.train.config import AlgoConfig, CriticConfig
from r1zero.train.critic import batch_values, critic_update
from r1zero.train.learner import completion_outputs, packs, policy_update, prompt_prefix, split_rows
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
    from r1zero import ppo

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
