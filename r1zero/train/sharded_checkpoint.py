"""Checkpoints of a sharded (FSDP2) policy: every rank writes its shards, and resume may change world size.

A sharded checkpoint is the same ``RUN_DIR/checkpoints/step_000050/`` directory as a replicated one,
holding other files:

- ``dcp/``: the policy's and optimizer's shards, written by every rank together with
  ``torch.distributed.checkpoint`` (``dcp.save`` of ``get_state_dict(model, optimizer)``); ``dcp.load``
  reshards them onto any world size, or into one process without a process group (``r1zero export``);
- ``trainer_state.{json,safetensors}``: what every rank shares (step, scheduler, the monitors' history),
  written by rank 0 in the replicated checkpoint's format;
- ``rank_00000.{json,safetensors}``: each rank's own prompt sampler and RNG streams (python, numpy, torch
  CPU and CUDA), in the same JSON + safetensors format (no pickle);
- ``config.json`` and the tokenizer (rank 0), so the directory says what model it holds;
- ``r1zero_sharded.json`` (``MANIFEST``), written last by rank 0: the step, the world size and the byte
  size of every file above. A directory without it is not a checkpoint r1zero wrote, and is never
  handed to ``dcp.load``.

The write is atomic like the replicated one: every rank writes into one temporary sibling directory,
the ranks agree that all of them succeeded, and rank 0 renames it into place; a crash leaves the previous
checkpoint intact and a ``.tmp_step_*`` directory that ``clean_partial_saves`` removes.

DCP's ``.metadata`` file is a pickle (``FileSystemReader.read_metadata`` calls ``pickle.load``). r1zero
reads it with an unpickler that builds only the classes DCP's metadata is made of (``_MetadataUnpickler``)
and only from a directory that carries r1zero's manifest with matching file sizes; the ``.distcp`` shards
go through DCP's own reader (tensors as raw bytes, other values through torch's weights-only unpickler).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import pickle
import shutil
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from safetensors.torch import save_file
from torch.distributed.checkpoint.metadata import Metadata, TensorStorageMetadata
from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

from r1zero.train.checkpoint import (
    STATE_FILE,
    TENSORS_FILE,
    Checkpoint,
    CheckpointError,
    _disk_full,
    _encode,
    _free_space,
    _fsync_dir,
    _read_state,
    capture_rng,
    checkpoint_dirs,
)
from r1zero.train.manifest import (
    DCP_DIR,
    FORMAT,
    MANIFEST,
    VERSION,
    ManifestError,
    manifest_problem,
    read_manifest,
)

__all__ = [
    "DCP_DIR",
    "MANIFEST",
    "all_finite",
    "is_sharded",
    "is_sharded_checkpoint",
    "load_sharded_checkpoint",
    "read_model_state_dict",
    "save_sharded_checkpoint",
    "sharded_problem",
    "source_rank",
]

log = logging.getLogger(__name__)

_STATE_FORMAT = "r1zero-trainer-state"
_MODEL_PREFIX = "model."


def is_sharded(model: torch.nn.Module) -> bool:
    """Whether ``model`` is an FSDP2 module (``fully_shard``), whose checkpoint every rank writes."""
    from torch.distributed.fsdp import FSDPModule

    return isinstance(model, FSDPModule)


def is_sharded_checkpoint(path: Path) -> bool:
    """Whether the checkpoint directory ``path`` is a sharded one (it has r1zero's manifest)."""
    return (Path(path) / MANIFEST).is_file()


def all_finite(model: torch.nn.Module) -> bool:
    """Whether every parameter of ``model`` is finite on every rank (each rank checks its own shards; all
    get the same answer, so all refuse a save together).

    >>> all_finite(torch.nn.Linear(2, 1))
    True
    """
    local = [p.to_local() if hasattr(p, "to_local") else p for p in model.parameters()]
    finite = all(bool(torch.isfinite(t).all()) for t in local)
    return not _max_over_ranks(int(not finite))


def source_rank(rank: int, saved_world: int) -> int:
    """Which saved rank's sampler and RNG state rank ``rank`` resumes from.

    Rank r takes saved rank r's state when the checkpoint has one; a rank past the saved world size takes
    rank 0's (what a fresh start gives every rank: they are all seeded alike).

    >>> [source_rank(r, 2) for r in range(4)]
    [0, 1, 0, 0]
    """
    return rank if rank < saved_world else 0


def _grouped() -> bool:
    return dist.is_available() and dist.is_initialized()


@contextlib.contextmanager
def _single_process_quiet() -> Iterator[None]:
    """Silences DCP's warning that it runs in one process (given even when asked to with ``no_dist``)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="torch.distributed is disabled")
        yield


def _rank_world() -> tuple[int, int]:
    if _grouped():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _max_over_ranks(value: int) -> int:
    """The largest ``value`` any rank passes (every rank gets it); ``value`` itself without a group."""
    if not _grouped():
        return value
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else "cpu"
    tensor = torch.tensor([value], dtype=torch.int64, device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return int(tensor.item())


# ---------------------------------------------------------------------------------------------- save
def save_sharded_checkpoint(
    run_dir: Path,
    step: int,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    tokenizer: Any,
    trainer_state: dict[str, Any],
    rank_state: dict[str, Any],
    keep: int = 0,
    extra: dict[str, tuple[torch.nn.Module, torch.optim.Optimizer]] | None = None,
) -> Path:
    """Write ``checkpoints/step_{step:06d}`` from every rank at once, atomically; return its path.

    Every rank of the process group must call this with the same ``run_dir`` and ``step``.

    Args:
        run_dir: The run directory.
        step: Training steps completed.
        model: The sharded policy (or any module: a plain one is saved whole by each rank's DCP plan).
        optimizer: Its optimizer; saved with the model through ``get_state_dict``.
        tokenizer: Saved beside the model by rank 0.
        trainer_state: What the ranks share (scheduler, history); rank 0's is written, ``step`` added.
        rank_state: This rank's own state (its sampler); the RNG states are added.
        keep: Keep only the newest ``keep`` checkpoints (0 keeps all).
        extra: Other trained models of the run and their optimizers (``{"critic": (critic, optimizer)}``),
            sharded or not, saved in the same DCP checkpoint under their name.
    """
    modules = {"model": (model, optimizer), **(extra or {})}
    rank, world = _rank_world()
    root = Path(run_dir) / "checkpoints"
    final = root / f"step_{step:06d}"
    tmp = root / f".tmp_step_{step:06d}_{_max_over_ranks(os.getpid() if rank == 0 else 0)}"
    failure = _together(
        (rank == 0, lambda: _make_empty_dir(tmp)),
        (
            True,
            lambda: _write_shards(tmp, step, modules, tokenizer, trainer_state, rank_state, rank),
        ),
        (rank == 0, lambda: _write_manifest(tmp, step, world)),
    )
    if failure is not None:
        if rank == 0:
            shutil.rmtree(tmp, ignore_errors=True)
        _max_over_ranks(0)
        _raise_save_failure(failure, run_dir, step, root)
    if rank == 0:
        _move_into_place(tmp, final, root, step)
        if keep > 0:
            for stale in [c for c in checkpoint_dirs(run_dir) if c.step <= step][:-keep]:
                shutil.rmtree(stale.path, ignore_errors=True)
        log.info("saved sharded checkpoint %s (%d ranks)", final, world)
    _max_over_ranks(0)  # no rank goes on before the checkpoint is in place
    return final


class _OtherRankFailed(Exception):
    """Stands for a failure on another rank."""


def _together(*steps: tuple[bool, Any]) -> BaseException | None:
    """Run ``(here, fn)`` steps in order, ``fn`` on the ranks where ``here``; after each, the ranks agree
    whether any failed, and stop together. Returns this rank's exception (or a stand-in), else None."""
    for here, fn in steps:
        failure: BaseException | None = None
        if here:
            try:
                fn()
            except BaseException as exc:  # re-raised by the caller once every rank knows
                failure = exc
        if _max_over_ranks(int(failure is not None)):
            return failure or _OtherRankFailed()
    return None


def _make_empty_dir(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir()


def _write_shards(
    tmp: Path,
    step: int,
    modules: dict[str, tuple[torch.nn.Module, torch.optim.Optimizer]],
    tokenizer: Any,
    trainer_state: dict[str, Any],
    rank_state: dict[str, Any],
    rank: int,
) -> None:
    """Every rank's part of a save: its DCP shards and its own state; rank 0 also the shared files."""
    state = _dcp_state(modules)
    with _single_process_quiet():
        dcp.save(state, checkpoint_id=str(tmp / DCP_DIR), no_dist=not _grouped())
    _write_state(tmp, f"rank_{rank:05d}", {**rank_state, "rng": capture_rng()})
    if rank == 0:
        modules["model"][0].config.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        _write_state(tmp, Path(STATE_FILE).stem, {**trainer_state, "step": step})
    _fsync_dir(tmp)
    _fsync_dir(tmp / DCP_DIR)


def _optim_key(name: str) -> str:
    """The DCP key of a module's optimizer state: ``optim`` for the policy (``model``), else ``NAME_optim``.

    >>> _optim_key("model"), _optim_key("critic")
    ('optim', 'critic_optim')
    """
    return "optim" if name == "model" else f"{name}_optim"


def _dcp_state(modules: dict[str, tuple[torch.nn.Module, torch.optim.Optimizer]]) -> dict[str, Any]:
    """What DCP saves and loads: each module's state dict under its name, its optimizer's beside it."""
    state: dict[str, Any] = {}
    for name, (module, optimizer) in modules.items():
        state[name], state[_optim_key(name)] = get_state_dict(module, optimizer)
    return state


def _write_state(directory: Path, stem: str, state: dict[str, Any]) -> None:
    """``stem.json`` + ``stem.safetensors`` in the trainer state's format (see ``r1zero.train.checkpoint``)."""
    tensors: dict[str, torch.Tensor] = {}
    encoded = _encode(state, "", tensors, set())
    save_file(tensors, str(directory / f"{stem}.safetensors"))
    document = {"format": _STATE_FORMAT, "version": 1, "state": encoded}
    (directory / f"{stem}.json").write_text(json.dumps(document, separators=(",", ":")), encoding="utf-8")


def _write_manifest(tmp: Path, step: int, world: int) -> None:
    """The manifest, last: the step, the world size and every file's size (what ``sharded_problem`` checks)."""
    files = {str(p.relative_to(tmp)): p.stat().st_size for p in sorted(tmp.rglob("*")) if p.is_file()}
    manifest = {"format": FORMAT, "version": VERSION, "step": step, "world_size": world, "files": files}
    (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    _fsync_dir(tmp)


def _move_into_place(tmp: Path, final: Path, root: Path, step: int) -> None:
    if final.exists():  # re-saving the same step (after a resume): move the old one aside first
        old = root / f".old_step_{step:06d}_{os.getpid()}"
        final.rename(old)
        tmp.rename(final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        tmp.rename(final)
    _fsync_dir(root)


def _raise_save_failure(failure: BaseException, run_dir: Path, step: int, root: Path) -> None:
    where = f"the step {step} checkpoint of run directory {str(run_dir)!r}"
    if _disk_full(failure):
        raise CheckpointError(
            f"cannot save {where}: no space left on the device ({_free_space(root)} free); "
            "the previous checkpoint is intact"
        ) from None
    if isinstance(failure, _OtherRankFailed):
        raise CheckpointError(f"cannot save {where}: another rank failed; the previous checkpoint is intact")
    raise failure


# ---------------------------------------------------------------------------------------------- load
def sharded_problem(path: Path) -> str | None:
    """What makes a sharded checkpoint unusable (manifest missing or not r1zero's, a listed file missing or
    of another size), or None when it looks complete."""
    return manifest_problem(path, (STATE_FILE, TENSORS_FILE, f"{DCP_DIR}/.metadata"))


def _read_manifest(path: Path) -> dict[str, Any]:
    try:
        return read_manifest(path)
    except ManifestError as exc:
        raise CheckpointError(str(exc)) from None


def _checked_manifest(path: Path) -> dict[str, Any]:
    """The manifest of a checkpoint that passes ``sharded_problem``; else a one-line ``CheckpointError``."""
    problem = sharded_problem(path)
    if problem is not None:
        raise CheckpointError(f"checkpoint {str(path)!r} cannot be loaded: {problem}")
    return _read_manifest(path)


def load_sharded_checkpoint(
    checkpoint: Checkpoint,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    extra: dict[str, tuple[torch.nn.Module, torch.optim.Optimizer]] | None = None,
) -> dict[str, Any]:
    """Load the model's and optimizer's shards in place (every rank, any world size), and ``extra``'s as
    saved, and return the trainer state: the shared one with this rank's ``sampler`` and ``rng``
    (``source_rank``) merged in.

    The model may be sharded on any number of ranks or be a plain module (each rank then loads all of it);
    DCP reshards. A different world size is logged: what then stays identical is said there.
    """
    modules = {"model": (model, optimizer), **(extra or {})}
    rank, world = _rank_world()
    manifest = _checked_manifest(checkpoint.path)
    saved_world = manifest["world_size"]
    if saved_world != world and rank == 0:
        log.warning(
            "resuming a checkpoint saved by %d ranks on %d: the model and optimizer state are resharded "
            "exactly; each rank r takes saved rank r's sampler and RNG state (rank 0's past %d ranks), "
            "so the run goes on from the same weights but not bitwise as it would have on %d ranks",
            saved_world,
            world,
            saved_world,
            saved_world,
        )
    target = _dcp_state(modules)
    reader = SafeFileSystemReader(checkpoint.path / DCP_DIR)
    metadata = reader.read_metadata()  # a refused .metadata is one line here, not inside DCP's collectives
    saved = {key.split(".", 1)[0] for key in metadata.state_dict_metadata}
    if set(target) - saved:
        raise CheckpointError(
            f"checkpoint {str(checkpoint.path)!r} holds {sorted(saved)}; this run needs {sorted(target)}"
        )
    with _single_process_quiet():
        dcp.load(target, storage_reader=reader, no_dist=not _grouped())
    for name, (module, optim) in modules.items():
        set_state_dict(
            module, optim, model_state_dict=target[name], optim_state_dict=target[_optim_key(name)]
        )
    shared = _read_state(checkpoint.path / STATE_FILE, checkpoint.path / TENSORS_FILE)
    if shared.get("step") != checkpoint.step:
        raise CheckpointError(
            f"checkpoint state {str(checkpoint.path / STATE_FILE)!r} is corrupt: step {shared.get('step')!r} "
            f"does not match the directory name (step {checkpoint.step})"
        )
    stem = f"rank_{source_rank(rank, saved_world):05d}"
    own = _read_rank_state(checkpoint.path / f"{stem}.json", checkpoint.path / f"{stem}.safetensors")
    return {**shared, **own}


def _read_rank_state(path: Path, tensors_path: Path) -> dict[str, Any]:
    """A ``rank_*.json`` (the trainer state's format) with its sampler and RNG states."""
    if not path.is_file():
        raise CheckpointError(f"rank state {str(path)!r} is missing")
    state = _read_state(path, tensors_path)
    for key in ("sampler", "rng"):
        if key not in state:
            raise CheckpointError(f"rank state {str(path)!r} is corrupt: no {key!r}")
    return state


def read_model_state_dict(checkpoint_dir: Path) -> dict[str, torch.Tensor]:
    """The whole policy's weights of a sharded checkpoint, in one process without a process group
    (``dcp.load(..., no_dist=True)``), keyed by the model's parameter names."""
    _checked_manifest(Path(checkpoint_dir))
    reader = SafeFileSystemReader(Path(checkpoint_dir) / DCP_DIR)
    metadata = reader.read_metadata()
    state: dict[str, torch.Tensor] = {}
    for key, entry in metadata.state_dict_metadata.items():
        if key.startswith(_MODEL_PREFIX) and isinstance(entry, TensorStorageMetadata):
            state[key[len(_MODEL_PREFIX) :]] = torch.empty(entry.size, dtype=entry.properties.dtype)
    with _single_process_quiet():
        dcp.load({"model": state}, storage_reader=reader, no_dist=True)
    return state


# ------------------------------------------------------------------------- DCP metadata without pickle's reach
#: what DCP's ``.metadata`` pickle is built from (torch 2.x FileSystemWriter); nothing else is resolved
_METADATA_CLASSES = {
    ("torch.distributed.checkpoint.metadata", name)
    for name in (
        "Metadata",
        "MetadataIndex",
        "StorageMeta",
        "TensorProperties",
        "TensorStorageMetadata",
        "BytesStorageMetadata",
        "ChunkStorageMetadata",
        "_MEM_FORMAT_ENCODING",
    )
} | {
    ("torch.distributed.checkpoint.filesystem", "_StorageInfo"),
    ("torch", "Size"),
    ("torch.serialization", "_get_layout"),
    ("pathlib", "PosixPath"),
    ("pathlib", "PurePosixPath"),
    ("pathlib", "WindowsPath"),
    ("pathlib", "PureWindowsPath"),
    ("collections", "OrderedDict"),
}


class _MetadataUnpickler(pickle.Unpickler):
    """Unpickles DCP metadata and refuses any other global (a pickle naming ``os.system`` fails here)."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _METADATA_CLASSES:
            return super().find_class(module, name)
        if module == "torch" and isinstance(getattr(torch, name, None), torch.dtype):
            return getattr(torch, name)
        raise pickle.UnpicklingError(f"DCP metadata names {module}.{name}, which is not a metadata type")


class SafeFileSystemReader(dcp.FileSystemReader):
    """DCP's file reader whose ``read_metadata`` uses ``_MetadataUnpickler`` instead of ``pickle.load``."""

    def read_metadata(self, *args: Any, **kwargs: Any) -> Metadata:
        path = Path(self._get_metadata_path(kwargs.get("rank")))
        try:
            with open(path, "rb") as handle:
                metadata = _MetadataUnpickler(handle).load()
        except (pickle.UnpicklingError, EOFError, AttributeError, ValueError, TypeError) as exc:
            raise CheckpointError(f"DCP metadata {str(path)!r} cannot be loaded safely ({exc})") from None
        if not isinstance(metadata, Metadata):
            raise CheckpointError(f"DCP metadata {str(path)!r} is a {type(metadata).__name__}, not Metadata")
        from torch.distributed.checkpoint.metadata import StorageMeta

        if getattr(metadata, "storage_meta", None) is None:
            metadata.storage_meta = StorageMeta()
        metadata.storage_meta.load_id = self.load_id
        return metadata
