"""Load and save policies: any Hugging Face causal LM, plus the packaged ``tiny-base``.

Every checkpoint r1zero writes is plain Hugging Face format (safetensors + config + tokenizer), so
``AutoModelForCausalLM.from_pretrained(dir)`` and vLLM load it unchanged.
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import logging
import os
import shutil
import tempfile
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

__all__ = [
    "DTYPES",
    "TINY_BASE",
    "LoraSpec",
    "load_policy",
    "load_with_new_head",
    "own_storage",
    "resolve_model_path",
    "save_policy",
]

logger = logging.getLogger(__name__)

#: The name that resolves to the checkpoint shipped inside the package.
TINY_BASE = "tiny-base"
DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
}


@dataclasses.dataclass(frozen=True)
class LoraSpec:
    """A LoRA adapter (``peft.LoraConfig``) to train instead of the full weights."""

    r: int = 16
    """Adapter rank."""
    alpha: int = 32
    """Scaling numerator (``lora_alpha``)."""
    dropout: float = 0.0
    """Dropout on the adapter input."""
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")
    """Names of the linear layers that get adapters."""


def resolve_model_path(name_or_path: str) -> str:
    """``"tiny-base"`` -> the packaged checkpoint directory; an existing directory -> itself; else a hub name.

    A name that can only be a local path (``./``, ``../``, ``/`` or ``~`` first) must exist.

    >>> resolve_model_path("Qwen/Qwen2.5-0.5B")
    'Qwen/Qwen2.5-0.5B'
    >>> resolve_model_path("./runs/no-such-base")
    Traceback (most recent call last):
    FileNotFoundError: model directory './runs/no-such-base' does not exist
    """
    if name_or_path == TINY_BASE:
        path = Path(str(importlib.resources.files("r1zero") / "assets" / TINY_BASE))
        if not (path / "config.json").is_file():
            raise FileNotFoundError(
                f"the packaged {TINY_BASE} checkpoint is missing at {path}; rebuild it with "
                f"'r1zero pretrain --preset {TINY_BASE}' or reinstall r1zero"
            )
        return str(path)
    if name_or_path.startswith(("./", "../", "/", "~")) and not Path(name_or_path).expanduser().is_dir():
        raise FileNotFoundError(f"model directory {name_or_path!r} does not exist")
    return name_or_path


def load_with_new_head(auto_class: type, path: str, **kwargs) -> torch.nn.Module:
    """``auto_class.from_pretrained(path, **kwargs)`` for a base model that gets a new head (a critic's or
    a reward model's scalar head), without transformers' "newly initialized" report: it is expected here.
    """
    import transformers

    verbosity = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()
    try:
        return own_storage(auto_class.from_pretrained(path, **kwargs))
    finally:
        transformers.logging.set_verbosity(verbosity)


def own_storage(model: torch.nn.Module) -> torch.nn.Module:
    """Give every parameter and buffer of ``model`` its own freshly allocated (64-byte aligned) storage.

    ``from_pretrained`` can leave CPU tensors at whatever offset the safetensors file put them; BLAS
    kernels then take other code paths, so the same weights loaded from two files computed logits that
    differed in the last bit, and a resumed run drifted from an uninterrupted one. Tied weights stay
    tied (each shared ``Parameter`` is re-allocated once). Returns ``model``.
    """
    with torch.no_grad():
        for tensor in [*model.parameters(), *model.buffers()]:
            if tensor.device.type == "cpu":
                tensor.data = tensor.data.clone(memory_format=torch.contiguous_format)
    return model


def load_policy(
    name_or_path: str,
    *,
    dtype: str = "float32",
    device: str = "cpu",
    gradient_checkpointing: bool = False,
    lora: LoraSpec | None = None,
) -> tuple[torch.nn.Module, object]:
    """Load a causal LM and its tokenizer (local directory, hub name, or ``"tiny-base"``).

    Args:
        name_or_path: a directory written by ``save_pretrained``/``save_policy``, a hub name, or "tiny-base".
        dtype: one of ``DTYPES``.
        device: torch device string ("cpu", "cuda", "cuda:1").
        gradient_checkpointing: recompute activations in backward (less memory, ~30% slower).
        lora: wrap the model in a ``peft`` LoRA adapter (needs ``pip install r1zero[lora]``).

    Returns:
        ``(model, tokenizer)``; the tokenizer pads on the left (for generation) and has a pad token.
    """
    if dtype not in DTYPES:
        raise ValueError(f"dtype={dtype!r} is not supported; valid: {sorted(DTYPES)}")
    path = resolve_model_path(name_or_path)
    is_local = os.path.isdir(path)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=DTYPES[dtype])
    except OSError as exc:
        where = "the directory" if is_local else "the hub (offline: set HF_HUB_OFFLINE=0 and check network)"
        raise OSError(f"could not load model {name_or_path!r} from {where}: {exc}") from exc
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    own_storage(model).to(device)
    if gradient_checkpointing:
        _enable_checkpointing(model)
    if lora is not None:
        model = _wrap_lora(model, lora)
    logger.info("loaded %s (%s, %s): %.2fM parameters", name_or_path, dtype, device, _millions(model))
    return model, tokenizer


def _enable_checkpointing(model: torch.nn.Module) -> None:
    """Activation checkpointing under its transformers>=5.2x name, or the older one."""
    kwargs = {"use_reentrant": False}
    if hasattr(model, "activation_checkpointing_enable"):
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
    model.config.use_cache = False


def _wrap_lora(model: torch.nn.Module, lora: LoraSpec) -> torch.nn.Module:
    try:
        import peft
    except ImportError as exc:
        raise ImportError("LoRA needs peft: pip install 'r1zero[lora]'") from exc
    config = peft.LoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=list(lora.target_modules),
        task_type="CAUSAL_LM",
    )
    return peft.get_peft_model(model, config)


def _millions(model: torch.nn.Module) -> float:
    return sum(p.numel() for p in model.parameters()) / 1e6


def save_policy(model: torch.nn.Module, tokenizer, directory: str | os.PathLike) -> Path:
    """Write ``model`` and ``tokenizer`` in Hugging Face format (safetensors), atomically.

    Files go to a temporary sibling directory first, which then replaces ``directory`` by rename, so a
    crash never leaves a half-written checkpoint. A LoRA model is merged into full weights first.

    Returns:
        The checkpoint directory.
    """
    target = Path(directory)
    target.parent.mkdir(parents=True, exist_ok=True)
    if hasattr(model, "merge_and_unload"):  # peft: write plain weights every loader understands
        import copy

        model = copy.deepcopy(model).merge_and_unload()
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        if target.exists():
            old = target.with_name(f".{target.name}.old-{os.getpid()}")
            os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old)
        else:
            os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target
