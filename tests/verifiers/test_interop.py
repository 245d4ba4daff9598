"""TRL and verl adapters, called exactly as those trainers call reward functions (neither is installed)."""

import numpy as np
import pytest

from r1zero.verifiers import Verdict
from r1zero.verifiers.interop import as_trl_reward, as_verl_compute_score, completion_text
from r1zero.verifiers.reward import RewardWeights

GOOD = "<think>2+2=4</think> <answer>4</answer>"
UNTAGGED = "the answer is 4"
WRONG = "<think>hm</think> <answer>5</answer>"


def test_trl_standard_completions_with_all_columns_as_kwargs():
    reward = as_trl_reward("integer")
    # GRPOTrainer passes prompts, completions, completion_ids, every dataset column, and trainer_state.
    rewards = reward(
        prompts=["What is 2+2?"] * 3,
        completions=[GOOD, UNTAGGED, WRONG],
        completion_ids=[[1, 2], [3], [4]],
        answer=["4", "4", "4"],
        level=["easy"] * 3,
        trainer_state=object(),
    )
    assert rewards == [1.0, 1.0, 0.0]
    assert all(isinstance(r, float) for r in rewards)
    assert reward.__name__ == "r1zero_integer"


def test_trl_conversational_completions():
    reward = as_trl_reward("integer", gold_column="solution")
    completions = [[{"role": "assistant", "content": GOOD}], [{"role": "assistant", "content": WRONG}]]
    prompts = [[{"role": "user", "content": "2+2?"}]] * 2
    assert reward(prompts=prompts, completions=completions, solution=["4", "4"]) == [1.0, 0.0]


def test_trl_weights_strict_format():
    reward = as_trl_reward("integer", weights=RewardWeights(require_format=True, format_bonus=0.1))
    assert reward(prompts=[""] * 3, completions=[GOOD, UNTAGGED, WRONG], answer=["4"] * 3) == [1.1, 0.0, 0.1]


def test_trl_meta_columns_for_countdown():
    reward = as_trl_reward("countdown", gold_column="target", meta_columns=("numbers",))
    completions = ["<answer>3*5+7</answer>", "<answer>3*5</answer>"]
    assert reward(prompts=["", ""], completions=completions, target=[22, 15], numbers=[[3, 5, 7]] * 2) == [
        1.0,
        0.0,
    ]
    meta_reward = as_trl_reward("countdown", gold_column="target")
    metas = [{"numbers": [3, 5, 7]}, {"numbers": [3, 5], "use_all": True}]
    assert meta_reward(prompts=["", ""], completions=completions, target=[22, 15], meta=metas) == [1.0, 1.0]


def test_trl_pool_workers_match_in_process():
    in_process = as_trl_reward("integer")
    pooled = as_trl_reward("integer", workers=1, timeout=5)
    kwargs = {"prompts": [""] * 3, "completions": [GOOD, UNTAGGED, WRONG], "answer": ["4"] * 3}
    assert pooled(**kwargs) == in_process(**kwargs)


def test_trl_missing_columns_fail_loudly():
    with pytest.raises(ValueError, match=r"'answer'.*columns: \['solution'\]"):
        as_trl_reward("integer")(prompts=[""], completions=[GOOD], solution=["4"], completion_ids=[[1]])
    with pytest.raises(ValueError, match="numbers"):
        as_trl_reward("countdown", meta_columns=("numbers",))(prompts=[""], completions=[GOOD], answer=["4"])
    with pytest.raises(ValueError, match="spec string"):
        as_trl_reward(lambda r, g, **m: None, workers=2)


def test_trl_raising_verifier_gives_zero_not_exception():
    def broken(response, gold, **meta):
        raise RuntimeError("bug")

    assert as_trl_reward(broken)(prompts=[""], completions=[GOOD], answer=["4"]) == [0.0]


def test_verl_compute_score_string_ground_truth():
    compute_score = as_verl_compute_score("integer")
    assert compute_score("openai/gsm8k", GOOD, "4") == 1.0
    assert compute_score("openai/gsm8k", WRONG, "4", extra_info={"split": "train", "index": 3}) == 0.0
    assert compute_score(data_source="gsm8k", solution_str=GOOD, ground_truth="4", extra_info=None) == 1.0


def test_verl_compute_score_dict_ground_truth_with_numpy_values():
    compute_score = as_verl_compute_score("countdown", return_dict=True)
    ground_truth = {"target": np.int64(22), "numbers": np.array([3, 5, 7])}  # as read back from parquet
    result = compute_score("countdown", "<think>t</think> <answer>3*5+7</answer>", ground_truth, {"index": 0})
    assert result == {"score": 1.0, "acc": 1.0, "formatted": 1.0}
    assert compute_score("countdown", "<answer>3*5</answer>", ground_truth)["score"] == 0.0


def test_verl_numbers_from_extra_info_and_custom_callable():
    compute_score = as_verl_compute_score("countdown")
    assert compute_score("cd", "<answer>3*5+7</answer>", "22", extra_info={"numbers": [3, 5, 7]}) == 1.0

    def always(response, gold, **meta):
        return Verdict(0.5, False, True, "wrong")

    assert as_verl_compute_score(always)("x", "y", "z") == 0.5
    assert as_verl_compute_score(always, weights=RewardWeights(format_bonus=0.2))("x", "y", "z") == 0.2


def test_completion_text_rejects_other_types():
    assert completion_text([{"role": "assistant", "content": "a"}, {"content": "b"}]) == "ab"
    with pytest.raises(ValueError, match="completion"):
        completion_text(3)
