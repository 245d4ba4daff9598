"""The evaluation config: the option names of ``r1zero train`` wherever they mean the same thing.

``EvalConfig`` has the sections of ``TrainConfig`` that evaluation uses (``model``, ``data``, ``rollout``,
``reward``, ``run``), with the same field names, types and defaults, plus its own top-level fields
(``benchmarks``, ``n``, ``limit``, ...). It is filled by the same machinery (``r1zero.options``): the
defaults, then a run's own settings (``run_dir``), then a config file, then ``--key value`` options.

>>> cfg = eval_config(["--benchmarks", "gsm8k,math500", "--rollout.temperature", "0.6", "--n", "4"])
>>> cfg.benchmarks, cfg.rollout.temperature, cfg.n
(('gsm8k', 'math500'), 0.6, 4)
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any

from r1zero.options import did_you_mean, flatten_config, parse_overrides, read_config_file, update_config

__all__ = [
    "EvalConfig",
    "check_benchmarks",
    "check_names",
    "eval_config",
    "legacy_keys",
    "result_settings",
    "vllm_options",
]

log = logging.getLogger(__name__)


def _choices(*values: str) -> dict:
    return {"choices": values}


@dataclass(frozen=True)
class EvalModelConfig:
    name: str = ""
    """Model to evaluate: a local Hugging Face directory, a hub name, or "tiny-base" (the checkpoint shipped
    in the package); empty with ``run_dir``."""
    dtype: str = field(default="float32", metadata=_choices("float32", "bfloat16", "float16"))
    """Weights dtype."""
    device: str = "auto"
    """"auto" (CUDA when available, else CPU), "cpu", "cuda" or "cuda:N"."""


@dataclass(frozen=True)
class EvalDataConfig:
    template: str = "r1zero"
    """Prompt template name (``r1zero.data.templates``; recorded with every result)."""
    think_prefix: bool = True
    """End the prompt with "<think>" so the completion starts inside the think block."""


@dataclass(frozen=True)
class EvalRolloutConfig:
    backend: str = field(default="auto", metadata=_choices("auto", "hf", "fast", "vllm"))
    """Rollout engine: "hf" (transformers generate), "fast" (the CPU KV-cache sampler), "vllm"; "auto":
    "fast" on CPU for the model types it runs (Llama, Qwen2), else "hf"."""
    temperature: float = 1.0
    """Sampling temperature (0 = greedy; then n is forced to 1)."""
    top_p: float = 1.0
    """Nucleus sampling mass (1.0 = off)."""
    top_k: int = 0
    """Top-k sampling (0 = off)."""
    max_new_tokens: int = 128
    """L_max: the completion length cap (a completion that reaches it counts as truncated)."""
    stop: tuple[str, ...] = ("</answer>",)
    """Stop strings (the completion keeps the stop string)."""
    decode_threads: int = 2
    """fast only: Python threads that each decode their own share of the prompts, on their own seeded RNG
    stream (samples depend on this count, never on the machine)."""
    gpu_memory_utilization: float = 0.9
    """vllm only: share of GPU memory vLLM may take for weights and KV cache (evaluation has no learner
    beside it; on CPU, the share of host RAM)."""
    tensor_parallel: int = 1
    """vllm only: GPUs one engine shards the model over (tensor parallelism; attention heads must divide
    by it)."""
    max_model_len: int = 0
    """vllm only: longest prompt + completion vLLM reserves KV cache for (0 = the model's own context
    length); set it to about the longest prompt plus ``max_new_tokens`` to fit more sequences at once."""


@dataclass(frozen=True)
class EvalRewardConfig:
    workers: int = 1
    """Verifier processes (0 = verify in this process; only for verifiers that cannot hang)."""
    timeout: float = 5.0
    """Wall-clock limit per verification, seconds (a timeout scores as wrong)."""


@dataclass(frozen=True)
class EvalRunConfig:
    out_dir: str = ""
    """Directory for the result file and, per benchmark, the results JSON and per-sample JSONL of
    ``model.name`` (empty: the result file alone goes to ``MODEL_DIR/eval/`` for a writable local model
    directory, else ``./eval_results/<model>/``; with ``run_dir``, everything goes under ``RUN_DIR/eval/``)."""
    save: bool = True
    """Save the result file (``r1zero.eval.results``); false: print only (``out_dir`` still gets its
    per-benchmark files)."""
    seed: int = 0
    """Seed of sampling and of the bootstrap intervals."""
    reflection: str = "r1zero"
    """Reflection keyword preset (see r1zero.eval.behaviour.REFLECTION_PRESETS)."""
    threads: int = 0
    """torch CPU threads (0 = leave torch's default)."""
    progress: bool = True
    """Show a tqdm progress bar per benchmark."""


@dataclass(frozen=True)
class EvalConfig:
    """What to evaluate, and the sampling and scoring settings (recorded with every result)."""

    model: EvalModelConfig = field(default_factory=EvalModelConfig)
    data: EvalDataConfig = field(default_factory=EvalDataConfig)
    rollout: EvalRolloutConfig = field(default_factory=EvalRolloutConfig)
    reward: EvalRewardConfig = field(default_factory=EvalRewardConfig)
    run: EvalRunConfig = field(default_factory=EvalRunConfig)
    benchmarks: tuple[str, ...] = ()
    """Benchmark names (``r1zero.eval.benchmarks``: gsm8k, math500, aime24, amc23, minerva, ...) or task
    generators; comma-separated on the command line."""
    n: int = 16
    """Samples per problem (pass@1 is avg@n)."""
    limit: int = 0
    """Evaluate only the first k problems of each benchmark (0 = all)."""
    batch_size: int = 64
    """Prompts per generate call."""
    data_dir: str = ""
    """Directory with benchmark JSONL files (offline); empty = hub datasets."""
    run_dir: str = ""
    """A training run directory (``--run``): evaluate step 0 (its base model) and every checkpoint, with the
    run's template, think prefix, stop strings and length cap as defaults."""
    force: bool = False
    """Re-run evaluations already in the run's eval.jsonl (otherwise those with the same settings are
    skipped)."""
    description: str = ""
    """What a config file is for (recorded, not used)."""
    compare: str = ""
    """A result file of an earlier ``r1zero eval`` to print this one beside: per benchmark and for the
    average, the difference and whether it lies outside the combined 95% interval."""
    paper_model: str = ""
    """Which model of the suite's ``paper`` block to print beside the results (default: the one named like
    the evaluated model, or the only one)."""

    def validate(self) -> EvalConfig:
        """Check choices and ranges; raise ``ValueError`` naming the key, the value and what is allowed."""
        for section in fields(self):
            values = getattr(self, section.name)
            for f in fields(values) if is_dataclass(values) else ():
                allowed, value = f.metadata.get("choices"), getattr(values, f.name)
                if allowed and value not in allowed:
                    raise ValueError(
                        f"{section.name}.{f.name} must be one of {', '.join(allowed)}; got {value!r}"
                    )
        at_least = {
            "n": (self.n, 1),
            "rollout.max_new_tokens": (self.rollout.max_new_tokens, 1),
            "rollout.decode_threads": (self.rollout.decode_threads, 1),
            "rollout.tensor_parallel": (self.rollout.tensor_parallel, 1),
            "rollout.max_model_len": (self.rollout.max_model_len, 0),
            "batch_size": (self.batch_size, 1),
            "limit": (self.limit, 0),
            "rollout.top_k": (self.rollout.top_k, 0),
            "rollout.temperature": (self.rollout.temperature, 0),
            "reward.workers": (self.reward.workers, 0),
            "run.threads": (self.run.threads, 0),
        }
        for key, (value, low) in at_least.items():
            if value < low:
                raise ValueError(f"{key} must be >= {low}; got {value!r}")
        if not 0 < self.rollout.top_p <= 1:
            raise ValueError(f"rollout.top_p must be in (0, 1]; got {self.rollout.top_p!r}")
        if not 0 < self.rollout.gpu_memory_utilization <= 1:
            raise ValueError(
                f"rollout.gpu_memory_utilization must be in (0, 1]; got {self.rollout.gpu_memory_utilization!r}"
            )
        if self.reward.timeout <= 0:
            raise ValueError(f"reward.timeout must be > 0; got {self.reward.timeout!r}")
        return self


# ---------------------------------------------------------------- building one from argv and files
#: the suite-file block of published figures (``r1zero.eval.paper``), not an option
PAPER_KEY = "paper"
#: the earlier flat ``r1zero eval`` names (flags and suite-file keys) -> the shared names
LEGACY_KEYS = {
    "model": "model.name",
    "device": "model.device",
    "template": "data.template",
    "think_prefix": "data.think_prefix",
    "backend": "rollout.backend",
    "temperature": "rollout.temperature",
    "top_p": "rollout.top_p",
    "max_new_tokens": "rollout.max_new_tokens",
    "stop": "rollout.stop",
    "workers": "reward.workers",
    "verify_timeout": "reward.timeout",
    "out": "run.out_dir",
    "seed": "run.seed",
    "reflection": "run.reflection",
    "threads": "run.threads",
}
#: earlier on/off flags -> the boolean they turn off
LEGACY_FLAGS = {"no_think_prefix": "data.think_prefix", "no_progress": "run.progress"}


def legacy_keys(values: dict[str, Any], warn: bool) -> dict[str, Any]:
    """``values`` with the earlier flat eval names replaced by the shared ones (a warning each if ``warn``).

    >>> legacy_keys({"temperature": "0.6", "no_progress": "true", "n": "4"}, warn=False)
    {'rollout.temperature': '0.6', 'run.progress': 'false', 'n': '4'}
    """
    out: dict[str, Any] = {}
    for key, value in values.items():
        if key in LEGACY_FLAGS:
            new, value = LEGACY_FLAGS[key], "false"
        else:
            new = LEGACY_KEYS.get(key, key)
        if new != key and warn:
            shown = f"--{new} false" if key in LEGACY_FLAGS else f"--{new}"
            log.warning("--%s is deprecated; use %s", key.replace("_", "-"), shown)
        out[new] = value
    return out


def _run_defaults(run_dir: str) -> dict[str, Any]:
    """The template, think prefix, stop strings and length cap a run trained with (its config.json)."""
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        raise ValueError(f"{run_dir!r} is not a run directory: no config.json")
    config = read_config_file(path)
    data, rollout = config.get("data", {}), config.get("rollout", {})
    out = {
        "data.template": data.get("template"),
        "data.think_prefix": data.get("think_prefix"),
        "rollout.stop": rollout.get("stop") or None,
        "rollout.max_new_tokens": rollout.get("max_new_tokens"),
    }
    return {k: v for k, v in out.items() if v is not None}


def find_config_file(spec: str) -> Path:
    """A config file by path, or a suite by name from the repository's ``eval/`` directory."""
    path = Path(spec)
    if not path.exists() and not path.suffix and (Path("eval") / f"{spec}.json").is_file():
        path = Path("eval") / f"{spec}.json"
    return path


def eval_config(argv: list[str], config_file: str | None = None) -> EvalConfig:
    """Defaults < the run's own settings (``run_dir``) < ``config_file`` < ``--key value`` options."""
    file_values: dict[str, Any] = {}
    if config_file:
        path = find_config_file(config_file)
        try:
            data = {k: v for k, v in read_config_file(path).items() if k != PAPER_KEY}  # r1zero.eval.paper
            file_values = legacy_keys(flatten_config(data, EvalConfig), warn=False)
            update_config(EvalConfig(), file_values, prefix="")  # unknown keys and types, named as file keys
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from None
    cli_values = legacy_keys(parse_overrides(argv), warn=True)
    run_dir = cli_values.get("run_dir", file_values.get("run_dir"))
    base = EvalConfig()
    if run_dir:
        base = update_config(base, _run_defaults(str(run_dir)))
    return update_config(base, {**file_values, **cli_values}, check=EvalConfig.validate)


# ---------------------------------------------------------------- names, checked before any work
def check_names(template: str, reflection: str, verifiers: Iterable[tuple[str, str]] = ()) -> None:
    """Look up a template, a reflection preset and ``(key, verifier)`` specs; a miss is a ``ValueError``
    naming the key and the valid names, with a "did you mean" hint."""
    from r1zero.data.templates import available_templates, get_template
    from r1zero.eval.behaviour import REFLECTION_PRESETS
    from r1zero.verifiers import available_verifiers, get_verifier

    try:
        get_template(template)
    except ValueError as exc:
        raise ValueError(f"data.template: {exc}{did_you_mean(template, available_templates())}") from None
    if reflection not in REFLECTION_PRESETS:
        valid = list(REFLECTION_PRESETS)
        hint = did_you_mean(reflection, valid)
        raise ValueError(
            f"run.reflection: unknown reflection preset {reflection!r}{hint}; valid: {', '.join(valid)}"
        )
    for key, spec in verifiers:
        try:
            get_verifier(spec)
        except (ValueError, ImportError) as exc:
            raise ValueError(f"{key}: {exc}{did_you_mean(spec, available_verifiers())}") from None


def check_benchmarks(names: Iterable[str], data_dir: str = "") -> list[tuple[str, str]]:
    """Every benchmark name resolved before anything runs: ``[(name, verifier)]``, names as the benchmarks
    module spells them, less those it cannot ship and that are missing here (``runnable_benchmarks``
    warns); an unknown name is a ValueError naming the valid ones."""
    from r1zero.eval.benchmarks import get_benchmark, runnable_benchmarks

    names = list(names)
    if not names:
        raise ValueError("no benchmarks: give --benchmarks NAME[,NAME...] or a --config file that lists them")
    return [(name, get_benchmark(name).verifier) for name in runnable_benchmarks(names, data_dir or None)]


def vllm_options(cfg: EvalConfig) -> dict[str, Any]:
    """The ``r1zero.rollout.vllm.VLLMEngine`` keywords of an evaluation: dtype, tensor parallel size,
    memory share, context length, seed; no sleeping (no learner needs the memory back).

    >>> options = vllm_options(eval_config(["--model.dtype", "bfloat16", "--rollout.tensor_parallel", "2"]))
    >>> options["dtype"], options["tensor_parallel_size"], options["max_model_len"], options["sleep"]
    ('bfloat16', 2, None, False)
    """
    r = cfg.rollout
    return {
        "dtype": cfg.model.dtype,
        "tensor_parallel_size": r.tensor_parallel,
        "gpu_memory_utilization": r.gpu_memory_utilization,
        "max_model_len": r.max_model_len or None,
        "sleep": False,
        "seed": cfg.run.seed,
    }


def result_settings(cfg: EvalConfig) -> dict[str, Any]:
    """The settings that change a result, flat (recorded with it; equal settings = the same evaluation)."""
    r = cfg.rollout
    return {
        "n": 1 if r.temperature == 0 else cfg.n,
        "temperature": r.temperature,
        "top_p": r.top_p,
        "top_k": r.top_k,
        "max_new_tokens": r.max_new_tokens,
        "stop": list(r.stop),
        "template": cfg.data.template,
        "think_prefix": cfg.data.think_prefix,
        "backend": r.backend,
        "decode_threads": r.decode_threads,
        "dtype": cfg.model.dtype,
        "seed": cfg.run.seed,
        "limit": cfg.limit,
        "batch_size": cfg.batch_size,
        "reflection": cfg.run.reflection,
    }
