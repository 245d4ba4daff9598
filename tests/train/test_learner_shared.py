"""The learner's shared-prompt forward (each GRPO group's prompt runs once) against the plain full forward."""

import pytest
import torch

from r1zero.rollout.base import Rollout
from r1zero.train.forward import completion_outputs, sequence_logprobs
from r1zero.train.learner import pack_rollouts

torch.set_num_threads(1)


def _model(kind: str) -> torch.nn.Module:
    from transformers import (
        LlamaConfig,
        LlamaForCausalLM,
        Qwen2Config,
        Qwen2ForCausalLM,
        Qwen2ForTokenClassification,
    )

    torch.manual_seed(0)
    sizes = dict(
        vocab_size=40, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=64, pad_token_id=0,
    )  # fmt: skip
    if kind == "llama":
        return LlamaForCausalLM(LlamaConfig(**sizes))
    if kind == "qwen2":
        return Qwen2ForCausalLM(Qwen2Config(**sizes))
    return Qwen2ForTokenClassification(Qwen2Config(**sizes, num_labels=1)).eval()  # no dropout noise


def _batch(completion_lengths=((3, 1, 6), (2, 5, 4), (7, 2, 1))):
    """Three groups of three rows: prompts of 4, 6 and 2 tokens (left padding), completions of 1-7 tokens."""
    g = torch.Generator().manual_seed(1)
    rollouts = []
    for prompt_len, lengths in zip((4, 6, 2), completion_lengths, strict=True):
        prompt = tuple(torch.randint(1, 40, (prompt_len,), generator=g).tolist())
        for n in lengths:
            ids = tuple(torch.randint(1, 40, (n,), generator=g).tolist())
            rollouts.append(Rollout(prompt, ids, "", tuple([-1.0] * n), "stop"))
    b = len(rollouts)
    return pack_rollouts(rollouts, torch.randn(b, generator=g), 0)


def _plain(model, batch, key):
    """The reference: one forward over every row's full left-padded prompt + completion."""
    positions = (batch.attention_mask.cumsum(dim=1) - 1).clamp(min=0)
    out = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, position_ids=positions)
    return out[key][:, batch.prompt_width - 1 : -1]


def _grads(model, outputs, batch):
    model.zero_grad()
    weights = torch.randn(outputs.shape, generator=torch.Generator().manual_seed(2))
    mask = batch.loss_mask.reshape(*batch.loss_mask.shape, *[1] * (outputs.dim() - 2))
    (outputs * weights * mask).sum().backward()
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def plain_update(model, batch, loss_agg: str) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The reference update: ``loss_agg``'s loss over one plain full forward of ``batch`` (9 rows, on-policy)
    and its gradient by parameter name."""
    from r1zero.algo import grpo

    logp = torch.log_softmax(_plain(model, batch, "logits"), dim=-1)
    logp = logp.gather(-1, batch.input_ids[:, batch.prompt_width :, None]).squeeze(-1)  # [B, T]
    loss, _ = grpo.grpo_loss(
        logp, logp.detach(), batch.advantages, batch.loss_mask, aggregation=loss_agg, max_len=8,
        num_sequences=9, num_tokens=batch.loss_mask.sum().item(),
    )  # fmt: skip
    model.zero_grad()
    loss.backward()
    return loss, {n: p.grad.clone() for n, p in model.named_parameters()}


@pytest.mark.parametrize("kind", ["llama", "qwen2", "critic"])
def test_shared_prompt_outputs_and_gradients_match_the_full_forward(kind):
    model = _model(kind)
    batch = _batch()
    mask = batch.loss_mask.bool()
    rows = []  # rows of each decoder call: the 3 distinct prompts once, then the 9 completions

    def count(_, args, kwargs):
        rows.append((kwargs["input_ids"] if "input_ids" in kwargs else args[0]).shape[0])

    hook = model.model.register_forward_pre_hook(count, with_kwargs=True)
    shared = completion_outputs(model, batch, "logits")
    hook.remove()
    assert rows == [3, 9]
    plain = _plain(model, batch, "logits")
    assert shared.shape == plain.shape
    assert torch.allclose(shared[mask], plain[mask], atol=1e-5)
    grads_shared, grads_plain = _grads(model, shared, batch), _grads(model, plain, batch)
    assert grads_shared.keys() == grads_plain.keys()
    for name, grad in grads_plain.items():
        assert torch.allclose(grads_shared[name], grad, atol=1e-5), name


def test_shared_prompts_in_length_sorted_micro_batches():
    """Micro-batches cut groups apart; every row still gets its own prompt's keys and values."""
    model = _model("qwen2")
    batch = _batch().by_length()
    with torch.no_grad():
        whole = _plain(model, batch, "logits")
        for start in range(0, 9, 4):
            micro = batch.rows(slice(start, start + 4))
            part = completion_outputs(model, micro, "logits")
            width = part.shape[1]
            keep = micro.loss_mask.bool()
            assert torch.allclose(part[keep], whole[start : start + 4, :width][keep], atol=1e-5)


def test_one_completion_column_and_unshared_rows():
    model = _model("llama")
    for batch in (_batch(((1, 1, 1), (1, 1, 1), (1, 1, 1))), _batch().rows(slice(0, 1))):
        with torch.no_grad():
            logp, _ = sequence_logprobs(model, batch)
            reference = torch.log_softmax(_plain(model, batch, "logits"), dim=-1)
        targets = batch.input_ids[:, batch.prompt_width :]
        expected = reference.gather(-1, targets[..., None]).squeeze(-1)
        assert logp.shape == expected.shape
        assert torch.allclose(logp * batch.loss_mask, expected * batch.loss_mask, atol=1e-5)


@pytest.mark.parametrize("loss_agg", ["grpo", "dapo"])
@pytest.mark.parametrize("micro_batch_size", [2, 9])
def test_policy_update_gradient_with_prompts_run_once_per_step(loss_agg, micro_batch_size):
    """The step's prompts run forward and backward once (detached leaves collect the micro-batches'
    gradients); the gradient equals one plain forward/backward over the whole batch."""
    from r1zero.train.config import AlgoConfig
    from r1zero.train.learner import policy_update

    model = _model("qwen2")
    batch = _batch()
    loss, expected = plain_update(model, batch, loss_agg)

    rows = []
    hook = model.model.register_forward_pre_hook(
        lambda _, args, kwargs: rows.append(kwargs["input_ids"].shape[0]), with_kwargs=True
    )
    algo = AlgoConfig(loss_agg=loss_agg, micro_batch_size=micro_batch_size)
    stats = policy_update(model, torch.optim.SGD(model.parameters(), lr=0.0), batch, algo, max_len=8)
    hook.remove()
    # 3 distinct prompts once, then the completions (a micro-batch of 1-token completions needs no pass)
    assert rows[0] == 3 and sum(rows[1:]) == (9 if micro_batch_size == 9 else 7)
    assert stats["loss"] == pytest.approx(loss.item(), abs=1e-6)
    for name, grad in expected.items():
        assert torch.allclose(model.get_parameter(name).grad, grad, atol=1e-6), name


@pytest.mark.parametrize("micro_batch_size", [2, 9])
def test_critic_update_gradient_with_prompts_run_once_per_step(micro_batch_size):
    """The critic's update shares ``policy_update``'s micro-batching: prompts run once, and the gradient
    equals one plain forward/backward of the clipped value loss over the whole batch."""
    from r1zero.algo import ppo
    from r1zero.train.config import CriticConfig
    from r1zero.train.critic import batch_values, critic_update

    critic = _model("critic")
    critic.dropout.p = 0.0  # as load_critic configures it: critic_update trains in train() mode
    batch = _batch()
    plain = _plain(critic, batch, "logits")[..., 0]  # [B, T]
    old = batch_values(critic, batch, micro_batch_size)
    mask = batch.loss_mask
    assert torch.allclose(old * mask, plain.detach() * mask, atol=1e-5)  # real tokens; padding is unused
    returns = torch.randn(old.shape, generator=torch.Generator().manual_seed(3))
    tokens = batch.loss_mask.sum().item()
    loss, _ = ppo.value_loss(plain, old, returns, batch.loss_mask, 0.2, tokens)
    critic.zero_grad()
    loss.backward()
    expected = {n: p.grad.clone() for n, p in critic.named_parameters()}

    rows = []
    hook = critic.model.register_forward_pre_hook(
        lambda _, args, kwargs: rows.append((args or [kwargs.get("input_ids")])[0].shape[0]), with_kwargs=True
    )
    stats = critic_update(
        critic, torch.optim.SGD(critic.parameters(), lr=0.0), batch, old, returns, CriticConfig(grad_clip=0.0),
        micro_batch_size=micro_batch_size,
    )  # fmt: skip
    hook.remove()
    assert rows[0] == 3 and sum(rows[1:]) <= 9  # the 3 distinct prompts once, then only completions
    assert stats["value_loss"] == pytest.approx(loss.item(), abs=1e-6)
    for name, grad in expected.items():
        assert torch.allclose(critic.get_parameter(name).grad, grad, atol=1e-6), name


@pytest.mark.parametrize("micro_batch_size", [2, 9])
def test_policy_update_under_activation_checkpointing(micro_batch_size):
    """Checkpointed layers drop a KV cache in training mode, so each row runs its own prompt: the loss and
    gradient equal the plain full forward's (found on a GPU run, where presets checkpoint by default)."""
    from r1zero.models.loading import _enable_checkpointing
    from r1zero.train.config import AlgoConfig
    from r1zero.train.learner import policy_update

    model = _model("qwen2")
    batch = _batch()
    loss, expected = plain_update(model, batch, "dapo")

    _enable_checkpointing(model)
    model.train()
    rows = []
    hook = model.model.register_forward_pre_hook(
        lambda _, args, kwargs: rows.append(kwargs["input_ids"].shape[0]), with_kwargs=True
    )
    algo = AlgoConfig(loss_agg="dapo", micro_batch_size=micro_batch_size)
    stats = policy_update(model, torch.optim.SGD(model.parameters(), lr=0.0), batch, algo, max_len=8)
    hook.remove()
    assert sum(rows) == 9  # no shared prompt pass: every row once, with its prompt
    assert stats["loss"] == pytest.approx(loss.item(), abs=1e-6)
    for name, grad in expected.items():
        assert torch.allclose(model.get_parameter(name).grad, grad, atol=1e-6), name
