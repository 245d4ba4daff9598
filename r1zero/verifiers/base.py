"""The verdict every verifier returns, and the registry that finds verifiers by name.

A verifier is a plain callable ``(response: str, gold: str, **meta) -> Verdict`` that never raises:
bad input gets ``reward=0`` and a ``reason`` code. The built-in ones are the modules of
``r1zero/verifiers/builtin/``; a user's verifier is a ``.py`` file given by path. This module imports
no torch and does no I/O beyond importing verifier modules on demand.

Two lookups, by where the name comes from. ``get_verifier`` takes a name, ``"module:function"`` or a
``.py`` path, and imports what it names: it is for specs from the command line, a config file or the
caller's code. A name read from data (a dataset row's ``verifier`` column, a row of ``r1zero verify
--file``) goes through ``registered_verifier``, which accepts only registered names and imports nothing
but the built-in verifiers: a row that said ``shutil:rmtree`` would otherwise run it on the row's text.
"""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

__all__ = [
    "REASONS",
    "Verdict",
    "Verifier",
    "available_verifiers",
    "get_verifier",
    "register",
    "registered_verifier",
]

#: Short reason codes a Verdict may carry (verifiers may add their own; these are the shared ones).
REASONS = (
    "correct",  # the answer checks out
    "wrong",  # an answer was found and it is not equivalent to the gold
    "no_answer",  # nothing answer-like was found where the verifier looks
    "unparseable",  # an answer was found but cannot be interpreted
    "bad_format",  # the completion breaks the required tag format
    "timeout",  # the check ran past its wall-clock limit
    "rejected",  # the answer was refused before checking (too big, hostile, hedged)
    "bad_gold",  # the reference answer itself cannot be interpreted: never rewarded
    "error",  # the verifier raised; caught so that training goes on
)


@dataclass(frozen=True)
class Verdict:
    """The outcome of checking one response against one gold answer.

    Attributes:
        reward: Scalar reward used for RL.
        correct: Whether the extracted answer is equivalent to the gold.
        formatted: Whether the response keeps the required format (e.g. R1-Zero tags).
        reason: Short code explaining the verdict (see ``REASONS``).
        extracted: The answer text that was checked, if any.
        parts: Reward components (e.g. ``{"accuracy": 1.0, "format": 0.1}``) for logging.
        own_reward: True when ``reward`` is the verifier's own (partial credit, e.g. 0.5 for half the
            parts of a multi-part answer): training and ``apply_weights`` then use it as it is instead
            of recomputing it from ``correct`` and ``formatted``.

    >>> Verdict(0.5, False, True, "wrong", "(1, 3)", {"accuracy": 0.5}, own_reward=True).own_reward
    True
    """

    reward: float
    correct: bool
    formatted: bool
    reason: str
    extracted: str | None = None
    parts: dict[str, float] = field(default_factory=dict)
    own_reward: bool = False

    def to_dict(self) -> dict:
        out = {
            "reward": self.reward,
            "correct": self.correct,
            "formatted": self.formatted,
            "reason": self.reason,
            "extracted": self.extracted,
            "parts": dict(self.parts),
        }
        if self.own_reward:
            out["own_reward"] = True
        return out


class Verifier(Protocol):
    def __call__(self, response: str, gold: str, **meta) -> Verdict: ...


_REGISTRY: dict[str, Verifier] = {}
_BUILTINS_LOADED = False


def register(name: str) -> Callable[[Verifier], Verifier]:
    """Decorator that registers a verifier under ``name``; a duplicate name is an error.

    >>> @register("doc_example_always_wrong")
    ... def always_wrong(response: str, gold: str, **meta) -> Verdict:
    ...     return Verdict(0.0, False, False, "wrong")
    >>> get_verifier("doc_example_always_wrong")("x", "y").reason
    'wrong'
    """

    def decorate(fn: Verifier) -> Verifier:
        existing = _REGISTRY.get(name)
        if existing is not None and existing is not fn:
            raise ValueError(f"verifier name {name!r} is already registered (by {_qualname(existing)})")
        _REGISTRY[name] = fn
        return fn

    return decorate


def available_verifiers() -> list[str]:
    """Names of all registered verifiers, the built-in ones included."""
    _load_builtins()
    return sorted(_REGISTRY)


def get_verifier(spec: str) -> Verifier:
    """Find a verifier by registry name, ``"package.module:function"``, or ``"path/to/file.py[:function]"``.

    A ``.py`` file is imported (its ``@register`` decorators run); with no ``:function`` it must
    register exactly one verifier, or define a function named ``verify``. This imports and so runs
    code: pass only specs the user gave (command line, config, code); a name read from data goes
    through ``registered_verifier``.
    """
    if not isinstance(spec, str) or not spec:
        raise ValueError(f"verifier spec must be a non-empty string, got {spec!r}")
    _load_builtins()
    if spec in _REGISTRY:
        return _REGISTRY[spec]
    path_part, _, func_name = spec.partition(":") if not _is_windows_drive(spec) else (spec, "", "")
    if path_part.endswith(".py"):
        return _load_from_file(Path(path_part), func_name or None)
    if func_name:
        try:
            module = importlib.import_module(path_part)
        except Exception as exc:  # no such module, or it raised on import
            raise ValueError(
                f"verifier {spec!r}: importing {path_part!r} failed ({type(exc).__name__}: {exc})"
            ) from exc
        fn = getattr(module, func_name, None)
        if not callable(fn):
            raise ValueError(f"{spec!r}: module {path_part!r} has no callable {func_name!r}")
        return fn
    raise ValueError(f"unknown verifier {spec!r}; registered: {', '.join(available_verifiers())}")


def registered_verifier(name: object) -> Verifier:
    """The verifier registered as ``name``: the lookup for names read from data, which must never import.

    >>> registered_verifier("integer")("<answer>4</answer>", "4").correct
    True
    >>> registered_verifier("shutil:rmtree")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: 'shutil:rmtree' is not a registered verifier (registered: countdown, ...
    """
    _load_builtins()
    if isinstance(name, str) and name in _REGISTRY:
        return _REGISTRY[name]
    raise ValueError(
        f"{name!r} is not a registered verifier (registered: {', '.join(available_verifiers())}); "
        "data may only name a registered one: give your own on the command line "
        "(--data.verifier path.py, r1zero verify --verifier path.py)"
    )


def _load_from_file(path: Path, func_name: str | None) -> Verifier:
    if not path.is_file():
        raise ValueError(f"verifier file {str(path)!r} does not exist")
    module_name = f"r1zero_user_verifier_{abs(hash(str(path.resolve())))}"
    module = sys.modules.get(module_name)
    if module is None:  # import each file once: running it again would re-register its names
        before = set(_REGISTRY)
        module_spec = importlib.util.spec_from_file_location(module_name, path)
        assert module_spec is not None and module_spec.loader is not None
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[module_name] = module
        try:
            module_spec.loader.exec_module(module)
        except Exception as exc:  # the user's file is broken: say which and how, in one line
            del sys.modules[module_name]
            raise ValueError(
                f"verifier file {str(path)!r} raised {type(exc).__name__} on import: {exc}"
            ) from exc
        except BaseException:
            del sys.modules[module_name]
            raise
        module._r1zero_registered = sorted(set(_REGISTRY) - before)
    if func_name:
        fn = getattr(module, func_name, None)
        if not callable(fn):
            raise ValueError(f"verifier file {str(path)!r} has no callable {func_name!r}")
        return fn
    added = module._r1zero_registered
    if len(added) == 1:
        return _REGISTRY[added[0]]
    if callable(getattr(module, "verify", None)):
        return module.verify
    raise ValueError(
        f"verifier file {str(path)!r} registers {len(added)} verifiers ({added}); "
        "name one with 'file.py:function' or define a function named 'verify'"
    )


#: The package whose every module is a built-in verifier: a new verifier is one new file there.
BUILTIN_PACKAGE = "r1zero.verifiers.builtin"


def _load_builtins() -> None:
    """Import every module of ``BUILTIN_PACKAGE``, so that their ``@register`` decorators run."""
    global _BUILTINS_LOADED
    if _BUILTINS_LOADED:
        return
    _BUILTINS_LOADED = True
    package = importlib.import_module(BUILTIN_PACKAGE)
    for info in pkgutil.iter_modules(package.__path__):
        if not info.name.startswith("_"):
            importlib.import_module(f"{BUILTIN_PACKAGE}.{info.name}")


def _qualname(fn: object) -> str:
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"


def _is_windows_drive(spec: str) -> bool:
    return len(spec) > 2 and spec[1] == ":" and spec[2] in "\\/"
