"""Loss and gradient agreement between r1zero's GRPO maths and TRL's ``GRPOTrainer._compute_loss``.

Runs in the benchmark venv (``.venv-bench``, with ``trl==1.16.0``; docs/performance.md, "Reproduce").

Two levels, each for the loss types ``grpo``, ``dapo`` and ``dr_grpo``:

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
from pathlib import Path
from typing import Any

import torch

from r1zero.algo.batch import PackedBatch
from r1zero.algo.grpo import group_advantages, grpo_loss
from r1zero.train.forward import sequence_logprobs

LOSS_TYPES = ("grpo", "dapo", "dr_grpo")
TOLERANCE = 1e-6
#: Clip ranges per loss type (DAPO's clip-higher for dapo), the same on both sides.
EPS = {"grpo": (0.2, 0.2), "dapo": (0.2, 0.28), "dr_grpo": (0.2, 0.2)}


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


def build_trainer(
    model, tokenizer, loss_type: str, max_len: int, batch: int, group: int, accum: int, out: str
):
    """A GRPOTrainer configured like the r1zero side: beta 0, same eps, same max completion length."""
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    eps_low, eps_high = EPS[loss_type]
    args = GRPOConfig(
        output_dir=out,
        loss_type=loss_type,
        beta=0.0,
        epsilon=eps_low,
        epsilon_high=eps_high,
        max_completion_length=max_len,
        num_generations=group,
        per_device_train_batch_size=batch // accum,
        gradient_accumulation_steps=accum,
        report_to="none",
        use_cpu=True,
        bf16=False,  # TRL 1.16 defaults to bf16 autocast, also on CPU; r1zero computes in float32
        logging_steps=1,
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


def make_case(seed: int, batch: int, group: int, width: int, off_policy: bool) -> dict[str, torch.Tensor]:
    """Random log-probs, old log-probs, advantages (r1zero group_advantages of 0/1 rewards), masks."""
    gen = torch.Generator().manual_seed(seed)
    logp = -torch.rand(batch, width, generator=gen) * 3.0  # [B, T]
    noise = 0.4 * torch.randn(batch, width, generator=gen) if off_policy else 0.0  # ratios both sides of clip
    old = logp + noise  # [B, T]
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


def r1zero_loss_on_logps(case, rows: slice, loss_type: str, max_len: int, batch: int, on_policy: bool):
    logp = case["logp"][rows].clone().requires_grad_(True)  # [b, T]
    old = logp.detach() if on_policy else case["old"][rows]
    eps_low, eps_high = EPS[loss_type]
    loss, _ = grpo_loss(
        logp,
        old,
        case["advantages"][rows],
        case["mask"][rows],
        eps_low=eps_low,
        eps_high=eps_high,
        aggregation=loss_type,
        max_len=max_len,
        num_sequences=batch,
        num_tokens=float(case["mask"].sum()),
    )
    loss.backward()
    return loss.detach(), logp.grad


def compare_maths(loss_type: str, scenario: str, seed: int, out: str) -> dict[str, Any]:
    """One loss type x scenario: TRL vs r1zero loss and d loss / d logp (summed over micro-batches)."""
    batch, group, width = 16, 4, 24
    accum = 2 if scenario == "grad_accum_2" else 1
    on_policy = scenario == "on_policy"
    case = make_case(seed, batch, group, width, off_policy=not on_policy)
    model, tokenizer = build_tiny_model()
    trainer = build_trainer(model, tokenizer, loss_type, width, batch, group, accum, out)
    num_items = float(case["mask"].sum())
    micro = batch // accum
    trl_loss, r1_loss = torch.zeros(()), torch.zeros(())
    trl_grad, r1_grad = torch.zeros(batch, width), torch.zeros(batch, width)
    for k in range(accum):
        rows = slice(k * micro, (k + 1) * micro)
        loss, grad = trl_loss_on_logps(trainer, case, rows, num_items, on_policy)
        trl_loss, trl_grad[rows] = trl_loss + loss, grad
        loss, grad = r1zero_loss_on_logps(case, rows, loss_type, width, batch, on_policy)
        r1_loss, r1_grad[rows] = r1_loss + loss, grad
    return {
        "level": "loss_maths",
        "loss_type": loss_type,
        "scenario": scenario,
        "seed": seed,
        "trl_loss": trl_loss.item(),
        "r1zero_loss": r1_loss.item(),
        "loss_abs_diff": (trl_loss - r1_loss).abs().item(),
        "grad_max_abs_diff": (trl_grad - r1_grad).abs().max().item(),
        "grad_max_abs": trl_grad.abs().max().item(),
        "clip_active_tokens": int(clip_active(case, loss_type).sum()),
    }


def clip_active(case: dict[str, torch.Tensor], loss_type: str) -> torch.Tensor:
    eps_low, eps_high = EPS[loss_type]
    ratio = torch.exp(case["logp"] - case["old"])  # [B, T]
    adv = case["advantages"][:, None]  # [B, 1]
    active = ((ratio < 1 - eps_low) & (adv < 0)) | ((ratio > 1 + eps_high) & (adv > 0))
    return active & case["mask"].bool()


def compare_end_to_end(loss_type: str, seed: int, out: str) -> dict[str, Any]:
    """TRL's full ``_compute_loss`` (its own forward) vs r1zero's log-probs + loss: loss and parameter grads."""
    batch, group, prompt_len, width = 8, 4, 6, 20
    model, tokenizer = build_tiny_model()
    trainer = build_trainer(model, tokenizer, loss_type, width, batch, group, 1, out)
    gen = torch.Generator().manual_seed(seed)
    prompt_ids = torch.randint(4, 100, (batch, prompt_len), generator=gen)  # [B, P]
    completion_ids = torch.randint(4, 100, (batch, width), generator=gen)  # [B, T]
    case = make_case(seed, batch, group, width, off_policy=True)
    mask = case["mask"]
    with torch.no_grad():
        full = torch.cat([prompt_ids, completion_ids], dim=1)  # [B, P+T]
        logits = model(input_ids=full).logits[:, prompt_len - 1 : -1].float()  # [B, T, V]
        cur = torch.log_softmax(logits, -1).gather(-1, completion_ids[..., None])[..., 0]  # [B, T]
    old = cur + 0.3 * torch.randn(cur.shape, generator=gen)  # [B, T]
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
    eps_low, eps_high = EPS[loss_type]
    r1_loss, _ = grpo_loss(
        logp,
        old,
        case["advantages"],
        mask,
        eps_low=eps_low,
        eps_high=eps_high,
        aggregation=loss_type,
        max_len=width,
    )
    r1_loss.backward()
    diffs = [(trl_grads[n] - p.grad).abs().max().item() for n, p in model.named_parameters()]
    scale = max(g.abs().max().item() for g in trl_grads.values())
    return {
        "level": "end_to_end",
        "loss_type": loss_type,
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="bench/results/loss_agreement.json")
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for loss_type in LOSS_TYPES:
            for seed in range(args.seeds):
                for scenario in ("on_policy", "off_policy", "grad_accum_2"):
                    rows.append(compare_maths(loss_type, scenario, seed, tmp))
                rows.append(compare_end_to_end(loss_type, seed, tmp))
    for row in rows:
        row["agree"] = row["loss_abs_diff"] <= TOLERANCE and row["grad_max_abs_diff"] <= TOLERANCE
        print(
            f"{row['level']:11s} {row['loss_type']:8s} {row['scenario']:13s} seed {row['seed']}  "
            f"loss {row['trl_loss']:+.6f} vs {row['r1zero_loss']:+.6f}  |dloss| {row['loss_abs_diff']:.1e}  "
            f"|dgrad| {row['grad_max_abs_diff']:.1e}  {'OK' if row['agree'] else 'DIFF'}"
        )
    result = {
        "tolerance": TOLERANCE,
        "all_agree": all(r["agree"] for r in rows),
        "versions": versions(),
        "command": "python " + " ".join(sys.argv),
        "rows": rows,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(f"all agree within {TOLERANCE}: {result['all_agree']}  -> {args.out}")
    return 0 if result["all_agree"] else 1


if __name__ == "__main__":
    sys.exit(main())
