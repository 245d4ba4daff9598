"""The zero-RL training recipe: ``train(config)`` reads top to bottom as the steps of GRPO.

Per step: sample prompts -> roll out G completions per prompt -> verify them (process pool) ->
group-relative advantages -> mu inner updates (micro-batches, gradient accumulation) -> push the new
weights to the rollout engine -> log -> evaluate held-out every k steps -> checkpoint every k steps.

Algorithmic choices are config values passed to the pure functions of ``r1zero.algo.grpo``, not branches
here: advantage scaling, loss aggregation, clip ranges, KL estimator and beta, DAPO dynamic sampling /
overlong filtering / soft overlong punishment, truncated importance sampling. With ``mu = 1`` and
``beta = 0`` the logged loss is ~0 by construction (ratio 1, centred advantages); the gradient is not.

Numbers stay finite: a step with a NaN or infinite reward skips steps 4-5, and one with a non-finite
loss or gradient norm skips its optimizer step (``policy_update``), so the weights never take them in;
``optim.max_nonfinite_steps`` such steps in a row end the run with a ``TrainingError``, before any
checkpoint of that step. A verifier that fails on every completion of a step ends the run too.

``algo.estimator ppo`` swaps step 4's group-relative advantages for PPO's: a critic (``r1zero.train.critic``)
values every completion token, GAE (``r1zero.algo.ppo``) turns the final reward into token advantages, and the
critic takes its own clipped value-loss update; the rest of the step is shared.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from r1zero.algo import grpo
from r1zero.algo.batch import PackedBatch
from r1zero.algo.dispatch import compute_advantages
from r1zero.eval import trace
from r1zero.train.checkpoint import checkpoint_dirs
from r1zero.train.config import TrainConfig
from r1zero.train.distributed import all_gather_list, all_reduce_sum
from r1zero.train.forward import frozen_logprobs
from r1zero.train.learner import pack_rollouts, policy_update
from r1zero.train.metrics import rollout_metrics, sample_records
from r1zero.train.monitors import MonitorInput, run_monitors
from r1zero.train.rollouts import Group, RewardControl, collect_groups, evaluate_heldout
from r1zero.train.session import Session, TrainingError, open_session, save_session

__all__ = ["TrainResult", "train"]

log = logging.getLogger(__name__)

#: loss statistics beyond the common ones, logged as ``policy/<name>`` (``r1zero.algo.losses``)
LOSS_STATS = ("seq_clip", "weight_clip", "gate_weight", "dual_clip", "cov_clip", "kl_cov")

#: ``algo.advantage`` values computed by ``r1zero.algo.dispatch.compute_advantages`` (same names)
DISPATCHED_ADVANTAGES = ("rloo", "reinforce_pp", "reinforce_pp_baseline")


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
    # ---- setup: run directory, problems, policy, reference, optimizer, engine (or all restored) --
    s = open_session(config, resume)
    if s.state["step"] >= config.run.steps:
        log.warning(
            "run %s already finished: checkpoint at step %d, run.steps = %d; nothing to train "
            "(pass --run.steps N with N > %d to continue it)",
            s.run_dir, s.state["step"], config.run.steps, s.state["step"],
        )  # fmt: skip
        return _result(s)
    clock = time.perf_counter() - s.state["elapsed"]

    # ---- step 0: the base model on the held-out problems ----------------------------------------
    if s.state["step"] == 0 and s.heldout and config.run.eval_every:
        s.state["step0"] = s.state["last_eval"] = _evaluate(s, 0)
        _log_metrics(s, {"step": 0, "time/elapsed": time.perf_counter() - clock, **s.state["step0"]}, [])

    progress = _progress_bar(s)
    for step in range(s.state["step"] + 1, config.run.steps + 1):
        t_step = time.perf_counter()

        # ---- 1-3. sample prompts, roll out G each, verify (dynamic sampling refills) ------------
        groups, timing = collect_groups(
            config, s.engine, s.tokenizer, s.sampler, step, s.dist, s.learned_reward, _control(s)
        )
        records = all_gather_list([rec for g in groups for rec in g.records], s.dist)  # every rank's
        _stop_if_verifier_failed(s, step, records, progress)

        # ---- 4. advantages, packed with the rollouts into one padded batch ----------------------
        t_update = time.perf_counter()  # time/update counts reference log-probs, the update and the sync
        rewards = torch.tensor([g.rewards for g in groups])  # [n, G]
        critic_stats: dict[str, float] = {}
        if all(math.isfinite(rec["reward"]) for rec in records):  # the same answer on every rank
            batch = _advantage_batch(s, groups, rewards)
            if s.critic is not None:  # PPO: token advantages from the critic (GAE), then its update
                batch, critic_stats = _critic_step(s, batch, rewards.flatten())

            # ---- 5. mu inner updates with micro-batches and gradient accumulation --------------
            stats = _update(s, batch, step) if step > _critic_warmup(s) else _frozen_policy_stats(s)
        else:  # a NaN or infinite reward: no update at all this step
            stats = _skipped_update(s, step)
        _count_nonfinite(s, step, stats)
        if config.algo.ref_reset_every and step % config.algo.ref_reset_every == 0:
            stats["ref_reset"] = _reset_reference(s)  # ProRL: the reference becomes the current policy

        # ---- 6. push the new weights to the rollout engine -------------------------------------
        s.engine.load_weights(s.learner)
        timing["time/update"] = time.perf_counter() - t_update

        # ---- 7. metrics, hacking monitors -------------------------------------------------------
        metrics = {"step": step, **_step_metrics(s, step, records, rewards, stats), **critic_stats, **timing}

        # ---- 8. held-out evaluation every k steps and at the end -------------------------------
        k = config.run.eval_every
        if s.heldout and k and (step % k == 0 or step == config.run.steps):
            s.state["last_eval"] = _evaluate(s, step)
            metrics.update(s.state["last_eval"])

        # ---- 9. log: metrics.jsonl, samples.jsonl, groups.jsonl, progress bar ------------------
        trace_dir = s.run_dir if s.runlog is not None else None
        metrics.update(
            trace.append_group(trace_dir, step, records, config.rollout.group_size, config.algo.advantage)
        )
        metrics["time/step"] = time.perf_counter() - t_step
        metrics["perf/peak_rss_mb"] = _peak_rss_mb()
        if s.device.type == "cuda":
            metrics["perf/peak_gpu_mem_mb"] = torch.cuda.max_memory_allocated(s.device) / 2**20
            metrics.update(getattr(s.engine, "memory_metrics", dict)())  # vLLM's memory, beside the learner's
        metrics["time/elapsed"] = s.state["elapsed"] = time.perf_counter() - clock
        _log_metrics(s, metrics, sample_records(records, step, config.run.samples_per_step))
        if progress is not None:
            progress.set_postfix(_postfix(metrics), refresh=False)
            progress.update(1)

        # ---- 10. checkpoint every k steps and at the end (a non-finite streak ends the run) -----
        s.state["step"] = step
        _stop_after_nonfinite_streak(s, step, progress)
        if step == config.run.steps or (config.run.save_every and step % config.run.save_every == 0):
            save_session(s, step)

    if progress is not None:
        progress.close()
    if s.runlog is not None:
        s.runlog.close()
    return _result(s)


# ---------------------------------------------------------------- the steps, one function each
def _advantage_batch(s: Session, groups: list[Group], rewards: torch.Tensor) -> PackedBatch:
    """Advantages (batch statistics over every rank), overlong filter, reference log-probs."""
    algo = s.config.algo
    if algo.advantage in DISPATCHED_ADVANTAGES:  # RLOO, REINFORCE++ (batch statistics over every rank)
        lengths = [[float(len(r.completion_ids)) for r in g.rollouts] for g in groups]
        advantages = _estimator_advantages(s, rewards, torch.tensor(lengths))  # [n, G]
    elif algo.advantage == "batch" and s.dist.enabled:
        all_rewards = torch.tensor(all_gather_list(rewards.tolist(), s.dist))  # [N, G]
        advantages = (rewards - rewards.mean(dim=1, keepdim=True)) / (all_rewards.std() + 1e-6)  # [n, G]
    else:
        advantages = grpo.group_advantages(rewards, algo.advantage)  # type: ignore[arg-type]  # [n, G]
    rollouts = [r for g in groups for r in g.rollouts]
    truncated = torch.tensor([r.finish_reason == "length" for r in rollouts])  # [n*G]
    filtered = truncated if algo.overlong_filter else None
    batch = pack_rollouts(rollouts, advantages.flatten(), s.tokenizer.pad_token_id, filtered).to(s.device)
    if s.reference is not None:
        ref = frozen_logprobs(s.reference, batch, algo.micro_batch_size, s.config.rollout.temperature)
        batch = replace(batch, ref_logp=ref)
    return batch


def _estimator_advantages(s: Session, rewards: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """``algo.advantage``'s estimator (``r1zero.algo.dispatch``) on this rank's ``[n, G]`` rewards, its
    batch statistics taken over every rank's rows (each rank holds the same number of groups)."""
    name = s.config.algo.advantage
    if not s.dist.enabled:
        return compute_advantages(name, rewards, lengths)
    all_rewards = torch.tensor(all_gather_list(rewards.tolist(), s.dist))  # [N, G]
    all_lengths = torch.tensor(all_gather_list(lengths.tolist(), s.dist))  # [N, G]
    n = rewards.shape[0]
    return compute_advantages(name, all_rewards, all_lengths)[s.dist.rank * n : (s.dist.rank + 1) * n]


def _control(s: Session) -> RewardControl | None:
    """The reward control of ``reward.verifier`` (None: the verifier's reward), its coin's probability
    ``reward.random_p`` or else the step-0 held-out accuracy."""
    r = s.config.reward
    if r.verifier == "rule":
        return None
    p = r.random_p
    if r.verifier == "random" and p < 0:
        if "heldout/accuracy" not in s.state["step0"]:
            raise TrainingError(
                "reward.verifier random takes the step-0 held-out accuracy as its probability, and this run "
                "has none (no held-out problems, or run.eval_every 0): set --reward.random_p"
            )
        p = s.state["step0"]["heldout/accuracy"]
    return RewardControl(r.verifier, max(p, 0.0), r.correct, r.wrong)


def _reset_reference(s: Session) -> float:
    """ProRL's reset: the KL reference becomes a copy of the current policy, and AdamW's moments are
    cleared (``algo.ref_reset_optimizer``); returns 1.0 (the step's ``ref/reset`` metric)."""
    assert s.reference is not None  # validate(): ref_reset_every needs beta > 0
    s.reference.load_state_dict(s.learner.state_dict())
    if s.config.algo.ref_reset_optimizer:
        s.optimizer.state.clear()
    s.state["ref_resets"] = s.state.get("ref_resets", 0) + 1
    if s.dist.is_main:
        log.info("reference policy reset to the current policy (reset %d)", s.state["ref_resets"])
    return 1.0


def _update(s: Session, batch: PackedBatch, step: int) -> dict[str, float]:
    """mu optimizer steps over the batch with global normalisers; one scheduler step; stats over ranks."""
    counts = all_reduce_sum(
        {"seq": float(batch.input_ids.shape[0]), "tok": batch.loss_mask.sum().item()}, s.dist
    )
    s.learner.train()
    stats = policy_update(
        s.learner,
        s.optimizer,
        batch,
        s.config.algo,
        max_len=s.config.rollout.max_new_tokens,
        temperature=s.config.rollout.temperature,
        grad_clip=s.config.optim.grad_clip,
        global_sequences=int(counts["seq"]),
        global_tokens=counts["tok"],
        dist_info=s.dist,
        seed=s.config.run.seed * 1_000_003 + step,
    )
    s.learner.eval()
    stats["lr"] = s.scheduler.get_last_lr()[0]
    s.scheduler.step()
    # losses add up over ranks (global normalisers); the rest are averaged; grad norms agree (summed gradients)
    summed = all_reduce_sum(stats, s.dist)
    out = {k: v / s.dist.world_size for k, v in summed.items()}
    out.update(policy=summed["policy"], loss=summed["loss"], grad_norm=stats["grad_norm"], lr=stats["lr"])
    if "entropy_bonus" in summed:  # a loss term too
        out["entropy_bonus"] = summed["entropy_bonus"]
    return out


def _critic_step(
    s: Session, batch: PackedBatch, rewards: torch.Tensor
) -> tuple[PackedBatch, dict[str, float]]:
    """PPO: GAE advantages from the critic's values, then ``critic.epochs`` clipped value-loss updates."""
    from r1zero.train.critic import critic_update, gae_batch

    assert s.critic is not None and s.critic_optimizer is not None
    c, micro = s.config.critic, s.config.algo.micro_batch_size
    batch, old_values, returns = gae_batch(s.critic, batch, rewards, c, micro)
    tokens = all_reduce_sum({"tok": batch.loss_mask.sum().item()}, s.dist)["tok"]
    stats = critic_update(
        s.critic,
        s.critic_optimizer,
        batch,
        old_values,
        returns,
        c,
        micro_batch_size=micro,
        epochs=c.epochs,
        global_tokens=tokens,
        dist_info=s.dist,
    )
    averaged = {k: v / s.dist.world_size for k, v in all_reduce_sum(stats, s.dist).items()}
    return batch, {f"critic/{k}": v for k, v in averaged.items()}


def _critic_warmup(s: Session) -> int:
    return s.config.critic.warmup_steps if s.critic is not None else 0


def _frozen_policy_stats(s: Session) -> dict[str, float]:
    """Learner statistics of a critic warm-up step: the policy is not updated."""
    keys = ("policy", "kl", "clip_low", "clip_high", "entropy", "loss", "grad_norm")
    return {**dict.fromkeys(keys, 0.0), "lr": 0.0, "nonfinite": 0.0}


def _skipped_update(s: Session, step: int) -> dict[str, float]:
    """Learner statistics of a step skipped for a non-finite reward. The learning-rate schedule advances
    as after an update (``_update``), so that it stays a function of the step."""
    stats = {**_frozen_policy_stats(s), "nonfinite": 1.0}
    if step > _critic_warmup(s):
        stats["lr"] = s.scheduler.get_last_lr()[0]
        s.scheduler.step()
    return stats


def _count_nonfinite(s: Session, step: int, stats: dict[str, float]) -> None:
    """Count the steps that skipped an update for a non-finite reward, loss or gradient norm."""
    if not stats["nonfinite"]:
        s.state["nonfinite_streak"] = 0
        return
    s.state["nonfinite_streak"] += 1
    s.state["nonfinite_steps"] += 1
    if s.dist.is_main:
        log.warning(
            "step %d: non-finite reward, loss or gradient norm; update skipped, weights unchanged "
            "(%d in a row; the run stops at optim.max_nonfinite_steps = %d)",
            step, s.state["nonfinite_streak"], s.config.optim.max_nonfinite_steps,
        )  # fmt: skip


def _stop_after_nonfinite_streak(s: Session, step: int, progress: Any) -> None:
    """End the run (before this step's checkpoint) after ``optim.max_nonfinite_steps`` such steps in a row."""
    streak = s.state["nonfinite_streak"]
    if streak < s.config.optim.max_nonfinite_steps:
        return
    saved = checkpoint_dirs(s.run_dir)
    kept = (
        f"the last checkpoint, {str(saved[-1].path)!r}, is intact" if saved else "no checkpoint was written"
    )
    _stop(
        s,
        progress,
        f"step {step}: {streak} steps in a row had a non-finite reward, loss or gradient norm (each "
        f"skipped, weights unchanged); {kept}. Check the reward (--reward.*, the verifier) and --optim.lr",
    )


def _stop_if_verifier_failed(s: Session, step: int, records: list[dict], progress: Any) -> None:
    """End the run when the verifier failed on every completion of the step (each verdict's reason is
    "error": it raised, or its worker died): training on would only see rewards of 0."""
    if not records or any(rec["reason"] != "error" for rec in records):
        return
    d = s.config.data
    name = repr(d.verifier) if d.verifier else f"of data.source {d.source!r}"
    _stop(
        s,
        progress,
        f"step {step}: the verifier {name} failed on every completion (reason 'error': it raised or its "
        "worker died; its exception is in the log above); try it on one completion with 'r1zero verify "
        "--verifier NAME --response TEXT --gold ANSWER'",
    )


def _stop(s: Session, progress: Any, message: str) -> None:
    if progress is not None:
        progress.close()
    if s.runlog is not None:
        s.runlog.close()
    raise TrainingError(message)


def _step_metrics(
    s: Session, step: int, records: list[dict], rewards: torch.Tensor, stats: dict[str, float]
) -> dict[str, Any]:
    """The step's metrics.jsonl keys (docs/run_format.md), monitors included (they also warn in the log)."""
    zero_var = all_reduce_sum(
        {"z": float((~grpo.informative_groups(rewards)).sum()), "n": float(rewards.shape[0])}, s.dist
    )
    metrics: dict[str, Any] = {
        **rollout_metrics(records, s.config.run.reflection),
        **{f"policy/{k}": stats[k] for k in ("entropy", "kl", "clip_low", "clip_high", "grad_norm", "lr")},
        **{f"policy/{k}": v for k, v in stats.items() if k in LOSS_STATS},  # the variant's own fractions
        **({"loss/entropy_bonus": stats["entropy_bonus"]} if "entropy_bonus" in stats else {}),
        **({"ref/reset": stats["ref_reset"]} if "ref_reset" in stats else {}),
        **_control_metrics(s, records),
        "loss/policy": stats["policy"],
        "loss/total": stats["loss"],
        **{k: v for k, v in stats.items() if k.startswith("mismatch/")},  # rollout engine vs learner
        "groups/zero_variance": zero_var["z"] / zero_var["n"],
        "train/nonfinite_steps": s.state["nonfinite_steps"],
    }
    s.state["accuracy_history"] = (s.state["accuracy_history"] + [metrics["train/accuracy"]])[-50:]
    if "train/reward/learned" in metrics:  # learned reward vs the verifier's score of the same completions
        pair = [metrics["train/reward/learned"], metrics["train/accuracy"]]
        # the whole run (bounded): the monitor compares with the best verifier score so far
        s.state["reward_history"] = (s.state["reward_history"] + [pair])[-10_000:]
    texts, truncated = [r["completion"] for r in records], [r["truncated"] for r in records]
    fired = run_monitors(
        MonitorInput(
            texts,
            truncated,
            metrics["train/format_rate"],
            s.state["accuracy_history"],
            [tuple(pair) for pair in s.state["reward_history"]],
        )
    )
    for name, hit in fired.items():
        metrics[f"monitor/{name}"] = float(hit)
        if hit and name not in s.state["monitors_firing"] and s.dist.is_main:  # warn once per streak
            log.warning("step %d: hacking monitor %r fired (see r1zero/train/monitors.py)", step, name)
    s.state["monitors_firing"] = sorted(name for name, hit in fired.items() if hit)
    return metrics


def _control_metrics(s: Session, records: list[dict]) -> dict[str, float]:
    """With a reward control: the reward the verifier would have paid (``train/reward`` is the control's);
    with overlong filtering: the share of completions masked out of the loss."""
    out = {}
    if s.config.reward.verifier != "rule" and records:
        out["train/reward/verifier"] = sum(rec["verifier_reward"] for rec in records) / len(records)
    if s.config.algo.overlong_filter and records:
        out["loss/masked_truncated"] = sum(rec["truncated"] for rec in records) / len(records)
    return out


def _evaluate(s: Session, step: int) -> dict[str, float]:
    """Held-out metrics of the current policy (rank 0 evaluates and writes eval.jsonl)."""
    if not s.dist.is_main:
        return {}
    metrics, line, records = evaluate_heldout(
        s.config, s.engine, s.tokenizer, s.heldout, step, s.learned_reward
    )
    if s.runlog is not None:
        s.runlog.eval(line)
    return {**metrics, **trace.append_heldout(s.run_dir if s.runlog else None, step, s.heldout, records)}


def _peak_rss_mb() -> float:
    """This process's peak resident memory so far, MiB (Linux reports KiB, macOS bytes)."""
    import resource
    import sys

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (2**20 if sys.platform == "darwin" else 2**10)


def _log_metrics(s: Session, metrics: dict[str, Any], samples: list[dict]) -> None:
    if s.runlog is not None:
        s.runlog.metrics(metrics)
        s.runlog.samples(samples)


def _result(s: Session) -> TrainResult:
    st = s.state
    return TrainResult(s.run_dir, st["step"], st["step0"], st["last_eval"], st["elapsed"], s.dist.is_main)


def _progress_bar(s: Session):
    if not (s.config.run.progress and s.dist.is_main):
        return None
    from tqdm import tqdm

    return tqdm(
        total=s.config.run.steps, initial=s.state["step"], desc="train", unit="step", dynamic_ncols=True
    )


def _postfix(metrics: dict[str, Any]) -> dict[str, str]:
    keys = {"train/reward": "R", "train/accuracy": "acc", "train/format_rate": "fmt", "length/mean": "len"}
    out = {short: f"{metrics[k]:.2f}" for k, short in keys.items() if k in metrics}
    if "heldout/accuracy" in metrics:
        out["heldout"] = f"{metrics['heldout/accuracy']:.2f}"
    return out
