"""Run the >>> examples of every r1zero.data module, so the documented behaviour stays true."""

import doctest
import importlib
import pkgutil

import pytest

import r1zero.data

MODULES = ["r1zero.data"] + [f"r1zero.data.{m.name}" for m in pkgutil.iter_modules(r1zero.data.__path__)]


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
