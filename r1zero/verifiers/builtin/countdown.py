"""``countdown``: the answer is an arithmetic expression over given numbers that equals the target.

The Countdown task (as in TinyZero): ``meta["numbers"]`` lists the numbers, ``gold`` is the target, and
the answer must combine the numbers with ``+ - * /`` and parentheses, each number used exactly once
(``meta["use_all"] = False``: a subset, each at most once). The value is computed in exact rational
arithmetic (``fractions.Fraction``), so ``6 / 4 * 2`` is 3, not 2.9999999999999996.

The text is never evaluated: it is parsed with ``ast`` and only number literals, the four operators,
unary minus and parentheses are walked. Anything else (names, calls, attributes, ``**``, ``//``,
``%``, huge literals, long input) is ``rejected`` before any arithmetic. Division by zero is ``wrong``.
"""

from __future__ import annotations

import ast
import operator
import re
from collections import Counter
from fractions import Fraction

from r1zero.verifiers.base import Verdict, register
from r1zero.verifiers.builtin.integer import parse_integer
from r1zero.verifiers.extract import extract_answer
from r1zero.verifiers.format import check_format
from r1zero.verifiers.reward import compose_reward

__all__ = ["evaluate_expression", "verify_countdown"]

#: Longest expression looked at, and most digits in one literal; beyond either the answer is rejected.
MAX_EXPRESSION_CHARS = 200
MAX_LITERAL_DIGITS = 12

_OPERATORS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}
_SYMBOLS = {"×": "*", "·": "*", "÷": "/", "−": "-", "\\times": "*", "\\cdot": "*", "\\div": "/"}
_ALLOWED = re.compile(r"^[\d\s+\-*/()]*$")


class _Rejected(ValueError):
    """The expression contains something outside the whitelist."""


def evaluate_expression(text: str) -> tuple[Fraction, list[int]]:
    """Exact value of an arithmetic expression and the integer literals it uses, in order.

    Raises ValueError (text outside the whitelist or not an expression) or ZeroDivisionError.

    >>> evaluate_expression("(6 / 4) * 2 + 1")
    (Fraction(4, 1), [6, 4, 2, 1])
    >>> evaluate_expression("__import__('os')")
    Traceback (most recent call last):
    ...
    r1zero.verifiers.builtin.countdown._Rejected: character outside + - * / ( ) and digits
    """
    if len(text) > MAX_EXPRESSION_CHARS:
        raise _Rejected(f"expression longer than {MAX_EXPRESSION_CHARS} characters")
    if not _ALLOWED.match(text):
        raise _Rejected("character outside + - * / ( ) and digits")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except (SyntaxError, RecursionError, MemoryError) as exc:
        raise ValueError(f"not an expression: {exc}") from None
    literals: list[int] = []
    return _walk(tree.body, literals), literals


def _walk(node: ast.AST, literals: list[int]) -> Fraction:
    if isinstance(node, ast.Constant) and type(node.value) is int:
        if len(str(node.value)) > MAX_LITERAL_DIGITS:
            raise _Rejected("literal too large")
        literals.append(node.value)
        return Fraction(node.value)
    if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
        left, right = _walk(node.left, literals), _walk(node.right, literals)
        return _OPERATORS[type(node.op)](left, right)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -_walk(node.operand, literals)
    raise _Rejected(f"{type(node).__name__} is not allowed")


@register("countdown")
def verify_countdown(response: str, gold: str, **meta) -> Verdict:
    """Score an expression over ``meta["numbers"]`` that must equal the target ``gold``.

    >>> verify_countdown("<think>25*4=100</think> <answer>(25 - 1) * 4 + 2</answer>", "98",
    ...                  numbers=[25, 1, 4, 2]).reason
    'correct'
    >>> verify_countdown("<answer>25 * 4 - 2</answer>", "98", numbers=[25, 1, 4, 2]).reason  # 1 unused
    'wrong'
    >>> verify_countdown("<answer>__import__('os').system('ls')</answer>", "98", numbers=[1]).reason
    'rejected'
    """
    target = parse_integer(gold) if isinstance(gold, str) else None
    numbers = meta.get("numbers")
    if target is None or not _is_int_list(numbers) or not isinstance(meta.get("use_all", True), bool):
        return Verdict(0.0, False, False, "bad_gold", None, {"accuracy": 0.0})
    formatted = check_format(response).ok if isinstance(response, str) else False
    extraction = extract_answer(response) if isinstance(response, str) else None
    answer = extraction.answer if extraction is not None else None
    if answer is None:
        return _verdict(False, formatted, "no_answer", None)
    if extraction.conflicting:
        return _verdict(False, formatted, "rejected", answer)
    expression = _strip_target(_normalize(answer), target)
    try:
        value, used = evaluate_expression(expression)
    except _Rejected:
        return _verdict(False, formatted, "rejected", answer)
    except ValueError:
        return _verdict(False, formatted, "unparseable", answer)
    except ZeroDivisionError:
        return _verdict(False, formatted, "wrong", answer)
    wanted, got = Counter(numbers), Counter(used)
    numbers_ok = got == wanted if meta.get("use_all", True) else not (got - wanted)
    correct = numbers_ok and value == target
    return _verdict(correct, formatted, "correct" if correct else "wrong", answer)


def _normalize(answer: str) -> str:
    text = answer.strip().strip("$").strip()
    for symbol, replacement in _SYMBOLS.items():
        text = text.replace(symbol, replacement)
    return text.replace("\\left", "").replace("\\right", "").rstrip(".").strip()


def _strip_target(expression: str, target: int) -> str:
    """``"(1 + 2) * 3 = 9"`` -> ``"(1 + 2) * 3"`` when the right side is the target; else unchanged."""
    left, equals, right = expression.partition("=")
    if equals and "=" not in right and parse_integer(right) == target:
        return left.strip()
    return expression


def _is_int_list(numbers: object) -> bool:
    return isinstance(numbers, list | tuple) and all(type(n) is int for n in numbers) and len(numbers) > 0


def _verdict(correct: bool, formatted: bool, reason: str, extracted: str | None) -> Verdict:
    reward, parts = compose_reward(correct, formatted)
    return Verdict(reward, correct, formatted, reason, extracted, parts)
