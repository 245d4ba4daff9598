"""A fast reader for the plain algebra most answers are written in, used before math-verify's parser.

Numbers, letters, ``+ - \\cdot / ^``, ``\\frac``, ``\\sqrt``, ``\\pi``, ``e``, ``\\sin``/``\\cos``/
``\\tan``/``\\ln``/``\\exp``/``\\log_b``, ``n!``: read into sympy the way math-verify's LaTeX parser
(latex2sympy) reads them, in ~0.1 ms instead of ~5 ms. Anything outside that subset gives None and goes
to math-verify as before. Imports sympy: used only by :mod:`r1zero.verifiers.support.symbolic`.
"""

from __future__ import annotations

import re

import sympy

__all__ = ["fast_parse"]

# It reads math-verify's normalised text; outside the subset (sets, relations, intervals, matrices, i,
# units, ...) it returns None. A result is only compared with another fast read (``_fast_compare``).
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
