"""The manifest of a sharded checkpoint: what r1zero wrote there, and the cheap check that it is all there.

``r1zero_sharded.json`` is written last by rank 0 (``r1zero.train.sharded_checkpoint``): the format, the
step, the world size and the byte size of every file of the checkpoint. A directory without a valid one
is not a sharded checkpoint r1zero wrote. This module imports nothing from r1zero, so the replicated
checkpoint code can check a sharded directory without importing the sharded one.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["DCP_DIR", "FORMAT", "MANIFEST", "VERSION", "ManifestError", "manifest_problem", "read_manifest"]

MANIFEST = "r1zero_sharded.json"
DCP_DIR = "dcp"
FORMAT, VERSION = "r1zero-sharded-checkpoint", 1


class ManifestError(ValueError):
    """A manifest that is missing, corrupt or not r1zero's (the message says which)."""


def read_manifest(path: Path) -> dict[str, Any]:
    """The manifest of the checkpoint directory ``path``; a ``ManifestError`` when it is not a valid one."""
    file = Path(path) / MANIFEST
    try:
        manifest = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ManifestError(f"{MANIFEST} is missing (not a sharded checkpoint r1zero wrote)") from None
    except (OSError, ValueError) as exc:
        raise ManifestError(f"{MANIFEST} is corrupt ({type(exc).__name__}: {exc})") from None
    ok = (
        isinstance(manifest, dict)
        and manifest.get("format") == FORMAT
        and manifest.get("version") == VERSION
        and isinstance(manifest.get("world_size"), int)
        and manifest["world_size"] >= 1
        and isinstance(manifest.get("files"), dict)
        and all(isinstance(k, str) and _inside(k) for k in manifest["files"])
    )
    if not ok:
        raise ManifestError(f"{MANIFEST} is not an r1zero sharded-checkpoint manifest (format {FORMAT!r})")
    return manifest


def manifest_problem(path: Path, required: Sequence[str]) -> str | None:
    """What makes a sharded checkpoint unusable (manifest missing or not r1zero's, a listed file missing or
    of another size, a rank's state or a ``required`` file not listed), or None when it looks complete."""
    try:
        manifest = read_manifest(path)
    except ManifestError as exc:
        return str(exc)
    for name, size in manifest["files"].items():
        file = Path(path) / name
        if not file.is_file():
            return f"{name} is missing"
        if file.stat().st_size != size:
            return f"{name} is {file.stat().st_size} bytes; the manifest says {size}"
    for rank in range(manifest["world_size"]):
        if f"rank_{rank:05d}.json" not in manifest["files"]:
            return f"rank_{rank:05d}.json is missing"
    for name in required:
        if name not in manifest["files"]:
            return f"{name} is missing"
    return None


def _inside(name: str) -> bool:
    """Whether a manifest's file name stays inside the checkpoint directory.

    >>> _inside("dcp/.metadata"), _inside("../x"), _inside("/etc/passwd")
    (True, False, False)
    """
    return not Path(name).is_absolute() and ".." not in Path(name).parts
