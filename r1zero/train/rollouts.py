"""Roll out and score: the sampling and verification steps of the recipe, and held-out evaluation.

Sampling is seeded per (run seed, step, refill round, rank), so the completions of a step do not depend
on when the process started: a resumed run samples exactly what an uninterrupted one would.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch

from r1zero.algo import grpo
from r1zero.algo.shaping import format_only_rewards, random_rewards
from r1zero.data.problem import Problem
from r1zero.data.sampler import PromptSampler
from r1zero.eval.behaviour import count_reflection
from r1zero.rollout.base import Rollout, SamplingParams
from r1zero.train import build
from r1zero.train.config import TrainConfig
from r1zero.train.distributed import DistInfo, shard_range
from r1zero.train.metrics import rollout_metrics
from r1zero.verifiers import Verdict

__all__ = ["Group", "RewardControl", "collect_groups", "evaluate_heldout", "rollout_seed", "score_groups"]


@dataclass(frozen=True)
class Group:
    """One prompt's G scored completions: the rollouts, their rewards and their log records."""

    rollouts: list[Rollout]
    rewards: list[float]
    records: list[dict[str, Any]]


@dataclass(frozen=True)
class RewardControl:
    """A control reward trained on in place of the verifier's (``reward.verifier``): a coin flip with
    probability ``p`` (``random``) or the format check alone (``format_only``), paid as the config's
    ``correct`` / ``wrong`` rewards. The verifier still scores every completion (records keep its
    ``correct`` flag and its reward as ``verifier_reward``)."""

    kind: str
    p: float = 0.0
    correct: float = 1.0
    wrong: float = 0.0

    def rewards(self, verdicts: Sequence[Verdict], seed: int, index: int) -> torch.Tensor:
        """``[G]`` rewards of one group; the coin flips are a pure function of ``(seed, index)``.

        >>> RewardControl("format_only").rewards([Verdict(1.0, True, False, "bad_format")], 0, 0)
        tensor([0.])
        """
        if self.kind == "format_only":
            hits = format_only_rewards(torch.tensor([v.formatted for v in verdicts]))  # [G]
        elif self.kind == "random":
            hits = random_rewards((len(verdicts),), self.p, seed=seed, step=index)  # [G]
        else:
            raise ValueError(f"reward control must be random or format_only; got {self.kind!r}")
        return self.wrong + (self.correct - self.wrong) * hits


def rollout_seed(seed: int, step: int, round_: int, rank: int) -> int:
    """A distinct, reproducible sampling seed per (run seed, step, refill round, rank).

    >>> rollout_seed(0, 1, 0, 0) != rollout_seed(0, 1, 0, 1) != rollout_seed(0, 2, 0, 0)
    True
    """
    return (seed * 1_000_003 + step * 10_007 + round_ * 101 + rank) % (2**63 - 1)


def _sampling(config: TrainConfig, n: int, temperature: float, seed: int) -> SamplingParams:
    r = config.rollout
    return SamplingParams(
        n=n,
        temperature=temperature,
        top_p=r.top_p if temperature else 1.0,
        top_k=r.top_k if temperature else 0,
        max_new_tokens=r.max_new_tokens,
        stop=tuple(r.stop),
        seed=seed,
    )


def score_groups(
    config: TrainConfig,
    problems: Sequence[Problem],
    prompts: Sequence[str],
    groups: Sequence[list[Rollout]],
    learned: Any = None,
    control: RewardControl | None = None,
    seed: int = 0,
) -> list[Group]:
    """Verify every completion (one pool call for all groups); add the learned reward model's score when
    there is one (``learned``, a ``LearnedReward``) and DAPO's soft overlong penalty if set. A ``control``
    replaces the verifier's reward (its coin flips seeded by ``seed`` and the group's index)."""
    flat_problems = [p for p, g in zip(problems, groups, strict=True) for _ in g]
    texts = [r.text for g in groups for r in g]
    verdicts = iter(build.verify(config, flat_problems, texts))
    learned_scores = iter(
        learned.score([p for p, g in zip(prompts, groups, strict=True) for _ in g], texts)
        if learned is not None
        else [None] * len(texts)
    )
    out = []
    for index, (problem, prompt, group) in enumerate(zip(problems, prompts, groups, strict=True)):
        scored = [_with_learned(next(verdicts), next(learned_scores), config) for _ in group]
        verifier_rewards = [v.reward for v in scored]
        rewards = torch.tensor(verifier_rewards)  # [G]
        if control is not None:
            rewards = control.rewards(scored, seed, index)  # [G]
        if config.reward.overlong_buffer:
            lengths = torch.tensor([len(r.completion_ids) for r in group])  # [G]
            penalty = grpo.soft_overlong_penalty(
                lengths, config.rollout.max_new_tokens, config.reward.overlong_buffer
            )
            rewards = rewards + config.reward.overlong_factor * penalty
        records = [
            {
                "prompt": prompt,
                "completion": r.text,
                "gold": problem.answer,
                "reward": reward,
                "parts": dict(v.parts),
                "correct": v.correct,
                "formatted": v.formatted,
                "reason": v.reason,
                "extracted": v.extracted,
                "length": len(r.completion_ids),
                "truncated": r.finish_reason == "length",
                "reflection_hits": count_reflection(r.text, config.run.reflection),
                **({"verifier_reward": vr} if control is not None else {}),
            }
            for r, v, reward, vr in zip(group, scored, rewards.tolist(), verifier_rewards, strict=True)
        ]
        out.append(Group(list(group), rewards.tolist(), records))
    return out


def _with_learned(verdict: Verdict, learned: float | None, config: TrainConfig) -> Verdict:
    """The verdict with the rule reward weighted and the learned score added (as ``parts["learned"]``)."""
    r = config.reward
    if learned is None and r.rule_weight == 1.0:
        return verdict
    extra = r.model_weight * learned if learned is not None else 0.0
    parts = dict(verdict.parts) | ({"learned": float(learned)} if learned is not None else {})
    return replace(verdict, reward=r.rule_weight * verdict.reward + extra, parts=parts)


def collect_groups(
    config: TrainConfig,
    engine: Any,
    tokenizer: Any,
    sampler: PromptSampler,
    step: int,
    dist_info: DistInfo,
    learned: Any = None,
    control: RewardControl | None = None,
) -> tuple[list[Group], dict[str, float]]:
    """Sample prompts, roll out G completions each and score them: this rank's share of the step. A
    ``control`` replaces the verifier's rewards (seeded like the sampling: the same on resume).

    With DAPO dynamic sampling, groups whose rewards are all equal are set aside and more prompts are
    sampled, for at most ``algo.dynamic_sampling_rounds`` extra rounds; the step is then topped up with
    set-aside groups so every rank trains on the same number of sequences (the global normalisers assume it).
    """
    want = config.rollout.prompts_per_step // dist_info.world_size
    kept: list[Group] = []
    spare: list[Group] = []
    timing = {"time/generate": 0.0, "time/verify": 0.0}
    tokens = 0
    rounds = 1 + (config.algo.dynamic_sampling_rounds if config.algo.dynamic_sampling else 0)
    for round_ in range(rounds):
        batch = sampler.next_batch()
        mine = [batch[i] for i in shard_range(len(batch), dist_info)]
        prompts = build.render_prompts(config, mine, tokenizer)
        seed = rollout_seed(config.run.seed, step, round_, dist_info.rank)
        t0 = time.perf_counter()
        generated = engine.generate(
            prompts, _sampling(config, config.rollout.group_size, config.rollout.temperature, seed)
        )
        timing["time/generate"] += time.perf_counter() - t0
        tokens += sum(len(r.completion_ids) for g in generated for r in g)
        t0 = time.perf_counter()
        for group in score_groups(config, mine, prompts, generated, learned, control, seed):
            informative = bool(grpo.informative_groups(torch.tensor([group.rewards]))[0])
            (kept if informative or not config.algo.dynamic_sampling else spare).append(group)
        timing["time/verify"] += time.perf_counter() - t0
        if len(kept) >= want:
            break
    timing["perf/tokens_per_s"] = tokens / max(timing["time/generate"], 1e-9)
    return (kept + spare)[:want], timing


def evaluate_heldout(
    config: TrainConfig,
    engine: Any,
    tokenizer: Any,
    heldout: Sequence[Problem],
    step: int,
    learned: Any = None,
) -> tuple[dict[str, float], dict[str, Any], list[dict[str, Any]]]:
    """One sample per held-out problem: ``(metrics with heldout/* keys, an eval.jsonl line, the records)``."""
    from r1zero.eval.metrics import bootstrap_ci

    prompts = build.render_prompts(config, heldout, tokenizer)
    groups = engine.generate(prompts, _sampling(config, 1, config.run.eval_temperature, config.run.seed + 7))
    records = [g.records[0] for g in score_groups(config, heldout, prompts, groups, learned)]
    m = rollout_metrics(records, config.run.reflection, prefix="heldout/")
    metrics = {
        "heldout/accuracy": m["heldout/accuracy"],
        "heldout/format_rate": m["heldout/format_rate"],
        "heldout/length_mean": m["length/mean"],
        "heldout/reflection_per_response": m["reflection/per_response"],
    }
    if "heldout/reward/learned" in m:  # the learned reward model's view of the same completions
        metrics["heldout/learned_reward"] = m["heldout/reward/learned"]
    checks = {k: v for k, v in m.items() if k.startswith("checks/")}  # running-sum tasks: exact checks
    metrics.update({f"heldout/{k}": v for k, v in checks.items()})
    line = {
        "step": step,
        "benchmark": "heldout",
        "n": 1,
        "pass@1": metrics["heldout/accuracy"],
        "pass@1_ci": list(
            bootstrap_ci([float(r["correct"]) for r in records], None, 0.95, 1000, config.run.seed)
        ),
        "format_rate": metrics["heldout/format_rate"],
        "length/mean": metrics["heldout/length_mean"],
        "reflection/per_response": metrics["heldout/reflection_per_response"],
        "temperature": config.run.eval_temperature,
        "template": config.data.template,
        "max_new_tokens": config.rollout.max_new_tokens,
        **checks,
    }
    return metrics, line, records
