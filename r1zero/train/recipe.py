"""The zero-RL training recipe: ``train(config)`` reads top to bottom as the steps of GRPO.

Per step: sample prompts -> roll out G completions per prompt -> verify them (process pool) ->
group-relative advantages -> mu inner updates (micro-batches, gradient accumulation) -> push the new
weights to the rollout engine -> log -> evaluate held-out every k steps -> checkpoint every k steps.

Algorithmic choices are config values passed to the pure functions of ``r1zero.grpo``, not branches
here: advantage scaling, loss aggregation, clip ranges, KL estimator and beta, DAPO dynamic sampling /
overlong filtering / soft overlong punishment, truncated importance sampling. With ``mu = 1`` and
``beta = 0`` the logged loss is ~0 by construction (ratio 1, centred advantages); the gradient is not.
"""

from __future__ import annotations

import logging
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from r1zero import grpo
from r1zero.rollout.base import Rollout, SamplingParams
from r1zero.train import build
from r1zero.train.checkpoint import (
    CheckpointError,
    latest_checkpoint,
    load_trainer_state,
    restore_rng,
    save_checkpoint,
)
from r1zero.train.config import TrainConfig, config_to_dict
from r1zero.train.distributed import (
    DistInfo,
    all_gather_list,
    all_reduce_sum,
    barrier,
    init_distributed,
    shard_range,
    unwrap,
    wrap_model,
)
from r1zero.train.learner import frozen_logprobs, pack_rollouts, policy_update
from r1zero.train.metrics import rollout_metrics, sample_records
from r1zero.train.monitors import MonitorInput, run_monitors
from r1zero.train.runlog import RunLog

__all__ = ["TrainResult", "train"]

log = logging.getLogger(__name__)

SUMMARY_KEYS = (
    "heldout/accuracy",
    "heldout/format_rate",
    "heldout/length_mean",
    "heldout/reflection_per_response",
)


@dataclass
class TrainResult:
    """What a finished (or already finished) run reports: its directory and the step-0 vs final evals."""

    run_dir: Path
    steps_done: int
    step0: dict[str, float] = field(default_factory=dict)
    final: dict[str, float] = field(default_factory=dict)
    wall_time: float = 0.0
    is_main: bool = True


def train(config: TrainConfig, resume: bool = False) -> TrainResult:
    """Run (or resume) GRPO training as configured; returns the step-0 and final held-out metrics."""
    # ---- setup: threads, devices, ranks, run directory ---------------------------------------
    if config.run.threads:
        torch.set_num_threads(config.run.threads)
    device = build.resolve_device(config.model.device)
    dist_info = init_distributed(device)
    run_dir = build.run_dir_of(config)
    checkpoint = latest_checkpoint(run_dir) if resume else None
    if not resume:
        _prepare_run_dir(run_dir, config, dist_info)
    random.seed(config.run.seed)
    np.random.seed(config.run.seed % 2**32)
    torch.manual_seed(config.run.seed)
    runlog = (
        RunLog(run_dir, config.run.tensorboard, config.run.wandb_project, config_to_dict(config))
        if dist_info.is_main
        else None
    )

    # ---- data, policy, reference, optimizer, engine ------------------------------------------
    problems = build.load_problems_for(config)
    heldout = build.load_problems_for(config, True, problems) if config.data.heldout_size else []
    source = str(checkpoint.path) if checkpoint else config.model.name
    model, tokenizer = build.load_model(
        source, config.model.dtype, device, config.model.gradient_checkpointing
    )
    reference = (
        build.load_model(config.model.name, config.model.dtype, device)[0].eval()
        if config.algo.beta
        else None
    )
    optimizer = torch.optim.AdamW(
        model.parameters(),
        lr=config.optim.lr,
        betas=(config.optim.adam_beta1, config.optim.adam_beta2),
        weight_decay=config.optim.weight_decay,
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: _lr_factor(s, config))
    sampler = build.IndexSampler(len(problems), config.run.seed)
    engine = build.make_engine(config, model, tokenizer)
    learner = wrap_model(model, dist_info, device)
    state: dict[str, Any] = {"step": 0, "elapsed": 0.0, "accuracy_history": [], "step0": {}, "last_eval": {}}

    # ---- resume: every state, then the logs cut back to the checkpoint's step -----------------
    if resume:
        state = _restore(checkpoint, config, optimizer, scheduler, sampler, runlog)
        if state["step"] >= config.run.steps:
            log.warning(
                "run %s already finished: checkpoint at step %d, run.steps = %d; nothing to train "
                "(pass --run.steps N with N > %d to continue it)",
                run_dir, state["step"], config.run.steps, state["step"],
            )  # fmt: skip
            return TrainResult(
                run_dir,
                state["step"],
                state["step0"],
                state["last_eval"],
                state["elapsed"],
                dist_info.is_main,
            )

    # ---- step 0: the base model on held-out problems ------------------------------------------
    clock = time.perf_counter() - state["elapsed"]
    if state["step"] == 0 and heldout and config.run.eval_every:
        state["step0"] = state["last_eval"] = _evaluate(
            config, engine, tokenizer, heldout, 0, runlog, dist_info
        )
        if runlog:
            runlog.metrics({"step": 0, "time/elapsed": time.perf_counter() - clock, **state["step0"]})

    progress = _progress_bar(config, state["step"], dist_info)
    for step in range(state["step"] + 1, config.run.steps + 1):
        t_step = time.perf_counter()

        # ---- 1-3. sample prompts, roll out G each, verify (dynamic sampling refills) ----------
        groups, timing = _collect_groups(config, engine, tokenizer, problems, sampler, step, dist_info)
        rollouts = [r for g in groups for r in g["rollouts"]]
        rewards = torch.tensor([g["rewards"] for g in groups])  # [n, G]

        # ---- 4. advantages -------------------------------------------------------------------
        if config.algo.advantage == "batch" and dist_info.enabled:
            all_rewards = torch.tensor(all_gather_list(rewards.tolist(), dist_info))  # [N, G]
            scale = all_rewards.std() + 1e-6
            advantages = (rewards - rewards.mean(dim=1, keepdim=True)) / scale  # [n, G]
        else:
            advantages = grpo.group_advantages(rewards, config.algo.advantage)  # [n, G]
        truncated = torch.tensor([r.finish_reason == "length" for r in rollouts])  # [n*G]
        loss_rows = ~truncated if config.algo.overlong_filter else torch.ones_like(truncated)
        batch = pack_rollouts(rollouts, advantages.flatten(), tokenizer.pad_token_id, loss_rows).to(device)
        if reference is not None:
            ref = frozen_logprobs(reference, batch, config.algo.micro_batch_size, config.rollout.temperature)
            batch = type(batch)(**{**batch.__dict__, "ref_logp": ref})

        # ---- 5. mu inner updates with micro-batches and gradient accumulation ----------------
        t_update = time.perf_counter()
        learner.train()
        counts = all_reduce_sum({"seq": float(len(rollouts)), "tok": batch.loss_mask.sum().item()}, dist_info)
        stats = policy_update(
            learner,
            optimizer,
            batch,
            config.algo,
            max_len=config.rollout.max_new_tokens,
            temperature=config.rollout.temperature,
            grad_clip=config.optim.grad_clip,
            global_sequences=int(counts["seq"]),
            global_tokens=counts["tok"],
            world_size=dist_info.world_size,
        )
        lr = scheduler.get_last_lr()[0]
        scheduler.step()
        learner.eval()

        # ---- 6. push the new weights to the rollout engine -----------------------------------
        engine.load_weights(unwrap(learner))
        timing["time/update"] = time.perf_counter() - t_update

        # ---- 7. log: metrics.jsonl, samples.jsonl, monitors, progress bar --------------------
        records = all_gather_list([rec for g in groups for rec in g["records"]], dist_info)
        stats = _average_stats(stats, dist_info)
        zero_var = all_reduce_sum(
            {"z": float((~grpo.informative_groups(rewards)).sum()), "n": float(len(groups))}, dist_info
        )
        metrics = {
            "step": step,
            **rollout_metrics(records, config.run.reflection),
            "policy/entropy": stats["entropy"],
            "policy/kl": stats["kl"],
            "policy/clip_low": stats["clip_low"],
            "policy/clip_high": stats["clip_high"],
            "policy/grad_norm": stats["grad_norm"],
            "policy/lr": lr,
            "loss/policy": stats["policy"],
            "loss/total": stats["loss"],
            "groups/zero_variance": zero_var["z"] / zero_var["n"],
            **timing,
        }
        state["accuracy_history"] = (state["accuracy_history"] + [metrics["train/accuracy"]])[-50:]
        fired = run_monitors(
            MonitorInput(
                [r["completion"] for r in records],
                [r["truncated"] for r in records],
                metrics["train/format_rate"],
                state["accuracy_history"],
            )
        )
        for name, hit in fired.items():
            metrics[f"monitor/{name}"] = float(hit)
            if hit and dist_info.is_main:
                log.warning("step %d: hacking monitor %r fired (see r1zero/train/monitors.py)", step, name)

        # ---- 8. held-out evaluation every k steps and at the end -----------------------------
        if (
            heldout
            and config.run.eval_every
            and (step % config.run.eval_every == 0 or step == config.run.steps)
        ):
            state["last_eval"] = _evaluate(config, engine, tokenizer, heldout, step, runlog, dist_info)
            metrics.update(state["last_eval"])
        metrics["time/step"] = time.perf_counter() - t_step
        metrics["time/elapsed"] = state["elapsed"] = time.perf_counter() - clock
        if runlog:
            runlog.metrics(metrics)
            runlog.samples(sample_records(records, step, config.run.samples_per_step))
        if progress is not None:
            progress.set_postfix(_postfix(metrics), refresh=False)
            progress.update(1)

        # ---- 9. checkpoint every k steps and at the end --------------------------------------
        state["step"] = step
        if step == config.run.steps or (config.run.save_every and step % config.run.save_every == 0):
            if dist_info.is_main:
                trainer_state = {
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "sampler": sampler.state_dict(),
                    **{k: state[k] for k in ("elapsed", "accuracy_history", "step0", "last_eval")},
                }
                save_checkpoint(
                    run_dir, step, unwrap(learner), tokenizer, trainer_state, config.run.keep_checkpoints
                )
            barrier(dist_info)

    if progress is not None:
        progress.close()
    if runlog:
        runlog.close()
    return TrainResult(
        run_dir, state["step"], state["step0"], state["last_eval"], state["elapsed"], dist_info.is_main
    )


# ---------------------------------------------------------------- the steps' helpers
def _collect_groups(config, engine, tokenizer, problems, sampler, step, dist_info) -> tuple[list[dict], dict]:
    """Roll out and score this rank's share of the step's prompts; with dynamic sampling, refill groups
    whose rewards are all equal for up to ``algo.dynamic_sampling_rounds`` extra rounds, then top up with
    uninformative groups so every rank trains on the same number of sequences (DDP needs it)."""
    want = config.rollout.prompts_per_step // dist_info.world_size
    kept: list[dict] = []
    spare: list[dict] = []
    timing = {"time/generate": 0.0, "time/verify": 0.0}
    tokens = 0
    rounds = 1 + (config.algo.dynamic_sampling_rounds if config.algo.dynamic_sampling else 0)
    for round_ in range(rounds):
        indices = sampler.next(config.rollout.prompts_per_step)
        mine = [problems[indices[i]] for i in shard_range(len(indices), dist_info)]
        sampling = SamplingParams(
            n=config.rollout.group_size,
            temperature=config.rollout.temperature,
            top_p=config.rollout.top_p,
            top_k=config.rollout.top_k,
            max_new_tokens=config.rollout.max_new_tokens,
            stop=tuple(config.rollout.stop),
            seed=_seed(config.run.seed, step, round_, dist_info.rank),
        )
        prompts = build.render_prompts(config, mine, tokenizer)
        t0 = time.perf_counter()
        generated = engine.generate(prompts, sampling)
        timing["time/generate"] += time.perf_counter() - t0
        tokens += sum(len(r.completion_ids) for g in generated for r in g)
        t0 = time.perf_counter()
        for problem, prompt, group in zip(mine, prompts, generated, strict=True):
            scored = _score_group(config, problem, prompt, group)
            informative = bool(grpo.informative_groups(torch.tensor([scored["rewards"]]))[0])
            (kept if informative or not config.algo.dynamic_sampling else spare).append(scored)
        timing["time/verify"] += time.perf_counter() - t0
        if len(kept) >= want:
            break
    kept = (kept + spare)[:want]
    timing["perf/tokens_per_s"] = tokens / max(timing["time/generate"], 1e-9)
    return kept, timing


def _score_group(config: TrainConfig, problem, prompt: str, group: list[Rollout]) -> dict:
    """Verify one group; add DAPO's soft overlong penalty to the rewards when configured."""
    from r1zero.eval.behaviour import count_reflection

    verdicts = build.verify(config, [problem] * len(group), [r.text for r in group])
    lengths = torch.tensor([len(r.completion_ids) for r in group])  # [G]
    rewards = torch.tensor([v.reward for v in verdicts])  # [G]
    if config.reward.overlong_buffer:
        penalty = grpo.soft_overlong_penalty(
            lengths, config.rollout.max_new_tokens, config.reward.overlong_buffer
        )
        rewards = rewards + config.reward.overlong_factor * penalty
    records = []
    for r, v, reward in zip(group, verdicts, rewards.tolist(), strict=True):
        records.append(
            {
                "prompt": prompt,
                "completion": r.text,
                "gold": problem.answer,
                "reward": reward,
                "parts": dict(v.parts),
                "correct": v.correct,
                "formatted": v.formatted,
                "reason": v.reason,
                "extracted": v.extracted,
                "length": len(r.completion_ids),
                "truncated": r.finish_reason == "length",
                "reflection_hits": count_reflection(r.text, config.run.reflection),
            }
        )
    return {"rollouts": group, "rewards": rewards.tolist(), "records": records}


def _evaluate(config, engine, tokenizer, heldout, step, runlog, dist_info) -> dict[str, float]:
    """Held-out accuracy/format/length/reflection of the current policy (one sample per problem)."""
    if not dist_info.is_main:
        return {}
    sampling = SamplingParams(
        n=1,
        temperature=config.run.eval_temperature,
        top_p=config.rollout.top_p if config.run.eval_temperature else 1.0,
        max_new_tokens=config.rollout.max_new_tokens,
        stop=tuple(config.rollout.stop),
        seed=config.run.seed + 7,
    )
    prompts = build.render_prompts(config, heldout, tokenizer)
    groups = engine.generate(prompts, sampling)
    records = [
        _score_group(config, p, q, g)["records"][0] for p, q, g in zip(heldout, prompts, groups, strict=True)
    ]
    m = rollout_metrics(records, config.run.reflection, prefix="heldout/")
    out = {
        "heldout/accuracy": m["heldout/accuracy"],
        "heldout/format_rate": m["heldout/format_rate"],
        "heldout/length_mean": m["length/mean"],
        "heldout/reflection_per_response": m["reflection/per_response"],
    }
    if runlog:
        from r1zero.eval.metrics import bootstrap_ci

        per_problem = [float(r["correct"]) for r in records]
        runlog.eval(
            {
                "step": step,
                "benchmark": "heldout",
                "n": 1,
                "pass@1": out["heldout/accuracy"],
                "pass@1_ci": list(bootstrap_ci(per_problem, None, 0.95, 1000, config.run.seed)),
                "format_rate": out["heldout/format_rate"],
                "length/mean": out["heldout/length_mean"],
                "reflection/per_response": out["heldout/reflection_per_response"],
                "temperature": config.run.eval_temperature,
                "template": config.data.template,
            }
        )
    return out


def _seed(seed: int, step: int, round_: int, rank: int) -> int:
    """A distinct, reproducible sampling seed per (run seed, step, refill round, rank)."""
    return (seed * 1_000_003 + step * 10_007 + round_ * 101 + rank) % (2**63 - 1)


def _lr_factor(step: int, config: TrainConfig) -> float:
    o, total = config.optim, config.run.steps
    if o.warmup_steps and step < o.warmup_steps:
        return (step + 1) / o.warmup_steps
    if o.schedule == "constant":
        return 1.0
    progress = (step - o.warmup_steps) / max(1, total - o.warmup_steps)
    if o.schedule == "linear":
        return max(0.0, 1.0 - progress)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def _average_stats(stats: dict[str, float], dist_info: DistInfo) -> dict[str, float]:
    """Learner stats over ranks: the losses add up (their normalisers are global), the rest are averaged;
    the gradient norm is the same on every rank after DDP's all-reduce."""
    summed = all_reduce_sum(stats, dist_info)
    out = {k: v / dist_info.world_size for k, v in summed.items()}
    out.update(policy=summed["policy"], loss=summed["loss"], grad_norm=stats["grad_norm"])
    return out


def _prepare_run_dir(run_dir: Path, config: TrainConfig, dist_info: DistInfo) -> None:
    import json
    import shutil

    if dist_info.is_main:
        if run_dir.exists() and any(run_dir.iterdir()):
            if not config.run.overwrite:
                raise FileExistsError(
                    f"run directory {str(run_dir)!r} exists; continue it with --resume {run_dir}, "
                    "or pass --run.overwrite true to start over, or choose --run.name"
                )
            shutil.rmtree(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.json").write_text(
            json.dumps(config_to_dict(config), indent=2) + "\n", encoding="utf-8"
        )
    barrier(dist_info)


def _restore(checkpoint, config, optimizer, scheduler, sampler, runlog) -> dict[str, Any]:
    """Load optimizer, scheduler, sampler and RNG state; cut the logs back to the checkpoint's step."""
    if checkpoint is None:
        raise CheckpointError(
            f"run directory {str(build.run_dir_of(config))!r} has no checkpoint yet; nothing to resume "
            "(start it again with --run.overwrite true)"
        )
    saved = load_trainer_state(checkpoint)
    optimizer.load_state_dict(saved["optimizer"])
    scheduler.load_state_dict(saved["scheduler"])
    sampler.load_state_dict(saved["sampler"])
    restore_rng(saved["rng"])
    if runlog:
        runlog.resume_at(saved["step"])
    log.info("resumed from %s (step %d)", checkpoint.path, saved["step"])
    return {k: saved[k] for k in ("step", "elapsed", "accuracy_history", "step0", "last_eval")}


def _progress_bar(config: TrainConfig, start: int, dist_info: DistInfo):
    if not (config.run.progress and dist_info.is_main):
        return None
    from tqdm import tqdm

    return tqdm(total=config.run.steps, initial=start, desc="train", unit="step", dynamic_ncols=True)


def _postfix(metrics: dict[str, float]) -> dict[str, str]:
    keys = {"train/reward": "R", "train/accuracy": "acc", "train/format_rate": "fmt", "length/mean": "len"}
    out = {short: f"{metrics[k]:.2f}" for k, short in keys.items() if k in metrics}
    if "heldout/accuracy" in metrics:
        out["heldout"] = f"{metrics['heldout/accuracy']:.2f}"
    return out
