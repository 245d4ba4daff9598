"""The ``math`` verifier: is the final answer of a model output equivalent to a gold answer?

Built on math-verify (``parse``/``verify``) and sympy, hardened against what breaks peers' rewards:

1. **Gold first.** A gold that cannot be read gives reward 0 with reason ``bad_gold``, never 1.
   Golds are parsed once per distinct string (``lru_cache``): GRPO checks each gold G times.
2. **Extraction** (:mod:`r1zero.verifiers.extract`): answer tag, boxed, "the answer is", ``####``, final
   expression; nothing inside ``<think>`` counts.
3. **Hedges are refused** (reason ``rejected``): several different ``<answer>`` blocks, or "12 or 13",
   "12 and 13", ``\\pm`` when the gold is a single value (math-verify alone picks one candidate and
   rewards a policy that lists many).
4. **Guards** (:mod:`r1zero.verifiers.support.guards`) refuse huge or hostile text (power towers, ``100000!``,
   deep nesting) before sympy sees it (reason ``rejected``).
5. **Fast exact path** (:mod:`r1zero.verifiers.support.normalize`): numbers, fractions, decimals, percentages,
   sets/tuples/intervals of them, choice letters and words are compared in-process without sympy.
6. **Symbolic path**: everything else runs math-verify + sympy under a wall-clock limit in a killable
   child process (``sandbox.run_isolated``; no ``SIGALRM``, so it works in any thread); inside a
   ``verify_batch`` worker, which is already time-bounded, it runs directly. A rational answer against
   an irrational gold is compared exactly (math-verify's rounding would accept ``3.14159265`` for ``\\pi``).
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache

from r1zero.verifiers.base import Verdict, register
from r1zero.verifiers.extract import boxed_group, extract_answer, gold_boxes
from r1zero.verifiers.format import check_format
from r1zero.verifiers.reward import ACCURACY_ONLY, RewardWeights, compose_reward
from r1zero.verifiers.support import sandbox
from r1zero.verifiers.support.guards import guard_answer, malformed
from r1zero.verifiers.support.intervals import IntervalSet, interval_set
from r1zero.verifiers.support.normalize import (
    ExactValue,
    choice_letter,
    encloses,
    exact_equal,
    normalize,
    parse_exact,
    split_top_level,
)

__all__ = ["DEFAULT_TIMEOUT", "gold_readable", "verify_math"]

logger = logging.getLogger(__name__)

#: Seconds the symbolic check of one answer may take.
DEFAULT_TIMEOUT = 5.0

_HEDGE = re.compile(r"\b(?:or|and|either|maybe|possibly)\b|\\(?:lor|vee|pm|mp)\b|±|∓")
_CONNECTOR = re.compile(r"\b(?:or|and)\b|\\text\{\s*(?:or|and)\s*\}")
_RELATION = re.compile(r"\\(?:in|le|ge|leq|geq|lt|gt|neq|ne|subset|subseteq)\b|[<>≤≥≠]")
_PROSE_WORD = re.compile(r"(?<![\\A-Za-z])[A-Za-z]{3,}")
# Function names a formula may spell without a backslash ("sin^2 x + cos^2 x").
_MATH_WORD = re.compile(r"(?:arc)?(?:sin|cos|tan|cot|sec|csc)h?|log|exp|sqrt|mod|max|min|gcd|lcm|inf", re.I)
_WORD = re.compile(r"(?<![\\A-Za-z])[A-Za-z]{3,}")
_MATH_WORDS = frozenset(
    [
        "sin",
        "cos",
        "tan",
        "cot",
        "sec",
        "csc",
        "arcsin",
        "arccos",
        "arctan",
        "sinh",
        "cosh",
        "tanh",
        "log",
        "exp",
        "sqrt",
        "mod",
        "max",
        "min",
        "gcd",
        "lcm",
        "inf",
    ]
)
_WORD = re.compile(r"^[A-Za-z][A-Za-z '\-]*[A-Za-z]$")
# "1000,99", "0,111", "7,25": a decimal comma (one comma, not a thousands grouping such as 1,000).
_DECIMAL_COMMA = re.compile(r"^(-?(?![1-9]\d{0,2},\d{3}$)\d+),(\d+)$")
# "\frac{1}{0}", "1/0", "5 \div 0": a gold with no value (math-verify reads 1/0 as zoo, equal to itself).
_PM = re.compile(r"\\pm(?![a-zA-Z])")  # not \pmod
_DELIMITED = re.compile(r"\s*(?:\$\$?|\\\[|\\\()(.*?)(?:\$\$?|\\\]|\\\))\s*", re.DOTALL)
_DIVISION_BY_ZERO = re.compile(r"\\[dt]?frac\s*\{[^{}]*\}\s*\{\s*0+\s*\}|(?:/|\\div)\s*\{?\s*0+(?![\d.])")
_FINAL_ANSWER = re.compile(r"final\s+answer\s*(?:is|:)", re.IGNORECASE)
# A bare "=" (not part of <=, >=, \ne): "\frac{1}{2} = \frac{10}{9}" answers with its last side.
_BARE_EQUALS = re.compile(r"(?<![<>!:=\\])=(?!=)")
# A decimal with many places: "0.0833333333333333" is 1/12 written out as far as the writer went.
_LONG_DECIMAL = re.compile(r"^-?\d*\.(\d{6,})$")
# "(a) 5, (b) 7": the labels of a several-part answer.
_PART_LABEL = re.compile(r"(^|,)\s*\(?(?:[a-e]|i{1,3}|iv)\)\s*")
# "x = 3" inside a list item: the value is the right-hand side.
_ALL_ASSIGNMENTS = re.compile(
    r"[A-Za-z](?:_\{?\w+\}?)?\s*=\s*[^,=]+(?:,\s*[A-Za-z](?:_\{?\w+\}?)?\s*=\s*[^,=]+)+"
)
_ITEM_ASSIGNMENT = re.compile(r"^\s*[A-Za-z](?:_\{?\w+\}?)?\s*=\s*")
# Python in a gold ("1 + __import__('os').system(...)") is a data defect or an attack, not an answer.
_PYTHON = re.compile(
    r"__\w+|(?<!\\)\b(?:import|lambda|exec|eval)\b|[A-Za-z_]\w*\.[A-Za-z_]\w*\s*\("
)  # \lambda is LaTeX


@dataclass(frozen=True)
class _Gold:
    text: str  # normalised
    exact: ExactValue | None
    choice: str | None  # multiple-choice letter
    word: str | None  # a word answer (casefolded), e.g. "monday"
    multi: bool  # several parts (a list or set of more than one element)
    bad: bool  # refused by the guards or empty
    intervals: IntervalSet | None = None  # an interval, a union of them or an inequality ("x \ge 3")
    parts: str = ""  # the brackets of a tuple/vector gold with several entries ("()" for "(7, 3)")


@register("math")
def verify_math(
    response: str,
    gold: str,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    weights: RewardWeights = ACCURACY_ONLY,
    **meta,
) -> Verdict:
    """Check a whole model output against a gold answer; never raises.

    >>> verify_math("<think>1/2 + 1/4</think> <answer>\\\\frac{3}{4}</answer>", "0.75").reason
    'correct'
    >>> verify_math("The answer is 12 or 13.", "12").reason
    'rejected'
    >>> verify_math("<answer>4</answer>", r"\\frac{").reason
    'bad_gold'
    """
    formatted = False
    try:
        formatted = check_format(response).ok
        reason, extracted = _judge(response, gold, timeout)
    except Exception:  # a verifier never raises: training goes on and the row is counted as an error
        logger.exception("math verifier failed on gold %r", str(gold)[:200])
        reason, extracted = "error", None
    reward, parts = compose_reward(reason == "correct", formatted, weights)
    return Verdict(reward, reason == "correct", formatted, reason, extracted, parts)


def _judge(response: str, gold: str, timeout: float) -> tuple[str, str | None]:
    deadline = time.monotonic() + timeout  # one budget for the gold check and the answer check together
    gold_info = _read_gold(gold if isinstance(gold, str) else "")
    symbolic_gold = (
        gold_info.exact is None
        and gold_info.choice is None
        and gold_info.word is None
        and gold_info.intervals is None
    )
    try:
        if gold_info.bad or (symbolic_gold and not _gold_readable(gold_info.text, deadline)):
            return "bad_gold", None
    except sandbox.VerifierTimeout:
        return "timeout", None
    found = extract_answer(response)
    if found.answer is None:
        return "no_answer", None
    answer = found.answer
    if found.conflicting or (not gold_info.multi and _HEDGE.search(answer) and not _HEDGE.search(gold)):
        return "rejected", answer
    if gold_info.parts and not found.several and _ALL_ASSIGNMENTS.fullmatch(answer.strip()):
        answer = _as_gold_list(answer, gold_info)  # "a = 7, b = 3" for the pair (7, 3)
    if found.several:  # several different boxes: a list when the gold has parts, else candidates
        if not (gold_info.multi or gold_info.parts):
            return "rejected", answer
        answer = _as_gold_list(answer, gold_info)
    if guard_answer(answer) is not None:
        return "rejected", answer
    if gold_info.choice is not None:
        return ("correct" if choice_letter(answer) == gold_info.choice else "wrong"), answer
    equation = "=" in gold_info.text and not gold_info.multi  # "y = 2x + 3" answers "2x - y + 3 = 0"
    normal = normalize(_as_list(answer) if gold_info.multi else answer, keep_assignment=equation)
    if _LOOSE_SET.fullmatch(normal):
        normal = normal[1:-1].strip()
    if "=" not in gold_info.text and len(_BARE_EQUALS.split(normal)) > 1:
        normal = _BARE_EQUALS.split(normal)[-1].strip()  # "a = b = 12": the value is the last side
    if gold_info.exact is not None and gold_info.exact.kind == "number":
        normal = _DECIMAL_COMMA.sub(r"\1.\2", normal)  # "7,25" against one number is 7.25
    if gold_info.word is not None:
        return ("correct" if normal.casefold() == gold_info.word else "wrong"), answer
    exact = parse_exact(normal)
    comma_gold = _DECIMAL_COMMA.fullmatch(gold_info.text)
    if comma_gold is not None and normal == f"{comma_gold[1]}.{comma_gold[2]}":
        return "correct", answer  # "0.111" for a gold written with a decimal comma, "0,111"
    if gold_info.exact is not None and exact is not None:
        same = exact_equal(gold_info.exact, exact) or _long_decimal_of(gold_info.exact, normal)
        if gold_info.exact.brackets == "()" and exact.kind == "set" and not normal.startswith("\\{"):
            same = gold_info.exact.items == exact.items  # "1, 3" or "{1,3}" for the pair (1, 3), in order
        return ("correct" if same else "wrong"), answer
    if (decided := _interval_verdict(gold_info, normal, exact)) is not None:
        return decided, answer
    if _ELLIPSIS.search(gold_info.text) or _ELLIPSIS.search(normal):
        return _ellipsis_verdict(gold_info.text, normal), answer
    if gold_info.exact is not None and _has_prose(normal):  # words are not a number: spare sympy the prose
        return "wrong", answer
    if gold_info.exact is not None and gold_info.exact.kind == "number" and _RELATION.search(normal):
        return "wrong", answer  # "x > 0", "x \in \{1, 2, 3\}" against a number
    if normal == gold_info.text:  # the same text as a readable gold: no need for sympy
        return "correct", answer
    if malformed(normal):  # math-verify would read a fragment of it
        return "unparseable", answer
    try:
        return _bounded(
            _SYMBOLIC_CHECK, gold_info.text, normal, _as_rational(exact), deadline=deadline
        ), answer
    except sandbox.VerifierTimeout:
        return "timeout", answer


def _bounded(fn, *args, deadline: float):
    """``fn(*args)`` by ``deadline`` (``time.monotonic()``): directly inside a time-bounded worker, else in
    the sandbox, which kills the call at the deadline."""
    if sandbox.in_worker():
        return fn(*args)
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise sandbox.VerifierTimeout("no time left for the symbolic check")
    return sandbox.run_isolated(fn, *args, timeout=remaining)


_READABLE: dict[str, bool] = {}  # gold text -> readable by math-verify; each distinct gold costs one call


def _gold_readable(gold: str, deadline: float) -> bool:
    """Whether math-verify reads a (normalised) gold; cached (a timeout is not)."""
    if gold not in _READABLE:
        if len(_READABLE) >= 4096:
            _READABLE.clear()
        _READABLE[gold] = _bounded(_GOLD_PARSES, gold, deadline=deadline)
    return _READABLE[gold]


def gold_readable(gold: str, timeout: float = DEFAULT_TIMEOUT) -> bool:
    """Whether ``verify_math`` can use ``gold``: the same checks it runs, so False exactly when it would
    answer ``bad_gold`` (for filtering data sets). Raises ``sandbox.VerifierTimeout`` past ``timeout``.

    >>> gold_readable(r"\\frac{1}{2}"), gold_readable(r"\\frac{"), gold_readable("__import__('os')")
    (True, False, False)
    """
    info = _read_gold(gold if isinstance(gold, str) else "")
    if info.bad:
        return False
    if info.exact is not None or info.choice is not None or info.word is not None or info.intervals:
        return True
    return _gold_readable(info.text, time.monotonic() + timeout)


def _interval_verdict(gold: _Gold, normal: str, exact: ExactValue | None) -> str | None:
    """Two sets of reals written as intervals, unions of intervals (``\\cup``) or one-variable
    inequalities, compared exactly as math-verify compares them (``as_set``, bracket types), or None
    when either is not such a set or both are inequalities (math-verify compares those as relations).

    >>> _interval_verdict(_read_gold("[-2, 7]"), r"-2 \\le x \\le 7", None)
    'correct'
    >>> _interval_verdict(_read_gold("x > 3"), r"[3, \\infty)", parse_exact(r"[3, \\infty)"))
    'wrong'
    >>> _interval_verdict(_read_gold(r"(0,1)\\cup(2,3)"), r"(2, 3) \\cup (0, 1)", None)
    'correct'
    """
    if gold.intervals is None or "=" in normal:
        return None
    answer = interval_set(normal, exact if exact is not None and exact.kind == "sequence" else None)
    if answer is None or (gold.intervals[1] and answer[1]):
        return None
    return "correct" if gold.intervals[0] == answer[0] else "wrong"


def _has_prose(text: str) -> bool:
    """Whether ``text`` has a word of 3+ letters that is not a LaTeX command or a maths function name.

    >>> _has_prose("the gold answer"), _has_prose(r"\\sin^2 x + cos^2 x"), _has_prose(r"\\frac{abc}{2}")
    (True, False, True)
    """
    return any(not _MATH_WORD.fullmatch(word) for word in _PROSE_WORD.findall(text))


@lru_cache(maxsize=4096)
def _read_gold(gold: str) -> _Gold:
    group = boxed_group(gold)
    raw = ", ".join(group[0]) if group is not None else gold
    boxes = gold_boxes(gold) if len(gold) <= 200 else []
    if boxes and (group is None or boxes != group[0]):  # boxes between words, an unclosed box
        raw = ", ".join(dict.fromkeys(boxes))
    if (delimited := _DELIMITED.fullmatch(raw)) is not None:  # "$$x = 1, x = 2$$"
        raw = delimited.group(1)
    if group is None and len(gold) > 200 and _FINAL_ANSWER.search(gold):  # a whole worked solution
        raw = extract_answer(gold).answer or gold
    if guard_answer(raw) is not None or _PYTHON.search(raw) or _DIVISION_BY_ZERO.search(raw):
        return _Gold(raw[:100], None, None, None, False, bad=True)
    if len(split_top_level(raw)) > 1:  # "19, 46, and 82", "x = 1, x = 2"
        raw = _as_list(raw)
    text = normalize(raw)
    if _LOOSE_SET.fullmatch(text):  # "{1,2,3}" from "$${1,2,3}$$": LaTeX grouping braces
        text = text[1:-1].strip()
    exact = parse_exact(text)
    if not text or (exact is None and malformed(text)):
        return _Gold(text, None, None, None, False, bad=True)
    choice = choice_letter(text) if re.fullmatch(r"\(?[A-J]\)?", text) else None
    word = text.casefold() if _WORD.match(text) and len(text) >= 3 and re.search("[aeiouy]", text) else None
    enclosed = text.startswith(("(", "[", r"\{")) and encloses(text) and len(split_top_level(text[1:-1])) > 1
    multi = (
        (exact is not None and exact.kind == "set" and len(exact.items) > 1)
        or (not enclosed and len(split_top_level(text)) > 1)
        or (text.startswith(r"\{") and text.endswith(r"\}") and len(split_top_level(text[2:-2])) > 1)
    )
    intervals = interval_set(text, exact if exact is not None and exact.kind == "sequence" else None)
    parts = text[0] + text[-1] if enclosed and text[0] in "([" else ""
    return _Gold(text, exact, choice, word, multi, bad=False, intervals=intervals, parts=parts)


_ELLIPSIS = re.compile(r"\\[lc]?dots\b|\.\.\.|…")


def _ellipsis_verdict(gold: str, answer: str) -> str:
    """Two sequences written with an ellipsis, item by item: the same numbers (exactly) or the same text
    at each place; ``2, 4, \\ldots, 2n`` is not ``1, 2, \\ldots, n`` (math-verify drops the ellipsis and
    compares what is left loosely).

    >>> _ellipsis_verdict(r"1, 2, \\ldots, n", r"1,2,\\dots,n"), _ellipsis_verdict(r"1, 2, \\ldots, n", r"2, 4, \\ldots, 2n")
    ('correct', 'wrong')
    """
    gold_items, answer_items = split_top_level(gold), split_top_level(answer)
    if len(gold_items) != len(answer_items):
        return "wrong"
    for gold_item, answer_item in zip(gold_items, answer_items, strict=True):
        gold_value, answer_value = parse_exact(gold_item), parse_exact(answer_item)
        if gold_value is not None and answer_value is not None:
            if not exact_equal(gold_value, answer_value):
                return "wrong"
            continue
        keys = [_ELLIPSIS.sub("...", item).replace(" ", "") for item in (gold_item, answer_item)]
        if keys[0] != keys[1]:
            return "wrong"
    return "correct"


_LOOSE_SET = re.compile(r"\{[^{}\\]*,[^{}\\]*\}")


def _as_list(answer: str) -> str:
    """A several-part answer as a comma list: "and" and "(a)"/"(b)" labels dropped, and the name of
    solutions that all name one variable (``x = 1, x = 2``; ``a_3 = 2, a_{37} = 19`` keeps its names).

    >>> _as_list(r"(a) 5 and (b) 7"), _as_list(r"19, 46, \\text{ and } 82"), _as_list("x = 1, x = -2")
    ('5,7', '19, 46, 82', '1, -2')
    >>> _as_list(r"x = 1, x = 2 \\pm \\sqrt{3}")
    '1, 2 + \\\\sqrt{3}, 2 - \\\\sqrt{3}'
    """
    listed = _PART_LABEL.sub(r"\1", _CONNECTOR.sub(",", answer))
    listed = re.sub(r"\s*,(?:\s*,)*", ",", listed).strip(" ,")
    items = split_top_level(listed)
    names = {" ".join(m.group(0).split()) if (m := _ITEM_ASSIGNMENT.match(item)) else None for item in items}
    if (
        len(items) > 1
        and None not in names
        and len(names) == 1
        and all(item.count("=") == 1 for item in items)
    ):
        listed = ", ".join(_ITEM_ASSIGNMENT.sub("", item) for item in items)  # "x = 1, x = 2": the values
    if len(items) > 1 and _PM.search(listed):  # "1, 2 \pm \sqrt{3}": each sign is an item
        items = split_top_level(listed)
        listed = ", ".join(
            f"{_PM.sub('+', item)}, {_PM.sub('-', item)}" if len(_PM.findall(item)) == 1 else item
            for item in items
        )
    return listed


def _long_decimal_of(gold: ExactValue, answer: str) -> bool:
    """A decimal of 6+ places against a rational gold whose expansion does not end: right when it is the
    gold rounded or cut to the places written (math-verify rounds to 6 places; exact elsewhere).

    >>> _long_decimal_of(parse_exact("1/12"), "0.0833333333333333"), _long_decimal_of(parse_exact("1/12"), "0.083334")
    (True, False)
    """
    match = _LONG_DECIMAL.fullmatch(answer)
    if match is None or gold.kind != "number" or gold.percent or not isinstance(gold.items[0], Fraction):
        return False
    value, places = gold.items[0], len(match.group(1))
    denominator = value.denominator
    for prime in (2, 5):
        while denominator % prime == 0:
            denominator //= prime
    if denominator == 1:  # a terminating decimal must be written exactly
        return False
    written, scale = Fraction(answer), 10**places
    cut = Fraction(int(value * scale), scale)  # toward zero
    rounded = Fraction(round(value * scale), scale)
    return written in (cut, rounded)


def _as_gold_list(answer: str, gold: _Gold) -> str:
    """Several boxed answers joined as the gold's structure: ``a = 7``, ``b = 3`` against ``(7, 3)`` is
    ``(7, 3)``; against a list or set gold, the list of values (assignments dropped when the gold has none).

    >>> _as_gold_list("a = 7, b = 3", _read_gold("(7, 3)"))
    '(7, 3)'
    """
    items = split_top_level(answer)
    if "=" not in gold.text:
        items = [_ITEM_ASSIGNMENT.sub("", item) for item in items]
    joined = ", ".join(items)
    return f"{gold.parts[0]}{joined}{gold.parts[1]}" if gold.parts else joined


def _as_rational(value: ExactValue | None) -> tuple[int, int] | None:
    if value is None or value.kind != "number" or value.percent or not isinstance(value.items[0], Fraction):
        return None
    return value.items[0].numerator, value.items[0].denominator


class _Symbolic:
    """A function of :mod:`r1zero.verifiers.support.symbolic` (sympy, math-verify) by name.

    Picklable without importing sympy in the caller's process; unpickling it gives the function itself
    and imports that module at module level, so a sandbox child that receives it as its warm-up object
    (``sandbox.run_isolated``) has sympy and math-verify loaded before any call and its time limit.
    """

    def __init__(self, name: str) -> None:
        self.name = name

    def __reduce__(self):
        return _symbolic_function, (self.name,)

    def __call__(self, *args):
        return _symbolic_function(self.name)(*args)

    def __repr__(self) -> str:
        return f"r1zero.verifiers.support.symbolic.{self.name}"


def _symbolic_function(name: str):
    from r1zero.verifiers.support import symbolic

    return getattr(symbolic, name)


def _warm_up() -> None:
    """Load sympy and math-verify (``verify_batch`` workers call this once, before their first item)."""
    _symbolic_function("symbolic_check")


_SYMBOLIC_CHECK = _Symbolic("symbolic_check")
_GOLD_PARSES = _Symbolic("gold_parses")
verify_math.warm_up = _warm_up  # type: ignore[attr-defined]
