"""A sharded (FSDP2) model takes no shared prompt pass: its ranks must make the same calls, and whether a
rank's prompts repeat is its own (PPO's groups of one). Each row runs its prompt, with the same values."""

from dataclasses import replace

import torch

from r1zero.train import forward

from .test_learner_correction import _batch, _model


def test_a_sharded_model_runs_each_rows_prompt_with_the_same_logprobs(monkeypatch):
    model, batch = _model(), _batch(torch.zeros(6, 6))
    ids = batch.input_ids.clone()
    ids[:, : batch.prompt_width] = ids[0, : batch.prompt_width]  # one prompt for every row
    batch = replace(batch, input_ids=ids, attention_mask=torch.ones_like(batch.attention_mask))
    assert forward.prompt_prefix(model, batch) is not None  # replicated: the rows share their prompt pass
    shared = forward.frozen_logprobs(model, batch, 4, 1.0)
    monkeypatch.setattr(forward, "is_sharded", lambda m: True)
    assert forward.prompt_prefix(model, batch) is None
    assert torch.allclose(forward.frozen_logprobs(model, batch, 4, 1.0), shared, atol=1e-5)
