"""The symbolic half of the ``math`` verifier: math-verify + sympy, run where a wall-clock limit applies.

This module runs in the sandbox child (or a ``verify_batch`` worker), never in the trainer's process
unless it asks for it: importing it imports sympy and math-verify at module level (~0.4 s) and runs one
small parse and comparison so that their lazily imported parts load too; a fresh or standby child does
that before its first call, outside any time limit. ``import r1zero.verifiers`` and
``get_verifier("math")`` do not import it (its name starts with ``_``, so the registry skips it).

math-verify warns once per process that its own timeouts are disabled; here the caller bounds every call,
so that warning is filtered out of math-verify's loggers (only that message).
"""

from __future__ import annotations

import logging
import re
from functools import lru_cache

import math_verify
import sympy

__all__ = ["for_sympy", "gold_parses", "symbolic_check"]


class _NoDisabledTimeoutWarning(logging.Filter):
    """Drops math-verify's "Timeout is disabled" warning: every call here is bounded by the caller."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Timeout is disabled")


for _name in ("math_verify.parser", "math_verify.grader"):
    logging.getLogger(_name).addFilter(_NoDisabledTimeoutWarning())


def gold_parses(gold: str) -> bool:
    """True when math-verify parses a normalised gold into a sympy object (runs in the sandbox child)."""
    return bool(_parse_gold_symbolic(gold))


@lru_cache(maxsize=16384)  # G samples of one prompt often give the same answer
def symbolic_check(gold: str, answer: str, rational: tuple[int, int] | None = None) -> str:
    """Compare normalised gold and answer with math-verify/sympy; returns a reason code.

    Runs in the sandbox child (a top-level function, so it pickles by reference). No timeout inside:
    the caller bounds it. ``rational`` is the answer's exact value when it is a plain number.

    >>> symbolic_check(r"\\frac{\\sqrt{3}}{2}", r"\\frac{1}{2}\\sqrt{3}")
    'correct'
    >>> symbolic_check(r"\\pi", "3.14159265", (314159265, 100000000))
    'wrong'
    """
    gold_parsed = _parse_gold_symbolic(gold)
    if not gold_parsed:
        return "bad_gold"
    gold_expr = gold_parsed[0]
    if rational is not None and isinstance(gold_expr, sympy.Expr) and gold_expr.is_number:
        value = sympy.Rational(*rational)
        same = _same_number(gold_expr, value)
        return "correct" if (sympy.simplify(gold_expr - value) == 0 if same is None else same) else "wrong"
    answer_parsed = math_verify.parse(
        f"${for_sympy(answer)}$", fallback_mode="no_fallback", parsing_timeout=None
    )
    if not answer_parsed:
        return "unparseable"
    same_number = _same_number(gold_expr, answer_parsed[0])
    if same_number is not None:
        return "correct" if same_number else "wrong"
    # allow_set_relation_comp: "-2 \le x \le 7" answers the interval [-2, 7]
    same = math_verify.verify(
        list(gold_parsed), answer_parsed, allow_set_relation_comp=True, timeout_seconds=None
    )
    return "correct" if same else "wrong"


def _same_number(gold, answer) -> bool | None:
    """Compare two exact numeric expressions to 50 significant digits (relative), or None if not both.

    math-verify rounds to 6 decimals, so it accepts ``1/2^99`` for ``1/2^98``; exact inputs need no rounding.
    """
    exprs = (gold, answer)
    if not all(isinstance(e, sympy.Expr) and e.is_number and not e.has(sympy.Float) for e in exprs):
        return None
    if not (gold.is_finite and answer.is_finite):  # zoo, oo, nan: left to math-verify
        return None
    try:
        diff = abs(sympy.N(gold - answer, 50))
        if diff == 0:
            return True
        if gold == 0 or answer == 0:  # no scale to be relative to: left to symbolic simplification
            return None
        scale = max(abs(sympy.N(gold, 50)), abs(sympy.N(answer, 50)))
        return bool(diff <= scale * sympy.Float("1e-40", 50))
    except (TypeError, ValueError, ArithmeticError):
        return None


@lru_cache(maxsize=4096)
def _parse_gold_symbolic(gold: str) -> tuple:
    return tuple(math_verify.parse(f"${for_sympy(gold)}$", fallback_mode="no_fallback", parsing_timeout=None))


# Symbols math-verify misreads or cannot read; rewritten the same way in gold and answer before parsing.
_TEXT_SUBSCRIPT = re.compile(r"_\{\s*\\(max|min|odot|oplus|star|ast|circ|bullet|rm|mathrm)\s*\}")
_E_SUBSCRIPT = re.compile(r"(?<![\\A-Za-z])([eE])_(?:\{([A-Za-z0-9]*)\}|([A-Za-z0-9]))")
_LOWER_GAMMA = re.compile(r"\\gamma(?![A-Za-z])")


def for_sympy(text: str) -> str:
    """Rewrite symbols that math-verify misreads, so that physics-style golds parse.

    ``E_{1}`` (E is Euler's number to the parser, which then fails on the subscript) becomes a fresh
    symbol; ``m_{\\max }`` and ``L_{\\odot}`` lose the backslash in the subscript; ``\\gamma`` is braced
    so that ``\\gamma^{2}-1`` is a symbol squared minus one, not the gamma function at -1.

    >>> for_sympy(r"m_{\\max }=E_{1}+\\gamma^{2}")
    'm_{max}=\\\\varepsilon_{E1}+{\\\\gamma}^{2}'
    """
    text = _TEXT_SUBSCRIPT.sub(r"_{\1}", text)
    text = _E_SUBSCRIPT.sub(
        lambda m: "\\varepsilon_{" + m.group(1) + (m.group(2) or m.group(3) or "") + "}", text
    )
    return _LOWER_GAMMA.sub(r"{\\gamma}", text)


def _warm_up() -> None:
    """One small parse and comparison, so that math-verify's lazily imported parts load at import time."""
    gold = _parse_gold_symbolic("x^{2}+1")
    answer = math_verify.parse("$x \\cdot x+1$", fallback_mode="no_fallback", parsing_timeout=None)
    math_verify.verify(list(gold), answer, timeout_seconds=None)
    _parse_gold_symbolic.cache_clear()


_warm_up()
