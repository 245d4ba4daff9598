"""Chunked learner log-probs equal the naive full log-softmax, and gradients flow through them."""

from __future__ import annotations

import pytest
import torch

from r1zero.logprobs import completion_logprobs, naive_completion_logprobs, token_logprobs_and_entropy
from tests.rollout.fixtures import tiny_llama, tiny_qwen2


def _batch(rows: int = 5, width: int = 23, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(4, 100, (rows, width), generator=gen)
    attention = torch.ones(rows, width, dtype=torch.long)
    completion = torch.zeros(rows, width, dtype=torch.long)
    for i in range(rows):  # left padding of i tokens, completion = the last 6 + i tokens
        attention[i, :i] = 0
        ids[i, :i] = 0
        completion[i, width - 6 - i :] = 1
    return ids, attention, completion


@pytest.mark.parametrize("make_model", [tiny_llama, tiny_qwen2], ids=["llama", "qwen2"])
@pytest.mark.parametrize(("micro_batch", "chunk", "temperature"), [(2, 4, 1.0), (5, 100, 1.0), (1, 7, 0.6)])
def test_chunked_equals_naive(make_model, micro_batch, chunk, temperature):
    model = make_model(seed=1)
    ids, attention, completion = _batch()
    with torch.no_grad():
        lp, ent = completion_logprobs(
            model, ids, attention, completion, micro_batch=micro_batch, chunk=chunk, temperature=temperature
        )
        lp_ref, ent_ref = naive_completion_logprobs(
            model, ids, attention, completion, temperature=temperature
        )
    assert lp.shape == ent.shape == ids.shape
    assert torch.allclose(lp, lp_ref, atol=1e-5) and torch.allclose(ent, ent_ref, atol=1e-5)
    assert (lp[completion == 0] == 0).all() and (lp[completion == 1] < 0).all()
    assert (ent[completion == 1] > 0).all()


def test_naive_reference_is_the_plain_log_softmax_of_the_logits():
    model = tiny_llama(seed=1)
    ids = torch.randint(4, 100, (2, 9))
    ones = torch.ones_like(ids)
    with torch.no_grad():
        lp, _ = naive_completion_logprobs(model, ids, ones, ones)
        logits = model(ids).logits
    expected = torch.log_softmax(logits[:, :-1], -1).gather(-1, ids[:, 1:, None]).squeeze(-1)
    assert torch.allclose(lp[:, 1:], expected, atol=1e-6) and (lp[:, 0] == 0).all()


def test_gradients_equal_naive_gradients():
    ids, attention, completion = _batch(rows=3, width=15)
    grads = []
    for fn in (completion_logprobs, naive_completion_logprobs):
        model = tiny_llama(seed=3)
        kwargs = {"micro_batch": 2, "chunk": 4} if fn is completion_logprobs else {}
        lp, ent = fn(model, ids, attention, completion, **kwargs)
        (lp.sum() + 0.1 * ent.sum()).backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
    assert grads[0].abs().sum() > 0
    assert torch.allclose(grads[0], grads[1], atol=1e-5)


def test_token_logprobs_and_entropy_of_a_uniform_distribution():
    lp, ent = token_logprobs_and_entropy(torch.zeros(2, 3, 10), torch.zeros(2, 3, dtype=torch.long))
    assert torch.allclose(lp, torch.full((2, 3), -torch.log(torch.tensor(10.0))))
    assert torch.allclose(ent, torch.full((2, 3), torch.log(torch.tensor(10.0))))


def test_shape_mismatch_names_the_shapes():
    ids = torch.zeros(2, 5, dtype=torch.long)
    with pytest.raises(ValueError, match=r"completion_mask \(2, 4\)"):
        completion_logprobs(tiny_llama(), ids, torch.ones_like(ids), torch.ones(2, 4))
