"""Partial credit: a verdict with ``own_reward`` keeps its reward through the pool and ``apply_weights``,
the two steps training runs (``r1zero.train.build.verify``)."""

from pathlib import Path

import pytest

from r1zero.verifiers import Verdict, get_verifier
from r1zero.verifiers.pool import verify_batch
from r1zero.verifiers.reward import STRICT_R1ZERO, RewardWeights, apply_weights

PLUGIN = str(Path(__file__).parents[2] / "verifiers" / "partial_list.py")


@pytest.mark.parametrize(
    ("answer", "reward", "reason"),
    [
        ("1, 3", 0.5, "wrong"),
        ("4, 3, 2, 1", 1.0, "correct"),
        ("7", 0.0, "wrong"),
        ("1, 2, 3, 4, 5", 0.0, "rejected"),
    ],
)
def test_partial_list_rewards_the_share_of_items(answer, reward, reason):
    verdict = get_verifier(PLUGIN)(f"<think>a</think> <answer>{answer}</answer>", "1, 2, 3, 4")
    assert (verdict.reward, verdict.reason, verdict.own_reward) == (reward, reason, True)


@pytest.mark.parametrize("weights", [STRICT_R1ZERO, RewardWeights(format_bonus=0.1, wrong=-1.0)])
def test_apply_weights_keeps_an_own_reward(weights):
    verdict = Verdict(0.5, False, True, "wrong", "1, 3", {"accuracy": 0.5}, own_reward=True)
    assert apply_weights(verdict, weights) == verdict


def test_apply_weights_still_recomputes_a_plain_verdict():
    verdict = Verdict(0.5, False, True, "wrong", "1, 3", {"accuracy": 0.5})
    assert apply_weights(verdict, STRICT_R1ZERO).reward == 0.0


@pytest.mark.parametrize("workers", [0, 1])
def test_own_reward_survives_the_pool_and_the_training_weights(workers):
    responses = ["<think>a</think> <answer>1, 3</answer>", "<think>a</think> <answer>1, 2, 3, 4</answer>"]
    verdicts = verify_batch(PLUGIN, responses, ["1, 2, 3, 4"] * 2, workers=workers, timeout=10.0)
    rewards = [apply_weights(v, STRICT_R1ZERO).reward for v in verdicts]
    assert rewards == [0.5, 1.0]
    assert verdicts[0].to_dict()["own_reward"] is True
