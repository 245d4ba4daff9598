"""Code-injection canary: responses (and golds) that would create a file if anything evaluated them.

Every built-in and plugin verifier sees every payload, in this process and in ``verify_batch`` workers; the
canary file must never appear. (Correctness is not asserted here: a free-form fallback may legitimately
read a digit of the canary's path as the answer.) sympy's ``sympify``/``parse_expr`` call ``eval`` on strings, so a
verifier that hands raw model text to them fails here.
"""

import pytest

from r1zero.verifiers import get_verifier, verify_batch
from tests.verifiers.test_contract import SPECS, spec_id

# {path} is replaced by the canary's absolute path.
PAYLOADS = [
    "__import__('os').system('touch {path}')",
    "open('{path}', 'w').write('x')",
    "exec(\"open('{path}','w')\")",
    "eval(\"__import__('os').system('touch {path}')\")",
    "(lambda: __import__('os').system('touch {path}'))()",
    "__builtins__.__import__('pathlib').Path('{path}').touch()",
    "().__class__.__base__.__subclasses__()[0] or open('{path}','w')",
    "__import__('subprocess').call(['touch', '{path}'])",
    "Symbol('x') + __import__('os').system('touch {path}')",
    "1 + __import__('os').system('touch {path}')",
    "S(\"__import__('os').system('touch {path}')\")",
    "sympify(\"__import__('os').system('touch {path}')\")",
]
WRAPPERS = [
    "{p}",
    "<think>let me compute</think> <answer>{p}</answer>",
    "The answer is \\boxed{{{p}}}.",
    "so the answer is {p}.",
    "Work.\n#### {p}",
    "the result is ${p}$",
    "<think>a</think> <answer>\\(\\displaystyle {p}\\)</answer>",
]


def _cases(path: str) -> list[tuple[str, str]]:
    cases = []
    for payload in PAYLOADS:
        text = payload.format(path=path)
        for wrapper in WRAPPERS:
            cases.append((wrapper.format(p=text), "4"))
        cases.append(("<think>a</think> <answer>4</answer>", text))  # hostile gold too
        cases.append((f"<think>a</think> <answer>{text}</answer>", text))  # copied hostile gold
    return cases


@pytest.mark.parametrize("name", SPECS, ids=spec_id)
def test_no_verifier_evaluates_model_text(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    canary = tmp_path / "CANARY"
    verifier = get_verifier(name)
    for response, gold in _cases(str(canary)):
        verifier(response, gold, numbers=[1, 2, 3])
        assert not canary.exists(), (name, response, gold)
    assert not (tmp_path / "CANARY").exists()


@pytest.mark.parametrize("name", SPECS, ids=spec_id)
def test_no_verifier_evaluates_model_text_in_workers(name, tmp_path):
    canary = tmp_path / "CANARY"
    cases = _cases(str(canary))
    verdicts = verify_batch(
        name, [r for r, _ in cases], [g for _, g in cases], metas=[{"numbers": [1, 2, 3]}] * len(cases)
    )
    assert len(verdicts) == len(cases)
    assert not canary.exists()


def test_canary_would_detect_evaluation(tmp_path):
    """The payloads do create the file when evaluated (so the tests above can fail)."""
    canary = tmp_path / "CANARY"
    eval(PAYLOADS[0].format(path=canary))  # the one deliberate eval in the project, on our own string
    assert canary.exists()
