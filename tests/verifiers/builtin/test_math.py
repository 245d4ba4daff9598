"""The ``math`` verifier on the labelled rows (tests/verifiers/rows/*.jsonl) plus its hardening contracts."""

import json
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

from r1zero.verifiers import REASONS, Verdict, get_verifier
from r1zero.verifiers.builtin import math as math_verifier
from r1zero.verifiers.reward import STRICT_R1ZERO, RewardWeights

ROWS_DIR = Path(__file__).parents[1] / "rows"
ROWS = [
    json.loads(line)
    for path in sorted(ROWS_DIR.glob("*.jsonl"))
    for line in path.read_text(encoding="utf-8").splitlines()
    if line.strip()
]
verify = get_verifier("math")
# (x+y+z)^60 against (x+y+z+i)^60 passes every guard and keeps sympy busy for minutes (math-verify's
# complex mode; without the i the fast path shows in a millisecond that the two differ at a point).
SLOW_GOLD, SLOW_ANSWER = "(x+y+z)^{60}", "(x+y+z+i)^{60}"


def _row_id(row: dict) -> str:
    return f"{row['category']}:{row['note']}"


def test_rows_cover_the_issue():
    categories = {row["category"] for row in ROWS}
    assert len(ROWS) >= 300
    assert {
        "hack",
        "numbers",
        "fractions",
        "normalization",
        "symbolic",
        "structures",
        "extraction",
    } <= categories
    assert sum(row["category"] == "hack" for row in ROWS) >= 40
    for row in ROWS:
        assert {"response", "gold", "expected", "category", "note"} <= set(row)
        assert isinstance(row["expected"], bool)


def _row_param(row: dict):
    """A row; one labelled ``xfail`` is a known miss, kept so the bench counts it (strict: a fix shows up)."""
    marks = [pytest.mark.xfail(reason=row["xfail"], strict=True)] if "xfail" in row else []
    return pytest.param(row, id=_row_id(row), marks=marks)


@pytest.mark.parametrize("row", [_row_param(row) for row in ROWS])
def test_labelled_row(row):
    verdict = verify(row["response"], row["gold"], timeout=5.0)
    assert isinstance(verdict, Verdict)
    assert verdict.reason in REASONS
    assert verdict.correct is row["expected"], verdict
    assert verdict.reward == (1.0 if row["expected"] else 0.0)
    if "formatted" in row:
        assert verdict.formatted is row["formatted"]


BAD_GOLDS = [
    "",
    "\\frac{",
    "???",
    "\\left(",
    "}",
    "9^{9^{9^{9}}}",
    "x" * 5000,
    "np.arcsin(10/13)",  # source-data defects found by the data engineer
    "t(0,4]",
    "1 + __import__('os').system('true')",
]


@pytest.mark.parametrize("gold", BAD_GOLDS)
def test_bad_gold_is_never_rewarded(gold):
    for response in (
        f"<think>copy</think> <answer>{gold}</answer>",
        gold,
        "<think>a</think> <answer>1</answer>",
    ):
        verdict = verify(response, gold)
        assert (verdict.reward, verdict.reason) == (0.0, "bad_gold")


GOOD_GOLDS = [
    "12",
    "\\frac{1}{2}",
    "(B)",
    r"m_{p} c^{2}\left(\gamma^{2}-1\right) \sin ^{2} \theta",
    r"\frac{1}{3} E_{1}+\frac{2}{3} E_{2}",
    r"E_{1},E_{2}",
    r"m_{\max }=n^{2}-n-1",
    r"\frac{dM}{dt}=\frac{10^{5} L_{\odot}}{0.007 c^{2} M_{\odot}^{6}} M^{6}",
    r"\frac{2 \pi c^{2} R^{2}}{\lambda^{5}\left[e^{h c /(\lambda k T)}-1\right] d^{2}}",  # \lambda is no Python
    r"\lambda + 1",
]


@pytest.mark.parametrize("gold", GOOD_GOLDS + BAD_GOLDS)
def test_gold_readable_agrees_with_the_verifier(gold):
    readable = math_verifier.gold_readable(gold)
    assert readable is (gold in GOOD_GOLDS)
    assert readable is (verify("<answer>1</answer>", gold).reason != "bad_gold")


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        ("12 or 13", "rejected"),
        ("9^{9^{9^{9}}}", "rejected"),
        ("(10!)!", "rejected"),
        ("(" * 100 + "1" + ")" * 100, "rejected"),
        ("13", "wrong"),
        ("x+", "unparseable"),
    ],
)
def test_reasons(answer, reason):
    assert verify(f"<think>a</think> <answer>{answer}</answer>", "12").reason == reason


def test_conflicting_answer_blocks_are_rejected():
    verdict = verify("<think>a</think> <answer>12</answer> <answer>13</answer>", "12")
    assert (verdict.reason, verdict.reward) == ("rejected", 0.0)


def test_no_answer():
    assert verify("<think>the answer is 12</think>", "12").reason == "no_answer"


def test_guards_answer_instantly():
    start = time.perf_counter()
    for tower in ("9^{9^{9^{9}}}", "9**9**9**9", "2^{2^{2^{2^{2^{2}}}}}", "1000000!", "1" + "0" * 20000):
        assert verify(f"<think>a</think> <answer>{tower}</answer>", "1").reason == "rejected"
    assert time.perf_counter() - start < 0.5


def test_slow_symbolic_check_times_out_within_the_limit():
    math_verifier._READABLE.clear()  # the gold check is part of the same budget
    start = time.perf_counter()
    verdict = verify(f"<answer>{SLOW_ANSWER}</answer>", SLOW_GOLD, timeout=1.0)
    elapsed = time.perf_counter() - start
    assert (verdict.reason, verdict.reward) == ("timeout", 0.0)
    assert elapsed < 2.0, elapsed
    # the killed child is replaced: the next call works
    assert verify("<answer>\\sqrt{8}</answer>", "2\\sqrt{2}").reason == "correct"


def test_timeout_works_from_a_thread():
    results: list[tuple[str, float]] = []

    def call() -> None:
        start = time.perf_counter()
        verdict = verify(f"<answer>{SLOW_ANSWER}</answer>", SLOW_GOLD, timeout=1.0)
        results.append((verdict.reason, time.perf_counter() - start))

    thread = threading.Thread(target=call)
    thread.start()
    thread.join(timeout=30)
    assert len(results) == 1
    reason, elapsed = results[0]
    assert reason == "timeout"
    assert elapsed < 2.0, elapsed


def _timed_slow_call(limit: float) -> tuple[str, float]:
    start = time.perf_counter()
    reason = verify(f"<answer>{SLOW_ANSWER}</answer>", SLOW_GOLD, timeout=limit).reason
    return reason, time.perf_counter() - start


@pytest.mark.slow
def test_timeout_works_from_a_pool_process():
    with ProcessPoolExecutor(max_workers=1) as pool:
        reason, elapsed = pool.submit(_timed_slow_call, 1.0).result(timeout=120)
    assert reason == "timeout"
    assert elapsed < 2.0, elapsed


def test_in_worker_runs_the_symbolic_path_directly(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("run_isolated must not be used inside a worker")

    monkeypatch.setattr(math_verifier.sandbox, "in_worker", lambda: True)
    monkeypatch.setattr(math_verifier.sandbox, "run_isolated", refuse)
    assert verify("<answer>\\sqrt{8}</answer>", "2\\sqrt{2}").reason == "correct"
    assert verify("<answer>\\sqrt{7}</answer>", "2\\sqrt{2}").reason == "wrong"


def test_fast_path_does_not_touch_the_sandbox(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("numbers must be compared in-process")

    monkeypatch.setattr(math_verifier.sandbox, "run_isolated", refuse)
    for answer, gold in [
        ("1,000", "1000"),
        ("\\frac{6}{8}", "0.75"),
        ("[1, 2)", "[1,2)"),
        ("(B)", "B"),
        ("25\\%", "0.25"),
        ("-2 \\le x < 7", "[-2, 7)"),  # an inequality against an interval, exactly
        ("[3, \\infty)", "x \\ge 3"),
        ("t > 3", "(3, \\infty)"),
    ]:
        assert verify(f"<think>a</think> <answer>{answer}</answer>", gold).reason == "correct"


def test_gold_is_parsed_once():
    math_verifier._read_gold.cache_clear()
    for _ in range(8):
        verify("<answer>3</answer>", "\\frac{6}{2}")
    info = math_verifier._read_gold.cache_info()
    assert (info.misses, info.hits) == (1, 7)


@pytest.mark.parametrize(
    "response",
    [
        "",
        "\x00\x01\x02" * 100,
        "<think><think><answer></think></answer>",
        "<answer>" * 1000,
        "\\boxed{" * 1000,
        "".join(chr(33 + (i * 7919) % 5000) for i in range(50_000)),  # 50 kB of garbage
        "<think>a</think> <answer>" + "\\frac{" * 300 + "</answer>",
    ],
)
def test_never_raises(response):
    verdict = verify(response, "12", timeout=2.0)
    assert verdict.reward == 0.0
    assert verdict.reason in REASONS


def test_non_string_inputs_do_not_raise():
    assert verify(None, "1").reason == "error"  # type: ignore[arg-type]
    assert verify("<answer>1</answer>", None).reason == "bad_gold"  # type: ignore[arg-type]


def test_reward_weights():
    hack = "<think></think>4"  # right number, broken format
    assert verify(hack, "4").reward == 1.0
    assert verify(hack, "4", weights=STRICT_R1ZERO).reward == 0.0
    good = verify("<think>2+2</think> <answer>4</answer>", "4", weights=RewardWeights(format_bonus=0.1))
    assert (good.reward, good.parts) == (1.1, {"accuracy": 1.0, "format": 0.1})


def test_injection_canary(tmp_path):
    canary = tmp_path / "pwned"
    payloads = [
        f"__import__('os').system('touch {canary}')",
        f"open('{canary}', 'w').write('x')",
        f"\\text{{{canary}}} $(touch {canary})$",
    ]
    for payload in payloads:
        verify(f"<think>a</think> <answer>{payload}</answer>", "1")
        verify("<answer>1</answer>", payload)
    assert not canary.exists()


# ----------------------------------------------------------------------------- the pure helpers


@pytest.mark.parametrize(
    ("text", "normal"),
    [
        ("−5", "-5"),
        ("1,234,567", "1234567"),
        ("1{,}234", "1234"),
        ("1\\,234", "1234"),
        ("\\$1,234.50", "1234.50"),
        ("(1,234)", "(1,234)"),  # inside brackets a comma separates items
        ("12\\text{ cm}^2", "12"),
        ("45^{\\circ}", "45"),
        ("\\sin 30^\\circ", "\\sin {\\frac{30\\pi}{180}}"),
        ("50\\%", "50%"),
        ("50 percent", "50%"),
        ("\\dfrac{1}{2}", "\\frac{1}{2}"),
        ("7 3/4", "31/4"),
        ("-2\\frac{1}{2}", "-5/2"),
        ("2 3/2", "2 3/2"),  # not a mixed number
        ("x = 3", "3"),
        ("f(x) = 2x+1", "2x+1"),
        ("x = 2, y = 3", "x = 2, y = 3"),  # two assignments stay for sympy
        ("3rd", "3"),
        ("3 million", "3000000"),
        ("1.5 billion", "1500000000"),
        ("\\left( 1 \\right)", "( 1 )"),
        ("\\text{(B)}", "(B)"),
    ],
)
def test_normalize(text, normal):
    from r1zero.verifiers.support.normalize import normalize

    assert normalize(text) == normal


@pytest.mark.parametrize(
    ("gold", "answer", "equal"),
    [
        ("1, 2", "\\{2, 1\\}", True),
        ("\\{1, 2\\}", "\\{1, 2, 2\\}", True),  # sets ignore repeats
        ("(1, 2)", "(2, 1)", False),
        ("(1, 2)", "\\{1, 2\\}", False),
        ("[1, 2)", "[1, 2)", True),
        ("[1, 2)", "(1, 2)", False),
        ("(-\\infty, 0]", "(-\\infty, 0]", True),
        ("3", "\\{3\\}", True),
        ("3", "(3, 3)", False),
        ("0.25", "25%", True),
        ("25%", "25", True),
        ("25", "0.25%", False),
        ("\\frac{1}{3}", "0.333333", False),
        ("2^{10}", "1024", True),
        ("\\binom{6}{3}", "20", True),
        ("5!", "120", True),
    ],
)
def test_exact_equal(gold, answer, equal):
    from r1zero.verifiers.support.normalize import exact_equal, normalize, parse_exact

    g, a = parse_exact(normalize(gold)), parse_exact(normalize(answer))
    assert g is not None and a is not None
    assert exact_equal(g, a) is equal


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("8 * 5 + 8 * 3", "64"),
        ("8 \\cdot 5 + 8 \\times 3 = 64", "64"),
        ("2^3^2", "512"),
        ("-3^2", "-9"),
        ("(-2)^{3}", "-8"),
        ("2^{-2}", "1/4"),
        ("\\frac{\\sqrt{16}}{6}", "2/3"),
        ("\\binom{5}{2} \\div 2", "5"),
        ("3 * 4 = 13", None),  # the sides disagree: left to sympy
        ("\\sqrt{2}", None),
        ("2x", None),
        ("2(3)", None),  # implicit products are left to sympy
        ("1/0", None),
        ("(2^{4096})^{4096}", None),  # too big to compute here
        ("100000!", None),
        ("", None),
    ],
)
def test_evaluate_arithmetic(text, value):
    from fractions import Fraction

    from r1zero.verifiers.support.normalize import evaluate_arithmetic

    assert evaluate_arithmetic(text) == (None if value is None else Fraction(value))


@pytest.mark.parametrize(
    ("text", "refusal"),
    [
        ("2^{100}", None),
        ("2^{2023}", None),
        ("e^{x^2}", None),
        ("2^{2^{10}}", None),
        ("9^{9^{9}}", "power_tower"),
        ("2^{1000000}", "power_tower"),
        ("10**10**10", "power_tower"),
        ("4000!", None),
        ("6000!", "huge_factorial"),
        ("(5!)!", "huge_factorial"),
        ("\\Gamma(10^9)", "huge_factorial"),
        ("[" * 41 + "]" * 41, "deep_nesting"),
        ("x" * 1001, "too_long"),
        ("1 " + "-" * 900, "operator_run"),
        ("x--1", None),
    ],
)
def test_guard_answer(text, refusal):
    from r1zero.verifiers.support.guards import guard_answer

    assert guard_answer(text) == refusal


@pytest.mark.parametrize(
    ("text", "bad"),
    [
        ("[1, 2)", False),
        ("(-\\infty, 0]", False),
        ("\\{1, 2\\}", False),
        ("\\frac{a}{b}", False),
        ("-x", False),
        ("\\frac{1}{2", True),
        ("2i\\}--", True),
        ("x)(", True),
        ("(1, 2", True),
        ("3 +", True),
        ("=3", True),
        ("", True),
    ],
)
def test_malformed(text, bad):
    from r1zero.verifiers.support.guards import malformed

    assert malformed(text) is bad


@pytest.mark.parametrize(
    "module",
    [
        "format",
        "extract",
        "builtin.math",
        "support.normalize",
        "support.guards",
        "support.symbolic",
        "support.fast_reader",
        "support.intervals",
    ],
)
def test_docstring_examples(module):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(f"r1zero.verifiers.{module}"))
    assert result.attempted > 0 and result.failed == 0


# Inputs that made an earlier version's regexes quadratic or exponential (found by fuzzing).
HOSTILE = [
    "\\(" * 25_000,  # unclosed math openers
    "\\boxed{" * 7_000,  # unclosed boxes
    " " * 50_000 + "x",  # a long whitespace run before text
    "</s> " * 10_000 + "x",
    "<answer>1 " + "a" * 5_000 + "!</answer>",  # number then a long word: units regex
    "+" * 50_000,
    "1" * 50_000 + "!",
    "<answer>" + "1" * 900 + "</answer>",
    "<answer>" + "\\sqrt{" * 100 + "</answer>",
]


@pytest.fixture(scope="module")
def warm_sandbox():
    """Start the isolated child that bounds suspicious golds (its first start imports sympy: 0.7 s here,
    3.7 s on a machine with eight test processes starting theirs), so the timing below is the text's."""
    verify("<think>a</think> <answer>12</answer>", "<answer>" + "2" * 900 + "</answer>", timeout=5.0)


@pytest.mark.parametrize("text", HOSTILE, ids=[f"hostile{i}" for i in range(len(HOSTILE))])
def test_hostile_text_is_handled_in_linear_time(text, warm_sandbox):
    start = time.perf_counter()
    as_response = verify(text, "12", timeout=5.0)
    as_gold = verify("<think>a</think> <answer>12</answer>", text, timeout=5.0)
    assert time.perf_counter() - start < 1.0
    assert as_response.reward == 0.0 and as_gold.reward == 0.0


def test_pure_helpers_are_linear_on_long_runs():
    from r1zero.verifiers.extract import find_boxed
    from r1zero.verifiers.format import strip_eos
    from r1zero.verifiers.support.normalize import evaluate_arithmetic, normalize

    start = time.perf_counter()
    assert strip_eos(" " * 50_000 + "x" + " </s>" * 1_000) == " " * 50_000 + "x"
    assert find_boxed("\\boxed{" * 20_000) is None
    assert normalize("1 " + "a" * 900 + "!").startswith("1 a")
    assert evaluate_arithmetic("+" * 1_000 + "1") is None
    assert evaluate_arithmetic("(" * 150 + "1" + ")" * 150) is None
    assert time.perf_counter() - start < 1.0


def _row_strings() -> set[str]:
    """Every gold and extracted answer of the labelled rows, normalised as the verifier does."""
    from r1zero.verifiers.extract import extract_answer
    from r1zero.verifiers.support.normalize import normalize

    strings = set()
    for row in ROWS:
        strings.add(math_verifier._read_gold(row["gold"]).text)
        found = extract_answer(row["response"])
        if found.answer is not None:
            strings.add(normalize(found.answer))
    return strings


def test_fast_reader_agrees_with_math_verify_on_every_row_it_reads():
    """The fast reader replaces math-verify's LaTeX parser only where both give the same value:
    every row string it reads, math-verify reads too, to the same number at two points."""
    import re

    import math_verify
    import sympy

    from r1zero.verifiers.support import symbolic

    read = 0
    for text in sorted(_row_strings()):
        fast = symbolic._fast_read(text)
        if fast is None:
            continue
        read += 1
        parsed = math_verify.parse(
            f"${symbolic.for_sympy(text)}$", fallback_mode="no_fallback", parsing_timeout=None
        )
        assert parsed, text
        slow = parsed[0]

        def key(symbol):  # math-verify writes varepsilon_{e1} where the fast reader writes varepsilon_E1
            return re.sub(r"[{}]", "", symbol.name).lower()

        assert {key(s) for s in fast.free_symbols} == {key(s) for s in slow.free_symbols}, text
        for offset in (0, 3):
            values = {
                k: sympy.Rational(7 + offset + i, 5)
                for i, k in enumerate(sorted(map(key, fast.free_symbols)))
            }
            a = sympy.N(fast.subs({s: values[key(s)] for s in fast.free_symbols}), 30)
            b = sympy.N(slow.subs({s: values[key(s)] for s in slow.free_symbols}), 30)
            if not (a.is_finite and b.is_finite):  # 0/0, 1/0
                assert a == b or (a.has(sympy.nan) and b.has(sympy.nan)), (text, a, b)
                continue
            tolerance = 1e-12 if fast.has(sympy.Float) else 1e-20  # math-verify's floats are binary
            assert abs(a - b) <= tolerance * max(1, abs(a)), (text, a, b)
    assert read >= 80  # most of the symbolic rows skip math-verify's parser


@pytest.mark.parametrize(
    "text",
    [
        "[-2, 7]",  # intervals, sets, tuples and lists go to math-verify
        "1, 2",
        "3+4i",  # i is the imaginary unit only to math-verify's complex mode
        "x \\le 3",
        "x = 3",
        "\\log 100",  # math-verify's base for a bare \log is its own
        "x2",  # read its own way by math-verify
        "2 3",
        "a^b^c",
        "\\sin^{-1} x",  # arcsin to math-verify
        "\\sqrt[3]{8}",
        "\\begin{pmatrix}1\\\\2\\end{pmatrix}",
        "\\frac{1}{",
        "x \\cdot",
        "\\sin x \\cdot y",  # latex2sympy puts "\\cdot y" inside the argument
        "\\delta",
        "E",
        "e_1",
        "10000!",
        "+".join(["1"] * 200),  # long text: math-verify reads a fragment of it
    ],
)
def test_fast_reader_refuses_what_it_does_not_read_like_math_verify(text):
    from r1zero.verifiers.support import symbolic

    assert symbolic.fast_parse(text) is None


@pytest.mark.parametrize(
    "gold, answer, decided",
    [
        ("(x+1)^2", "x^2+2x+1", "correct"),
        ("\\sin^2 x + \\cos^2 x", "1", "correct"),
        ("2x+3", "2y+3", "wrong"),
        ("(x+y+z)^{60}", "(x+y+z+1)^{60}", "wrong"),  # math-verify's simplify takes minutes
        ("(x+y+z)^{60}", "(x+y+z)^{58}(x^2+2xy+y^2+2xz+2yz+z^2)", None),  # too high a power to expand
        ("\\frac{1}{2004!}", "\\frac{1}{2006!}", "wrong"),  # math-verify's rounding would accept it
        ("0.007 x", "0.0070000001 x", None),  # within rounding: left to math-verify
        ("0.5", "\\frac{1}{2}", None),  # a float number: math-verify's rounding rules
        ("x", "x", None),  # lone symbols: math-verify compares them as words
    ],
)
def test_fast_compare(gold, answer, decided):
    from r1zero.verifiers.support import symbolic

    assert symbolic._fast_compare(symbolic.fast_parse(gold), symbolic.fast_parse(answer)) == decided


@pytest.mark.parametrize(
    "gold, answer, reason",
    [
        ("y^2+x^2=1", "x^2+y^2=1", "correct"),  # the same lhs - rhs: decided without math-verify's parser
        ("3x+4y+14=0", "3x - y + 13 = 0", "wrong"),  # linear: not multiples of each other
        ("3x+4y+14=0", "6x + 8y = -28", "correct"),  # linear: a multiple (math-verify solves both)
        ("2x=2", "x=1", "wrong"),  # math-verify's verdict (an assignment against an equation), unchanged
    ],
)
def test_equations(gold, answer, reason):
    from r1zero.verifiers.support import symbolic

    assert symbolic.symbolic_check(gold, answer) == reason


@pytest.mark.parametrize(
    ("text", "interval"),
    [
        ("-2 \\le x \\le 7", ("[]", -2, 7)),
        ("-2 < x \\leq \\frac{7}{2}", ("(]", -2, 3.5)),
        ("7 \\ge x > -2", ("(]", -2, 7)),
        ("x \\ge 3", ("[)", 3, float("inf"))),
        ("3 > t", ("()", float("-inf"), 3)),
        ("-\\infty < x < 0.5", ("()", float("-inf"), 0.5)),
        ("x \\le \\infty", None),  # sympy opens an infinite end: left to it
        ("1 < x < 1", None),  # empty
        ("2 < x > 1", None),  # not a range
        ("x < y < 3", None),  # two variables
        ("e > 2", None),  # e is a number
        ("x < \\sqrt{2}", None),  # an irrational bound: left to sympy
        ("x < 2 or x > 5", None),
        ("x \\leqslant 3", None),
    ],
)
def test_relation_interval(text, interval):
    from r1zero.verifiers.support.intervals import relation_interval

    value = relation_interval(text)
    if interval is None:
        assert value is None
    else:
        assert (value.kind, value.brackets, *value.items) == ("sequence", *interval)


# Pairs that the in-process fast paths decide (relations vs intervals, linear equations, lists of
# expressions, sums of squared sines and cosines, nested roots against 0); each must get math-verify's verdict.
FAST_PAIRS = [
    ("[-2,7]", "-2 \\le x \\le 7"),
    ("[-2,7]", "-2 < x \\le 7"),
    ("[3,\\infty)", "x \\ge 3"),
    ("[3,\\infty)", "x > 3"),
    ("(-\\infty, 2]", "x \\le 2"),
    ("(\\frac{1}{2}, 4)", "\\frac{1}{2} < y < 4"),
    ("3x+4y+14=0", "3x - y + 13 = 0"),
    ("3x+4y+14=0", "-6x-8y-28=0"),
    ("2x-3=0", "4x-6=0"),  # math-verify misses it: see MATH_VERIFY_MISSES
    ("2x-3=0", "2x-3=1"),
    ("E_{1},E_{2}", "E_1, E_2"),
    ("E_{1},E_{2}", "E_2, E_1"),
    ("E_{1},E_{2}", "E_1, E_3"),
    ("\\sqrt{2}, -\\sqrt{2}", "-\\sqrt{2}, \\sqrt{2}"),
    ("\\sqrt{2}, -\\sqrt{2}", "\\sqrt{2}, \\sqrt{3}"),
    ("\\{x+1, y^{2}\\}", "y^2, 1+x"),
    ("X, y", "x, y"),
    ("1", "\\sin^2 x + \\cos^2 x"),
    ("\\cos^2 x", "1 - \\sin^2 x"),
    ("\\sqrt{5+2\\sqrt{6}} - \\sqrt{2} - \\sqrt{3}", "0"),
    ("(0,1)\\cup(2,3)", "(2, 3) \\cup (0, 1)"),
    ("(0,1)\\cup(2,3)", "(0, 1) \\cup (2, 4)"),
    ("(-\\infty,2)\\cup(5,\\infty)", "(-\\infty, 2) \\cup [5, \\infty)"),
    ("(\\sqrt{2}, 1)", "(\\sqrt{2}, 1)"),
    ("(\\sqrt{2}, 1)", "(1, \\sqrt{2})"),
    ("(\\sqrt{2}, 1)", "(3, 2)"),  # math-verify misses it: see MATH_VERIFY_MISSES
    ("(1, \\sqrt{2}, x+1)", "(1, \\sqrt{2}, 1+x)"),
    ("\\begin{pmatrix}1&2\\\\3&4\\end{pmatrix}", "\\begin{bmatrix} 1 & 2 \\\\ 3 & 4 \\end{bmatrix}"),
    ("\\begin{pmatrix}1&2\\\\3&4\\end{pmatrix}", "\\begin{pmatrix} 1 & 3 \\\\ 2 & 4 \\end{pmatrix}"),
    ("\\begin{pmatrix}x\\\\\\sqrt{2}\\end{pmatrix}", "\\begin{pmatrix} X \\\\ \\sqrt{2} \\end{pmatrix}"),
]


# Where the fast path is right and math-verify is not: with one variable, its solve-and-compare step
# gets a list of values instead of a list of solution dicts, raises, and answers False; and it reads
# (a, b) as an open interval, so two different "empty intervals" are the same set to it.
MATH_VERIFY_MISSES = {("2x-3=0", "4x-6=0"): True, ("(\\sqrt{2}, 1)", "(3, 2)"): False}


@pytest.mark.parametrize(("gold", "answer"), FAST_PAIRS)
def test_fast_paths_agree_with_math_verify(gold, answer):
    import math_verify

    from r1zero.verifiers.support import symbolic

    def parse(text):  # what the symbolic path gave math-verify before these fast paths
        text = symbolic.for_sympy(text)
        return math_verify.parse(f"${text}$", fallback_mode="no_fallback", parsing_timeout=None)

    normal_gold, normal_answer = math_verifier._read_gold(gold).text, math_verifier.normalize(answer)
    expected = math_verify.verify(
        parse(normal_gold), parse(normal_answer), allow_set_relation_comp=True, timeout_seconds=None
    )
    expected = MATH_VERIFY_MISSES.get((gold, answer), expected)
    response = f"<think>a</think> <answer>{answer}</answer>"
    assert verify(response, gold).correct is expected
    if "," in gold or "=" in gold:
        assert symbolic.symbolic_check(normal_gold, normal_answer) == ("correct" if expected else "wrong")


def test_fast_paths_skip_math_verify_parser(monkeypatch):
    """The pairs above are decided without math-verify's LaTeX parser (the ~5-30 ms each saves)."""
    import math_verify

    from r1zero.verifiers.support import symbolic

    def refuse(*args, **kwargs):
        raise AssertionError("math-verify's parser was called")

    monkeypatch.setattr(math_verify, "parse", refuse)
    monkeypatch.setattr(math_verifier.sandbox, "in_worker", lambda: True)
    for cached in (symbolic._parse_gold_symbolic, symbolic.symbolic_check, math_verifier._read_gold):
        cached.cache_clear()
    math_verifier._READABLE.clear()
    for gold, answer in FAST_PAIRS:
        verdict = verify(f"<think>a</think> <answer>{answer}</answer>", gold)
        assert verdict.reason in ("correct", "wrong"), (gold, answer, verdict)


def test_two_stage_latex_parsing_gives_the_same_results_as_ll():
    """SLL first, LL where SLL fails: the same sympy value as LL-only math-verify on every row string."""
    from latex2sympy2_extended.latex2sympy2 import latex2sympy
    from math_verify.parser import normalize_latex

    from r1zero.verifiers.support import symbolic

    texts = [
        normalize_latex(symbolic.for_sympy(text), config=symbolic._LATEX_NORMALIZATION)
        for text in sorted(_row_strings())
        if len(text) < 300
    ]

    def parse_all() -> list[str]:
        out = []
        for text in texts:
            try:
                out.append(str(latex2sympy(text, normalization_config=None)))
            except Exception as error:
                out.append(f"error: {type(error).__name__}")
        return out

    two_stage = parse_all()
    symbolic._TWO_STAGE = False
    try:
        ll_only = parse_all()
    finally:
        symbolic._TWO_STAGE = True
    assert len(texts) > 200
    assert two_stage == ll_only
    from latex2sympy2_extended.latex2sympy2 import _Latex2Sympy

    assert _Latex2Sympy.create_parser is symbolic._two_stage_create_parser  # installed on import
