"""Run the >>> examples of every r1zero.reward_model module, so the documented behaviour stays true."""

import doctest
import importlib
import pkgutil

import pytest

import r1zero.reward_model

MODULES = [f"r1zero.reward_model.{m.name}" for m in pkgutil.iter_modules(r1zero.reward_model.__path__)]


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
