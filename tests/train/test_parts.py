"""Trainer pieces: packing + learner log-probs vs the rollout engine, metrics, monitors, sampler, runlog."""

import json

import pytest
import torch

from r1zero.rollout import build_engine
from r1zero.rollout.base import Rollout, SamplingParams
from r1zero.train.forward import sequence_logprobs
from r1zero.train.learner import pack_rollouts
from r1zero.train.metrics import rollout_metrics, sample_records
from r1zero.train.monitors import MonitorInput, run_monitors
from r1zero.train.runlog import truncate_jsonl

torch.set_num_threads(1)


@pytest.mark.parametrize("backend", ["hf", "fast"])
def test_learner_logprobs_match_the_engine(tiny_model_dir, backend):
    """Left-padded prompts of different lengths: positions must not shift, or the IS ratio is wrong."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    engine = build_engine(backend, model, tokenizer)
    groups = engine.generate(
        ["what is 1+2?", "a much longer prompt: what is 3+4+5+6?"],
        SamplingParams(n=3, max_new_tokens=12, seed=3),
    )
    rollouts = [r for g in groups for r in g]
    batch = pack_rollouts(
        rollouts,
        torch.zeros(len(rollouts)),
        tokenizer.pad_token_id,
    )
    with torch.no_grad():
        logp, entropy = sequence_logprobs(model, batch, with_entropy=True)
    assert torch.allclose(logp * batch.loss_mask, batch.rollout_logp * batch.loss_mask, atol=1e-4)
    assert entropy is not None and (entropy[batch.loss_mask.bool()] > 0).all()
    # micro-batches are trimmed to the columns they use; their log-probs are the same numbers
    with torch.no_grad():
        for i in range(len(rollouts)):
            micro = batch.rows(slice(i, i + 1))
            assert micro.input_ids.shape[1] == len(rollouts[i].prompt_ids) + max(
                len(rollouts[i].completion_ids), 1
            )
            part = sequence_logprobs(model, micro)[0]  # [1, T_i]
            width = part.shape[1]
            assert torch.allclose(
                part * micro.loss_mask, logp[i : i + 1, :width] * micro.loss_mask, atol=1e-5
            )


def test_pack_rollouts_layout_and_overlong_rows():
    rollouts = [
        Rollout((1, 2, 3), (7, 8), "ab", (-0.1, -0.2), "stop"),
        Rollout((4,), (9, 9, 9), "ccc", (-0.3, -0.4, -0.5), "length"),
    ]
    batch = pack_rollouts(
        rollouts, torch.tensor([1.0, -1.0]), pad_id=0, truncated=torch.tensor([False, True])
    )
    assert batch.prompt_width == 3
    assert batch.input_ids.tolist() == [[1, 2, 3, 7, 8, 0], [0, 0, 4, 9, 9, 9]]
    assert batch.attention_mask.tolist() == [[1, 1, 1, 1, 1, 0], [0, 0, 1, 1, 1, 1]]
    assert batch.loss_mask.tolist() == [[1, 1, 0], [0, 0, 0]]
    assert batch.rollout_logp[1].tolist() == pytest.approx([-0.3, -0.4, -0.5])


def _record(correct, formatted, text, length, truncated=False, prompt="p"):
    return {
        "prompt": prompt, "completion": text, "gold": "1", "reward": float(correct),
        "parts": {"accuracy": float(correct), "format": 0.0}, "correct": correct, "formatted": formatted,
        "reason": "correct" if correct else "wrong", "extracted": "1", "length": length,
        "truncated": truncated, "reflection_hits": 0,
    }  # fmt: skip


def test_rollout_metrics_golden():
    records = [
        _record(True, True, "1+2=3, wait, 3", 10),
        _record(False, True, "4", 20),
        _record(False, False, "no", 30, truncated=True),
        _record(True, True, "ok", 40),
    ]
    m = rollout_metrics(records)
    assert m["train/reward"] == 0.5 and m["train/accuracy"] == 0.5 and m["train/format_rate"] == 0.75
    assert m["train/reward/accuracy"] == 0.5 and m["train/reward/format"] == 0.0
    assert (
        m["length/mean"],
        m["length/correct_mean"],
        m["length/incorrect_mean"],
        m["length/clip_ratio"],
    ) == (25.0, 25.0, 25.0, 0.25)
    assert m["reflection/per_response"] == 0.25
    assert m["reflection/per_1k_tokens"] == pytest.approx(1000 / 100)
    only_wrong = rollout_metrics([_record(False, False, "x", 5)])
    assert "length/correct_mean" not in only_wrong  # NaN-free: omitted when empty


def test_sample_records_take_one_per_group():
    records = [_record(True, True, f"t{i}", 5, prompt=f"p{i // 4}") for i in range(12)]
    picked = sample_records(records, step=3, k=2)
    assert [p["prompt"] for p in picked] == ["p0", "p1"] and all(p["step"] == 3 for p in picked)


def test_monitors_fire_on_their_patterns():
    calm = MonitorInput(["<think>1+2=3</think> <answer>3</answer>"] * 4, [False] * 4, 0.5, [0.1, 0.2])
    assert run_monitors(calm) == {
        "format_saturation": False,
        "repeated_tags": False,
        "length_cap": False,
        "reward_divergence": False,
    }
    hacked = MonitorInput(["<answer>3</answer></answer>"] * 4, [True] * 3 + [False], 1.0, [0.2] * 12)
    assert run_monitors(hacked) == {
        "format_saturation": True,
        "repeated_tags": True,
        "length_cap": True,
        "reward_divergence": False,
    }


def test_truncate_jsonl_drops_lines_past_the_step_and_torn_lines(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text("".join(json.dumps({"step": s}) + "\n" for s in range(5)) + '{"step": 5, "tor')
    assert truncate_jsonl(path, 2) == 3
    assert [json.loads(x)["step"] for x in path.read_text().splitlines()] == [0, 1, 2]
