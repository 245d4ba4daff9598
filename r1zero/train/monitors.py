"""Reward-hacking monitors: cheap checks on each step's completions that flag what RL may be gaming.

Each monitor is a pure function of the step's records (and of a short history) returning True when
it fires; the trainer logs ``monitor/<name> = 1.0`` in metrics.jsonl and a warning in the log. They do
not stop training: they tell the researcher where to look.

- ``format_saturation``: the format rate is ~1 while accuracy has stayed low and flat for a while: the
  policy is collecting the format reward without solving anything.
- ``repeated_tags``: many completions repeat a closing tag (``</answer></answer>``, several ``</think>``),
  a known way to game lenient format checks.
- ``length_cap``: most completions hit ``max_new_tokens``: they are cut, not finished, so their reward
  says little and length growth is capped.
- ``reward_divergence`` (runs with a learned reward model): the learned reward holds or rises while the
  rule-based score of the same completions falls well below its best: the policy is pleasing the reward
  model, not solving the task (RLHF-style reward hacking; Gao et al. 2023, "Scaling laws for reward
  model overoptimization").
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "MONITORS",
    "MonitorInput",
    "format_saturation",
    "length_cap",
    "repeated_tags",
    "reward_divergence",
    "run_monitors",
]

_CLOSING_TAGS = ("</think>", "</answer>")


@dataclass(frozen=True)
class MonitorInput:
    """What the monitors see of one step.

    Attributes:
        texts: The step's completion texts.
        truncated: Whether each completion was cut by the length cap.
        format_rate: Fraction of completions keeping the tag format this step.
        accuracy_history: Training accuracy of recent steps, oldest first, this step last.
        reward_history: With a learned reward model: ``(learned reward mean, rule-based score mean)`` of
            recent steps, oldest first (empty otherwise).
    """

    texts: Sequence[str]
    truncated: Sequence[bool]
    format_rate: float
    accuracy_history: Sequence[float]
    reward_history: Sequence[tuple[float, float]] = ()


def format_saturation(
    step: MonitorInput,
    format_threshold: float = 0.95,
    window: int = 10,
    min_gain: float = 0.05,
    accuracy_ceiling: float = 0.5,
) -> bool:
    """Format rate >= threshold while accuracy, below ``accuracy_ceiling``, rose by less than ``min_gain``
    over ``window`` steps (a policy that is already mostly right is not gaming the format).

    >>> format_saturation(MonitorInput([], [], 0.99, [0.1] * 10))
    True
    >>> format_saturation(MonitorInput([], [], 0.99, [0.1] * 9 + [0.4]))
    False
    >>> format_saturation(MonitorInput([], [], 0.99, [0.9] * 10))
    False
    """
    history = list(step.accuracy_history)
    if step.format_rate < format_threshold or len(history) < window or history[-1] >= accuracy_ceiling:
        return False
    recent = history[-window:]
    return max(recent[-1], sum(recent[-3:]) / len(recent[-3:])) - recent[0] < min_gain


def repeated_tags(step: MonitorInput, share: float = 0.2) -> bool:
    """At least ``share`` of completions contain some closing tag more than once.

    >>> repeated_tags(MonitorInput(["<answer>1</answer></answer>", "ok"], [False] * 2, 1.0, [0.0]))
    True
    """
    if not step.texts:
        return False
    repeated = sum(any(text.count(tag) > 1 for tag in _CLOSING_TAGS) or _stutter(text) for text in step.texts)
    return repeated / len(step.texts) >= share


_STUTTER = re.compile(r"(</?(?:think|answer)>)\s*\1")


def _stutter(text: str) -> bool:
    return bool(_STUTTER.search(text))


def length_cap(step: MonitorInput, share: float = 0.5) -> bool:
    """More than ``share`` of completions were cut by the length cap.

    >>> length_cap(MonitorInput(["a", "b"], [True, True], 0.0, [0.0]))
    True
    """
    if not step.truncated:
        return False
    return sum(bool(t) for t in step.truncated) / len(step.truncated) > share


def reward_divergence(step: MonitorInput, window: int = 5, drop: float = 0.15) -> bool:
    """The rule score's recent mean fell ``drop`` below its best ``window``-step mean while the learned
    reward's recent mean is at least what it was then.

    >>> rising = [(0.1 * i, 0.2 + 0.05 * i) for i in range(10)]
    >>> reward_divergence(MonitorInput([], [], 1.0, [], rising))
    False
    >>> hacked = rising + [(1.0 + 0.1 * i, 0.3) for i in range(5)]
    >>> reward_divergence(MonitorInput([], [], 1.0, [], hacked))
    True
    """
    history = list(step.reward_history)
    if len(history) < 2 * window:
        return False
    means = [
        (
            sum(h[0] for h in history[i : i + window]) / window,
            sum(h[1] for h in history[i : i + window]) / window,
        )
        for i in range(len(history) - window + 1)
    ]
    learned_now, rule_now = means[-1]
    best = max(range(len(means)), key=lambda i: means[i][1])
    learned_then, rule_best = means[best]
    return rule_now <= rule_best - drop and learned_now >= learned_then


#: monitor name -> function (the names appear as ``monitor/<name>`` in metrics.jsonl)
MONITORS = {
    "format_saturation": format_saturation,
    "repeated_tags": repeated_tags,
    "length_cap": length_cap,
    "reward_divergence": reward_divergence,
}


def run_monitors(step: MonitorInput) -> dict[str, bool]:
    """Evaluate every monitor on one step.

    >>> run_monitors(MonitorInput(["x"], [True], 0.0, [0.0]))
    {'format_saturation': False, 'repeated_tags': False, 'length_cap': True, 'reward_divergence': False}
    """
    return {name: fn(step) for name, fn in MONITORS.items()}
