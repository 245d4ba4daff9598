"""The >>> examples in the trainer's and the GRPO maths' docstrings are run (CI runs plain pytest)."""

import doctest
import importlib

import pytest

MODULES = [
    "r1zero.algo.grpo",
    "r1zero.cpu.onednn",
    "r1zero.train.cli",
    "r1zero.train.config",
    "r1zero.train.distributed",
    "r1zero.train.metrics",
    "r1zero.train.monitors",
    "r1zero.train.presets",
    "r1zero.train.rollouts",
    "r1zero.train.session",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} doctest(s) failed in {name}"
    assert result.attempted > 0, f"{name} has no >>> examples"
