"""The verifier registry: names, duplicates, "module:function" and .py file specs."""

import doctest
import importlib
import textwrap
import uuid

import pytest

from r1zero.verifiers import Verdict, available_verifiers, get_verifier, register


def _unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def test_builtin_verifiers_are_registered():
    names = available_verifiers()
    for name in ("countdown", "integer"):
        assert name in names


def test_duplicate_name_is_refused_and_names_the_holder():
    name = _unique("dup")

    @register(name)
    def first(response, gold, **meta):
        return Verdict(0.0, False, False, "wrong")

    with pytest.raises(ValueError, match=rf"{name}.*already registered.*first"):

        @register(name)
        def second(response, gold, **meta):
            return Verdict(1.0, True, True, "correct")

    assert get_verifier(name) is first


def test_registering_the_same_function_twice_is_harmless():
    name = _unique("same")

    def fn(response, gold, **meta):
        return Verdict(0.0, False, False, "wrong")

    register(name)(fn)
    register(name)(fn)
    assert get_verifier(name) is fn


def test_a_file_in_the_builtin_folder_is_a_builtin_name(tmp_path, monkeypatch):
    """The registry imports every module of r1zero/verifiers/builtin/: a new file there is a new name.
    (The folder is extended with tmp_path rather than written to, so the checkout stays untouched.)"""
    import sys

    import r1zero.verifiers.builtin as builtin_package
    from r1zero.verifiers import base

    name = _unique("dropped")
    (tmp_path / f"{name}.py").write_text(
        "from r1zero.verifiers import Verdict, register\n"
        f"@register('{name}')\n"
        "def verify_dropped(response, gold, **meta):\n"
        "    return Verdict(0.0, False, False, 'wrong')\n"
    )
    monkeypatch.setattr(builtin_package, "__path__", [*builtin_package.__path__, str(tmp_path)])
    monkeypatch.setattr(base, "_BUILTINS_LOADED", False)
    try:
        assert name in available_verifiers()
        assert get_verifier(name).__module__ == f"r1zero.verifiers.builtin.{name}"
    finally:
        base._REGISTRY.pop(name, None)
        sys.modules.pop(f"r1zero.verifiers.builtin.{name}", None)


def test_support_modules_register_nothing():
    """Support code sits beside the built-in folder, not in it: none of its modules is a verifier."""
    for name in available_verifiers():
        assert not get_verifier(name).__module__.startswith("r1zero.verifiers.support"), name


def test_module_colon_function_spec():
    fn = get_verifier("r1zero.verifiers.builtin.integer:verify_integer")
    assert fn("<think>x</think> <answer>7</answer>", "7").correct


def test_module_spec_with_missing_function_names_it():
    with pytest.raises(ValueError, match="no_such_fn"):
        get_verifier("r1zero.verifiers.builtin.integer:no_such_fn")


def test_unknown_name_lists_registered_ones():
    with pytest.raises(ValueError, match=r"unknown verifier 'nope'.*countdown.*integer"):
        get_verifier("nope")


@pytest.mark.parametrize("spec", ["", None, 3])
def test_bad_spec_type(spec):
    with pytest.raises(ValueError, match="non-empty string"):
        get_verifier(spec)


def _write_verifier_file(tmp_path, name):
    path = tmp_path / f"{name}.py"
    path.write_text(
        textwrap.dedent(f"""
        from r1zero.verifiers import Verdict, register

        @register("{name}")
        def shout(response: str, gold: str, **meta) -> Verdict:
            ok = response.strip().upper() == gold.strip().upper()
            return Verdict(float(ok), ok, True, "correct" if ok else "wrong", response)
        """)
    )
    return path


def test_py_file_spec_loads_once_and_registers_its_name(tmp_path):
    name = _unique("file")
    path = _write_verifier_file(tmp_path, name)
    fn = get_verifier(str(path))
    assert fn("abc", "ABC").correct
    assert get_verifier(str(path)) is fn  # loading again does not re-register (which would raise)
    assert get_verifier(name) is fn
    assert get_verifier(f"{path}:shout") is fn


def test_py_file_spec_errors(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        get_verifier(str(tmp_path / "missing.py"))
    path = tmp_path / "two.py"
    path.write_text(
        "from r1zero.verifiers import Verdict, register\n"
        f"register('{_unique('a')}')(lambda r, g, **m: Verdict(0.0, False, False, 'wrong'))\n"
        f"register('{_unique('b')}')(lambda r, g, **m: Verdict(0.0, False, False, 'wrong'))\n"
    )
    with pytest.raises(ValueError, match="registers 2 verifiers"):
        get_verifier(str(path))


@pytest.mark.parametrize(
    "name", ["support.sandbox", "pool", "builtin.countdown", "builtin.integer", "interop", "cli"]
)
def test_doctests(name):
    """The >>> examples of the infrastructure and non-math verifier modules stay true."""
    result = doctest.testmod(
        importlib.import_module(f"r1zero.verifiers.{name}"), optionflags=doctest.ELLIPSIS
    )
    assert result.attempted > 0 and result.failed == 0
