"""How accuracy and format combine into the R1-Zero reward.

DeepSeek-R1 (2025) uses two rule-based terms: accuracy (the answer checks out) and format (the
``<think>``/``<answer>`` tags are kept). Their weights are an experimental choice, so they are
arguments here, and every term is reported in ``Verdict.parts`` for logging.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from r1zero.verifiers.base import Verdict

__all__ = ["ACCURACY_ONLY", "STRICT_R1ZERO", "RewardWeights", "apply_weights", "compose_reward"]


@dataclass(frozen=True)
class RewardWeights:
    """Weights of the reward terms.

    Attributes:
        correct: Reward for a correct answer.
        wrong: Reward for a wrong or missing answer.
        format_bonus: Added when the format is kept (may be 0: at near-zero accuracy a large bonus
            dominates std-normalised advantages).
        format_penalty: Added (usually negative) when the format is broken.
        require_format: When True a correct answer in a broken format earns ``wrong`` for accuracy
            (the strict R1-Zero reward).
    """

    correct: float = 1.0
    wrong: float = 0.0
    format_bonus: float = 0.0
    format_penalty: float = 0.0
    require_format: bool = False


#: reward = 1 if the answer is right, whatever the format (what a verifier returns by default).
ACCURACY_ONLY = RewardWeights()
#: reward = 1 only for a right answer inside a well-formed ``<think>…</think> <answer>…</answer>``.
STRICT_R1ZERO = RewardWeights(require_format=True)


def compose_reward(
    correct: bool, formatted: bool, weights: RewardWeights = ACCURACY_ONLY
) -> tuple[float, dict[str, float]]:
    """Return ``(reward, parts)`` for one response.

    >>> compose_reward(True, True, RewardWeights(format_bonus=0.1))
    (1.1, {'accuracy': 1.0, 'format': 0.1})
    >>> compose_reward(True, False, STRICT_R1ZERO)
    (0.0, {'accuracy': 0.0, 'format': 0.0})
    """
    accuracy_ok = correct and (formatted or not weights.require_format)
    accuracy = weights.correct if accuracy_ok else weights.wrong
    fmt = weights.format_bonus if formatted else weights.format_penalty
    return accuracy + fmt, {"accuracy": accuracy, "format": fmt}


def apply_weights(verdict: Verdict, weights: RewardWeights) -> Verdict:
    """Recompute a verdict's reward and parts under other weights (its other fields are kept); a verdict
    with ``own_reward`` (partial credit) is returned unchanged.

    >>> v = Verdict(1.0, True, False, "correct", "4", {"accuracy": 1.0})
    >>> apply_weights(v, STRICT_R1ZERO).reward
    0.0
    >>> apply_weights(Verdict(0.5, False, True, "wrong", own_reward=True), STRICT_R1ZERO).reward
    0.5
    """
    if verdict.own_reward:
        return verdict
    reward, parts = compose_reward(verdict.correct, verdict.formatted, weights)
    return replace(verdict, reward=reward, parts={**verdict.parts, **parts})
