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
from antlr4.atn.PredictionMode import PredictionMode
from latex2sympy2_extended.latex2sympy2 import _Latex2Sympy
from math_verify.parser import LatexExtractionConfig, normalize_latex

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

    Plain algebra that the fast reader reads is readable without math-verify's (slow) parser.
    """
    return _fast_read(gold) is not None or bool(_parse_gold_symbolic(gold))


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
    fast_gold = _fast_read(gold)
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
    same_number = _same_number(gold_expr, answer_parsed[0])
    if same_number is not None:
        return "correct" if same_number else "wrong"
    # allow_set_relation_comp: "-2 \le x \le 7" answers the interval [-2, 7]
    same = math_verify.verify(
        list(gold_parsed), answer_parsed, allow_set_relation_comp=True, timeout_seconds=None
    )
    return "correct" if same else "wrong"


def _rational_check(gold, rational: tuple[int, int]) -> str:
    """An exact rational answer against a numeric gold (no rounding: ``3.14159265`` is not ``\\pi``)."""
    value = sympy.Rational(*rational)
    same = _same_number(gold, value)
    return "correct" if (sympy.simplify(gold - value) == 0 if same is None else same) else "wrong"


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
            or (not floats and trig and sympy.trigsimp(difference) == 0)
            or (not floats and sympy.simplify(difference) == 0)
        ):
            return "correct"
    except (TypeError, ValueError, ArithmeticError, RecursionError):
        return None
    return None


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


# A fast reader for the plain algebra most answers are written in (numbers, letters, + - \cdot / ^,
# \frac, \sqrt, \pi, e, \sin/\cos/\tan/\ln/\exp/\log_b, n!). ANTLR (math-verify's LaTeX parser) costs
# ~5 ms a string; this costs ~0.1 ms. It reads math-verify's normalised text and returns None for
# anything outside that subset (sets, relations, intervals, matrices, i, units, ...), which then goes
# to math-verify as before; the result is only compared with another fast read (``_fast_compare``).
_TOKEN = re.compile(r"\s*(?:(\d+(?:\.\d+)?)|([A-Za-z])|(\\[A-Za-z]+)|([-+*/^_{}()!]))")
_GREEK = frozenset(
    ["alpha", "beta", "theta", "phi", "varphi", "lambda", "mu", "sigma", "omega", "rho", "tau", "varepsilon"]
)  # read by math-verify as plain symbols (not \gamma: EulerGamma; \delta, \zeta: functions)
_FUNCTIONS = {"sin": sympy.sin, "cos": sympy.cos, "tan": sympy.tan, "ln": sympy.log, "exp": sympy.exp}
_TIMES = frozenset(["*", "\\cdot", "\\times"])
_MAX_FACTORIAL = 5000
_MAX_FAST_CHARS = 256
_MAX_POWER_DIGITS = 2000


class _NotPlain(Exception):
    """The text is outside the fast reader's subset."""


def _tokens(text: str) -> list[str]:
    out, pos = [], 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            if text[pos:].strip():
                raise _NotPlain(text[pos:])
            break
        out.append(match.group(match.lastindex))
        pos = match.end()
    return out


class _Reader:
    """Recursive descent over the tokens, mirroring latex2sympy's precedence (implicit products bind
    tighter than ``\\cdot`` and ``/``, as in ``1/2x`` = 1/(2x))."""

    def __init__(self, tokens: list[str]) -> None:
        self.tokens, self.pos = tokens, 0

    def peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self, expected: str | None = None) -> str:
        token = self.peek()
        if token is None or (expected is not None and token != expected):
            raise _NotPlain(f"expected {expected!r}, found {token!r}")
        self.pos += 1
        return token

    def expr(self):
        value = self.term()
        while self.peek() in ("+", "-"):
            value = value + self.term() if self.take() == "+" else value - self.term()
        return value

    def term(self):
        value = self.unary()
        while self.peek() in _TIMES or self.peek() == "/":
            value = value / self.unary() if self.take() == "/" else value * self.unary()
        return value

    def unary(self):
        if self.peek() in ("+", "-"):
            return -self.unary() if self.take() == "-" else self.unary()
        return self.product(stop_at_function=False)

    def product(self, stop_at_function: bool):
        factors = [self.postfix(first=True)]
        while self._starts_atom(stop_at_function):
            factors.append(self.postfix(first=False))
        return sympy.Mul(*factors)

    def _starts_atom(self, stop_at_function: bool) -> bool:
        token = self.peek()
        if token is None or token in ("+", "-", "/", "}", ")", "^", "_", "!") or token in _TIMES:
            return False
        return not (stop_at_function and (token[1:] in _FUNCTIONS or token == "\\log"))

    def postfix(self, first: bool):
        token = self.peek()
        if token is not None and token[0].isdigit() and not first:
            raise _NotPlain("a number after a factor")  # "x2", "2 3": latex2sympy reads these its own way
        base = self.atom()
        if self.peek() == "!":
            self.take()
            if not (base.is_Integer and 0 <= base <= _MAX_FACTORIAL):
                raise _NotPlain("factorial of a non-literal")
            base = sympy.factorial(base)
        if self.peek() == "^":
            self.take()
            exponent = self.exponent()
            if base.is_Rational and exponent.is_Integer and abs(base) != 1 and base != 0:
                digits = abs(int(exponent)) * max(len(str(abs(base.p))), len(str(base.q)))
                if digits > _MAX_POWER_DIGITS:  # 2^{2^{2^{2^{2^{2}}}}}: left to the guards and math-verify
                    raise _NotPlain("a huge power")
            base = base**exponent
            if self.peek() in ("^", "!"):
                raise _NotPlain("a double power")
        return base

    def exponent(self):
        token = self.peek()
        if token == "{":
            return self.group()
        if token is not None and ((token.isdigit() and len(token) == 1) or token.isalpha()):
            return self.atom()
        raise _NotPlain(f"exponent {token!r}")

    def group(self):
        self.take("{")
        value = self.expr()
        self.take("}")
        return value

    def atom(self):
        token = self.take()
        if token[0].isdigit():
            return sympy.Float(token) if "." in token else sympy.Integer(token)
        if token == "(":
            value = self.expr()
            self.take(")")
            return value
        if token == "{":
            self.pos -= 1
            return self.group()
        if token.isalpha():
            return self.letter(token)
        name = token[1:]
        if name == "pi":
            return sympy.pi
        if name == "gamma":  # for_sympy braces it: math-verify reads {\gamma} as Euler's constant
            return sympy.EulerGamma
        if name in _GREEK:
            return self.symbol(name)
        if name == "frac":
            numerator = self.group()
            return numerator / self.group()
        if name == "sqrt":
            if self.peek() == "[":
                raise _NotPlain("nth root")
            return sympy.sqrt(self.group())
        if name in _FUNCTIONS or name == "log":
            return self.function(name)
        raise _NotPlain(f"command {token!r}")

    def letter(self, letter: str):
        following = self.tokens[self.pos : self.pos + 2]
        differential = letter == "d" and following[:1] and following[0].isalpha()
        if differential or (len(following) == 2 and all(t.isalpha() for t in following)):
            raise _NotPlain("a word or a differential")  # math-verify reads "da" in "Monday" as one symbol
        if letter in "iIE":  # imaginary unit, or a symbol math-verify reads its own way
            raise _NotPlain(f"letter {letter!r}")
        if letter == "e":
            if self.peek() == "_":
                raise _NotPlain("e with a subscript")
            return sympy.E
        return self.symbol(letter)

    def symbol(self, name: str):
        if self.peek() == "_":
            self.take()
            if self.peek() == "{":  # x_{12}, L_{odot}, varepsilon_{E1}: one name
                self.take()
                parts = []
                while self.peek() is not None and self.peek().isalnum():
                    parts.append(self.take())
                self.take("}")
                sub = "".join(parts)
            else:  # x_1 is x_{1}; x_12 is x_{1} times 2, which the number rule refuses
                sub = self.take()
            if not sub.isalnum():
                raise _NotPlain(f"subscript {sub!r}")
            name = f"{name}_{sub}"
        return sympy.Symbol(name, real=True)

    def function(self, name: str):
        base = None
        if name == "log":
            if self.peek() != "_":
                raise _NotPlain("\\log without a base")  # math-verify's choice of base is its own
            self.take()
            base = self.exponent()
        power = None
        if self.peek() == "^":
            self.take()
            token = self.peek()
            power = self.exponent()
            if not (power.is_Integer and power > 0) or token == "-":
                raise _NotPlain("a function power that is not a positive integer")
        if self.peek() == "(":
            self.take()
            argument = self.expr()
            self.take(")")
        elif self.peek() == "{":
            argument = self.group()
        else:
            argument = self.product(stop_at_function=True)
            if self.peek() in _TIMES or self.peek() == "/":
                raise _NotPlain("an operator after a function argument without parentheses")
        value = sympy.log(argument, base) if base is not None else _FUNCTIONS[name](argument)
        return value**power if power is not None else value


def fast_parse(text: str):
    """Read plain algebra in math-verify's normalised LaTeX into sympy, or None outside the subset.

    >>> fast_parse(r"\\frac{a^{2}}{b_{1}} + \\sqrt{2}\\sin^2 x")
    a**2/b_1 + sqrt(2)*sin(x)**2
    >>> fast_parse(r"[-2, 7]") is None
    True
    """
    if len(text) > _MAX_FAST_CHARS:  # math-verify reads long text its own way (a fragment of it)
        return None
    try:
        reader = _Reader(_tokens(text))
        value = reader.expr()
        if reader.peek() is not None:
            raise _NotPlain(f"trailing {reader.peek()!r}")
        return value
    except (_NotPlain, TypeError, ValueError, ArithmeticError, RecursionError):
        return None


def _warm_up() -> None:
    """One small parse and comparison, so that math-verify's lazily imported parts load at import time."""
    gold = _parse_gold_symbolic("x^{2}+1")
    answer = math_verify.parse("$x \\cdot x+1$", fallback_mode="no_fallback", parsing_timeout=None)
    math_verify.verify(list(gold), answer, timeout_seconds=None)
    _parse_gold_symbolic.cache_clear()


_warm_up()
