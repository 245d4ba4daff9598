"""The training config: frozen dataclasses, one docstring per field, validated, and parsed from argv.

A config is built in layers: a named preset (``presets.py``), then a config file (``--config``: JSON,
YAML or TOML, nested as ``config.json``), then ``--section.field value`` overrides from the command
line, then validation (the parsing is ``r1zero.options``, shared with ``r1zero eval``). The resolved
config is written to the run directory as ``config.json``, which ``--resume`` reads back and
``--config`` accepts. Unknown keys and invalid values are errors that name the valid ones.

>>> cfg = apply_overrides(TrainConfig(), ["--optim.lr", "3e-5", "--rollout.backend=hf"])
>>> cfg.optim.lr, cfg.rollout.backend
(3e-05, 'hf')
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from typing import Any

from r1zero.options import config_help as options_help
from r1zero.options import field_docs as field_docs  # re-exported
from r1zero.options import flatten_config, parse_overrides, update_config

__all__ = [
    "AlgoConfig",
    "CpuConfig",
    "CriticConfig",
    "DataConfig",
    "ModelConfig",
    "OptimConfig",
    "RewardConfig",
    "RolloutConfig",
    "RunConfig",
    "TrainConfig",
    "apply_overrides",
    "config_from_dict",
    "config_help",
    "config_to_dict",
    "resolved_compute_dtype",
    "validate",
]


def _choices(*values: str) -> dict:
    return {"choices": values}


#: ``r1zero.algo.rollout_correction.MODES`` (named here so reading a config imports no torch)
CORRECTION_MODES = ("none", "token_truncate", "token_mask", "sequence_truncate", "sequence_mask")
#: ``r1zero.algo.dispatch.LOSSES`` and the advantage names (here so reading a config imports no torch)
LOSSES = ("grpo", "gspo", "cispo", "sapo", "dual_clip", "clip_cov", "kl_cov")
ADVANTAGES = ("group", "batch", "none", "rloo", "reinforce_pp", "reinforce_pp_baseline")


@dataclass(frozen=True)
class ModelConfig:
    name: str = "tiny-base"
    """Base model: a local Hugging Face directory, a hub name, or "tiny-base" (the checkpoint shipped in the
    package). Never an SFT/instruct model if you want R1-Zero: RL starts from the base."""
    dtype: str = field(default="float32", metadata=_choices("float32", "bfloat16", "float16"))
    """Weights dtype of the learner."""
    device: str = "auto"
    """"auto" (CUDA when available, else CPU), "cpu", "cuda" or "cuda:N"."""
    gradient_checkpointing: bool = False
    """Trade compute for activation memory in the learner's forward/backward (checkpointed layers drop
    a KV cache, so each row then runs its own prompt instead of sharing its group's prompt pass)."""
    sharding: str = field(default="none", metadata=_choices("none", "fsdp"))
    """How the learner's weights live over data-parallel ranks: "none" keeps a full copy per rank and
    sums the gradients with an all-reduce (float32 on the wire); "fsdp" shards weights, gradients and
    AdamW state over the ranks with torch's FSDP2 (``fully_shard``, per decoder layer), the reference
    model and PPO critic too. "fsdp" also runs on one process (no torchrun: a 1-rank group), which is
    how ``compute_dtype`` and ``cpu_offload`` are had on one GPU. Under "fsdp" each row runs its own
    prompt in the update (no shared prompt pass) and the CPU speed code is off for the sharded models."""
    compute_dtype: str = field(default="auto", metadata=_choices("auto", "float32", "bfloat16", "float16"))
    """dtype of the learner's forward/backward: "auto" = ``dtype``. "bfloat16" with ``dtype float32``
    (needs ``sharding fsdp``) keeps float32 master weights and AdamW state, computes in bf16 and reduces
    gradients in float32 (FSDP2 ``MixedPrecisionPolicy``), as verl does: AdamW on bf16 weights loses
    updates at small learning rates (1e-6 next to a weight of 0.02 is below bf16's step there)."""
    cpu_offload: bool = False
    """``sharding fsdp`` on a GPU only: keep the sharded weights, gradients and AdamW state in CPU memory
    (FSDP2 ``CPUOffloadPolicy``), copying each layer to the GPU for its forward/backward; lets a model
    whose float32 AdamW state does not fit train on one GPU, at the cost of host-device copies."""


@dataclass(frozen=True)
class DataConfig:
    source: str = "list_sum"
    """Training problems: a generator name (e.g. "list_sum", "countdown"), a local JSONL/Parquet/CSV file,
    or a Hugging Face dataset name."""
    difficulty: str = ""
    """Difficulty of a generator: a level ("3") or a range ("5-8"); empty = the generator's default."""
    train_size: int = 20000
    """Number of generated training problems (generators only; files use every row)."""
    heldout_source: str = ""
    """Held-out problems; empty = the same generator with another seed (disjoint ids)."""
    heldout_size: int = 64
    """Number of held-out problems evaluated every ``run.eval_every`` steps (0 disables evaluation)."""
    template: str = "r1zero"
    """Prompt template name (recorded with every run)."""
    think_prefix: bool = True
    """End the prompt with "<think>" so the completion starts inside the think block."""
    verifier: str = ""
    """Verifier override (registry name, "module:function" or file.py); empty = each problem's own."""


@dataclass(frozen=True)
class RolloutConfig:
    backend: str = field(default="fast", metadata=_choices("hf", "fast", "vllm", "vllm-server"))
    """Rollout engine: "hf" (transformers generate), "fast" (the CPU KV-cache sampler), "vllm" (colocated),
    "vllm-server" (an ``r1zero serve-rollouts`` server at ``url``)."""
    url: str = ""
    """vllm-server only: the server's base URL, e.g. http://127.0.0.1:8000."""
    prompts_per_step: int = 16
    """Prompts (groups) per training step."""
    group_size: int = 8
    """G: completions sampled per prompt."""
    temperature: float = 1.0
    """Sampling temperature of training rollouts (R1-Zero and Dr. GRPO use 1.0)."""
    top_p: float = 1.0
    """Nucleus sampling mass (1.0 = off)."""
    top_k: int = 0
    """Top-k sampling (0 = off)."""
    max_new_tokens: int = 128
    """L_max: the completion length cap (also Dr. GRPO's constant normaliser)."""
    stop: tuple[str, ...] = ("</answer>",)
    """Stop strings (the completion keeps the stop string)."""
    gpu_memory_utilization: float = 0.5
    """vLLM only: share of GPU memory for its weights and KV cache."""
    tensor_parallel: int = 1
    """vLLM only: tensor-parallel size of the rollout engine."""
    decode_threads: int = 2
    """fast only: Python threads that each decode their own share of a step's prompts, on one torch thread
    and their own seeded RNG stream (samples depend on this count, never on the machine); 2 overlaps the
    decode step's Python with the C++ of another thread (``bench/decode_threads.py`` measures it). Use 1
    for data-parallel ranks of one core each."""


@dataclass(frozen=True)
class RewardConfig:
    correct: float = 1.0
    """Reward for a correct answer."""
    wrong: float = 0.0
    """Reward for a wrong or missing answer."""
    format_bonus: float = 0.0
    """Added when the tag format is kept (with std-scaled advantages a large bonus becomes the main signal while accuracy is near 0)."""
    format_penalty: float = 0.0
    """Added (usually <= 0) when the format is broken."""
    require_format: bool = True
    """Strict R1-Zero reward: a correct answer outside a well-formed think/answer block earns ``wrong``."""
    overlong_buffer: int = 0
    """DAPO soft overlong punishment: L_cache tokens before max_new_tokens where the penalty ramps to -1
    (0 = off)."""
    overlong_factor: float = 1.0
    """Scale of the soft overlong penalty."""
    model: str = ""
    """A learned (Bradley-Terry) reward model directory from ``r1zero rm train``; empty = rule-based only.
    Its raw score of (prompt, completion) is added to the reward as ``parts.learned``."""
    model_weight: float = 1.0
    """Weight of the learned reward in the total reward."""
    rule_weight: float = 1.0
    """Weight of the rule-based (verifier) reward. 0 trains on the learned reward alone: the verifier still
    scores every completion, and that score is the check the ``reward_divergence`` monitor compares with."""
    workers: int = 1
    """Verifier processes (0 = verify in this process; only for verifiers that cannot hang)."""
    timeout: float = 5.0
    """Wall-clock limit per verification, seconds (a timeout scores as wrong)."""
    verifier: str = field(default="rule", metadata=_choices("rule", "random", "format_only"))
    """What the reward is: the verifier's (rule); a control that keeps the verifier's scores in the metrics
    but trains on a coin flip (random: Bernoulli with probability ``random_p``, seeded by run.seed and
    step) or on the format check alone (format_only: ``correct`` when the format is kept, else ``wrong``).
    The controls show whether a gain comes from the verifier."""
    random_p: float = -1.0
    """Probability of the random control's reward; < 0: the step-0 held-out accuracy (needs held-out
    problems and run.eval_every > 0)."""


@dataclass(frozen=True)
class AlgoConfig:
    estimator: str = field(default="grpo", metadata=_choices("grpo", "ppo"))
    """Advantage estimator: group-relative (GRPO, no critic) or GAE with a learned critic (PPO; see the
    ``critic`` section). Both use the same clipped surrogate, loss aggregation and KL options."""
    advantage: str = field(default="group", metadata=_choices(*ADVANTAGES))
    """Advantages of the group's rewards: mean-centred and scaled by the group std (group: GRPO), by the
    batch std (batch), not scaled (none: Dr. GRPO); the leave-one-out baseline (rloo: RLOO); or
    REINFORCE++'s batch-normalised rewards (reinforce_pp) and group-centred, batch-normalised rewards
    (reinforce_pp_baseline), with token-weighted batch statistics (verl, OpenRLHF)."""
    loss: str = field(default="grpo", metadata=_choices(*LOSSES))
    """Policy loss: the clipped surrogate (grpo); a sequence-level ratio clipped per sequence (gspo: set
    eps_low/eps_high to 3e-4/4e-4); a clipped, stop-gradient importance weight (cispo: eps_high 4); a
    soft sigmoid gate (sapo: tau_pos, tau_neg); a floor on negative-advantage losses (dual_clip:
    clip_ratio_c); no gradient for a few high-covariance tokens (clip_cov) or a KL penalty on them
    (kl_cov). ``docs/algorithms.md`` gives each one's formula and peers' names."""
    loss_agg: str = field(default="grpo", metadata=_choices("grpo", "dapo", "dr_grpo", "bnpo"))
    """Loss aggregation: sequence mean of token means (grpo), token mean (dapo), token sum / (G L_max)
    (dr_grpo), micro-batch token mean (bnpo)."""
    eps_low: float = 0.2
    """Lower clip range of the ratio."""
    eps_high: float = 0.2
    """Upper clip range (DAPO clip-higher: 0.28)."""
    beta: float = 0.0
    """KL coefficient to the reference (initial) policy; 0 loads no reference model."""
    kl_estimator: str = field(default="k3", metadata=_choices("k1", "k2", "k3"))
    """KL estimator (DeepSeekMath uses k3)."""
    mu: int = 1
    """Inner updates over the same rollouts (mu = 1 is on-policy: the loss is ~0, the gradient is not)."""
    micro_batch_size: int = 64
    """Sequences per forward/backward; gradients accumulate over the step's batch. 64 (the cpu-demo
    preset's) holds a CPU step's 8 x 8 or 16 x 4 rollouts in one; the GPU presets set 2-8 (a long
    completion's ``[rows, T, V]`` log-softmax over a 150k vocabulary is the peak)."""
    dynamic_sampling: bool = False
    """DAPO dynamic sampling: drop groups whose rewards are all equal and sample more prompts."""
    dynamic_sampling_rounds: int = 3
    """Cap on extra sampling rounds per step with dynamic sampling (then train on what there is)."""
    overlong_filter: bool = False
    """DAPO overlong filtering: truncated completions get no loss."""
    is_cap: float = 0.0
    """Truncated importance-sampling cap for rollout log-probs from another engine (0 = off; TIS uses 2).
    The same as ``rollout_correction token_truncate`` with this threshold."""
    rollout_correction: str = field(default="none", metadata=_choices(*CORRECTION_MODES))
    """Correction for the rollout engine's log-probs differing from the learner's (vLLM in bf16): none,
    token_truncate (TIS), token_mask (icepop), sequence_truncate, sequence_mask (TRL's
    ``vllm_importance_sampling_mode`` names; the sequence ratio is the product of its tokens'). The
    mismatch is measured in every mode (``mismatch/*`` metrics)."""
    rollout_correction_threshold: float = 3.0
    """Upper bound of the correction's ratio (clip or mask; TRL 3.0, verl 2.0)."""
    clip_ratio_c: float = 3.0
    """Dual-clip bound (loss dual_clip): a negative-advantage token's loss is at most ``-c * A``; > 1."""
    tau_pos: float = 1.0
    """SAPO gate temperature for positive advantages (loss sapo)."""
    tau_neg: float = 1.05
    """SAPO gate temperature for negative advantages (loss sapo)."""
    clip_cov_ratio: float = 2e-4
    """Share of tokens whose gradient Clip-Cov drops (loss clip_cov; verl's default)."""
    clip_cov_lb: float = 1.0
    """Lower covariance bound of the tokens Clip-Cov may drop (loss clip_cov)."""
    clip_cov_ub: float = 5.0
    """Upper covariance bound of the tokens Clip-Cov may drop (loss clip_cov)."""
    kl_cov_ratio: float = 2e-4
    """Share of tokens KL-Cov penalises (loss kl_cov; the paper's 2e-4 to 2e-3)."""
    kl_cov_coef: float = 0.1
    """KL-Cov's penalty coefficient (loss kl_cov)."""
    entropy_coef: float = 0.0
    """Entropy bonus: ``-coef * H`` added to the loss, with the loss's aggregation (0 = off; SimpleRL-Zoo
    1e-3). Any loss."""
    ref_reset_every: int = 0
    """ProRL reference reset: every k steps the reference policy becomes a copy of the current policy
    (0 = never; needs beta > 0). The reference is saved with each checkpoint."""
    ref_reset_optimizer: bool = True
    """With a reference reset, also clear AdamW's moments (ProRL resets both)."""


@dataclass(frozen=True)
class CriticConfig:
    """PPO's value model (used only with ``algo.estimator ppo``)."""

    model: str = ""
    """Critic initialisation: empty = the policy's base model (``model.name``) with a new value head."""
    lr: float = 5e-4
    """Critic AdamW learning rate (a fresh value head needs a larger one than the policy)."""
    warmup_steps: int = 0
    """Steps at the start that train only the critic (the policy waits until its baseline is useful)."""
    value_clip: float = 0.2
    """Clip range of the value update around the old values (0 = off)."""
    gae_gamma: float = 1.0
    """GAE discount (Open-Reasoner-Zero: 1.0)."""
    gae_lambda: float = 1.0
    """GAE lambda (Open-Reasoner-Zero: 1.0, i.e. final reward minus the critic's value at each token)."""
    whiten_advantages: bool = True
    """Normalise token advantages to zero mean, unit variance over the batch."""
    epochs: int = 1
    """Critic optimizer steps per training step over the same rollouts."""
    grad_clip: float = 1.0
    """Max global gradient norm of the critic (0 = no clipping)."""


@dataclass(frozen=True)
class OptimConfig:
    lr: float = 1e-4
    """AdamW learning rate."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    adam_beta1: float = 0.9
    """AdamW beta1."""
    adam_beta2: float = 0.99
    """AdamW beta2."""
    grad_clip: float = 1.0
    """Max global gradient norm (0 = no clipping; the norm is logged either way)."""
    warmup_steps: int = 0
    """Linear learning-rate warmup steps."""
    schedule: str = field(default="constant", metadata=_choices("constant", "cosine", "linear"))
    """Learning-rate schedule after warmup (decays to 0 at run.steps)."""
    max_nonfinite_steps: int = 3
    """A step whose reward, loss or gradient norm is NaN or infinite is skipped (weights unchanged);
    this many in a row end the run with an error, its last checkpoint intact."""


@dataclass(frozen=True)
class RunConfig:
    name: str = "demo"
    """Run name: the run directory is ``out_dir/name`` (a plain name: no path separators, not "." or "..")."""
    out_dir: str = "runs"
    """Parent directory of run directories."""
    steps: int = 120
    """Training steps (one step = one batch of rollouts)."""
    seed: int = 0
    """Seed of every random stream (python, numpy, torch, prompt order, sampling)."""
    eval_every: int = 20
    """Held-out evaluation every k steps, and at step 0 and the final step (0 = never)."""
    eval_temperature: float = 1.0
    """Sampling temperature of held-out evaluation (0 = greedy)."""
    save_every: int = 50
    """Checkpoint every k steps and at the end (0 = only at the end)."""
    keep_checkpoints: int = 2
    """Checkpoints kept on disk (older ones are deleted; 0 keeps all)."""
    samples_per_step: int = 4
    """Full records written to samples.jsonl per step."""
    reflection: str = "r1zero"
    """Reflection keyword preset (see r1zero.eval.behaviour.REFLECTION_PRESETS)."""
    threads: int = 0
    """torch CPU threads (0 = leave torch's default)."""
    progress: bool = True
    """Show a tqdm progress bar with live metrics."""
    tensorboard: bool = False
    """Also log metrics to TensorBoard (needs tensorboard) in the run directory."""
    wandb_project: str = ""
    """Also log metrics to this W&B project (needs wandb); empty = off."""
    overwrite: bool = False
    """Allow starting over an existing run directory (otherwise an error; use --resume to continue). Only a
    directory that r1zero made is ever deleted."""


@dataclass(frozen=True)
class CpuConfig:
    """The float32-on-CPU speed code (``r1zero.cpu``), applied to every model a run builds (policy,
    reference, critic, reward model) and to the ``fast`` engine. Every feature gives the same results
    up to float32 rounding; each one can be switched off alone for an ablation. No effect on GPUs or
    other dtypes. ``R1ZERO_NATIVE=0`` in the environment turns the C++ kernels off (as
    ``--cpu.fused_kernels false --cpu.native_decode false``)."""

    enabled: bool = True
    """Master switch: False runs plain PyTorch/transformers everywhere (every field below ignored)."""
    onednn: bool | None = None
    """float32 linear layers through oneDNN's GEMM (learner forward/backward and the ``fast`` engine,
    whose decode weights it also packs); False: PyTorch's default (MKL on x86). None: on for x86 CPUs
    other than Intel's, where MKL takes a slower generic path (``bench/onednn.py`` measures both)."""
    folded_attention: bool = True
    """Grouped-query attention with each KV head's query heads folded onto it (one SDPA call, no copies
    of K/V); needed by ``packed``."""
    packed: bool = True
    """Llama/Qwen2 learners: each micro-batch's completion tokens run end to end as one sequence, without
    padding. False: rows padded to their micro-batch's longest."""
    fused_kernels: bool = True
    """RMSNorm, SwiGLU, RoPE (Qwen2/Llama, process-wide) and, with ``packed``, the packed rows' attention
    in fused C++ kernels (built on first use)."""
    native_decode: bool = True
    """The ``fast`` engine's decode step in C++ (built on first use); False: its Python step."""
    keep_freed_memory: bool = True
    """Linux (glibc): keep freed heap memory in the process, so a CPU step's large tensors do not
    page-fault every step (~5% of a CPU update)."""


@dataclass(frozen=True)
class TrainConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    reward: RewardConfig = field(default_factory=RewardConfig)
    algo: AlgoConfig = field(default_factory=AlgoConfig)
    critic: CriticConfig = field(default_factory=CriticConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    run: RunConfig = field(default_factory=RunConfig)
    cpu: CpuConfig = field(default_factory=CpuConfig)
    preset: str = "cpu-demo"
    """The preset this config started from (recorded; overrides are applied on top)."""


SECTIONS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(TrainConfig) if f.name != "preset")
_POSITIVE_INTS = (
    "rollout.prompts_per_step",
    "rollout.group_size",
    "rollout.max_new_tokens",
    "rollout.tensor_parallel",
    "rollout.decode_threads",
    "algo.mu",
    "algo.micro_batch_size",
    "critic.epochs",
    "optim.max_nonfinite_steps",
    "run.steps",
)
_NON_NEGATIVE = (
    "data.train_size",
    "data.heldout_size",
    "reward.overlong_buffer",
    "reward.overlong_factor",
    "reward.workers",
    "algo.eps_low",
    "algo.eps_high",
    "algo.beta",
    "algo.dynamic_sampling_rounds",
    "algo.is_cap",
    "algo.clip_cov_ratio",
    "algo.kl_cov_ratio",
    "algo.kl_cov_coef",
    "algo.entropy_coef",
    "algo.ref_reset_every",
    "critic.warmup_steps",
    "critic.value_clip",
    "critic.grad_clip",
    "optim.weight_decay",
    "optim.grad_clip",
    "optim.warmup_steps",
    "rollout.top_k",
    "rollout.temperature",
    "run.eval_every",
    "run.eval_temperature",
    "run.save_every",
    "run.keep_checkpoints",
    "run.samples_per_step",
    "run.threads",
)


def _get(config: TrainConfig, key: str) -> Any:
    section, name = key.split(".")
    return getattr(getattr(config, section), name)


def _is_plain_name(name: str) -> bool:
    r"""Whether ``name`` names a directory right inside its parent (no separators, not "." or "..").

    >>> [_is_plain_name(n) for n in ("demo", "lr-3e-5", "", ".", "..", "a/b", "a\\b", "a\x00b")]
    [True, True, False, False, False, False, False, False]
    """
    return name not in ("", ".", "..") and not any(c in name for c in ("/", "\\", "\x00"))


def validate(config: TrainConfig) -> TrainConfig:
    """Check choices and ranges; raise ``ValueError`` naming the field, the value and what is allowed.

    Every float field must be finite (NaN and infinity are refused wherever they appear), so a field added
    later is checked without being listed here.
    """
    for section in SECTIONS:
        for f in dataclasses.fields(getattr(config, section)):
            choices = f.metadata.get("choices")
            value = getattr(getattr(config, section), f.name)
            if choices and value not in choices:
                raise ValueError(f"{section}.{f.name} must be one of {', '.join(choices)}; got {value!r}")
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"{section}.{f.name} must be a finite number; got {value!r}")
    for key in _POSITIVE_INTS:
        if _get(config, key) < 1:
            raise ValueError(f"{key} must be >= 1; got {_get(config, key)!r}")
    for key in _NON_NEGATIVE:
        if _get(config, key) < 0:
            raise ValueError(f"{key} must be >= 0; got {_get(config, key)!r}")
    o = config.optim
    checks = [
        (0 < config.rollout.top_p <= 1, "rollout.top_p must be in (0, 1]", config.rollout.top_p),
        (
            0 < config.rollout.gpu_memory_utilization <= 1,
            "rollout.gpu_memory_utilization must be in (0, 1]",
            config.rollout.gpu_memory_utilization,
        ),
        (o.lr > 0, "optim.lr must be > 0", o.lr),
        (0 <= o.adam_beta1 < 1, "optim.adam_beta1 must be in [0, 1)", o.adam_beta1),
        (0 <= o.adam_beta2 < 1, "optim.adam_beta2 must be in [0, 1)", o.adam_beta2),
        (
            config.algo.eps_low < 1,
            "algo.eps_low must be in [0, 1) (the ratio's lower clip is 1 - eps_low)",
            config.algo.eps_low,
        ),
        (config.reward.timeout > 0, "reward.timeout must be > 0", config.reward.timeout),
        (
            config.algo.rollout_correction_threshold > 0,
            "algo.rollout_correction_threshold must be > 0",
            config.algo.rollout_correction_threshold,
        ),
        (
            config.algo.is_cap == 0 or config.algo.rollout_correction == "none",
            "algo.is_cap is rollout_correction token_truncate with that threshold; set one of them, not both",
            config.algo.is_cap,
        ),
        (
            config.reward.overlong_buffer <= config.rollout.max_new_tokens,
            "reward.overlong_buffer must be <= rollout.max_new_tokens",
            config.reward.overlong_buffer,
        ),
        (
            config.rollout.group_size >= 2 or config.algo.estimator == "ppo",
            "rollout.group_size must be >= 2 (group-relative advantages need a group; PPO does not)",
            config.rollout.group_size,
        ),
        (
            not (config.algo.dynamic_sampling and config.algo.estimator == "ppo"),
            "algo.dynamic_sampling drops groups with equal rewards, which carry PPO signal; "
            "use it with algo.estimator grpo",
            config.algo.dynamic_sampling,
        ),
        (config.algo.clip_ratio_c > 1, "algo.clip_ratio_c must be > 1", config.algo.clip_ratio_c),
        (config.algo.tau_pos > 0, "algo.tau_pos must be > 0", config.algo.tau_pos),
        (config.algo.tau_neg > 0, "algo.tau_neg must be > 0", config.algo.tau_neg),
        (
            config.algo.clip_cov_lb <= config.algo.clip_cov_ub,
            "algo.clip_cov_lb must be <= algo.clip_cov_ub",
            (config.algo.clip_cov_lb, config.algo.clip_cov_ub),
        ),
        (
            not (config.algo.loss == "gspo" and config.algo.estimator == "ppo"),
            "algo.loss gspo needs one advantage per sequence; algo.estimator ppo gives one per token",
            config.algo.loss,
        ),
        (
            config.algo.ref_reset_every == 0 or config.algo.beta > 0,
            "algo.ref_reset_every resets the KL reference, which only exists with algo.beta > 0",
            config.algo.ref_reset_every,
        ),
        (
            config.algo.ref_reset_every == 0 or config.model.sharding == "none",
            "algo.ref_reset_every is not supported with model.sharding fsdp (the reference is not checkpointed "
            "sharded)",
            config.algo.ref_reset_every,
        ),
        (
            config.reward.random_p <= 1,
            "reward.random_p must be <= 1 (< 0: the step-0 accuracy)",
            config.reward.random_p,
        ),
        (
            config.reward.verifier != "random"
            or config.reward.random_p >= 0
            or (config.data.heldout_size > 0 and config.run.eval_every > 0),
            "reward.verifier random takes the step-0 held-out accuracy as its probability: set "
            "reward.random_p, or data.heldout_size and run.eval_every > 0",
            config.reward.random_p,
        ),
        (config.critic.lr > 0, "critic.lr must be > 0", config.critic.lr),
        (0 <= config.critic.gae_gamma <= 1, "critic.gae_gamma must be in [0, 1]", config.critic.gae_gamma),
        (0 <= config.critic.gae_lambda <= 1, "critic.gae_lambda must be in [0, 1]", config.critic.gae_lambda),
        (
            _is_plain_name(config.run.name),
            "run.name must be a plain name (the run directory is out_dir/name: not empty, not '.' or '..', "
            "no '/', '\\' or NUL)",
            config.run.name,
        ),
        ("\x00" not in config.run.out_dir, "run.out_dir must not contain NUL", config.run.out_dir),
    ]
    for ok, message, value in checks:
        if not ok:
            raise ValueError(f"{message}; got {value!r}")
    _check_model_precision(config.model)
    return config


def _check_model_precision(model: ModelConfig) -> None:
    """Refuse combinations of ``model.sharding``, ``compute_dtype`` and ``cpu_offload`` that cannot run.

    >>> _check_model_precision(ModelConfig(dtype="float32", compute_dtype="bfloat16"))
    Traceback (most recent call last):
    ...
    ValueError: model.compute_dtype 'bfloat16' differs from model.dtype 'float32', which needs --model.sharding fsdp (works on one process too); with sharding none the learner computes in model.dtype
    """
    compute = resolved_compute_dtype(model)
    if compute != model.dtype and model.sharding != "fsdp":
        raise ValueError(
            f"model.compute_dtype {model.compute_dtype!r} differs from model.dtype {model.dtype!r}, which "
            "needs --model.sharding fsdp (works on one process too); with sharding none the learner "
            "computes in model.dtype"
        )
    if compute != model.dtype and model.dtype != "float32":
        raise ValueError(
            f"model.compute_dtype {model.compute_dtype!r} with model.dtype {model.dtype!r}: mixed precision "
            "keeps float32 master weights; use --model.dtype float32 (or compute_dtype auto)"
        )
    if model.cpu_offload and model.sharding != "fsdp":
        raise ValueError(
            "model.cpu_offload needs --model.sharding fsdp (FSDP2 offloads its shards); got sharding 'none'"
        )
    if model.cpu_offload and model.device == "cpu":
        raise ValueError(
            "model.cpu_offload moves GPU weights to CPU memory; with --model.device cpu they are there already"
        )


def resolved_compute_dtype(model: ModelConfig) -> str:
    """The learner's compute dtype: ``model.compute_dtype``, or ``model.dtype`` for "auto".

    >>> resolved_compute_dtype(ModelConfig(dtype="bfloat16"))
    'bfloat16'
    """
    return model.dtype if model.compute_dtype == "auto" else model.compute_dtype


# ---------------------------------------------------------------- dict round trip
def config_to_dict(config: TrainConfig) -> dict[str, Any]:
    """Plain JSON-ready dict of every field (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(config)))


#: keys that moved to the ``cpu`` section, read from config.json files written before the move
MOVED_KEYS = {
    ("model", "onednn"): "onednn",
    ("model", "fused_kernels"): "fused_kernels",
    ("model", "packed"): "packed",
    ("run", "keep_freed_memory"): "keep_freed_memory",
}


def _move_old_keys(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` with the ``MOVED_KEYS`` of an older config.json under ``cpu`` (an explicit ``cpu`` wins).

    >>> _move_old_keys({"model": {"name": "m", "packed": False}})
    {'model': {'name': 'm'}, 'cpu': {'packed': False}}
    """
    data = {k: dict(v) if isinstance(v, dict) else v for k, v in data.items()}
    moved = {
        new: data[section].pop(name)
        for (section, name), new in MOVED_KEYS.items()
        if isinstance(data.get(section), dict) and name in data[section]
    }
    if moved:
        data["cpu"] = {**moved, **data.get("cpu", {})}
    return data


def config_from_dict(data: dict[str, Any], base: TrainConfig | None = None) -> TrainConfig:
    """A config from ``config_to_dict`` output, or from a config file's (partial) dict laid over ``base``
    (default: every field's default); unknown keys are errors naming the valid ones.

    >>> config_from_dict({"preset": "dapo", "rollout": {"temperature": 0.6}}).rollout.temperature
    0.6
    """
    values = flatten_config(_move_old_keys(data), TrainConfig)
    return update_config(base or TrainConfig(), values, check=validate, prefix="")


# ---------------------------------------------------------------- command-line overrides
def apply_overrides(config: TrainConfig, argv: list[str]) -> TrainConfig:
    """Apply ``--section.field value`` options to a config, then validate it."""
    return update_config(config, parse_overrides(argv), check=validate, fixed=("preset",))


def config_help(config: TrainConfig) -> str:
    """One line per option: ``--section.field (current value)  docstring`` (``--preset`` is listed apart)."""
    return options_help(config, skip=("preset",))


def rollout_correction(algo: AlgoConfig) -> tuple[str, float]:
    """The learner's mismatch correction (mode, threshold): ``algo.is_cap`` > 0 is token_truncate at it.

    >>> rollout_correction(AlgoConfig(is_cap=2.0))
    ('token_truncate', 2.0)
    """
    if algo.is_cap > 0:
        return "token_truncate", algo.is_cap
    return algo.rollout_correction, algo.rollout_correction_threshold
