"""``r1zero plan``: will a preset fit? Per-GPU memory of its training step, from the model's shape.

    r1zero plan --preset dr-grpo --gpus 8 --gpu-mem 80
    r1zero plan --preset dr-grpo --model qwen2.5-math-1.5b --gpus 1 --gpu-mem 80 --model.sharding fsdp

``--model`` takes a shipped shape name, a local model directory or a ``config.json`` (default: the
preset's ``model.name``, when a shape of that name ships); ``--section.field value`` overrides the
preset as ``r1zero train`` does. Nothing is downloaded and no GPU is needed.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from typing import Any

from r1zero.train.plan import (
    GIB,
    MemoryPlan,
    ModelShape,
    PlanInputs,
    inputs_from_config,
    load_shape,
    plan_memory,
    shipped_shapes,
)

__all__ = ["default_logits_chunk", "format_plan", "main", "remedies"]


def default_logits_chunk(rows: int, completion_len: int, vocab_size: int) -> tuple[int, str]:
    """Positions per log-prob chunk the learner would use (0 = one piece) and where that comes from.

    >>> default_logits_chunk(4, 3000, 152_064)[0]
    27
    """
    try:
        from r1zero.train.logprobs import chunk_positions
    except ImportError:  # a learner without chunked log-probs
        return 1024, "assumed: this version's learner does not chunk"
    chunk = chunk_positions(rows, completion_len, vocab_size)
    return (chunk or 0), "as r1zero.train.logprobs.chunk_positions chooses"


def remedies(shape: ModelShape, inputs: PlanInputs) -> list[tuple[str, MemoryPlan]]:
    """Changes that would make a plan fit, each with its plan: the single changes that fit on their own
    and the fewest GPUs (under FSDP) that would; if none does, the changes applied one after another
    until the plan fits (or they run out).

    >>> [text for text, _ in remedies(load_shape("qwen2.5-math-1.5b"), PlanInputs(gpus=1, gpu_mem_gib=24))]
    ['--model.sharding fsdp --model.cpu_offload true', '2 GPUs with --model.sharding fsdp']
    """
    steps: list[tuple[dict[str, str], dict[str, Any]]] = []
    if inputs.sharding != "fsdp":
        steps.append(({"--model.sharding": "fsdp"}, {"sharding": "fsdp"}))
    if inputs.dtype != "float32" or inputs.compute_dtype == "float32":
        # FSDP's mixed precision: float32 master weights and AdamW state, bf16 compute (verl's setup)
        options = {
            "--model.sharding": "fsdp",
            "--model.dtype": "float32",
            "--model.compute_dtype": "bfloat16",
        }
        steps.append((options, {"sharding": "fsdp", "dtype": "float32", "compute_dtype": "bfloat16"}))
    if not inputs.checkpointing:
        steps.append(({"--model.gradient_checkpointing": "true"}, {"checkpointing": True}))
    if not inputs.cpu_offload:
        steps.append(
            (
                {"--model.sharding": "fsdp", "--model.cpu_offload": "true"},
                {"sharding": "fsdp", "cpu_offload": True},
            )
        )
    if inputs.micro_batch > 1:
        steps.append(({"--algo.micro_batch_size": "1"}, {"micro_batch": 1}))
    found = []
    for options, change in steps:
        plan = plan_memory(shape, replace(inputs, **change))
        if plan.fits:
            found.append((_options_text(options), plan))
    more = [n for n in (2, 4, 8, 16, 32, 64) if n > inputs.gpus]
    if _fits(shape, inputs, sharding="fsdp"):
        more = []  # sharding over the GPUs there are is enough
    for gpus in more:
        plan = plan_memory(shape, replace(inputs, gpus=gpus, sharding="fsdp"))
        if plan.fits:
            found.append((f"{gpus} GPUs with --model.sharding fsdp", plan))
            break
    if found:
        return found
    combined, options = inputs, {}
    for step_options, change in steps:
        combined, options = replace(combined, **change), {**options, **step_options}
        plan = plan_memory(shape, combined)
        if plan.fits:
            return [(_options_text(options), plan)]
    return []


def _fits(shape: ModelShape, inputs: PlanInputs, **change: Any) -> bool:
    return plan_memory(shape, replace(inputs, **change)).fits


def _options_text(options: dict[str, str]) -> str:
    return " ".join(f"{key} {value}" for key, value in options.items())


def _count(n: int) -> str:
    return f"{n / 1e9:.2f}B" if n >= 1e9 else f"{n / 1e6:.2f}M"


def _gib(n: int) -> str:
    return f"{n / GIB:8.2f}"


def _copy_note(inputs: PlanInputs) -> str:
    if inputs.sharding != "fsdp":
        return "none: the engine reads the learner's weights"
    if inputs.rollout_backend == "vllm":
        return f"{inputs.compute_dtype}, unsharded, in host memory (vLLM holds its own)"
    return f"{inputs.compute_dtype}, unsharded, for the engine"


def format_plan(shape: ModelShape, inputs: PlanInputs, plan: MemoryPlan, title: str = "") -> str:
    """The plan as a plain-text table (GiB per GPU), its verdict and, when it does not fit, remedies."""
    i, fsdp = inputs, inputs.sharding == "fsdp"
    where = f", 1/{i.gpus} per GPU (fsdp)" if fsdp else ", full copy per GPU"
    where = ", in host memory (cpu_offload)" if fsdp and i.cpu_offload else where
    ckpt = "on" if i.checkpointing else "off"
    chunk = f"{i.logits_chunk} positions" if i.logits_chunk else "off (whole completion)"
    lines = [
        title or f"model {shape.name}",
        f"  {_count(shape.num_params)} parameters ({shape.num_layers} layers, hidden {shape.hidden_size}, "
        f"vocab {shape.vocab_size}{', tied' if shape.tied_embeddings else ''}); {i.gpus} GPU(s) x {i.gpu_mem_gib:g} GiB",
        f"  micro batch {i.micro_batch} rows x {i.seq_len} tokens ({i.prompt_len} prompt + {i.completion_len} new); "
        f"weights {i.dtype}, compute {i.compute_dtype}; activation checkpointing {ckpt}; log-prob chunk {chunk}",
        "",
        f"  {'component':<44}{'GiB/GPU':>8}  note",
    ]
    rows = [
        ("weights", plan.weights, f"{i.dtype}{where}"),
        ("gradients", plan.gradients, f"{i.dtype}{where}"),
        ("optimizer (AdamW, 2 moments)", plan.optimizer, f"2 x {i.dtype}{where}"),
        (
            "gathered compute copies (FSDP2)",
            plan.gathered,
            f"{i.compute_dtype} root + 2 layers, a layer's gradient to reduce"
            if fsdp
            else "none: computes on the weights",
        ),
        (f"activations, checkpointing {ckpt}", plan.activations, f"{i.compute_dtype}, one micro batch"),
        (
            f"  (activations, checkpointing {'off' if i.checkpointing else 'on'})",
            plan.activations_other,
            "for comparison, not in the total",
        ),
        (
            "logits / log-softmax",
            plan.logits,
            f"[{i.micro_batch}, positions, {shape.vocab_size}] or LM-head grads",
        ),
        ("reference model", plan.reference, "beta > 0: weights only" if i.reference else "beta = 0: none"),
        ("critic (PPO)", plan.critic, "weights, gradients, AdamW" if i.critic else "none"),
        ("rollout weight copy", plan.rollout_copy, _copy_note(i)),
        (
            "vLLM (rollout phase only)",
            plan.vllm,
            f"gpu_memory_utilization {i.vllm_share:g}"
            if plan.vllm
            else f"backend {i.rollout_backend}: KV cache not counted",
        ),
    ]
    lines += [f"  {name:<44}{_gib(n)}  {note}" for name, n, note in rows]
    lines += [
        f"  {'update phase (learner, vLLM asleep)':<44}{_gib(plan.update_peak)}",
        f"  {'rollout phase (persistent + vLLM)':<44}{_gib(plan.rollout_peak)}",
        f"  {'peak':<44}{_gib(plan.peak)}  {100 * plan.free_fraction:.0f}% of {i.gpu_mem_gib:g} GiB free",
        "",
    ]
    verdict = "fits" if plan.fits else "does NOT fit"
    lines.append(f"  {verdict} with {100 * i.headroom:.0f}% headroom")
    if not plan.fits:
        found = remedies(shape, inputs)
        lines += [f"    try {text}: peak {plan.peak / GIB:.1f} GiB" for text, plan in found]
        if not found:
            lines.append(
                "    no single change or combination here fits: a smaller model or GPUs with more memory"
            )
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="r1zero plan",
        description="Per-GPU memory of a training preset (weights, gradients, AdamW, activations, logits, "
        "reference, critic, vLLM) and whether it fits. Other --section.field options override the preset.",
        allow_abbrev=False,
    )
    parser.add_argument("--preset", default="cpu-demo", help="training preset (default cpu-demo)")
    parser.add_argument(
        "--model",
        default="",
        help=f"model shape: {', '.join(shipped_shapes())}, tiny-base, a model directory or a config.json "
        "(default: the preset's model)",
    )
    parser.add_argument("--gpus", type=int, default=1, help="GPUs (data-parallel ranks), default 1")
    parser.add_argument("--gpu-mem", type=float, default=80.0, help="memory per GPU in GiB, default 80")
    parser.add_argument("--prompt-tokens", type=int, default=512, help="prompt tokens per row, default 512")
    parser.add_argument(
        "--logits-chunk",
        type=int,
        default=None,
        help="positions per log-prob chunk (0 = none; default: the learner's)",
    )
    parser.add_argument(
        "--headroom", type=float, default=0.1, help="share of the GPU to keep free, default 0.1"
    )
    return parser


def main(argv: list[str]) -> int:
    from r1zero.train.config import apply_overrides, validate
    from r1zero.train.presets import get_preset

    args, overrides = _parser().parse_known_args(argv)
    if args.gpus < 1 or args.gpu_mem <= 0 or args.prompt_tokens < 1 or not 0 <= args.headroom < 1:
        raise ValueError(
            f"--gpus must be >= 1, --gpu-mem > 0, --prompt-tokens >= 1 and --headroom in [0, 1); got "
            f"{args.gpus}, {args.gpu_mem}, {args.prompt_tokens}, {args.headroom}"
        )
    config = validate(apply_overrides(get_preset(args.preset), overrides))
    shape = load_shape(args.model or config.model.name)
    chunk, source = args.logits_chunk, "given"
    if chunk is None:
        chunk, source = default_logits_chunk(
            config.algo.micro_batch_size, config.rollout.max_new_tokens, shape.vocab_size
        )
    inputs = inputs_from_config(
        config,
        args.gpus,
        args.gpu_mem,
        prompt_len=args.prompt_tokens,
        logits_chunk=chunk,
        headroom=args.headroom,
    )
    title = f"r1zero plan --preset {args.preset}: model {shape.name} (log-prob chunk {source})"
    print(format_plan(shape, inputs, plan_memory(shape, inputs), title=title))
    return 0
