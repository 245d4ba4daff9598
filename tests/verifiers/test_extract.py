"""Answer extraction: a table of outputs, each with the answer, the rule that found it and the conflict flag."""

import pytest

from r1zero.verifiers.extract import SOURCES, Extraction, extract_answer, find_boxed

CASES = [
    # (output, answer, source, conflicting)
    ("<think>x</think> <answer>4</answer>", "4", "answer_tag", False),
    ("<think>x</think> <answer> \\boxed{\\frac{1}{2}} </answer>", "\\frac{1}{2}", "answer_tag", False),
    ("<think>x</think> <answer>The answer is 9.</answer>", "9", "answer_tag", False),
    ("<think>x</think> <answer>The total cost is $64.</answer>", "64", "answer_tag", False),
    ("<think>x</think> <answer>It could be 12 or 13</answer>", "It could be 12 or 13", "answer_tag", False),
    ("<think>x</think> <answer>4</answer> <answer>5</answer>", "5", "answer_tag", True),
    ("<think>x</think> <answer>4</answer> <answer> 4 </answer>", "4", "answer_tag", False),
    ("<think>x</think> <answer></answer>", None, "answer_tag", False),
    ("<think>x</think> <answer>7", "7", "answer_tag", False),  # truncated output
    ("4 </think> <answer>5</answer>", "5", "answer_tag", False),  # the prompt ended with <think>
    ("<think><answer>4</answer></think>", None, None, False),  # only inside think
    ("<think>the answer is 4</think>", None, None, False),
    ("<think>\\boxed{4}</think>  </s>", None, None, False),
    ("<think>the answer is 4", None, None, False),  # think never closed
    ("<think>3</think> \\boxed{4}", "4", "boxed", False),
    ("\\boxed{1} then \\boxed{\\frac{a}{b^{2}}}", "\\frac{a}{b^{2}}", "boxed", False),
    ("$\\fbox{7}$", "7", "boxed", False),
    ("\\boxed{\\{1, 2\\}}", "\\{1, 2\\}", "boxed", False),
    ("\\boxed{unclosed and the answer is 3", "3", "answer_is", False),
    ("So the final answer is $\\frac{3}{4}$. I hope it is correct.", "\\frac{3}{4}", "answer_is", False),
    ("The answer is 3.5.", "3.5", "answer_is", False),
    ("The answer is 12 or 13.", "12 or 13", "answer_is", False),
    ("Answer: 17\n", "17", "answer_is", False),
    ("The answer is $x = 3.5$; done.", "x = 3.5", "answer_is", False),
    ("5 + 7 = 12\n#### 12", "12", "gsm8k", False),
    ("#### 1,200\n", "1,200", "gsm8k", False),
    ("We get $3 + 4 = 7$.", "7", "final_expr", False),
    ("\\[ x = \\frac{5}{2} \\]", "\\frac{5}{2}", "final_expr", False),
    ("which gives 3 + 4, that is 7 apples", "7", "final_expr", False),
    ("so it is **73**.", "73", "final_expr", False),
    ("total -12, then", "-12", "final_expr", False),
    ("the value 1,234 is it", "1,234", "final_expr", False),
    ("no numbers here", None, None, False),
    ("", None, None, False),
]


@pytest.mark.parametrize(("output", "answer", "source", "conflicting"), CASES)
def test_extract_answer(output, answer, source, conflicting):
    assert extract_answer(output) == Extraction(answer, source, conflicting)


def test_every_source_is_covered():
    assert {source for _, _, source, _ in CASES} - {None} == set(SOURCES)


@pytest.mark.parametrize(
    ("text", "content"),
    [
        ("\\boxed{x}", "x"),
        ("\\boxed{\\frac{1}{\\sqrt{2}}}", "\\frac{1}{\\sqrt{2}}"),
        ("\\boxed{\\{a\\}}", "\\{a\\}"),  # escaped braces do not count
        ("\\boxed {5}", "5"),
        ("\\boxed{", None),
        ("no box", None),
    ],
)
def test_find_boxed(text, content):
    assert find_boxed(text) == content


def test_extraction_is_linear_on_long_garbage():
    import time

    start = time.perf_counter()
    extract_answer("\\boxed{" * 20_000 + "<answer>" * 5_000 + "$" * 5_000)
    assert time.perf_counter() - start < 2.0
