"""The R1-Zero format check: a table of completions, each with the verdict and the reason."""

import pytest

from r1zero.verifiers.format import FORMAT_REASONS, check_format, strip_eos

CASES = [
    # (completion, ok, reason)
    ("<think>2+2=4</think> <answer>4</answer>", True, "ok"),
    ("<think>2+2=4</think><answer>4</answer>", True, "ok"),
    ("\n<think>\n2+2=4\n</think>\n<answer>\n4\n</answer>\n", True, "ok"),
    ("2+2=4 </think> <answer>4</answer>", True, "ok"),  # the prompt ended with <think>
    ("<think>a</think> <answer>4</answer></s>", True, "ok"),
    ("<think>a</think> <answer>4</answer><|endoftext|><|endoftext|>", True, "ok"),
    ("<think>a</think> <answer>4</answer> <|im_end|>\n", True, "ok"),
    ("<think>a</think> <answer>4</answer><|eot_id|>", True, "ok"),
    ("<think>x < y and y > z</think> <answer>x < z</answer>", True, "ok"),  # < and > in maths
    ("<think>a</think> <answer>\\boxed{4}</answer>", True, "ok"),
    ("", False, "empty"),
    ("  \n</s>", False, "empty"),
    ("<think></think>a", False, "empty_think"),
    ("<think></think><answer>4</answer>", False, "empty_think"),
    ("<think>   \n</think><answer>4</answer>", False, "empty_think"),
    ("</think><answer>4</answer>", False, "empty_think"),
    ("<think>hm</think> a", False, "no_answer"),
    ("<think>hm</think>", False, "no_answer"),
    ("<think>hm</think> <answer>4", False, "no_answer"),  # truncated before </answer>
    ("<think>hm</think> 4</answer>", False, "no_answer"),
    ("<think>hm <answer>4</answer></think>", False, "duplicate_tag"),  # answer nested in think
    ("<think>the answer is 4", False, "no_think_close"),
    ("the answer is 4", False, "no_think_close"),
    ("<answer>4</answer>", False, "no_think_close"),
    ("<think>a</think> <answer></answer>", False, "empty_answer"),
    ("<think>a</think> <answer> \n </answer>", False, "empty_answer"),
    ("<think>a</think> <answer>4</answer> and more", False, "trailing_text"),
    ("<think>a</think> <answer>4</answer></s> junk", False, "trailing_text"),
    ("<think>a</think> so <answer>4</answer>", False, "text_between"),
    ("<think>a</think> </answer>x<answer>", False, "no_answer"),  # closed before opened
    ("preamble <think>a</think> <answer>4</answer>", False, "text_before_think"),
    ("<think>a</think><think>b</think><answer>4</answer>", False, "duplicate_tag"),
    ("<think><think>a</think></think><answer>4</answer>", False, "duplicate_tag"),
    ("<think>a</think> <answer>4</answer><answer>5</answer>", False, "duplicate_tag"),
    ("<think>a</think> <answer>4</answer><answer>4</answer>", False, "duplicate_tag"),
    ("<think>a</think> " + "<answer>4</answer>" * 50, False, "duplicate_tag"),  # tag spam
    ("<think>a</think></think> <answer>4</answer>", False, "duplicate_tag"),
    ("<think>a</think> <answer>4</answer></answer>", False, "duplicate_tag"),
    ("<Think>a</Think> <answer>4</answer>", False, "malformed_tag"),
    ("<think>a</think> <Answer>4</Answer>", False, "malformed_tag"),
    ("<think>a< /think> <answer>4</answer>", False, "malformed_tag"),
    ("<think>a</think> <answer/>4", False, "malformed_tag"),
    ("<think>a</think> <answer>4</answer ><answer>", False, "malformed_tag"),
    ("<think>a</think> <answer>4 <think>b</think></answer>", False, "duplicate_tag"),
    ("a </think> b <think> <answer>4</answer>", False, "text_before_think"),
]


@pytest.mark.parametrize(("completion", "ok", "reason"), CASES)
def test_check_format(completion, ok, reason):
    result = check_format(completion)
    assert (result.ok, result.reason) == (ok, reason)
    assert result.reason in FORMAT_REASONS


def test_ok_result_carries_think_and_answer():
    result = check_format("<think> add them </think>\n<answer> 7 </answer></s>")
    assert result == type(result)(True, "ok", think="add them", answer="7")


def test_strip_eos_keeps_eos_in_the_middle():
    assert strip_eos("a</s> b</s>\n") == "a</s> b"


def test_reasons_are_documented():
    seen = {check_format(c).reason for c, _, _ in CASES}
    assert seen == set(FORMAT_REASONS)
