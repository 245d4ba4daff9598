"""The symbolic half of the ``math`` verifier: math-verify + sympy, run where a wall-clock limit applies.

This module runs in the sandbox child (or a ``verify_batch`` worker), never in the trainer's process
unless it asks for it: importing it imports sympy and math-verify at module level (~0.4 s) and runs one
small parse and comparison so that their lazily imported parts load too; a fresh or standby child does
that before its first call, outside any time limit. ``import r1zero.verifiers`` and
``get_verifier("math")`` do not import it (the registry imports only ``r1zero.verifiers.builtin``).

math-verify warns once per process that its own timeouts are disabled; here the caller bounds every call,
so that warning is filtered out of math-verify's loggers (only that message).
"""

from __future__ import annotations

import logging
import re
from functools import lru_cache

import math_verify
import sympy
from antlr4.atn.PredictionMode import PredictionMode
from latex2sympy2_extended.latex2sympy2 import _Latex2Sympy, is_expr_of_only_symbols
from math_verify.parser import LatexExtractionConfig, normalize_latex
from sympy.core.traversal import bottom_up
from sympy.polys.polyerrors import BasePolynomialError

from r1zero.verifiers.support.fast_reader import fast_parse
from r1zero.verifiers.support.normalize import encloses, split_top_level

__all__ = ["fast_parse", "for_sympy", "gold_parses", "symbolic_check"]


class _NoDisabledTimeoutWarning(logging.Filter):
    """Drops math-verify's "Timeout is disabled" warning: every call here is bounded by the caller."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Timeout is disabled")


for _name in ("math_verify.parser", "math_verify.grader"):
    logging.getLogger(_name).addFilter(_NoDisabledTimeoutWarning())


# Two-stage ANTLR parsing for math-verify's LaTeX parser (latex2sympy): first SLL prediction, ~7x
# faster on the labelled rows; ANTLR guarantees that when SLL succeeds it returns the same parse tree
# as full LL (antlr4.atn.PredictionMode.SLL), and where SLL reports a syntax error the text is parsed
# again with LL, exactly as before. Only the parse stage is retried; the conversion to sympy is
# unchanged. Applies in the processes that import this module (sandbox children, pool workers).
_TWO_STAGE = True
_create_parser = _Latex2Sympy.create_parser


def _two_stage_create_parser(self, latex_str):
    parser = _create_parser(self, latex_str)
    if not _TWO_STAGE:
        return parser
    parser._interp.predictionMode = PredictionMode.SLL
    sll_math = parser.math

    def math():
        try:
            return sll_math()
        except Exception:  # a syntax error under SLL: LL decides, as it always did
            return _create_parser(self, latex_str).math()

    parser.math = math
    return parser


_Latex2Sympy.create_parser = _two_stage_create_parser


def gold_parses(gold: str) -> bool:
    """True when math-verify parses a normalised gold into a sympy object (runs in the sandbox child).

    Plain algebra that the fast reader reads (an expression, an equation of two, a list of them) is
    readable without math-verify's (slow) parser.
    """
    if _fast_read(gold) is not None or _fast_list(gold) is not None or _fast_sequence(gold) is not None:
        return True
    return (gold.count("=") == 1 and _fast_equation(gold) is not None) or bool(_parse_gold_symbolic(gold))


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
    if gold.count("=") == 1 and answer.count("=") == 1:  # two equations: "correct" when lhs - rhs agree
        gold_side, answer_side = _fast_equation(gold), _fast_equation(answer)
        if (
            gold_side is not None
            and answer_side is not None
            and _fast_compare(gold_side, answer_side) == "correct"
        ):
            return "correct"  # math-verify's first test of two equations (the same lhs - rhs)
        if gold_side is not None and answer_side is not None:
            decided = _linear_verdict(gold, answer, gold_side, answer_side)
            if decided is not None:
                return decided
    if "," in gold:
        decided = _list_verdict(_fast_list(gold), _fast_list(answer))
        if decided is not None:
            return decided
    if gold[:1] in "([\\":
        decided = _sequence_verdict(_fast_sequence(gold), _fast_sequence(answer))
        if decided is not None:
            return decided
    fast_gold = _fast_read(gold)
    if (decided := _imaginary_verdict(fast_gold, _fast_read(answer))) is not None:
        return decided
    if fast_gold is not None:
        if rational is not None and fast_gold.is_number:
            return _rational_check(fast_gold, rational)
        fast_answer = _fast_read(answer)
        if fast_answer is not None:
            decided = _fast_compare(fast_gold, fast_answer)
            if decided is not None:
                return decided
    gold_parsed = _parse_gold_symbolic(gold)
    if not gold_parsed:
        return "bad_gold"
    gold_expr = gold_parsed[0]
    if rational is not None and isinstance(gold_expr, sympy.Expr) and gold_expr.is_number:
        return _rational_check(gold_expr, rational)
    answer_parsed = math_verify.parse(
        f"${for_sympy(answer)}$", fallback_mode="no_fallback", parsing_timeout=None
    )
    if not answer_parsed:
        return "unparseable"
    if (decided := _imaginary_verdict(gold_expr, answer_parsed[0])) is not None:
        return decided
    same_number = _same_number(gold_expr, answer_parsed[0])
    if same_number is not None:
        return "correct" if same_number else "wrong"
    # allow_set_relation_comp: "-2 \le x \le 7" answers the interval [-2, 7]
    same = math_verify.verify(
        list(gold_parsed), answer_parsed, allow_set_relation_comp=True, timeout_seconds=None
    )
    return "correct" if same else "wrong"


def _imaginary_verdict(gold, answer) -> str | None:
    """Two expressions whose only symbol is ``i``: ``i`` is the imaginary unit (``\\frac{2}{i}`` is ``-2i``).

    >>> i = sympy.Symbol("i", real=True)
    >>> _imaginary_verdict(2 / i, -2 * i), _imaginary_verdict(2 / i, 2 * i), _imaginary_verdict(i, sympy.Symbol("x"))
    ('correct', 'wrong', None)
    """
    if not (isinstance(gold, sympy.Expr) and isinstance(answer, sympy.Expr)):
        return None
    names = {symbol.name for symbol in gold.free_symbols | answer.free_symbols}
    if names != {"i"}:
        return None
    unit = {symbol: sympy.I for symbol in gold.free_symbols | answer.free_symbols}
    return "correct" if sympy.simplify(gold.subs(unit) - answer.subs(unit)) == 0 else "wrong"


def _rational_check(gold, rational: tuple[int, int]) -> str:
    """An exact rational answer against a numeric gold (no rounding: ``3.14159265`` is not ``\\pi``)."""
    value = sympy.Rational(*rational)
    same = _same_number(gold, value)
    return "correct" if (_is_zero(gold - value) if same is None else same) else "wrong"


def _is_zero(number) -> bool:
    """Whether an exact numeric expression is 0: cheap proofs first (expanding, denesting square roots,
    ~2 ms), ``sympy.simplify`` (~25 ms) only when they do not show it.

    >>> _is_zero(sympy.sqrt(5 + 2 * sympy.sqrt(6)) - sympy.sqrt(2) - sympy.sqrt(3)), _is_zero(sympy.sqrt(2) - 1)
    (True, False)
    """
    if sympy.expand(number) == 0:
        return True
    roots = any(power.exp == sympy.S.Half for power in number.atoms(sympy.Pow))
    if roots and sympy.expand(bottom_up(number, _denest)) == 0:
        return True
    return sympy.simplify(number) == 0


def _denest(expr):
    return sympy.sqrtdenest(expr) if expr.is_Pow and expr.exp == sympy.S.Half else expr


def _linear_verdict(gold: str, answer: str, gold_side, answer_side) -> str | None:
    """Two linear equations (``lhs - rhs`` of degree 1 with rational coefficients), or None if not that.

    math-verify solves both equations and compares the solutions; for linear equations those agree
    exactly when one ``lhs - rhs`` is a nonzero multiple of the other (the same line or plane), which
    this checks on the coefficients without solving. An assignment-like left side (``x + y = 3``, which
    math-verify's parser treats its own way) and floats are left to math-verify.

    >>> x, y = sympy.symbols("x y", real=True)
    >>> _linear_verdict("3x+4y+14=0", "6x+8y=-28", 3*x + 4*y + 14, 6*x + 8*y + 28)
    'correct'
    >>> _linear_verdict("3x+4y+14=0", "3x-y+13=0", 3*x + 4*y + 14, 3*x - y + 13)
    'wrong'
    """
    sides = [_fast_read(text.partition("=")[0]) for text in (gold, answer)]
    symbols = sorted(gold_side.free_symbols | answer_side.free_symbols, key=str)
    if any(side is None for side in sides):
        return None
    if len(symbols) < 2 and any(is_expr_of_only_symbols(side) for side in sides):
        return None  # "x = 3" against "x = 4": an assignment, math-verify compares the values
    if not symbols or gold_side.has(sympy.Float) or answer_side.has(sympy.Float):
        return None
    try:
        polys = [sympy.Poly(side, *symbols) for side in (gold_side, answer_side)]
    except sympy.PolynomialError:
        return None
    if any(poly.total_degree() != 1 or not (poly.domain.is_ZZ or poly.domain.is_QQ) for poly in polys):
        return None
    gold_terms, answer_terms = (poly.as_dict() for poly in polys)
    if gold_terms.keys() != answer_terms.keys():
        return "wrong"
    ratio = None
    for monomial, coefficient in gold_terms.items():
        ratio = ratio or coefficient / answer_terms[monomial]
        if coefficient != ratio * answer_terms[monomial]:
            return "wrong"
    return "correct"


_MAX_LIST = 8


@lru_cache(maxsize=4096)
def _fast_list(text: str) -> tuple | None:
    """A bare comma list or a ``\\{…\\}`` set (math-verify reads both as a ``FiniteSet``) of 2 to 8
    elements that the fast reader reads, or None. Tuples and intervals (brackets) are not lists here.

    >>> _fast_list(r"\\{\\sqrt{2}, -\\sqrt{2}\\}"), _fast_list("(1, x)"), _fast_list("x, y^{2}")
    ((sqrt(2), -sqrt(2)), None, (x, y**2))
    """
    if text.startswith(r"\{") and text.endswith(r"\}"):
        text = text[2:-2]
    elif text[:1] in "([{":
        return None
    parts = split_top_level(text)
    if not 2 <= len(parts) <= _MAX_LIST or any("=" in part for part in parts):
        return None
    items = tuple(_fast_read(part) for part in parts)
    return None if any(item is None for item in items) else items


def _list_verdict(gold: tuple | None, answer: tuple | None) -> str | None:
    """Two lists of distinct elements (see ``_fast_list``) as sets: "correct" when each gold element
    equals an answer element and the sizes agree, "wrong" when every pair is decided and they do not;
    None when either is not such a list or a pair is undecided (left to math-verify).

    Elements are compared as ``symbolic_check`` compares two fast reads; two lone symbols as
    math-verify compares them: by name, ignoring case (its parser lowercases ``X`` and ``x_A``) and braces.

    >>> x, y, z = sympy.symbols("x y z", real=True)
    >>> _list_verdict((x, y), (y, x)), _list_verdict((x, y), (x, z)), _list_verdict((x, y), (x, x))
    ('correct', 'wrong', None)
    """
    if gold is None or answer is None or len(gold) != len(answer):
        return None
    for items in (gold, answer):  # duplicates: math-verify's FiniteSet merges them; left to it
        if any(_same_element(a, b) != "wrong" for i, a in enumerate(items) for b in items[i + 1 :]):
            return None
    decisions = [[_same_element(g, a) for a in answer] for g in gold]
    if any(d is None for row in decisions for d in row):
        return None
    return "correct" if all("correct" in row for row in decisions) else "wrong"


_MATRIX = re.compile(r"^\\begin\{([pb]?matrix)\}(.*)\\end\{\1\}$", re.DOTALL)  # not vmatrix: a determinant
_MAX_CELLS = 36


@lru_cache(maxsize=4096)
def _fast_sequence(text: str) -> tuple[str, tuple] | None:
    """A tuple or interval (its brackets, its elements) or a matrix (``"matrix"``, its rows) of up to
    36 elements that the fast reader reads, or None.

    >>> _fast_sequence(r"(\\sqrt{2}, 1]"), _fast_sequence(r"\\begin{pmatrix}1&x\\\\0&2\\end{pmatrix}")
    (('(]', (sqrt(2), 1)), ('matrix', ((1, x), (0, 2))))
    """
    if (matrix := _MATRIX.match(text.strip())) is not None:
        rows = [row for row in matrix.group(2).split("\\\\") if row.strip()]
        cells = [row.split("&") for row in rows]
        if not cells or len({len(row) for row in cells}) != 1 or len(cells) * len(cells[0]) > _MAX_CELLS:
            return None
        items = tuple(tuple(_fast_read(cell.strip()) for cell in row) for row in cells)
        ok = all(item is not None for row in items for item in row)
        return ("matrix", items) if ok else None
    if not (text[:1] in "([" and text[-1:] in ")]" and encloses(text)):
        return None
    parts = split_top_level(text[1:-1])
    if not 2 <= len(parts) <= _MAX_CELLS:
        return None
    items = tuple(_fast_read(part) for part in parts)
    return None if any(item is None for item in items) else (text[0] + text[-1], items)


def _sequence_verdict(gold: tuple[str, tuple] | None, answer: tuple[str, tuple] | None) -> str | None:
    """Two tuples/intervals with the same brackets, or two matrices of one shape (``_fast_sequence``),
    element by element: "correct" when every pair is equal, "wrong" when every pair is decided and one
    differs, None otherwise (left to math-verify).

    math-verify reads ``(a, b)`` as an open interval, so for it any two empty ones are equal
    (``(\\sqrt{2}, 1)`` = ``(3, 2)``); here a tuple is ordered values, as the exact path reads numbers.

    >>> x, two = sympy.Symbol("x", real=True), sympy.Integer(2)
    >>> _sequence_verdict(("()", (x + 1, two)), ("()", (1 + x, two)))
    'correct'
    >>> _sequence_verdict(("()", (x + 1, two)), ("()", (two, x + 1)))
    'wrong'
    >>> _sequence_verdict(("()", (x, two)), ("[]", (x, two))) is None  # brackets differ: math-verify decides
    True
    """
    if gold is None or answer is None or gold[0] != answer[0]:
        return None
    if gold[0] == "matrix":
        if [len(row) for row in gold[1]] != [len(row) for row in answer[1]]:
            return None
        pairs = [
            (g, a)
            for gold_row, answer_row in zip(gold[1], answer[1], strict=True)
            for g, a in zip(gold_row, answer_row, strict=True)
        ]
    elif len(gold[1]) == len(answer[1]):
        pairs = list(zip(gold[1], answer[1], strict=True))
    else:
        return None
    decisions = [_same_element(g, a) for g, a in pairs]
    if None in decisions:
        return None
    return "correct" if all(d == "correct" for d in decisions) else "wrong"


def _symbol_key(symbol) -> str:
    return symbol.name.replace("{", "").replace("}", "").lower()


def _same_element(gold, answer) -> str | None:
    if isinstance(gold, sympy.Symbol) and isinstance(answer, sympy.Symbol):
        same = _symbol_key(gold) == _symbol_key(answer)
        return "correct" if same else "wrong"
    return _fast_compare(gold, answer)


_MAX_EXPAND_POWER = 12
#: Points at which two fast-read expressions are evaluated to show that they differ.
_SAMPLE_VALUES = (
    sympy.Rational(7, 5),
    sympy.Rational(-13, 11),
    sympy.Rational(17, 19),
    sympy.Rational(23, 7),
    sympy.Rational(-29, 13),
    sympy.Rational(31, 17),
)


def _fast_compare(gold, answer) -> str | None:
    """Decide gold vs answer (both from the fast reader) cheaply, or None to leave it to math-verify.

    Only what math-verify's ``verify`` would decide the same way: exact numbers as ``_same_number``
    (which ``symbolic_check`` applies first anyway); other expressions are ``correct`` when their
    difference expands (or, when they agree at two rational points, simplifies) to 0, and ``wrong``
    when they differ at a rational point (then no simplification can make the difference 0; with a
    float in either, only by more than math-verify's rounding could absorb). Lone symbols
    (math-verify compares those as words) and numbers with floats are left to math-verify.

    >>> x = sympy.Symbol("x", real=True)
    >>> _fast_compare((x + 1) ** 2, x**2 + 2 * x + 1), _fast_compare(x**2 + 1, x**2 - 1)
    ('correct', 'wrong')
    >>> _fast_compare(sympy.sin(x) ** 2 + sympy.cos(x) ** 2, sympy.Integer(1))
    'correct'
    """
    if isinstance(gold, sympy.Symbol) or isinstance(answer, sympy.Symbol):
        return None
    floats = gold.has(sympy.Float) or answer.has(sympy.Float)
    if gold.is_number and answer.is_number:
        same = None if floats else _same_number(gold, answer)
        return None if same is None else ("correct" if same else "wrong")
    symbols = sorted(gold.free_symbols | answer.free_symbols, key=str)
    if len(symbols) > len(_SAMPLE_VALUES):
        return None
    if gold == answer:
        return "correct"
    tolerance = sympy.Float("1e-6" if floats else "1e-20", 30)
    try:
        for shift in (0, 1):
            point = {s: _SAMPLE_VALUES[(i + shift) % len(_SAMPLE_VALUES)] for i, s in enumerate(symbols)}
            value_gold = sympy.N(gold, 30, subs=point)
            value_answer = sympy.N(answer, 30, subs=point)
            if not (value_gold.is_number and value_answer.is_number):
                return None
            if not (value_gold.is_finite and value_answer.is_finite):
                return None
            scale = max(abs(value_gold), abs(value_answer), 1)
            if abs(value_gold - value_answer) > scale * tolerance:
                return "wrong"
        # Equal at both points: prove it, unless a high power would make that slow (math-verify's turn).
        if any(p.exp.is_Integer and abs(p.exp) > _MAX_EXPAND_POWER for p in (gold - answer).atoms(sympy.Pow)):
            return None
        difference = gold - answer
        trig = difference.has(sympy.sin, sympy.cos, sympy.tan)
        if (
            sympy.expand(difference) == 0
            or (not floats and trig and _pythagorean_zero(difference))
            or (not floats and trig and sympy.trigsimp(difference) == 0)
            or (not floats and sympy.simplify(difference) == 0)
        ):
            return "correct"
    except (TypeError, ValueError, ArithmeticError, RecursionError):
        return None
    return None


def _pythagorean_zero(expr) -> bool:
    """Whether ``expr``, a polynomial in sines and cosines, is 0 using only ``sin(u)^2 + cos(u)^2 = 1``
    (each argument ``u`` on its own): its remainder modulo those relations (a Groebner basis: their
    leading terms ``sin(u)^2`` are coprime) is 0. ~1 ms where ``trigsimp`` takes ~10 ms; False when it
    cannot show it (then ``trigsimp`` decides).

    >>> x = sympy.Symbol("x", real=True)
    >>> _pythagorean_zero(sympy.sin(x) ** 4 - sympy.cos(x) ** 4 - sympy.sin(x) ** 2 + sympy.cos(x) ** 2)
    True
    >>> _pythagorean_zero(sympy.sin(2 * x) - 2 * sympy.sin(x) * sympy.cos(x))
    False
    """
    if expr.has(sympy.tan):
        return False
    mapping, relations, generators = {}, [], []
    for argument in sorted({f.args[0] for f in expr.atoms(sympy.sin, sympy.cos)}, key=sympy.default_sort_key):
        sine, cosine = sympy.Dummy(), sympy.Dummy()
        mapping[sympy.sin(argument)], mapping[sympy.cos(argument)] = sine, cosine
        relations.append(sine**2 + cosine**2 - 1)
        generators += [sine, cosine]
    if not relations:
        return False
    polynomial = sympy.expand(expr.xreplace(mapping))
    if polynomial.has(sympy.sin, sympy.cos):  # a sine inside another function's argument
        return False
    try:
        _, remainder = sympy.reduced(polynomial, relations, *generators)
    except BasePolynomialError:
        return False
    return remainder == 0


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


_LATEX_NORMALIZATION = LatexExtractionConfig().normalization_config


@lru_cache(maxsize=16384)
def _fast_read(text: str):
    """``text`` (normalised by r1zero) read by the fast reader after math-verify's own LaTeX
    normalisation (the same text its parser would see), or None."""
    return fast_parse(normalize_latex(for_sympy(text), config=_LATEX_NORMALIZATION))


@lru_cache(maxsize=4096)
def _fast_equation(text: str):
    """``lhs - rhs`` of an equation ``lhs = rhs`` that the fast reader reads on both sides, or None."""
    if re.search(r"\\(?:le|ge|ne|leq|geq|neq)\b|[<>!]=|[<>]", text):
        return None
    lhs, _, rhs = text.partition("=")
    left, right = _fast_read(lhs), _fast_read(rhs)
    if left is None or right is None or isinstance(left, sympy.Symbol):  # "x = 3": an assignment
        return None
    return left - right


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
