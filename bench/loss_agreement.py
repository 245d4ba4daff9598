"""Loss and gradient agreement between r1zero's policy losses and TRL's ``GRPOTrainer._compute_loss``
(and verl's ``core_algos`` where it imports).

Runs in the benchmark venv (``.venv-bench``, with ``trl==1.16.0``; docs/performance.md, "Reproduce").

Two levels, each for the TRL loss types ``grpo``, ``dapo`` and ``dr_grpo`` and the variants ``gspo``
(TRL ``importance_sampling_level="sequence"``), ``cispo`` and ``sapo`` (``SETUPS`` below: the TRL config
and the r1zero call that express the same loss):

1. **Loss maths on identical log-probs.** A minimal ``GRPOTrainer`` is built around a tiny, locally
   constructed Qwen2 model; on that instance (only) ``_get_per_token_logps_and_entropies`` is replaced by
   a function returning a given ``[B, T]`` log-prob tensor with ``requires_grad``, so TRL's own
   ``_compute_loss`` (ratio, clip, aggregation, accumulation scaling) runs on exactly the tensors that
   r1zero's ``grpo_loss`` receives. Compared: the loss and its gradient w.r.t. the log-probs. Cases:
   on-policy (``mu = 1``: old = current log-probs, TRL's default path with no ``old_per_token_logps``),
   off-policy (old log-probs perturbed so the clip is active on both sides), and gradient accumulation
   over two micro-batches (TRL scaled by its accumulation steps, r1zero given whole-batch counts).
2. **End to end through the model.** TRL's ``_compute_loss`` unpatched (its own forward and log-softmax)
   vs the learner's ``r1zero.train.forward.sequence_logprobs`` + ``grpo_loss`` on the same model and
   ids; compared: the loss and the gradient of every parameter.

3. **verl** (when ``verl.trainer.ppo.core_algos`` imports): its ``compute_policy_loss_*`` for
   ``gspo``, ``cispo``, ``sapo``, ``vanilla`` (dual-clip), ``clip_cov`` and ``kl_cov`` against r1zero's
   losses (loss and gradient w.r.t. the log-probs), and its ``rloo``, ``reinforce_plus_plus`` and
   ``reinforce_plus_plus_baseline`` advantage estimators against r1zero's. verl 0.9.1 imports on CPU
   with ``--no-deps`` and a few of its dependencies, in a venv layered on the benchmark venv:

       python -m venv .venv-verl   # the same Python as .venv-bench
       echo "import site; site.addsitedir('$PWD/.venv-bench/lib/python3.11/site-packages')" \\
           > .venv-verl/lib/python3.11/site-packages/bench.pth   # the bench venv's packages, r1zero included
       .venv-verl/bin/pip install --no-deps verl==0.9.1 omegaconf antlr4-python3-runtime==4.9.3 ray \\
           msgpack protobuf requests urllib3 certifi jsonschema attrs referencing rpds-py \\
           jsonschema-specifications tensordict cloudpickle pyvers codetiming orjson
       .venv-verl/bin/python bench/loss_agreement.py

   Without verl the JSON says why (``verl.available`` false, with the import error).

Writes ``bench/results/loss_agreement.json``.

    python bench/loss_agreement.py
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from r1zero.algo.batch import PackedBatch
from r1zero.algo.grpo import group_advantages, grpo_loss
from r1zero.algo.losses import cispo_loss, gspo_loss, sapo_loss
from r1zero.train.forward import sequence_logprobs

TOLERANCE = 1e-6


@dataclass(frozen=True)
class Setup:
    """One loss expressed on both sides: TRL's ``GRPOConfig`` fields and r1zero's loss call."""

    trl: dict[str, Any]
    """GRPOConfig fields (``loss_type``, clip ranges, ...)."""
    loss: Callable[..., tuple[torch.Tensor, dict[str, float]]]
    """r1zero's loss function."""
    kwargs: dict[str, Any] = field(default_factory=dict)
    """Its keywords (its knobs and ``aggregation``) that reproduce the TRL settings."""
    noise: float = 0.4
    """Std of the old log-probs' offset in the off-policy cases: large enough to clip on both sides."""


SETUPS: dict[str, Setup] = {
    "grpo": Setup(
        {"loss_type": "grpo", "epsilon": 0.2, "epsilon_high": 0.2},
        grpo_loss,
        {"eps_low": 0.2, "eps_high": 0.2, "aggregation": "grpo"},
    ),
    "dapo": Setup(  # DAPO's clip-higher
        {"loss_type": "dapo", "epsilon": 0.2, "epsilon_high": 0.28},
        grpo_loss,
        {"eps_low": 0.2, "eps_high": 0.28, "aggregation": "dapo"},
    ),
    "dr_grpo": Setup(
        {"loss_type": "dr_grpo", "epsilon": 0.2, "epsilon_high": 0.2},
        grpo_loss,
        {"eps_low": 0.2, "eps_high": 0.2, "aggregation": "dr_grpo"},
    ),
    "gspo": Setup(  # the paper's clip range; noise 1e-3 puts sequence ratios on both sides of it
        {"loss_type": "grpo", "importance_sampling_level": "sequence", "epsilon": 3e-4, "epsilon_high": 4e-4},
        gspo_loss,
        {"eps_low": 3e-4, "eps_high": 4e-4, "aggregation": "grpo"},
        noise=1e-3,
    ),
    "cispo": Setup(  # TRL's epsilon_high is the cap itself (ScaleRL's 5.0): r1zero's 1 + eps_high
        {"loss_type": "cispo", "epsilon_high": 5.0},
        cispo_loss,
        {"eps_low": None, "eps_high": 4.0, "aggregation": "dapo"},
        noise=1.0,  # about 5% of ratios above the cap
    ),
    "sapo": Setup(
        {"loss_type": "sapo", "sapo_temperature_pos": 1.0, "sapo_temperature_neg": 1.05},
        sapo_loss,
        {"tau_pos": 1.0, "tau_neg": 1.05, "aggregation": "grpo"},
    ),
}


def build_tiny_model() -> tuple[torch.nn.Module, Any]:
    """A 2-layer Qwen2 over the r1zero tiny-base character tokenizer (random init, float32)."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from r1zero.models.tiny import build_tokenizer

    torch.manual_seed(0)
    tokenizer = build_tokenizer()
    config = Qwen2Config(
        vocab_size=128,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    return Qwen2ForCausalLM(config).float(), tokenizer


def build_trainer(model, tokenizer, setup: Setup, max_len: int, batch: int, group: int, accum: int, out: str):
    """A GRPOTrainer configured like the r1zero side: beta 0, same loss settings, same max completion length."""
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    args = GRPOConfig(
        output_dir=out,
        beta=0.0,
        max_completion_length=max_len,
        num_generations=group,
        per_device_train_batch_size=batch // accum,
        gradient_accumulation_steps=accum,
        report_to="none",
        use_cpu=True,
        bf16=False,  # TRL 1.16 defaults to bf16 autocast, also on CPU; r1zero computes in float32
        logging_steps=1,
        **setup.trl,
    )
    dataset = Dataset.from_dict({"prompt": ["1+2=", "3+4="] * batch})
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=lambda completions, **kw: [0.0] * len(completions),
        args=args,
        train_dataset=dataset,
        processing_class=tokenizer,
    )
    trainer.current_gradient_accumulation_steps = accum
    trainer.model.train()
    return trainer


def make_case(
    seed: int, batch: int, group: int, width: int, off_policy: bool, noise: float = 0.4
) -> dict[str, torch.Tensor]:
    """Random log-probs, old log-probs, advantages (r1zero group_advantages of 0/1 rewards), masks."""
    gen = torch.Generator().manual_seed(seed)
    logp = -torch.rand(batch, width, generator=gen) * 3.0  # [B, T]
    offset = (
        noise * torch.randn(batch, width, generator=gen) if off_policy else 0.0
    )  # ratios both sides of clip
    old = logp + offset  # [B, T]
    lengths = torch.randint(1, width + 1, (batch,), generator=gen)  # [B]
    lengths[0] = width  # one full-length completion
    mask = (torch.arange(width)[None] < lengths[:, None]).long()  # [B, T]
    rewards = torch.randint(0, 2, (batch // group, group), generator=gen).float()  # [N, G]
    rewards[0, 0], rewards[0, 1] = 1.0, 0.0  # at least one informative group
    advantages = group_advantages(rewards, "group", eps=1e-4).reshape(-1)  # [B]  (TRL's eps is 1e-4)
    return {"logp": logp, "old": old, "mask": mask, "advantages": advantages}


def trl_loss_on_logps(trainer, case: dict[str, torch.Tensor], rows: slice, num_items: float, on_policy: bool):
    """TRL's ``_compute_loss`` on given log-probs (rows of the case); returns (loss, grad of logp)."""
    logp = case["logp"][rows].clone().requires_grad_(True)  # [b, T]
    mask = case["mask"][rows]
    entropies = torch.zeros_like(logp)

    def given_logps(*args, **kwargs):
        return logp, entropies, None

    trainer._get_per_token_logps_and_entropies = given_logps  # this instance only
    inputs = {
        "prompt_ids": torch.ones(mask.shape[0], 2, dtype=torch.long),
        "prompt_mask": torch.ones(mask.shape[0], 2, dtype=torch.long),
        "completion_ids": torch.ones_like(mask),
        "completion_mask": mask,
        "advantages": case["advantages"][rows],
        "num_items_in_batch": torch.tensor(float(num_items)),
    }
    if not on_policy:
        inputs["old_per_token_logps"] = case["old"][rows]
    loss = trainer._compute_loss(trainer.model, inputs)
    loss.backward()
    return loss.detach(), logp.grad


def r1zero_loss_on_logps(case, rows: slice, setup: Setup, max_len: int, batch: int, on_policy: bool):
    logp = case["logp"][rows].clone().requires_grad_(True)  # [b, T]
    old = logp.detach() if on_policy else case["old"][rows]
    loss, stats = setup.loss(
        logp,
        old,
        case["advantages"][rows],
        case["mask"][rows],
        max_len=max_len,
        num_sequences=batch,
        num_tokens=float(case["mask"].sum()),
        **setup.kwargs,
    )
    loss.backward()
    return loss.detach(), logp.grad, stats


def compare_maths(name: str, scenario: str, seed: int, out: str) -> dict[str, Any]:
    """One loss x scenario: TRL vs r1zero loss and d loss / d logp (summed over micro-batches)."""
    setup = SETUPS[name]
    batch, group, width = 16, 4, 24
    accum = 2 if scenario == "grad_accum_2" else 1
    on_policy = scenario == "on_policy"
    case = make_case(seed, batch, group, width, off_policy=not on_policy, noise=setup.noise)
    model, tokenizer = build_tiny_model()
    trainer = build_trainer(model, tokenizer, setup, width, batch, group, accum, out)
    num_items = float(case["mask"].sum())
    micro = batch // accum
    trl_loss, r1_loss = torch.zeros(()), torch.zeros(())
    trl_grad, r1_grad = torch.zeros(batch, width), torch.zeros(batch, width)
    whole_batch_stats: dict[str, float] = {}
    for k in range(accum):
        rows = slice(k * micro, (k + 1) * micro)
        loss, grad = trl_loss_on_logps(trainer, case, rows, num_items, on_policy)
        trl_loss, trl_grad[rows] = trl_loss + loss, grad
        loss, grad, stats = r1zero_loss_on_logps(case, rows, setup, width, batch, on_policy)
        r1_loss, r1_grad[rows] = r1_loss + loss, grad
        if accum == 1:
            whole_batch_stats = stats
    return {
        "level": "loss_maths",
        "loss_type": name,
        "scenario": scenario,
        "seed": seed,
        "trl_loss": trl_loss.item(),
        "r1zero_loss": r1_loss.item(),
        "loss_abs_diff": (trl_loss - r1_loss).abs().item(),
        "grad_max_abs_diff": (trl_grad - r1_grad).abs().max().item(),
        "grad_max_abs": trl_grad.abs().max().item(),
        "r1zero_stats": {k: v for k, v in whole_batch_stats.items() if k not in ("policy", "kl")},
    }


def compare_end_to_end(name: str, seed: int, out: str) -> dict[str, Any]:
    """TRL's full ``_compute_loss`` (its own forward) vs r1zero's log-probs + loss: loss and parameter grads."""
    setup = SETUPS[name]
    batch, group, prompt_len, width = 8, 4, 6, 20
    model, tokenizer = build_tiny_model()
    trainer = build_trainer(model, tokenizer, setup, width, batch, group, 1, out)
    gen = torch.Generator().manual_seed(seed)
    prompt_ids = torch.randint(4, 100, (batch, prompt_len), generator=gen)  # [B, P]
    completion_ids = torch.randint(4, 100, (batch, width), generator=gen)  # [B, T]
    case = make_case(seed, batch, group, width, off_policy=True)
    mask = case["mask"]
    with torch.no_grad():
        full = torch.cat([prompt_ids, completion_ids], dim=1)  # [B, P+T]
        logits = model(input_ids=full).logits[:, prompt_len - 1 : -1].float()  # [B, T, V]
        cur = torch.log_softmax(logits, -1).gather(-1, completion_ids[..., None])[..., 0]  # [B, T]
    old = cur + 0.75 * setup.noise * torch.randn(cur.shape, generator=gen)  # [B, T] (0.3 for GRPO)
    inputs = {
        "prompt_ids": prompt_ids,
        "prompt_mask": torch.ones_like(prompt_ids),
        "completion_ids": completion_ids,
        "completion_mask": mask,
        "advantages": case["advantages"],
        "old_per_token_logps": old,
        "num_items_in_batch": mask.sum().float(),
    }
    model.zero_grad()
    trl_loss = trainer._compute_loss(trainer.model, inputs)
    trl_loss.backward()
    trl_grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    full = torch.cat([prompt_ids, completion_ids], dim=1)  # [B, P+T]
    batch = PackedBatch(
        full,
        torch.ones_like(full),
        mask.float(),
        case["advantages"],
        torch.zeros(mask.shape),
        None,
        prompt_len,
    )
    logp, _ = sequence_logprobs(model, batch)  # [B, T] the learner's forward
    r1_loss, _ = setup.loss(logp, old, case["advantages"], mask, max_len=width, **setup.kwargs)
    r1_loss.backward()
    diffs = [(trl_grads[n] - p.grad).abs().max().item() for n, p in model.named_parameters()]
    scale = max(g.abs().max().item() for g in trl_grads.values())
    return {
        "level": "end_to_end",
        "loss_type": name,
        "scenario": "off_policy",
        "seed": seed,
        "trl_loss": trl_loss.item(),
        "r1zero_loss": r1_loss.item(),
        "loss_abs_diff": abs(trl_loss.item() - r1_loss.item()),
        "grad_max_abs_diff": max(diffs),
        "grad_max_abs": scale,
    }


def versions() -> dict[str, str]:
    import transformers
    import trl

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "trl": trl.__version__,
    }


# ---------------------------------------------------------------- verl
@dataclass(frozen=True)
class VerlSetup:
    """One loss on verl's side (``policy_loss.loss_mode``, actor and policy-loss config) and r1zero's."""

    mode: str
    actor: dict[str, Any]
    policy_loss: dict[str, Any]
    agg: str
    loss: Callable[..., tuple[torch.Tensor, dict[str, float]]]
    kwargs: dict[str, Any]
    noise: float = 0.4


def verl_setups() -> dict[str, VerlSetup]:
    from r1zero.algo.covariance import clip_cov_loss, kl_cov_loss
    from r1zero.algo.losses import dual_clip_loss

    seq_mean, token_mean = "seq-mean-token-mean", "token-mean"
    return {
        "gspo": VerlSetup(
            "gspo", {"clip_ratio_low": 3e-4, "clip_ratio_high": 4e-4}, {}, seq_mean,
            gspo_loss, {"eps_low": 3e-4, "eps_high": 4e-4, "aggregation": "grpo"}, noise=1e-3,
        ),
        "cispo": VerlSetup(  # verl clips the weight on both sides (the paper's form)
            "cispo", {"clip_ratio_low": 0.5, "clip_ratio_high": 4.0}, {}, token_mean,
            cispo_loss, {"eps_low": 0.5, "eps_high": 4.0, "aggregation": "dapo"}, noise=1.0,
        ),
        "sapo": VerlSetup(
            "sapo", {"tau_pos": 1.0, "tau_neg": 1.05}, {}, seq_mean,
            sapo_loss, {"tau_pos": 1.0, "tau_neg": 1.05, "aggregation": "grpo"},
        ),
        "dual_clip": VerlSetup(  # verl's default loss is dual-clip PPO
            "vanilla", {"clip_ratio_low": 0.2, "clip_ratio_high": 0.28, "clip_ratio_c": 3.0}, {}, token_mean,
            dual_clip_loss, {"eps_low": 0.2, "eps_high": 0.28, "clip_ratio_c": 3.0, "aggregation": "dapo"}, noise=1.0,
        ),
        "clip_cov": VerlSetup(  # the same global seed before each side: the same randperm draw
            "clip_cov", {"clip_ratio_low": 0.2, "clip_ratio_high": 0.2},
            {"clip_cov_ratio": 0.05, "clip_cov_lb": 1.0, "clip_cov_ub": 5.0}, token_mean,
            clip_cov_loss,
            {"eps_low": 0.2, "eps_high": 0.2, "clip_cov_ratio": 0.05, "clip_cov_lb": 1.0, "clip_cov_ub": 5.0,
             "aggregation": "dapo"},
        ),
        "kl_cov": VerlSetup(
            "kl_cov", {}, {"kl_cov_ratio": 0.05, "ppo_kl_coef": 0.1}, token_mean,
            kl_cov_loss, {"kl_cov_ratio": 0.05, "kl_cov_coef": 0.1, "aggregation": "dapo"},
        ),
    }  # fmt: skip


def compare_verl_loss(name: str, setup: VerlSetup, seed: int) -> dict[str, Any]:
    """verl's registered policy loss vs r1zero's on the same off-policy case: loss and d loss / d logp."""
    from verl.trainer.ppo import core_algos
    from verl.workers.config import ActorConfig, PolicyLossConfig

    batch, group, width = 16, 4, 24
    case = make_case(seed, batch, group, width, off_policy=True, noise=setup.noise)
    mask = case["mask"].float()
    config = ActorConfig(
        strategy="fsdp",
        rollout_n=group,
        ppo_mini_batch_size=batch,
        ppo_micro_batch_size_per_gpu=batch,
        policy_loss=PolicyLossConfig(loss_mode=setup.mode, **setup.policy_loss),
        **setup.actor,
    )
    verl_fn = core_algos.get_policy_loss_fn(setup.mode)
    results = []
    for side in ("verl", "r1zero"):
        logp = case["logp"].clone().requires_grad_(True)  # [B, T]
        torch.manual_seed(seed)  # Clip-Cov's random draw
        if side == "verl":
            token_adv = case["advantages"][:, None] * mask  # [B, T] as verl's batch carries them
            loss, stats = verl_fn(case["old"], logp, token_adv, mask, loss_agg_mode=setup.agg, config=config)
        else:
            loss, stats = setup.loss(logp, case["old"], case["advantages"], mask, **setup.kwargs)
        loss.backward()
        results.append((loss.detach(), logp.grad, stats))
    (verl_loss, verl_grad, verl_stats), (r1_loss, r1_grad, r1_stats) = results
    return {
        "level": "verl",
        "loss_type": name,
        "scenario": "off_policy",
        "seed": seed,
        "verl_function": verl_fn.__name__,
        "verl_loss": verl_loss.item(),
        "r1zero_loss": r1_loss.item(),
        "loss_abs_diff": (verl_loss - r1_loss).abs().item(),
        "grad_max_abs_diff": (verl_grad - r1_grad).abs().max().item(),
        "grad_max_abs": verl_grad.abs().max().item(),
        "verl_stats": verl_stats,
        "r1zero_stats": {k: v for k, v in r1_stats.items() if k not in ("policy", "kl")},
    }


def compare_verl_advantages(name: str, seed: int) -> dict[str, Any]:
    """verl's advantage estimator vs r1zero's on the same rewards (one per completion, at its last token)."""
    import numpy as np
    from verl.trainer.config import AlgoConfig
    from verl.trainer.ppo import core_algos

    from r1zero.algo.dispatch import compute_advantages

    groups, group, width = 4, 4, 24
    gen = torch.Generator().manual_seed(seed)
    rewards = torch.rand(groups, group, generator=gen)  # [N, G]
    lengths = torch.randint(1, width + 1, (groups, group), generator=gen)  # [N, G]
    mask = (torch.arange(width)[None] < lengths.reshape(-1, 1)).float()  # [B, T]
    token_rewards = torch.zeros(groups * group, width)  # [B, T]
    token_rewards[torch.arange(groups * group), lengths.reshape(-1) - 1] = rewards.reshape(-1)
    index = np.repeat(np.arange(groups), group)
    verl_name = {"rloo": "rloo", "reinforce_pp": "reinforce_plus_plus", "grpo": "grpo"}.get(
        name, "reinforce_plus_plus_baseline"
    )
    verl_fn = core_algos.get_adv_estimator_fn(verl_name)
    theirs, _ = verl_fn(
        token_level_rewards=token_rewards, response_mask=mask, index=index, config=AlgoConfig(gamma=1.0)
    )
    ours = compute_advantages(name, rewards, lengths).reshape(-1, 1) * mask  # [B, T]
    return {
        "level": "verl_advantages",
        "loss_type": name,
        "scenario": "outcome_rewards",
        "seed": seed,
        "verl_function": verl_fn.__name__,
        "max_abs_diff": (theirs - ours).abs().max().item(),
        "max_abs": theirs.abs().max().item(),
    }


def verl_comparison(seeds: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Rows for verl's losses and advantage estimators, or (``available`` false, the import error)."""
    try:
        import verl
        from verl.trainer.ppo import core_algos  # noqa: F401
    except Exception as exc:  # verl pulls in ray, omegaconf, tensordict: report whichever is missing
        return {"available": False, "reason": f"{type(exc).__name__}: {exc}"}, []
    rows = [
        compare_verl_loss(name, setup, seed) for name, setup in verl_setups().items() for seed in range(seeds)
    ]
    for name in ("grpo", "rloo", "reinforce_pp", "reinforce_pp_baseline"):
        rows += [compare_verl_advantages(name, seed) for seed in range(seeds)]
    return {"available": True, "version": verl.__version__}, rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="bench/results/loss_agreement.json")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--losses", nargs="*", default=list(SETUPS), choices=list(SETUPS))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.losses:
            for seed in range(args.seeds):
                for scenario in ("on_policy", "off_policy", "grad_accum_2"):
                    rows.append(compare_maths(name, scenario, seed, tmp))
                rows.append(compare_end_to_end(name, seed, tmp))
    verl_info, verl_rows = verl_comparison(args.seeds)
    rows += verl_rows
    diff_keys = ("loss_abs_diff", "grad_max_abs_diff", "max_abs_diff")  # the last for advantages
    for row in rows:
        diffs = {key: row[key] for key in diff_keys if key in row}
        row["agree"] = all(value <= TOLERANCE for value in diffs.values())
        shown = "  ".join(f"{key} {value:.1e}" for key, value in diffs.items())
        print(
            f"{row['level']:15s} {row['loss_type']:21s} {row['scenario']:15s} seed {row['seed']}  {shown}  "
            f"{'OK' if row['agree'] else 'DIFF'}"
        )
    if not verl_info["available"]:
        print(f"verl not compared: {verl_info['reason']}")
    summary: dict[str, dict[str, float]] = {}  # the largest difference per level and loss, over seeds
    for row in rows:
        entry = summary.setdefault(f"{row['level']}/{row['loss_type']}", {"rows": 0})
        entry["rows"] += 1
        for key in diff_keys:
            if key in row:
                entry[key] = max(entry.get(key, 0.0), row[key])
    result = {
        "tolerance": TOLERANCE,
        "all_agree": all(r["agree"] for r in rows),
        "versions": versions(),
        "verl": verl_info,
        "command": "python " + " ".join(sys.argv),
        "summary": summary,
        "rows": rows,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(f"all agree within {TOLERANCE}: {result['all_agree']}  -> {args.out}")
    return 0 if result["all_agree"] else 1


if __name__ == "__main__":
    sys.exit(main())
