"""Configs as frozen dataclasses, filled from files and ``--section.field value`` options.

The machinery that ``r1zero train`` and ``r1zero eval`` share, so both read the same option names the
same way. A config class is a frozen dataclass whose fields are either sections (dataclasses of fields)
or plain top-level fields; its keys are ``section.field`` and ``field``. Values come in layers (each
command chooses its base, e.g. a training preset), then a config file (``read_config_file``: JSON, YAML
or TOML, nested like the ``config.json`` a run writes), then the command line (``parse_overrides``).
Unknown keys and badly typed values are errors that name the valid ones, with a "did you mean" hint.

>>> from r1zero.eval.config import EvalConfig
>>> cfg = update_config(EvalConfig(), parse_overrides(["--rollout.temperature", "0.6", "--n=8"]))
>>> cfg.rollout.temperature, cfg.n
(0.6, 8)
>>> update_config(EvalConfig(), {"rollout.temprature": 1})
Traceback (most recent call last):
...
ValueError: unknown option --rollout.temprature (did you mean --rollout.temperature?); valid: --rollout.backend, ...
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import inspect
import json
import textwrap
import types
import typing
from collections.abc import Callable, Mapping
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

__all__ = [
    "config_help",
    "config_keys",
    "did_you_mean",
    "field_docs",
    "flatten_config",
    "parse_overrides",
    "read_config_file",
    "take_option",
    "update_config",
]

C = TypeVar("C")

#: config file suffix -> format name
CONFIG_FORMATS = {".json": "JSON", ".yaml": "YAML", ".yml": "YAML", ".toml": "TOML"}


def did_you_mean(name: str, valid: list[str] | tuple[str, ...]) -> str:
    """A ``" (did you mean X?)"`` hint for a mistyped ``name``, or ``""``.

    >>> did_you_mean("math-500", ["gsm8k", "math500", "aime24"])
    ' (did you mean math500?)'
    """
    close = difflib.get_close_matches(name, list(valid), n=3)
    return f" (did you mean {', '.join(close)}?)" if close else ""


# ---------------------------------------------------------------- keys of a config class
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _sections(root: type) -> dict[str, type]:
    """``{name: section class}`` of the fields of ``root`` that are dataclasses themselves."""
    hints = _hints(root)
    return {
        f.name: hints[f.name] for f in dataclasses.fields(root) if dataclasses.is_dataclass(hints[f.name])
    }


def config_keys(root: type) -> list[str]:
    """Every key of a config class: top-level fields, then ``section.field`` in declaration order."""
    sections = _sections(root)
    keys = [f.name for f in dataclasses.fields(root) if f.name not in sections]
    for name, cls in sections.items():
        keys += [f"{name}.{f.name}" for f in dataclasses.fields(cls)]
    return keys


def _unknown_key(key: str, keys: list[str], prefix: str) -> str:
    section, _, name = key.rpartition(".")
    same_name = [k for k in keys if k.rpartition(".")[2] == name]
    close = same_name or difflib.get_close_matches(key, keys, n=3, cutoff=0.8)  # high: keys share prefixes
    hint = f" (did you mean {', '.join(prefix + k for k in close)}?)" if close else ""
    shown = [k for k in keys if section and k.startswith(section + ".")] or keys
    what = "option" if prefix else "config key"
    return f"unknown {what} {prefix}{key}{hint}; valid: {', '.join(prefix + k for k in shown)}"


# ---------------------------------------------------------------- setting values
def update_config(
    config: C,
    values: Mapping[str, Any],
    check: Callable[[C], C] | None = None,
    prefix: str = "--",
    fixed: tuple[str, ...] = (),
) -> C:
    """``config`` with ``values`` (``{"section.field" or "field": value}``) set, each converted to its
    field's type; then ``check(config)``. ``prefix`` is how errors spell a key (``--`` for options);
    ``fixed`` keys cannot be set here (e.g. a training preset, chosen before anything else)."""
    root = type(config)
    keys, sections = [k for k in config_keys(root) if k not in fixed], _sections(root)
    changes: dict[str, dict[str, Any]] = {}
    for key, raw in values.items():
        if key not in keys:
            raise ValueError(_unknown_key(key, keys, prefix))
        section, _, name = key.rpartition(".")
        cls = sections[section] if section else root
        changes.setdefault(section, {})[name] = _coerce(raw, _hints(cls)[name], key)
    replaced = {s: dataclasses.replace(getattr(config, s), **v) for s, v in changes.items() if s}
    config = dataclasses.replace(config, **changes.get("", {}), **replaced)  # type: ignore[type-var]
    return check(config) if check is not None else config


def _coerce(value: Any, annotation: Any, key: str) -> Any:
    """Convert a file's value or a command-line string to a field's type."""
    origin = typing.get_origin(annotation)
    if origin is tuple or annotation is tuple:
        items = value.split(",") if isinstance(value, str) else list(value)
        return tuple(str(item) for item in items if item != "")
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return None if value in (None, "None", "none") else _coerce(value, args[0], key)
    if annotation is bool:
        if isinstance(value, bool):
            return value
        text = str(value).lower()
        if text in ("true", "1", "yes", "on"):
            return True
        if text in ("false", "0", "no", "off"):
            return False
        raise ValueError(f"{key} expects a boolean (true/false); got {value!r}")
    if annotation in (int, float):
        try:
            number = annotation(value) if annotation is float or not isinstance(value, str) else int(value, 0)
        except (TypeError, ValueError):
            raise ValueError(f"{key} expects {annotation.__name__}; got {value!r}") from None
        if annotation is int and isinstance(value, float) and value != int(value):
            raise ValueError(f"{key} expects int; got {value!r}")
        return number
    if annotation is str:
        if not isinstance(value, str):
            raise ValueError(f"{key} expects a string; got {value!r}")
        return value
    raise TypeError(f"{key}: unsupported field type {annotation!r}")


# ---------------------------------------------------------------- the command line
def parse_overrides(argv: list[str]) -> dict[str, str]:
    """Turn ``["--a.b", "1", "--c.d=x", "--flag"]`` into ``{"a.b": "1", "c.d": "x", "flag": "true"}``.

    >>> parse_overrides(["--algo.beta", "0.01", "--run.progress=false", "--algo.dynamic_sampling"])
    {'algo.beta': '0.01', 'run.progress': 'false', 'algo.dynamic_sampling': 'true'}
    """
    out: dict[str, str] = {}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if not arg.startswith("--") or len(arg) == 2:
            raise ValueError(f"expected an option like --section.field VALUE; got {arg!r}")
        key, eq, value = arg[2:].partition("=")
        key = key.replace("-", "_")
        if not eq:
            has_value = i + 1 < len(argv) and not (argv[i + 1].startswith("--") and len(argv[i + 1]) > 2)
            value = argv[i + 1] if has_value else "true"
            i += 1 if has_value else 0
        out[key] = value
        i += 1
    return out


def take_option(argv: list[str], flag: str) -> tuple[str | None, list[str]]:
    """Remove ``flag VALUE`` (or ``flag=VALUE``) from argv; return the value and the rest.

    >>> take_option(["--config", "a.yaml", "--run.seed", "1"], "--config")
    ('a.yaml', ['--run.seed', '1'])
    """
    rest, value, i = [], None, 0
    while i < len(argv):
        if argv[i] == flag:
            if i + 1 >= len(argv):
                raise ValueError(f"{flag} needs a value")
            value, i = argv[i + 1], i + 2
            continue
        if argv[i].startswith(flag + "="):
            value = argv[i].split("=", 1)[1]
        else:
            rest.append(argv[i])
        i += 1
    return value, rest


# ---------------------------------------------------------------- config files
def read_config_file(path: str | Path) -> dict[str, Any]:
    """A config file as a dict: JSON, YAML (needs PyYAML) or TOML (Python 3.11+, or tomli), by suffix.

    A directory stands for its ``config.json`` (a run directory), so a finished run's config is a valid
    starting point for a new one.
    """
    path = Path(path)
    if path.is_dir() and (path / "config.json").is_file():
        path = path / "config.json"
    if not path.is_file():
        raise ValueError(f"config file {str(path)!r} not found")
    kind = CONFIG_FORMATS.get(path.suffix.lower())
    if kind is None:
        valid = ", ".join(CONFIG_FORMATS)
        raise ValueError(f"config file {str(path)!r}: unknown format {path.suffix!r}; valid: {valid}")
    text = path.read_text(encoding="utf-8")
    loads, errors = _loader(kind)
    try:
        data = loads(text)
    except errors as exc:
        raise ValueError(f"{str(path)!r} is not valid {kind}: {exc}") from None
    if data is None:  # an empty YAML file
        data = {}
    if not isinstance(data, dict):
        raise ValueError(f"{str(path)!r} must hold a mapping of sections and keys; got {type(data).__name__}")
    return data


def _loader(kind: str) -> tuple[Callable[[str], Any], tuple[type[Exception], ...]]:
    """``(loads, parse errors)`` of a format; optional parsers are imported only when a file needs them."""
    if kind == "JSON":
        return json.loads, (json.JSONDecodeError,)
    if kind == "YAML":
        try:
            import yaml
        except ImportError:
            raise ValueError(
                "YAML config files need PyYAML (pip install pyyaml); or use JSON or TOML"
            ) from None
        return yaml.safe_load, (yaml.YAMLError,)
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        try:
            import tomli as tomllib  # type: ignore[no-redef]
        except ModuleNotFoundError:
            raise ValueError(
                "TOML config files need Python 3.11+ or tomli (pip install tomli); or use JSON or YAML"
            ) from None
    return tomllib.loads, (tomllib.TOMLDecodeError,)


def flatten_config(data: Mapping[str, Any], root: type) -> dict[str, Any]:
    """A nested config dict (``{"rollout": {"temperature": 0.6}, "n": 8}``) as ``{"rollout.temperature":
    0.6, "n": 8}``; dotted keys may also be given as they are."""
    sections = _sections(root)
    out: dict[str, Any] = {}
    for key, value in data.items():
        if key in sections:
            if not isinstance(value, Mapping):
                raise ValueError(f"config section {key!r} must be a mapping of its fields; got {value!r}")
            out.update({f"{key}.{name}": v for name, v in value.items()})
        else:
            out[key] = value
    return out


# ---------------------------------------------------------------- help text from the field docstrings
@cache
def field_docs(cls: type) -> dict[str, str]:
    """The string literal under each field of a dataclass (its attribute docstring)."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    body = tree.body[0].body  # type: ignore[attr-defined]
    docs: dict[str, str] = {}
    for node, nxt in zip(body, [*body[1:], None], strict=True):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and (
                isinstance(nxt, ast.Expr)
                and isinstance(nxt.value, ast.Constant)
                and isinstance(nxt.value.value, str)
            )
        ):
            docs[node.target.id] = " ".join(nxt.value.value.split())
    return docs


def config_help(config: Any, skip: tuple[str, ...] = ()) -> str:
    """One line per option: ``--key (current value) [choices]  docstring``, top-level fields first."""
    root = type(config)
    sections = _sections(root)
    groups = [("options", root, config, [f for f in dataclasses.fields(root) if f.name not in sections])]
    groups += [
        (name, cls, getattr(config, name), list(dataclasses.fields(cls))) for name, cls in sections.items()
    ]
    lines = []
    for title, cls, values, fields in groups:
        docs = field_docs(cls)
        fields = [f for f in fields if f.name not in skip]
        if fields:
            lines.append(f"\n{title}:")
        for f in fields:
            key = f.name if title == "options" else f"{title}.{f.name}"
            choices = f.metadata.get("choices")
            allowed = f" [{'|'.join(choices)}]" if choices else ""
            lines.append(f"  --{key} {getattr(values, f.name)!r}{allowed}\n      {docs.get(f.name, '')}")
    return "\n".join(lines)
