"""Atomic checkpoints with everything exact resume needs, and finding the one to resume from.

A checkpoint is ``RUN_DIR/checkpoints/step_000050/``: the policy and tokenizer in Hugging Face format
(so ``AutoModelForCausalLM.from_pretrained`` and vLLM load it as is) plus the trainer state: the step,
optimizer and scheduler state, every RNG stream (python, numpy, torch CPU and CUDA), the prompt sampler
state and the monitors' history. It is written into a temporary directory and renamed into place, so a
crash mid-save leaves the previous checkpoint untouched and never a half-written one; the temporary
directory a killed save leaves behind is removed when the run starts or resumes (``clean_partial_saves``),
and a save that fails (a full disk) removes its own. A checkpoint damaged after the fact (a truncated
``model.safetensors``, a deleted trainer state) is passed over by ``latest_checkpoint``, with a warning
naming what is wrong, for the newest complete one before it.

The trainer state holds no pickle, because unpickling a file runs whatever code it names: its tensors
(optimizer moments, RNG states) go to ``trainer_state.safetensors`` under their dotted path
(``optimizer.state.0.exp_avg``) and everything else to ``trainer_state.json``, where tuples, dicts with
non-string keys, numpy arrays and scalars, and tensors are tagged objects (``{"$tuple": [...]}``,
``{"$tensor": "optimizer.state.0.exp_avg"}``) so that loading gives back exactly the types saved.
A ``trainer_state.pt`` written by earlier versions is read with torch's weights-only unpickler, which
builds nothing but tensors, plain containers and the numpy types of numpy's RNG state.

A sharded policy (FSDP) is checkpointed by every rank into the same directory layout with other files
(``r1zero.train.sharded_checkpoint``); ``checkpoint_problem`` and ``latest_checkpoint`` handle both.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import random
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from r1zero.train.manifest import DCP_DIR, manifest_problem
from r1zero.train.manifest import MANIFEST as _SHARDED_MANIFEST

__all__ = [
    "LEGACY_STATE_FILE",
    "STATE_FILE",
    "TENSORS_FILE",
    "CheckpointError",
    "capture_rng",
    "checkpoint_dirs",
    "checkpoint_problem",
    "clean_partial_saves",
    "latest_checkpoint",
    "load_trainer_state",
    "restore_rng",
    "save_checkpoint",
]

log = logging.getLogger(__name__)

STATE_FILE = "trainer_state.json"
TENSORS_FILE = "trainer_state.safetensors"
#: what earlier versions wrote (a torch.save pickle): still read, with the weights-only unpickler
LEGACY_STATE_FILE = "trainer_state.pt"
_FORMAT, _VERSION = "r1zero-trainer-state", 1
_REQUIRED = ("step", "optimizer", "scheduler", "rng", "sampler")
_STEP_DIR = re.compile(r"^step_(\d{6,})$")
#: what ``save_checkpoint`` writes into before the rename, and where it moves a re-saved step aside
_TMP_DIR = re.compile(r"^\.tmp_step_(\d{6,})_\d+$")
_OLD_DIR = re.compile(r"^\.old_step_(\d{6,})_\d+$")
#: files ``save_pretrained`` writes for a tokenizer (one of them is enough: fast, slow, sentencepiece)
_TOKENIZER_FILES = ("tokenizer_config.json", "tokenizer.json", "tokenizer.model", "vocab.json", "vocab.txt")
#: the manifest of a sharded (FSDP) checkpoint (``r1zero.train.sharded_checkpoint``)
#: numpy dtype kinds a saved array or scalar may have: bool, signed and unsigned integers, floats
_NUMPY_KINDS = "biuf"
#: how torch's weights-only unpickler names a global it refused to load
_PICKLED_GLOBAL = re.compile(r"GLOBAL ([\w.]+)")


class CheckpointError(RuntimeError):
    """A run directory or checkpoint that cannot be resumed from (the message says what is wrong)."""


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint directory on disk and its step."""

    path: Path
    step: int


def capture_rng() -> dict[str, Any]:
    """Every global RNG state: python ``random``, numpy, torch CPU and (when present) CUDA."""
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    """Inverse of ``capture_rng``."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(
    run_dir: Path,
    step: int,
    model: torch.nn.Module,
    tokenizer: Any,
    trainer_state: dict[str, Any],
    keep: int = 0,
    extra_models: dict[str, torch.nn.Module] | None = None,
) -> Path:
    """Write ``checkpoints/step_{step:06d}`` atomically and return its path.

    Args:
        run_dir: The run directory.
        step: Training steps completed.
        model: The (unwrapped) policy; saved with ``save_pretrained`` (safetensors).
        tokenizer: Saved beside the model.
        trainer_state: Optimizer/scheduler/sampler state etc.; ``step`` and the RNG states are added.
            Tensors, numpy arrays and scalars, and JSON values in dicts, lists and tuples; anything
            else is a ``TypeError`` naming where it is, raised before anything is written.
        keep: Keep only the newest ``keep`` checkpoints (0 keeps all).
        extra_models: Other models of the run (e.g. ``{"critic": critic}``), each saved with
            ``save_pretrained`` (and the tokenizer) into a subdirectory of that name, inside the same
            atomic write.
    """
    tensors: dict[str, torch.Tensor] = {}
    state = _encode({**trainer_state, "step": step, "rng": capture_rng()}, "", tensors, set())
    root = run_dir / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step_{step:06d}"
    tmp = root / f".tmp_step_{step:06d}_{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        for name, extra in (extra_models or {}).items():
            extra.save_pretrained(tmp / name, safe_serialization=True)
            tokenizer.save_pretrained(tmp / name)  # each a complete Hugging Face directory
            _fsync_dir(tmp / name)
        save_file(tensors, str(tmp / TENSORS_FILE))
        document = {"format": _FORMAT, "version": _VERSION, "state": state}
        (tmp / STATE_FILE).write_text(json.dumps(document, separators=(",", ":")), encoding="utf-8")
        _fsync_dir(tmp)
    except BaseException as exc:  # a full disk, an interrupt: no half-written directory stays behind
        shutil.rmtree(tmp, ignore_errors=True)
        if _disk_full(exc):
            raise CheckpointError(
                f"cannot save the step {step} checkpoint of run directory {str(run_dir)!r}: no space left "
                f"on the device ({_free_space(root)} free); the previous checkpoint is intact"
            ) from None
        raise
    if final.exists():  # re-saving the same step (e.g. after a resume): move the old one aside first
        old = root / f".old_step_{step:06d}_{os.getpid()}"
        final.rename(old)
        tmp.rename(final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        tmp.rename(final)
    _fsync_dir(root)
    if keep > 0:  # checkpoints past ``step`` (left by a run resumed from an earlier one) are not counted
        for stale in [c for c in checkpoint_dirs(run_dir) if c.step <= step][:-keep]:
            shutil.rmtree(stale.path, ignore_errors=True)
    log.info("saved checkpoint %s", final)
    return final


def _disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` (or what it wraps: safetensors and transformers re-raise) is a full disk."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if "No space left on device" in str(exc):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def _free_space(path: Path) -> str:
    try:
        free = shutil.disk_usage(path).free
    except OSError:
        return "unknown space"
    return f"{free / 2**20:.1f} MiB"


def _fsync_dir(path: Path) -> None:
    for child in path.iterdir() if path.is_dir() else []:
        if child.is_file():
            with open(child, "rb") as handle:
                os.fsync(handle.fileno())
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def checkpoint_dirs(run_dir: Path) -> list[Checkpoint]:
    """Completed checkpoints of a run, oldest first (temporary directories are ignored)."""
    root = Path(run_dir) / "checkpoints"
    found = []
    for child in root.iterdir() if root.is_dir() else []:
        match = _STEP_DIR.match(child.name)
        if match and child.is_dir():
            found.append(Checkpoint(child, int(match.group(1))))
    return sorted(found, key=lambda c: c.step)


def clean_partial_saves(run_dir: Path) -> list[Path]:
    """Remove what a save killed midway left in ``RUN_DIR/checkpoints`` and return those paths.

    A ``.tmp_step_*`` directory is an unfinished save: it is removed. A ``.old_step_*`` directory is a
    complete checkpoint moved aside while its step was re-saved: it is put back when the new one never
    took its place, and removed otherwise. Nothing else is touched."""
    root = Path(run_dir) / "checkpoints"
    removed = []
    for child in sorted(root.iterdir()) if root.is_dir() else []:
        tmp, old = _TMP_DIR.match(child.name), _OLD_DIR.match(child.name)
        if not child.is_dir() or not (tmp or old):
            continue
        if old and not (root / f"step_{old.group(1)}").exists():
            log.warning("restoring checkpoint %s, moved aside by a save that was interrupted", child)
            with contextlib.suppress(OSError):  # another rank of the run restored it first
                child.rename(root / f"step_{old.group(1)}")
            continue
        log.warning("removing %s, left by a checkpoint save that was interrupted", child)
        shutil.rmtree(child, ignore_errors=True)
        removed.append(child)
    return removed


def checkpoint_problem(checkpoint: Checkpoint) -> str | None:
    """What makes a checkpoint unusable, cheaply (files present, headers and sizes, JSON parses), or
    None when it looks complete. ``load_trainer_state`` does the full check of the trainer state."""
    path = checkpoint.path
    if not (path / "config.json").is_file():
        return "config.json is missing"
    if not any((path / name).is_file() for name in _TOKENIZER_FILES):
        return "the tokenizer files are missing"
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json"):  # truncated by a crash?
        if (path / name).is_file():
            try:
                json.loads((path / name).read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                return f"{name} is corrupt ({_one_line(exc)})"
    if (path / _SHARDED_MANIFEST).is_file():  # every rank's shards and state: see sharded_checkpoint
        return manifest_problem(path, (STATE_FILE, TENSORS_FILE, f"{DCP_DIR}/.metadata"))
    weights = sorted(path.glob("model-*.safetensors"))
    if (path / "model.safetensors").is_file():
        weights = [path / "model.safetensors"]
    if not weights and not (path / "pytorch_model.bin").is_file():
        return "model.safetensors is missing"
    state = path / STATE_FILE
    if state.is_file():
        weights.append(path / TENSORS_FILE)
        try:
            json.loads(state.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
            return f"{STATE_FILE} is corrupt ({_one_line(exc)})"
    elif not (path / LEGACY_STATE_FILE).is_file():
        return f"{STATE_FILE} is missing"
    for file in weights:
        problem = _safetensors_problem(file)
        if problem:
            return problem
    return None


def _safetensors_problem(path: Path) -> str | None:
    """Whether a safetensors file is missing, has a header that does not parse, or is not as long as its
    header says (a truncated write)."""
    if not path.is_file():
        return f"{path.name} is missing"
    try:
        with open(path, "rb") as raw:
            size = int.from_bytes(raw.read(8), "little")
            header = json.loads(raw.read(min(size, path.stat().st_size)))
        ends = [entry["data_offsets"][1] for key, entry in header.items() if key != "__metadata__"]
        expected, actual = 8 + size + max(ends, default=0), path.stat().st_size
        if actual != expected:
            how = "truncated" if actual < expected else "corrupt"
            return f"{path.name} is {how} ({actual} bytes; its header describes {expected})"
        with safe_open(str(path), framework="pt") as handle:
            handle.keys()
    except Exception as exc:  # safetensors raises its own error type; a garbled header anything
        return f"{path.name} is corrupt ({_one_line(exc)})"
    return None


def latest_checkpoint(run_dir: Path) -> Checkpoint | None:
    """The newest complete checkpoint of a run directory; errors when ``run_dir`` is not a run directory.

    What an interrupted save left behind is removed first (``clean_partial_saves``). A checkpoint with a
    problem (``checkpoint_problem``) is passed over with a warning naming it, for the one before; when
    every checkpoint has one, a one-line ``CheckpointError``. None when the run has no checkpoint."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise CheckpointError(f"{str(run_dir)!r} is not a directory; pass a run directory such as runs/demo")
    if not (run_dir / "config.json").is_file():
        raise CheckpointError(
            f"{str(run_dir)!r} is not a run directory (no config.json); "
            "pass the directory a previous 'r1zero train' wrote, such as runs/demo"
        )
    clean_partial_saves(run_dir)
    found = checkpoint_dirs(run_dir)
    problems = []
    for checkpoint in reversed(found):
        problem = checkpoint_problem(checkpoint)
        if problem is None:
            return checkpoint
        log.warning(
            "checkpoint %s is unusable (%s); falling back to an earlier checkpoint", checkpoint.path, problem
        )
        problems.append(f"{checkpoint.path.name}: {problem}")
    if problems:
        raise CheckpointError(
            f"run directory {str(run_dir)!r} has no complete checkpoint to resume from ({'; '.join(problems)})"
        )
    return None


def load_trainer_state(checkpoint: Checkpoint) -> dict[str, Any]:
    """Read the trainer state without unpickling; a missing, damaged or unsafe file is a one-line
    ``CheckpointError`` naming it."""
    path = checkpoint.path / STATE_FILE
    if (checkpoint.path / _SHARDED_MANIFEST).is_file():
        raise CheckpointError(
            f"checkpoint {str(checkpoint.path)!r} is sharded: load_sharded_checkpoint reads it"
        )
    if path.is_file():
        state = _read_state(path, checkpoint.path / TENSORS_FILE)
    elif (checkpoint.path / LEGACY_STATE_FILE).is_file():
        path = checkpoint.path / LEGACY_STATE_FILE
        state = _read_legacy_state(path)
    else:
        raise CheckpointError(f"checkpoint {str(checkpoint.path)!r} is incomplete: {STATE_FILE} is missing")
    missing = [k for k in _REQUIRED if k not in state]
    if missing or state.get("step") != checkpoint.step:
        raise CheckpointError(
            f"checkpoint state {str(path)!r} is corrupt: missing {missing} or step {state.get('step')!r} "
            f"does not match the directory name (step {checkpoint.step})"
        )
    has_weights = any(
        (checkpoint.path / name).is_file() for name in ("model.safetensors", "pytorch_model.bin")
    ) or any(checkpoint.path.glob("model-*.safetensors"))
    if not has_weights:
        raise CheckpointError(f"checkpoint {str(checkpoint.path)!r} has no model weights (model.safetensors)")
    return state


def _read_state(path: Path, tensors_path: Path) -> dict[str, Any]:
    """``trainer_state.json`` with its tensors from ``trainer_state.safetensors``."""
    if not tensors_path.is_file():
        raise CheckpointError(f"checkpoint state {str(path)!r} is incomplete: {TENSORS_FILE} is missing")
    try:
        tensors = load_file(str(tensors_path))
    except Exception as exc:  # safetensors raises its own error type, OSError, ...
        raise CheckpointError(
            f"checkpoint state {str(tensors_path)!r} is corrupt ({_one_line(exc)})"
        ) from None
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(document, dict) or document.get("format") != _FORMAT:
            raise ValueError(f'not an r1zero trainer state (no "format": {_FORMAT!r})')
        if document.get("version") != _VERSION:
            raise ValueError(f"format version {document.get('version')!r}; this r1zero reads {_VERSION}")
        state = _decode(document["state"], tensors, "")
        if not isinstance(state, dict):
            raise ValueError(f"the state is a {type(state).__name__}, not an object")
    except (ValueError, TypeError, KeyError, IndexError, RecursionError) as exc:  # JSONDecodeError too
        raise CheckpointError(f"checkpoint state {str(path)!r} is corrupt ({_one_line(exc)})") from None
    return state


def _numpy_rng_types() -> list:
    """What numpy's RNG state (a tuple holding a uint32 array) needs from the weights-only unpickler;
    ``_reconstruct`` under both module names numpy has pickled it with (numpy 1 and 2)."""
    reconstruct = (np._core if hasattr(np, "_core") else np.core).multiarray._reconstruct
    return [
        np.ndarray,
        np.dtype,
        type(np.dtype(np.uint32)),
        (reconstruct, "numpy.core.multiarray._reconstruct"),
        (reconstruct, "numpy._core.multiarray._reconstruct"),
    ]


def _read_legacy_state(path: Path) -> dict[str, Any]:
    """A ``trainer_state.pt`` of earlier versions, through torch's weights-only unpickler only."""
    try:
        with torch.serialization.safe_globals(_numpy_rng_types()):
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a refused, truncated or garbled file
        refused = _PICKLED_GLOBAL.search(str(exc))
        if refused:
            raise CheckpointError(
                f"checkpoint state {str(path)!r} cannot be loaded safely: it is a pickle that names "
                f"{refused.group(1)}, and unpickling it could run code (a {LEGACY_STATE_FILE} is read only "
                "if it holds nothing but tensors and plain values)"
            ) from None
        raise CheckpointError(f"checkpoint state {str(path)!r} is corrupt ({_one_line(exc)})") from None
    if not isinstance(state, dict):
        raise CheckpointError(
            f"checkpoint state {str(path)!r} is corrupt: a {type(state).__name__}, not a dict"
        )
    return state


def _one_line(exc: BaseException) -> str:
    """``Type: message`` cut to one line; for torch's weights-only refusal, the line that says why."""
    text = str(exc)
    if "WeightsUnpickler error:" in text:
        text = text.split("WeightsUnpickler error:", 1)[1]
    line = next((part.strip() for part in text.splitlines() if part.strip()), "")
    line = line.split(". ", 1)[0]
    return f"{type(exc).__name__}: {line[:300]}"


# ---------------------------------------------------------------- the trainer state as JSON + tensors
def _encode(value: Any, where: str, tensors: dict[str, torch.Tensor], storages: set[int]) -> Any:
    """``value`` as JSON, its tensors moved into ``tensors`` under their path ``where``.

    >>> tensors = {}
    >>> _encode({"betas": (0.9, 0.95), "state": {0: torch.zeros(2)}}, "", tensors, set())
    {'betas': {'$tuple': [0.9, 0.95]}, 'state': {'$dict': [[0, {'$tensor': 'state.0'}]]}}
    >>> list(tensors)
    ['state.0']
    """
    if isinstance(value, torch.Tensor):
        key, copies = where, 0
        while key in tensors:  # two paths that print alike ("a.b" and a -> b)
            copies += 1
            key = f"{where}#{copies}"
        tensors[key] = _tensor_to_save(value, storages)
        return {"$tensor": key}
    if isinstance(value, np.ndarray | np.generic):
        if value.dtype.kind not in _NUMPY_KINDS:
            raise TypeError(f"{where}: cannot save a numpy {value.dtype} value in the trainer state")
        if isinstance(value, np.generic):
            return {"$numpy": [value.dtype.str, value.item()]}
        return {"$ndarray": [value.dtype.str, list(value.shape), value.ravel().tolist()]}
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple):
        items = [_encode(v, f"{where}[{k}]", tensors, storages) for k, v in enumerate(value)]
        return items if isinstance(value, list) else {"$tuple": items}
    if isinstance(value, dict):
        plain = all(isinstance(k, str) and not k.startswith("$") for k in value)
        pairs = [
            (k, _encode(v, f"{where}.{k}" if where else str(k), tensors, storages)) for k, v in value.items()
        ]
        if plain:
            return dict(pairs)
        return {"$dict": [[_encode(k, f"{where} key", tensors, storages), v] for k, v in pairs]}
    raise TypeError(
        f"{where}: cannot save a {type(value).__name__} in the trainer state "
        "(it holds tensors, numpy numbers and JSON values in dicts, lists and tuples)"
    )


def _tensor_to_save(tensor: torch.Tensor, storages: set[int]) -> torch.Tensor:
    """A contiguous CPU tensor whose memory no other saved tensor shares (safetensors' conditions)."""
    tensor = tensor.detach().cpu()
    storage = tensor.untyped_storage().data_ptr()
    if not tensor.is_contiguous() or (tensor.numel() and storage in storages):
        tensor = tensor.clone(memory_format=torch.contiguous_format)
    storages.add(tensor.untyped_storage().data_ptr())
    return tensor


def _decode(value: Any, tensors: dict[str, torch.Tensor], where: str) -> Any:
    """Inverse of ``_encode``; a malformed tag or a missing tensor is a ``ValueError``."""
    if isinstance(value, list):
        return [_decode(v, tensors, f"{where}[{k}]") for k, v in enumerate(value)]
    if not isinstance(value, dict):
        return value
    if len(value) == 1 and next(iter(value)).startswith("$"):
        tag, body = next(iter(value.items()))
        if tag == "$tuple" and isinstance(body, list):
            return tuple(_decode(v, tensors, f"{where}[{k}]") for k, v in enumerate(body))
        if tag == "$dict" and isinstance(body, list):
            return {_decode(k, tensors, where): _decode(v, tensors, f"{where}.{k}") for k, v in body}
        if tag == "$tensor" and isinstance(body, str):
            if body not in tensors:
                raise ValueError(f"{where}: tensor {body!r} is not in {TENSORS_FILE}")
            return tensors[body]
        if tag in ("$numpy", "$ndarray") and isinstance(body, list):
            return _decode_numpy(tag, body, where)
        raise ValueError(f"{where}: malformed {tag!r} entry")
    return {k: _decode(v, tensors, f"{where}.{k}" if where else k) for k, v in value.items()}


def _decode_numpy(tag: str, body: list, where: str) -> np.ndarray | np.generic:
    dtype = np.dtype(str(body[0]))
    if dtype.kind not in _NUMPY_KINDS:
        raise ValueError(f"{where}: numpy dtype {dtype} is not one a trainer state holds")
    if tag == "$numpy":
        return dtype.type(body[1])
    return np.array(body[2], dtype=dtype).reshape(body[1])
