"""Contract of every registered verifier: hostile or broken input gives a Verdict, never an exception.

Runs every built-in verifier (the modules of r1zero/verifiers/builtin/) and every plugin file of the
repository's top-level verifiers/ folder (loaded by path, as users load theirs), so a new verifier file
in either place is covered without editing this test.
"""

import math
import random
import time
from pathlib import Path

import pytest

from r1zero.verifiers import REASONS, Verdict, available_verifiers, get_verifier

# Every verifier shipped in r1zero/verifiers/builtin/ (a new file there is covered with no edit here); toy
# verifiers that other test modules register at run time are left out, so the set is deterministic.
BUILTIN = [
    n for n in available_verifiers() if get_verifier(n).__module__.startswith("r1zero.verifiers.builtin.")
]
# The plugin files of the repository's verifiers/ folder, by path (they are never imported as a package).
PLUGINS = sorted(str(p) for p in (Path(__file__).resolve().parents[2] / "verifiers").glob("*.py"))
# What the contract runs: registry names and file paths, both accepted by get_verifier.
SPECS = BUILTIN + PLUGINS

SLOW_CALL = 10.0  # 2x the default 5 s limit: a pathological input must come back within it


def _garbage(n: int, seed: int) -> str:
    rng = random.Random(seed)
    alphabet = "<>/{}()[]\\$^_*+-=.,;:!?#&%@~|'\"` \n\tabcxyz0123456789αβγ∑√∞−×÷\u200b\ufeff"
    return "".join(rng.choice(alphabet) for _ in range(n))


GARBAGE = _garbage(50_000, 0)
RESPONSES = {
    "empty": "",
    "whitespace": " \n\t ",
    "garbage_50k": GARBAGE,
    "garbage_in_tags_50k": f"<think>{GARBAGE}</think> <answer>{GARBAGE}</answer>",
    "open_think": "<think>" * 3 + "the answer is 4",
    "close_only": "</answer></think></answer>",
    "open_answer": "<think>a</think> <answer>4",
    "nested": "<think><think><answer>4</answer></think></think>",
    "tag_spam": "<answer>" * 5_000 + "4" + "</answer>" * 5_000,
    "unbalanced_braces": "<think>a</think> <answer>\\boxed{\\frac{1}{2</answer>",
    "power_tower": "<think>a</think> <answer>9^{9^{9^{9^{9}}}}</answer>",
    "python_power": "<think>a</think> <answer>9**9**9**9</answer>",
    "deep_nesting": "<think>a</think> <answer>" + "(" * 5_000 + "1" + ")" * 5_000 + "</answer>",
    "huge_factorial": "<think>a</think> <answer>100000000!</answer>",
    "nul_and_surrogates": "<answer>\x00\x01\ud800</answer>",
}
GOLDS = {"int": "4", "empty": "", "latex": "\\frac{1}{2}", "garbage_50k": GARBAGE[:50_000]}
METAS = [{}, {"numbers": [1, 3], "use_all": True}, {"numbers": "junk", "unknown_key": object()}]


def test_builtins_found():
    assert {"countdown", "integer", "math"} <= set(BUILTIN)


def test_plugins_found():
    assert {"exact_string.py", "multiple_choice.py", "numeric_tolerance.py"} <= {
        Path(p).name for p in PLUGINS
    }


def spec_id(spec: str) -> str:
    return Path(spec).name if spec.endswith(".py") else spec


def _check(verdict: object) -> None:
    assert isinstance(verdict, Verdict)
    assert verdict.reason in REASONS, verdict.reason
    assert isinstance(verdict.reward, float) and math.isfinite(verdict.reward)
    assert isinstance(verdict.correct, bool) and isinstance(verdict.formatted, bool)
    assert verdict.extracted is None or isinstance(verdict.extracted, str)
    assert all(isinstance(v, float | int) for v in verdict.parts.values())


@pytest.mark.parametrize("name", SPECS, ids=spec_id)
@pytest.mark.parametrize("response_kind", sorted(RESPONSES))
def test_verifier_never_raises(name, response_kind):
    verifier = get_verifier(name)
    for gold_kind, gold in GOLDS.items():
        for meta in METAS:
            start = time.monotonic()
            verdict = verifier(RESPONSES[response_kind], gold, **meta)
            elapsed = time.monotonic() - start
            _check(verdict)
            assert elapsed < SLOW_CALL, (gold_kind, meta, elapsed)
            if gold_kind != "int":
                assert not verdict.correct and verdict.reward <= 0.0, (gold_kind, verdict)


@pytest.mark.parametrize("name", SPECS, ids=spec_id)
def test_bad_gold_is_never_rewarded(name):
    verifier = get_verifier(name)
    for gold in ["", "   ", "\\frac{", "???", GARBAGE[:5_000]]:
        for response in [f"<think>copy</think> <answer>{gold}</answer>", gold]:
            verdict = verifier(response, gold, numbers=[1, 2])
            _check(verdict)
            assert not verdict.correct and verdict.reward <= 0.0, (gold[:20], verdict)
