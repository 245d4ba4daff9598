"""Will it fit? Per-GPU memory of a training config, from the model's shape alone (no weights, no GPU).

``ModelShape`` reads a Hugging Face ``config.json`` (Llama/Qwen2-style decoders) and counts its
parameters; ``plan_memory`` adds up what one GPU holds in each phase of a step:

- **update** (the learner's forward/backward and AdamW step): weights, gradients and AdamW's two
  moments (all in ``model.dtype``, divided by the GPU count under ``sharding fsdp``, moved to host
  memory by ``cpu_offload``), FSDP2's gathered working copies, the saved activations of one
  micro-batch, the log-prob buffers (or the LM head's weight gradients, when larger), the reference
  model (``beta > 0``), the PPO critic (weights, gradients, AdamW), the unsharded copy a sharded
  learner's ``hf``/``fast`` engine generates from (vLLM's is in host memory); vLLM sleeps (level 1:
  weights to host, KV cache freed), so its share is not counted here.
- **rollout**: everything persistent (activations gone, gradients kept: they are freed only at the
  next update's ``zero_grad``) plus vLLM's ``rollout.gpu_memory_utilization`` of the GPU.

The activation count follows what autograd saves in transformers' eager Llama/Qwen2 layer (SDPA
attention, padded rows, so a ``[rows, 1, S, S]`` mask in the compute dtype reaches the kernel), per
token and layer: both RMSNorms' float32 input and ``rsqrt`` plus two compute-dtype copies; the
attention's rotated queries, keys and values (repeated to every query head), its output and float32
log-sum-exp; the SwiGLU's gate, SiLU, up and product. ``bench/plan_check.py`` compares every component
with a measured update on CPU. Not counted: the CUDA context, NCCL buffers, allocator fragmentation and
vLLM's CUDA graphs (what the headroom is for).

>>> shape = ModelShape(hidden_size=64, num_layers=2, num_heads=4, num_kv_heads=2, intermediate_size=128,
...                    vocab_size=100, tied_embeddings=True)
>>> shape.num_params
80448
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "DTYPE_BYTES",
    "GIB",
    "SHAPES_DIR",
    "MemoryPlan",
    "ModelShape",
    "PlanInputs",
    "activation_bytes",
    "inputs_from_config",
    "load_shape",
    "logits_bytes",
    "plan_memory",
    "shipped_shapes",
]

GIB = 1024**3
DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}
#: model shapes shipped with the package (``config.json`` files of public models, no weights)
SHAPES_DIR = Path(__file__).resolve().parent.parent / "assets" / "model_shapes"


@dataclass(frozen=True)
class ModelShape:
    """The sizes of a Llama/Qwen2-style decoder that memory depends on.

    Attributes:
        hidden_size: Model width ``H``.
        num_layers: Decoder layers ``L``.
        num_heads: Query heads.
        num_kv_heads: Key/value heads (grouped-query attention when fewer than ``num_heads``).
        intermediate_size: SwiGLU width ``I``.
        vocab_size: ``V``, rows of the embedding and the LM head.
        tied_embeddings: The LM head is the embedding matrix (one copy).
        head_dim: Per-head width; 0 = ``hidden_size // num_heads``.
        qkv_bias: Biases on the query/key/value projections (Qwen2: yes; Llama: ``attention_bias``).
        out_bias: A bias on the attention's output projection (Llama: ``attention_bias``; Qwen2: no).
        mlp_bias: Biases on the SwiGLU's three projections (Llama: ``mlp_bias``).
        name: Where the shape came from (for display).
    """

    hidden_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    intermediate_size: int
    vocab_size: int
    tied_embeddings: bool
    head_dim: int = 0
    qkv_bias: bool = False
    out_bias: bool = False
    mlp_bias: bool = False
    name: str = ""

    @property
    def dim_per_head(self) -> int:
        return self.head_dim or self.hidden_size // self.num_heads

    @property
    def q_dim(self) -> int:
        return self.num_heads * self.dim_per_head

    @property
    def kv_dim(self) -> int:
        return self.num_kv_heads * self.dim_per_head

    @property
    def layer_params(self) -> int:
        """Parameters of one decoder layer: attention, SwiGLU MLP and its two RMSNorm weights."""
        h = self.hidden_size
        attention = h * self.q_dim + 2 * h * self.kv_dim + self.q_dim * h
        bias = (self.q_dim + 2 * self.kv_dim if self.qkv_bias else 0) + (h if self.out_bias else 0)
        bias += 2 * self.intermediate_size + h if self.mlp_bias else 0
        return attention + bias + 3 * h * self.intermediate_size + 2 * h

    @property
    def root_params(self) -> int:
        """Parameters outside the layers: the embedding, the LM head (unless tied) and the final norm."""
        matrices = 1 if self.tied_embeddings else 2
        return matrices * self.vocab_size * self.hidden_size + self.hidden_size

    @property
    def num_params(self) -> int:
        return self.num_layers * self.layer_params + self.root_params

    @property
    def critic_params(self) -> int:
        """A critic on this model: the LM head replaced by a one-output value head (weight and bias)."""
        head = 0 if self.tied_embeddings else self.vocab_size * self.hidden_size
        return self.num_params - head + self.hidden_size + 1

    @classmethod
    def from_config(cls, config: Mapping[str, Any], name: str = "") -> ModelShape:
        """Read a Hugging Face ``config.json`` dict; a missing size is an error naming it.

        >>> ModelShape.from_config({"hidden_size": 8, "num_hidden_layers": 1, "num_attention_heads": 2,
        ...     "intermediate_size": 16, "vocab_size": 10, "model_type": "qwen2"}).qkv_bias
        True
        """
        config = {**config, **config.get("text_config", {})}
        required = (
            "hidden_size",
            "num_hidden_layers",
            "num_attention_heads",
            "intermediate_size",
            "vocab_size",
        )
        missing = [key for key in required if not isinstance(config.get(key), int)]
        if missing:
            raise ValueError(
                f"model config {name or ''} lacks integer {', '.join(missing)} (needs {', '.join(required)})"
            )
        qwen2 = config.get("model_type") == "qwen2"  # Qwen2 always has q/k/v biases
        return cls(
            hidden_size=config["hidden_size"],
            num_layers=config["num_hidden_layers"],
            num_heads=config["num_attention_heads"],
            num_kv_heads=config.get("num_key_value_heads") or config["num_attention_heads"],
            intermediate_size=config["intermediate_size"],
            vocab_size=config["vocab_size"],
            tied_embeddings=bool(config.get("tie_word_embeddings", True)),
            head_dim=config.get("head_dim") or 0,
            qkv_bias=qwen2 or bool(config.get("attention_bias", False)),
            out_bias=not qwen2 and bool(config.get("attention_bias", False)),
            mlp_bias=bool(config.get("mlp_bias", False)),
            name=name,
        )


def shipped_shapes() -> list[str]:
    """Names of the model shapes shipped with the package (``--model`` accepts them)."""
    return sorted(p.stem for p in SHAPES_DIR.glob("*.json"))


def load_shape(model: str) -> ModelShape:
    """A model's shape from a shipped name (``qwen2.5-math-7b``, or a hub name ending in one, such as
    ``Qwen/Qwen2.5-Math-7B``), ``tiny-base``, a local model directory, or a ``config.json`` path."""
    path = Path(model)
    if model == "tiny-base":
        path = SHAPES_DIR.parent / "tiny-base"
    elif (SHAPES_DIR / f"{model.rsplit('/', 1)[-1].lower()}.json").is_file() and not path.exists():
        path = SHAPES_DIR / f"{model.rsplit('/', 1)[-1].lower()}.json"
    if path.is_dir():
        path = path / "config.json"
    if not path.is_file():
        raise FileNotFoundError(
            f"no model shape {model!r}: give a shipped name ({', '.join(shipped_shapes())}), "
            "a local model directory or a config.json path"
        )
    name = path.stem if path.parent == SHAPES_DIR else model
    return ModelShape.from_config(json.loads(path.read_text(encoding="utf-8")), name=name)


def activation_bytes(
    shape: ModelShape,
    tokens: int,
    seq_len: int,
    compute_bytes: int,
    checkpointing: bool,
    workspace: bool = True,
) -> int:
    """Bytes autograd keeps for the backward of one micro-batch of ``tokens`` (= rows x ``seq_len``), plus
    the backward's own gradient buffers at its peak.

    Per token and layer: two RMSNorms (float32 input and ``rsqrt``, two compute-dtype copies), attention
    (queries, keys and values at every query head, output: four ``q_dim`` vectors; float32 log-sum-exp
    per head; one mask row of ``seq_len``), SwiGLU (four ``I`` vectors). Outside the layers: the token
    ids, RoPE's cos/sin and the final norm. With activation checkpointing each layer keeps only its
    input, and one layer's activations exist again during its recomputation. The backward through a
    layer holds about ``2 I + H`` gradient values per token on top (``bench/plan_check.py`` measures it).

    >>> shape = ModelShape(hidden_size=8, num_layers=2, num_heads=2, num_kv_heads=1, intermediate_size=16,
    ...                    vocab_size=10, tied_embeddings=True)
    >>> activation_bytes(shape, tokens=1, seq_len=4, compute_bytes=4, checkpointing=False)
    1516
    """
    c, h = compute_bytes, shape.hidden_size
    norm = 4 * h + 4 + 2 * c * h
    attention = 4 * c * shape.q_dim + 4 * shape.num_heads + c * seq_len
    layer = 2 * norm + attention + 4 * c * shape.intermediate_size
    outside = 8 + 2 * c * shape.dim_per_head + norm
    gradients = c * (2 * shape.intermediate_size + h) if workspace else 0
    kept = shape.num_layers * c * h + layer if checkpointing else shape.num_layers * layer
    return tokens * (kept + outside + gradients)


def logits_bytes(
    rows: int,
    completion_len: int,
    seq_len: int,
    vocab_size: int,
    compute_bytes: int,
    chunk: int = 0,
    head_grad_bytes: int = 0,
) -> int:
    """Peak bytes of the log-prob computation: its ``[rows, positions, vocab]`` buffers, or, when larger,
    the gradients of the LM head's weight (``head_grad_bytes``: all copies) beside one float32 buffer.

    Unchunked (``chunk`` 0): the model's logits over the whole sequence in the compute dtype, and over
    the completion the float32 copy (none when computing in float32), the log-softmax saved for the
    backward and the entropy's two temporaries. Chunked (the LM head and log-softmax run ``chunk``
    positions at a time and are recomputed in the backward, ``r1zero.train.logprobs``): the same four
    float32 buffers and compute-dtype logits over ``chunk`` positions only.

    >>> logits_bytes(rows=1, completion_len=3, seq_len=4, vocab_size=10, compute_bytes=4)
    520
    >>> logits_bytes(rows=1, completion_len=3, seq_len=4, vocab_size=10, compute_bytes=2, chunk=2)
    360
    """
    copy = 0 if compute_bytes == 4 else 4  # the float32 copy of lower-precision logits
    if chunk:
        positions = min(chunk, completion_len)
        buffers = rows * vocab_size * positions * (compute_bytes + copy + 12)
    else:
        positions = completion_len
        buffers = rows * vocab_size * (compute_bytes * seq_len + (copy + 12) * completion_len)
    return max(buffers, 4 * rows * positions * vocab_size + head_grad_bytes)


@dataclass(frozen=True)
class PlanInputs:
    """What memory depends on besides the model's shape (``inputs_from_config`` reads a ``TrainConfig``)."""

    gpus: int = 1
    """GPUs (data-parallel ranks) the learner runs on."""
    gpu_mem_gib: float = 80.0
    """Memory of one GPU, GiB."""
    micro_batch: int = 4
    """Rows per forward/backward (``algo.micro_batch_size``)."""
    prompt_len: int = 512
    """Prompt tokens per row (rows are padded to the longest prompt)."""
    completion_len: int = 1024
    """Completion tokens per row (``rollout.max_new_tokens``: the worst case)."""
    dtype: str = "bfloat16"
    """Weights, gradients and AdamW state (``model.dtype``)."""
    compute_dtype: str = "bfloat16"
    """Forward/backward dtype (``model.compute_dtype`` resolved)."""
    sharding: str = "none"
    """``model.sharding``: "none" or "fsdp"."""
    cpu_offload: bool = False
    """``model.cpu_offload``: FSDP2 keeps shards, gradients and AdamW state in host memory."""
    checkpointing: bool = True
    """``model.gradient_checkpointing``."""
    reference: bool = False
    """A frozen reference model is loaded (``algo.beta > 0``)."""
    critic: bool = False
    """A PPO critic is trained beside the policy (``algo.estimator ppo``)."""
    rollout_backend: str = "vllm"
    """``rollout.backend``: vLLM holds its own share; under FSDP the others generate from an unsharded copy
    on the GPU (their KV caches are not counted)."""
    vllm_share: float = 0.5
    """Share of the GPU vLLM takes while it generates (``rollout.gpu_memory_utilization``)."""
    logits_chunk: int = 0
    """Positions per log-prob chunk (0 = the whole completion at once)."""
    headroom: float = 0.1
    """Share of the GPU that must stay free for what the plan does not count."""

    @property
    def seq_len(self) -> int:
        return self.prompt_len + self.completion_len


@dataclass(frozen=True)
class MemoryPlan:
    """Bytes per GPU, by component (``plan_memory``); ``activations_other`` is the activations with
    activation checkpointing switched the other way, for comparison (not part of any total)."""

    weights: int
    gradients: int
    optimizer: int
    gathered: int
    activations: int
    activations_other: int
    logits: int
    reference: int
    critic: int
    rollout_copy: int
    vllm: int
    gpu_bytes: int
    headroom: float

    @property
    def persistent(self) -> int:
        """What stays on the GPU between phases."""
        return (
            self.weights + self.gradients + self.optimizer + self.reference + self.critic + self.rollout_copy
        )

    @property
    def update_peak(self) -> int:
        return self.persistent + self.gathered + self.activations + self.logits

    @property
    def rollout_peak(self) -> int:
        return self.persistent + self.vllm

    @property
    def peak(self) -> int:
        return max(self.update_peak, self.rollout_peak)

    @property
    def free_fraction(self) -> float:
        return 1.0 - self.peak / self.gpu_bytes

    @property
    def fits(self) -> bool:
        """Whether the peak leaves at least ``headroom`` of the GPU free."""
        return self.free_fraction >= self.headroom


def plan_memory(shape: ModelShape, inputs: PlanInputs) -> MemoryPlan:
    """Per-GPU bytes of each component of a training step (see the module docstring for the model).

    >>> shape = load_shape("qwen2.5-math-1.5b")
    >>> plan = plan_memory(shape, PlanInputs(gpus=1, dtype="bfloat16", micro_batch=1, completion_len=512))
    >>> round(plan.weights / GIB, 2), plan.optimizer == 2 * plan.weights
    (2.88, True)
    """
    for key, value in (("dtype", inputs.dtype), ("compute_dtype", inputs.compute_dtype)):
        if value not in DTYPE_BYTES:
            raise ValueError(f"{key} must be one of {', '.join(DTYPE_BYTES)}; got {value!r}")
    if inputs.sharding not in ("none", "fsdp"):
        raise ValueError(f"sharding must be one of none, fsdp; got {inputs.sharding!r}")
    master, compute = DTYPE_BYTES[inputs.dtype], DTYPE_BYTES[inputs.compute_dtype]
    fsdp = inputs.sharding == "fsdp"
    on_gpu = 0 if fsdp and inputs.cpu_offload else 1
    shards = inputs.gpus if fsdp else 1
    per_gpu = (lambda n: on_gpu * -(-n // shards)) if fsdp else (lambda n: n)
    params = shape.num_params
    gathered = 0
    if fsdp:
        reduce = 4 if compute != master else master
        # FSDP2: the root unit (embedding, LM head, final norm) stays gathered from the forward to the end
        # of the backward (its unsharded gradient is the LM head's, counted with the logits); two layers
        # gathered at a time (one prefetched); one layer's gradient cast for its reduce-scatter (float32
        # under mixed precision)
        gathered = compute * (shape.root_params + 2 * shape.layer_params) + reduce * shape.layer_params
    tokens = inputs.micro_batch * inputs.seq_len
    # autograd sums the LM head weight's gradients (in the compute dtype) from several uses (chunks, a tied
    # embedding) in a buffer before accumulating them: the running sum, the next one and their sum
    # (measured); one use: one gradient
    head_grad_copies = 3 if inputs.logits_chunk or shape.tied_embeddings else 1
    critic = 4 * master * per_gpu(shape.critic_params) if inputs.critic else 0  # weights, grads, 2 moments
    return MemoryPlan(
        weights=master * per_gpu(params),
        gradients=master * per_gpu(params),
        optimizer=2 * master * per_gpu(params),
        gathered=gathered,
        activations=activation_bytes(shape, tokens, inputs.seq_len, compute, inputs.checkpointing),
        activations_other=activation_bytes(shape, tokens, inputs.seq_len, compute, not inputs.checkpointing),
        logits=logits_bytes(
            inputs.micro_batch,
            inputs.completion_len,
            inputs.seq_len,
            shape.vocab_size,
            compute,
            inputs.logits_chunk,
            head_grad_bytes=head_grad_copies * compute * shape.vocab_size * shape.hidden_size,
        ),
        reference=master * per_gpu(params) if inputs.reference else 0,
        critic=critic,
        rollout_copy=compute * params if fsdp and inputs.rollout_backend != "vllm" else 0,
        vllm=int(inputs.vllm_share * inputs.gpu_mem_gib * GIB) if inputs.rollout_backend == "vllm" else 0,
        gpu_bytes=int(inputs.gpu_mem_gib * GIB),
        headroom=inputs.headroom,
    )


def inputs_from_config(config: Any, gpus: int, gpu_mem_gib: float, **fields_: Any) -> PlanInputs:
    """``PlanInputs`` of a ``TrainConfig`` on ``gpus`` GPUs of ``gpu_mem_gib`` GiB; ``fields_`` override
    (``prompt_len``, ``logits_chunk``, ``headroom``). Model fields a config lacks take their defaults
    (``sharding`` "none", ``compute_dtype`` = ``dtype``, no offload)."""
    model, rollout, algo = config.model, config.rollout, config.algo
    compute = getattr(model, "compute_dtype", "auto")
    values: dict[str, Any] = {
        "gpus": gpus,
        "gpu_mem_gib": gpu_mem_gib,
        "micro_batch": algo.micro_batch_size,
        "completion_len": rollout.max_new_tokens,
        "dtype": model.dtype,
        "compute_dtype": model.dtype if compute == "auto" else compute,
        "sharding": getattr(model, "sharding", "none"),
        "cpu_offload": bool(getattr(model, "cpu_offload", False)),
        "checkpointing": model.gradient_checkpointing,
        "reference": algo.beta > 0,
        "critic": algo.estimator == "ppo",
        "rollout_backend": rollout.backend,
        "vllm_share": rollout.gpu_memory_utilization,
    }
    return PlanInputs(**{**values, **fields_})
