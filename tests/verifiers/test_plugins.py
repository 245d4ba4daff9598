"""The plugin verifiers of the repository's top-level verifiers/ folder, loaded by path as users load theirs.

The contract (never raises, bad golds never rewarded) and the code-injection canary run on these files
too, through ``SPECS`` in test_contract.py; this file holds their tables and their ``>>>`` examples.
"""

import doctest
import json
import sys
from pathlib import Path

import pytest

from r1zero.verifiers import Verdict, get_verifier, verify_batch
from r1zero.verifiers.cli import main
from tests.verifiers.test_contract import PLUGINS

FOLDER = Path(__file__).resolve().parents[2] / "verifiers"


def _tagged(answer: str) -> str:
    return f"<think>x</think> <answer>{answer}</answer>"


# (file, response, gold, meta, reason)
ROWS = [
    ("exact_string", _tagged("A"), "a", {}, "correct"),
    ("exact_string", _tagged("  New York "), "new york", {}, "correct"),
    ("exact_string", _tagged("New York City"), "New York", {}, "wrong"),
    ("exact_string", "<think>x</think> the answer is paris", "Paris", {}, "correct"),
    ("exact_string", "<think>paris", "Paris", {}, "no_answer"),
    ("exact_string", "<answer>Paris</answer><answer>Rome</answer>", "Paris", {}, "rejected"),
    ("exact_string", _tagged("f(x"), "f(x", {}, "bad_gold"),
    ("exact_string", _tagged(""), "   ", {}, "bad_gold"),
    ("multiple_choice", _tagged("(C)"), "C", {}, "correct"),
    ("multiple_choice", _tagged("c"), "(C)", {}, "correct"),
    ("multiple_choice", _tagged("Option C"), "C", {}, "correct"),
    ("multiple_choice", _tagged("C) 42 apples"), "C", {}, "correct"),
    ("multiple_choice", _tagged("\\boxed{\\text{C}}"), "C", {}, "correct"),
    ("multiple_choice", _tagged("B"), "C", {}, "wrong"),
    ("multiple_choice", _tagged("B or C"), "C", {}, "rejected"),
    ("multiple_choice", _tagged("A, C"), "C", {}, "rejected"),
    ("multiple_choice", _tagged("A) 3 C) 4"), "C", {}, "rejected"),
    ("multiple_choice", _tagged("a triangle"), "A", {}, "unparseable"),
    ("multiple_choice", _tagged("F"), "C", {}, "unparseable"),
    ("multiple_choice", _tagged("C"), "F", {}, "bad_gold"),
    ("numeric_tolerance", _tagged("9.8 m/s^2"), "9.81", {}, "correct"),
    ("numeric_tolerance", _tagged("3 \\times 10^{8}"), "299792458", {}, "correct"),
    ("numeric_tolerance", _tagged("\\frac{1}{3}"), "0.333", {}, "correct"),
    ("numeric_tolerance", _tagged("1,234"), "1234.4", {}, "correct"),
    ("numeric_tolerance", _tagged("9.5"), "9.81", {}, "wrong"),
    ("numeric_tolerance", _tagged("9.5"), "9.81", {"rel_tol": 0.05}, "correct"),
    ("numeric_tolerance", _tagged("9.5"), "9.81", {"rel_tol": "junk"}, "wrong"),
    ("numeric_tolerance", _tagged("1e-12"), "0", {}, "correct"),
    ("numeric_tolerance", _tagged("0.001"), "0", {}, "wrong"),
    ("numeric_tolerance", _tagged("about 10"), "9.81", {}, "rejected"),
    ("numeric_tolerance", _tagged("9-10"), "9.81", {}, "rejected"),
    ("numeric_tolerance", _tagged("9.81 \\pm 0.01"), "9.81", {}, "rejected"),
    ("numeric_tolerance", _tagged("3 x 4"), "3", {}, "unparseable"),
    ("numeric_tolerance", _tagged("1e99999"), "1", {}, "unparseable"),
    ("numeric_tolerance", _tagged("1/0"), "1", {}, "unparseable"),
    ("numeric_tolerance", _tagged("4"), "four", {}, "bad_gold"),
]


@pytest.mark.parametrize(("name", "response", "gold", "meta", "reason"), ROWS)
def test_rows(name, response, gold, meta, reason):
    verdict = get_verifier(str(FOLDER / f"{name}.py"))(response, gold, **meta)
    assert isinstance(verdict, Verdict)
    assert verdict.reason == reason, verdict
    assert verdict.correct is (reason == "correct") and verdict.reward == float(reason == "correct")


@pytest.mark.parametrize("path", PLUGINS, ids=lambda p: Path(p).name)
def test_docstring_examples(path):
    module = sys.modules[get_verifier(path).__module__]
    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0


@pytest.mark.parametrize("path", PLUGINS, ids=lambda p: Path(p).name)
def test_size_and_no_package(path):
    """Plugins are single small files loaded by path: 30-120 lines, and no __init__.py beside them."""
    assert 30 <= len(Path(path).read_text().splitlines()) <= 120
    assert not (FOLDER / "__init__.py").exists()


def test_plugin_in_workers_matches_in_process():
    spec = str(FOLDER / "multiple_choice.py")
    rows = [r for r in ROWS if r[0] == "multiple_choice"]
    verdicts = verify_batch(spec, [r[1] for r in rows], [r[2] for r in rows], workers=1)
    assert [v.reason for v in verdicts] == [r[4] for r in rows]


def test_cli_by_path(capsys):
    """The README's command: r1zero verify --verifier verifiers/exact_string.py --gold a --response ..."""
    argv = ["--verifier", str(FOLDER / "exact_string.py"), "--gold", "a", "--response", _tagged("A")]
    assert main(argv) == 0
    verdict = json.loads(capsys.readouterr().out)
    assert verdict["correct"] is True and verdict["reason"] == "correct" and verdict["extracted"] == "A"
