import ast
from collections import Counter
from fractions import Fraction

import pytest

from r1zero.data import generate
from r1zero.data.countdown import solve_countdown
from r1zero.verifiers import get_verifier


def evaluate(expression: str) -> tuple[Fraction, list[int]]:
    """Independent exact evaluation of a + - * / expression (test oracle; no eval)."""
    ops = {
        ast.Add: Fraction.__add__,
        ast.Sub: Fraction.__sub__,
        ast.Mult: Fraction.__mul__,
        ast.Div: Fraction.__truediv__,
    }
    leaves: list[int] = []

    def walk(node):
        if isinstance(node, ast.BinOp) and type(node.op) in ops:
            return ops[type(node.op)](walk(node.left), walk(node.right))
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            leaves.append(node.value)
            return Fraction(node.value)
        raise AssertionError(f"unexpected node {ast.dump(node)}")

    return walk(ast.parse(expression, mode="eval").body), leaves


def check_solution(numbers, target, expression):
    value, leaves = evaluate(expression)
    assert value == target, (numbers, target, expression)
    assert Counter(leaves) == Counter(numbers), (numbers, expression)


@pytest.mark.parametrize("level", [3, 4, 5, pytest.param(6, marks=pytest.mark.slow)])
def test_every_generated_problem_is_solvable_by_exhaustive_search(level):
    problems = generate("countdown", 1000, difficulty=level, seed=0)
    for p in problems:
        numbers, target = p.meta["numbers"], p.meta["target"]
        assert len(numbers) == level and p.answer == str(target) and 1 <= target <= 999
        assert all(1 <= n <= 99 for n in numbers)
        solution = solve_countdown(numbers, target)
        assert solution is not None, p
        check_solution(numbers, target, solution)
        check_solution(numbers, target, p.meta["witness"])  # the construction itself


@pytest.mark.parametrize(
    ("numbers", "target"),
    [([1, 1, 1], 100), ([2, 2], 5), ([99, 98, 97], 1000), ([1, 2, 3], 10)],
)
def test_solver_reports_unsolvable(numbers, target):
    assert solve_countdown(numbers, target) is None


@pytest.mark.parametrize(
    ("numbers", "target"),
    [
        ([3, 3, 8, 8], 24),
        ([1, 5, 5, 5], 24),
        ([4, 6, 2], 14),
        ([2, 3], 6),
        ([7, 2], 5),
        ([1, 1, 1], 3),
        ([5, 1, 3], 15),
    ],
)
def test_solver_finds_solutions_including_fractional_intermediates(numbers, target):
    solution = solve_countdown(numbers, target)
    assert solution is not None
    check_solution(numbers, target, solution)


def test_countdown_verifier_accepts_the_witness_and_rejects_a_wrong_one():
    verify = get_verifier("countdown")
    for p in generate("countdown", 50, difficulty=4, seed=5):
        good = verify(f"<think>\n</think>\n<answer>{p.meta['witness']}</answer>", p.answer, **p.meta)
        assert good.correct, (p, good)
        bad = verify(f"<think>\n</think>\n<answer>{p.meta['numbers'][0]}</answer>", p.answer, **p.meta)
        assert not bad.correct
