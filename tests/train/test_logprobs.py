"""Chunked LM head + log-softmax (``r1zero.train.logprobs``) against the full logits, and its wiring into
the learner's ``sequence_logprobs``: same log-probs, entropies and gradients, never ``[b, T, V]`` logits."""

import pytest
import torch

from r1zero.algo.batch import PackedBatch, prefix_rows
from r1zero.rollout.base import Rollout
from r1zero.train import logprobs
from r1zero.train.forward import prompt_prefix, sequence_logprobs
from r1zero.train.learner import pack_rollouts
from r1zero.train.logprobs import chunk_positions, chunked_logprobs, token_logprobs

torch.set_num_threads(1)

VOCAB = 128
ATOL = 1e-5
SIZES = dict(
    hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2
)
#: completion tokens of the 9 rows (7 columns, right padding) and the prompt length of each group of 3
COMPLETIONS, PROMPTS = (3, 1, 6, 2, 5, 4, 7, 2, 1), (4, 6, 2)


def _model(head: str) -> torch.nn.Module:
    """A 2-layer tiny-base Llama: ``tied`` embeddings (tiny-base's), ``untied``, or an untied ``bias`` head;
    ``qwen2``: the same sizes as a tied Qwen2 (Qwen2.5's architecture: biased q/k/v projections)."""
    from transformers import LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    from r1zero.models.tiny import tiny_config

    torch.manual_seed(0)
    config = tiny_config(**SIZES, tie_word_embeddings=head in ("tied", "qwen2"))
    if head == "qwen2":
        fields = {k: v for k, v in config.to_dict().items() if k not in ("architectures", "model_type")}
        return Qwen2ForCausalLM(Qwen2Config(**fields))
    model = LlamaForCausalLM(config)
    if head == "bias":
        model.lm_head = torch.nn.Linear(SIZES["hidden_size"], VOCAB, bias=True)
        torch.nn.init.normal_(model.lm_head.bias)
    assert (model.lm_head.weight is model.model.embed_tokens.weight) == (head == "tied")
    return model


def _batch(shared: bool) -> PackedBatch:
    """9 rows: prompts of 2-7 tokens (left padding), completions of 1-7 tokens (right padding); ``shared``:
    three groups of three rows share a prompt (the prefix path), else every row has its own."""
    g = torch.Generator().manual_seed(1)
    rollouts = []
    for row, n in enumerate(COMPLETIONS):
        if not shared or row % 3 == 0:
            length = PROMPTS[row // 3] + (0 if shared else row % 2)
            prompt = tuple(torch.randint(4, VOCAB, (length,), generator=g).tolist())
        ids = tuple(torch.randint(4, VOCAB, (n,), generator=g).tolist())
        rollouts.append(Rollout(prompt, ids, "", tuple([-1.0] * n), "stop"))
    return pack_rollouts(rollouts, torch.randn(len(rollouts), generator=g), 0)


def _update(model, batch, temperature, chunk_size, detach=False):
    """``sequence_logprobs`` and the gradient of a masked weighted sum of its log-probs, by parameter."""
    model.zero_grad(set_to_none=True)
    prefix = prompt_prefix(model, batch, detach=True) if detach else None
    logp, entropy = sequence_logprobs(
        model,
        batch,
        temperature,
        with_entropy=True,
        prefix=prefix_rows(prefix, slice(None)),
        chunk_size=chunk_size,
    )  # [b, T]
    weights = torch.randn(logp.shape, generator=torch.Generator().manual_seed(2))  # [b, T]
    (logp * weights * batch.loss_mask).sum().backward()
    if prefix is not None:
        prefix.backward()
    grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    return logp.detach(), entropy, grads


@pytest.mark.parametrize("head", ["tied", "untied", "bias", "qwen2"])
@pytest.mark.parametrize("shared", [True, False], ids=["prefix", "no-prefix"])
@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_chunked_sequence_logprobs_match_the_full_logits(head, shared, temperature):
    model = _model(head)
    batch = _batch(shared)
    assert (prompt_prefix(model, batch) is not None) == shared
    mask = batch.loss_mask.bool()
    full_logp, full_entropy, full_grads = _update(model, batch, temperature, chunk_size=None)
    assert set(full_grads) == {name for name, _ in model.named_parameters()}  # head and embeddings included
    for chunk_size in (1, 4, 5, 100):  # T = 7: 4 and 5 divide neither T nor the T - 1 of the prefix path
        for detach in (False, True) if shared else (False,):  # True: the learner's step-wide prefix
            logp, entropy, grads = _update(model, batch, temperature, chunk_size, detach)
            assert torch.allclose(logp[mask], full_logp[mask], atol=ATOL), (chunk_size, detach)
            assert torch.allclose(entropy[mask], full_entropy[mask], atol=ATOL), (chunk_size, detach)
            assert grads.keys() == full_grads.keys()
            for name, grad in full_grads.items():
                assert torch.allclose(grads[name], grad, atol=ATOL), (name, chunk_size, detach)


@pytest.mark.parametrize("shared", [True, False], ids=["prefix", "no-prefix"])
def test_chunked_path_never_builds_full_logits(shared):
    """Every LM-head call of the chunked path, forward and backward, covers at most one chunk of positions."""
    model = _model("tied")
    batch = _batch(shared)
    widths = []
    hook = model.lm_head.register_forward_hook(lambda _m, _i, out: widths.append(out.shape[1]))
    logp, _ = sequence_logprobs(model, batch, chunk_size=2)
    (logp * batch.loss_mask).sum().backward()
    hook.remove()
    assert max(widths) <= 2
    assert (
        sum(w == 2 for w in widths) >= 2 * 3
    )  # T - 1 >= 6 positions in chunks of 2, recomputed in the backward


def test_automatic_choice_full_for_small_chunked_for_big(monkeypatch):
    model = _model("tied")
    batch = _batch(True)
    widths = []
    model.lm_head.register_forward_hook(lambda _m, _i, out: widths.append(out.shape[1]))
    with torch.no_grad():
        small, _ = sequence_logprobs(model, batch)
        assert max(widths) == batch.input_ids.shape[1] - batch.prompt_width - 1  # T - 1 columns in one call
        widths.clear()
        # 9 rows x 1 position x 128 vocab x 4 bytes = 4608 bytes per position
        monkeypatch.setattr(logprobs, "FULL_LOGITS_MAX_BYTES", 4608)
        monkeypatch.setattr(logprobs, "CHUNK_BYTES", 3 * 4608)
        big, _ = sequence_logprobs(model, batch)
    assert max(widths) == 3
    assert torch.allclose(big * batch.loss_mask, small * batch.loss_mask, atol=ATOL)


@pytest.mark.parametrize(
    ("shape", "max_bytes", "chunk_bytes", "expected"),
    [
        ((6, 20, 128), None, None, None),  # the CPU demo: 61,440 bytes
        ((8, 512, 151_936), None, None, 13),  # 4,861,952 bytes per position; 64 MiB / that = 13.8
        ((1, 10, 10), 400, 120, None),  # exactly max_bytes: one piece
        ((1, 11, 10), 400, 120, 3),  # 440 bytes; 120 // 40
        ((1, 11, 10), 400, 1, 1),  # at least one position
        ((1, 11, 10), 400, 10**9, 11),  # at most every position
    ],
)
def test_chunk_positions(shape, max_bytes, chunk_bytes, expected):
    assert chunk_positions(*shape, max_bytes=max_bytes, chunk_bytes=chunk_bytes) == expected


def test_token_logprobs_golden():
    """logits [0, ln 3] at temperature 1: p = [1/4, 3/4]; entropy = ln 4 - (3/4) ln 3."""
    logits = torch.tensor([[0.0, torch.log(torch.tensor(3.0)).item()]])
    logp, entropy = token_logprobs(logits, torch.tensor([1]), with_entropy=True)
    assert torch.allclose(logp, torch.log(torch.tensor([0.75])))
    assert torch.allclose(entropy, torch.tensor([1.3862944 - 0.75 * 1.0986123]))
    assert not entropy.requires_grad
    halved, _ = token_logprobs(2 * logits, torch.tensor([1]), temperature=2.0)
    assert torch.allclose(halved, logp)


@pytest.mark.parametrize("chunk_size", [1, 3, 4, 10])
def test_chunked_logprobs_gradients_of_a_bias_head(chunk_size):
    """Hidden states and a biased head get the full computation's gradients (T = 7, temperature 0.5)."""
    torch.manual_seed(0)
    head = torch.nn.Linear(6, 11, bias=True)
    hidden = torch.randn(2, 7, 6, requires_grad=True)
    targets = torch.randint(0, 11, (2, 7))
    grads = []
    for chunked in (False, True):
        head.zero_grad()
        hidden.grad = None
        if chunked:
            logp, entropy = chunked_logprobs(hidden, head, targets, 0.5, chunk_size, with_entropy=True)
        else:
            logp, entropy = token_logprobs(head(hidden), targets, 0.5, with_entropy=True)
        (logp * torch.arange(14.0).view(2, 7)).sum().backward()
        grads.append(
            (logp.detach(), entropy, hidden.grad.clone(), head.weight.grad.clone(), head.bias.grad.clone())
        )
    for full, chunked in zip(*grads, strict=True):
        assert torch.allclose(full, chunked, atol=ATOL)


def test_bad_chunk_size_and_a_model_without_a_head():
    with pytest.raises(ValueError, match="chunk_size=0"):
        chunked_logprobs(
            torch.zeros(1, 2, 3), torch.nn.Linear(3, 4), torch.zeros(1, 2, dtype=torch.long), chunk_size=0
        )
    batch = _batch(False)

    class Logits(torch.nn.Module):  # a causal LM without get_output_embeddings
        def forward(self, input_ids, attention_mask=None, position_ids=None):
            return {"logits": torch.zeros(*input_ids.shape, VOCAB)}

    logp, _ = sequence_logprobs(Logits(), batch)  # full path
    assert torch.allclose(logp, torch.full(logp.shape, -torch.log(torch.tensor(float(VOCAB))).item()))
    with pytest.raises(ValueError, match="chunk_size=4 needs a model"):
        sequence_logprobs(Logits(), batch, chunk_size=4)


def test_policy_update_with_the_chunked_path(monkeypatch):
    """The learner's update (a step-wide prefix, micro-batches, the GRPO loss) has the same loss and
    gradient when ``sequence_logprobs`` chooses the chunked path."""
    from r1zero.train.config import AlgoConfig
    from r1zero.train.learner import policy_update

    results = []
    for max_bytes in (logprobs.FULL_LOGITS_MAX_BYTES, 0):
        monkeypatch.setattr(logprobs, "FULL_LOGITS_MAX_BYTES", max_bytes)
        monkeypatch.setattr(logprobs, "CHUNK_BYTES", 1)  # one position per chunk
        model = _model("tied")
        optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
        widths: list[int] = []
        model.lm_head.register_forward_hook(lambda _m, _i, out, seen=widths: seen.append(out.shape[1]))
        stats = policy_update(
            model, optimizer, _batch(True), AlgoConfig(micro_batch_size=4), max_len=8, temperature=0.8
        )
        results.append((stats, {n: p.grad.clone() for n, p in model.named_parameters()}, max(widths)))
    (full_stats, full_grads, full_width), (stats, grads, width) = results
    assert full_width > 1 and width == 1
    assert abs(stats["loss"] - full_stats["loss"]) < ATOL
    assert abs(stats["entropy"] - full_stats["entropy"]) < ATOL
    for name, grad in full_grads.items():
        assert torch.allclose(grads[name], grad, atol=ATOL), name


def test_docstring_examples():
    import doctest

    result = doctest.testmod(logprobs)
    assert result.failed == 0 and result.attempted > 0
