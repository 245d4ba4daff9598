"""The memory planner (``r1zero plan``) against one measured learner update on CPU, component by component.

Each case builds a float32 Llama from ``tiny_config`` at a shape where activations, logits and AdamW
state dwarf the interpreter, and runs ``policy_update`` (the learner's real update: padded rows, SDPA
attention, the log-prob path ``sequence_logprobs`` picks) in a fresh process, with
``MALLOC_MMAP_THRESHOLD_`` fixed so that every tensor above 64 KiB is its own mapping and the resident
set follows the live tensors. What is measured, each against ``r1zero.train.plan``'s figure:

- parameters: the built model's count against ``ModelShape.num_params`` (weights = 4 bytes each);
- gradients and optimizer: the bytes of every ``.grad`` and AdamW state tensor after an update;
- activations: the peak resident growth of the decoder's forward + backward to the final hidden states
  (gradients already allocated, so the backward only accumulates into them); without checkpointing also
  the bytes autograd saves (``saved_tensors_hooks``, each storage once, parameters excluded);
- logits: the peak resident growth of the log-prob computation alone (LM head, log-softmax, entropy and
  their backward) from the final hidden states, one-shot or chunked;
- total: the peak resident set during a second ``policy_update`` minus the process before the model
  existed, against the plan's update-phase peak.

Writes ``bench/results/plan_check.json``. Run: ``python bench/plan_check.py`` (about a minute on 2 cores).
"""

from __future__ import annotations

import gc
import json
import os
import re
import subprocess
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "plan_check.json"
TOLERANCE = 0.15

#: cases: a shape (``tiny_config`` fields), rows x (prompt + completion), checkpointing, log-prob chunking
CASES = {
    "no-checkpointing": {
        "shape": {
            "hidden_size": 384,
            "intermediate_size": 1024,
            "num_hidden_layers": 4,
            "num_attention_heads": 6,
            "num_key_value_heads": 2,
            "vocab_size": 32000,
            "tie_word_embeddings": False,
        },
        "rows": 4,
        "prompt_len": 32,
        "completion_len": 224,
        "checkpointing": False,
        "chunk": 0,
    },
    "checkpointing": {
        "shape": {
            "hidden_size": 384,
            "intermediate_size": 1024,
            "num_hidden_layers": 4,
            "num_attention_heads": 6,
            "num_key_value_heads": 2,
            "vocab_size": 32000,
            "tie_word_embeddings": False,
        },
        "rows": 4,
        "prompt_len": 32,
        "completion_len": 224,
        "checkpointing": True,
        "chunk": 0,
    },
    "chunked-logprobs": {
        "shape": {
            "hidden_size": 256,
            "intermediate_size": 768,
            "num_hidden_layers": 4,
            "num_attention_heads": 4,
            "num_key_value_heads": 4,
            "vocab_size": 32000,
            "tie_word_embeddings": True,
        },
        "rows": 4,
        "prompt_len": 32,
        "completion_len": 480,
        "checkpointing": False,
        "chunk": 64,
    },
    "small-chunks": {  # the LM head's weight gradient outweighs a chunk's buffers
        "shape": {
            "hidden_size": 256,
            "intermediate_size": 768,
            "num_hidden_layers": 4,
            "num_attention_heads": 4,
            "num_key_value_heads": 4,
            "vocab_size": 32000,
            "tie_word_embeddings": True,
        },
        "rows": 4,
        "prompt_len": 32,
        "completion_len": 480,
        "checkpointing": False,
        "chunk": 8,
    },
}


def _status(key: str) -> int:
    text = Path("/proc/self/status").read_text()
    return int(re.search(rf"{key}:\s+(\d+)", text).group(1)) * 1024


def _reset_peak() -> None:
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current resident set


def _peak_growth(fn) -> int:
    """Peak resident bytes above the current ones while ``fn()`` runs."""
    gc.collect()
    before = _status("VmRSS")
    _reset_peak()
    fn()
    return _status("VmHWM") - before


def _measure(case: dict) -> dict:
    """Run in the child process: build, update twice, measure every component."""
    import torch
    from transformers import LlamaForCausalLM

    from r1zero.algo.batch import PackedBatch
    from r1zero.models.tiny import tiny_config
    from r1zero.train import logprobs
    from r1zero.train.config import AlgoConfig
    from r1zero.train.learner import policy_update

    torch.set_num_threads(1)
    torch.manual_seed(0)
    rows, p, t = case["rows"], case["prompt_len"], case["completion_len"]
    config = tiny_config(**case["shape"], max_position_embeddings=p + t)
    vocab = config.vocab_size
    if case["chunk"]:  # the chunked path at this small vocabulary: chunks of exactly ``chunk`` positions
        logprobs.FULL_LOGITS_MAX_BYTES = 0
        logprobs.CHUNK_BYTES = 4 * rows * vocab * case["chunk"]
    # two micro-batches, so the second runs with the first one's gradients allocated, as in a real step
    ids = torch.randint(4, vocab, (2 * rows, p + t))  # [2B, P+T] distinct prompts: no shared prompt pass
    mask = torch.ones_like(ids)  # [2B, P+T]
    mask[1::2, :3] = 0  # odd rows' prompts are left-padded, so the attention gets a padding mask
    batch = PackedBatch(
        input_ids=ids,
        attention_mask=mask,
        loss_mask=torch.ones(2 * rows, t),
        advantages=torch.randn(2 * rows),
        rollout_logp=torch.zeros(2 * rows, t),
        ref_logp=None,
        prompt_width=p,
    )
    algo = AlgoConfig(micro_batch_size=rows, loss_agg="dapo", beta=0.0)
    gc.collect()
    base = _status("VmRSS")
    model = LlamaForCausalLM(config).train()
    if case["checkpointing"]:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.config.use_cache = False
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-6)

    def update() -> None:
        policy_update(model, optimizer, batch, algo, max_len=t)

    update()  # AdamW's state exists from here on
    grads = sum(q.grad.nbytes for q in model.parameters() if q.grad is not None)
    state = sum(v.nbytes for s in optimizer.state.values() for v in s.values() if torch.is_tensor(v))
    _reset_peak()
    update()
    total = _status("VmHWM") - base

    ids, mask = ids[:rows], mask[:rows]  # one micro-batch from here on
    positions = (mask.cumsum(dim=1) - 1).clamp(min=0)  # [B, P+T]

    def body() -> torch.Tensor:
        out = model.model(input_ids=ids, attention_mask=mask, position_ids=positions)
        return out.last_hidden_state  # [B, P+T, H] after the final norm

    def body_step() -> None:
        hidden = body()
        hidden.backward(torch.ones_like(hidden))  # accumulates into the existing .grad tensors

    activations = _peak_growth(body_step)
    saved = None
    if not case["checkpointing"]:
        params = {q.untyped_storage().data_ptr() for q in model.parameters()}
        seen: dict[int, int] = {}

        def pack(x: torch.Tensor) -> torch.Tensor:
            ptr = x.untyped_storage().data_ptr()
            if ptr not in params:
                seen.setdefault(ptr, x.untyped_storage().nbytes())
            return x

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda x: x):
            hidden = body()
        saved = sum(seen.values())
        del hidden
    hidden_full = body().detach().requires_grad_(True)  # [B, P+T, H]
    targets = ids[:, p:]  # [B, T]

    def logits_step() -> None:
        if case["chunk"]:
            logp, _ = logprobs.chunked_logprobs(
                hidden_full[:, p - 1 : -1], model.lm_head, targets, 1.0, case["chunk"], with_entropy=True
            )
        else:
            logits = model.lm_head(hidden_full)[:, p - 1 : -1]  # [B, T, V] a view of [B, P+T, V], as HF's
            logp, _ = logprobs.token_logprobs(logits, targets, 1.0, with_entropy=True)
            del logits
        logp.sum().backward()

    logits_peak = _peak_growth(logits_step)
    return {
        "params": sum(q.numel() for q in model.parameters()),
        "weights": sum(q.nbytes for q in model.parameters()),
        "gradients": grads,
        "optimizer": state,
        "activations": activations,
        "activations_saved_by_autograd": saved,
        "logits": logits_peak,
        "total": total,
    }


def measure(case: dict) -> dict:
    """``_measure(case)`` in a fresh Python process with a fixed mmap threshold."""
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536", "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps(case)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"measurement failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def predict(case: dict) -> dict:
    """The planner's figures for ``case`` (float32 weights and compute, one CPU "GPU", no sharing)."""
    from r1zero.models.tiny import tiny_config
    from r1zero.train.plan import ModelShape, PlanInputs, activation_bytes, plan_memory

    config = tiny_config(**case["shape"])
    shape = ModelShape.from_config(config.to_dict(), name="tiny")
    inputs = PlanInputs(
        gpus=1,
        micro_batch=case["rows"],
        prompt_len=case["prompt_len"],
        completion_len=case["completion_len"],
        dtype="float32",
        compute_dtype="float32",
        checkpointing=case["checkpointing"],
        logits_chunk=case["chunk"],
    )
    plan = plan_memory(shape, inputs)
    saved = activation_bytes(
        shape, inputs.micro_batch * inputs.seq_len, inputs.seq_len, 4, False, workspace=False
    )
    return {
        "params": shape.num_params,
        "weights": plan.weights,
        "gradients": plan.gradients,
        "optimizer": plan.optimizer,
        "activations": plan.activations,
        "logits": plan.logits,
        "total": plan.update_peak,
        "activations_saved_by_autograd": saved,
    }


def compare(case: dict) -> dict:
    """Predicted and measured bytes of each component and their ratio (predicted / measured)."""
    predicted, measured = predict(case), measure(case)
    rows = {}
    for key, value in predicted.items():
        if measured[key] is not None:
            rows[key] = {
                "predicted": value,
                "measured": measured[key],
                "ratio": round(value / measured[key], 4),
            }
    return rows


def main() -> int:
    import platform

    import torch
    import transformers

    results = {name: {"case": case, "components": compare(case)} for name, case in CASES.items()}
    worst = max(abs(r["ratio"] - 1) for res in results.values() for r in res["components"].values())
    report = {
        "command": "python bench/plan_check.py",
        "machine": f"{platform.machine()} CPU, {os.cpu_count()} cores",
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "tolerance": TOLERANCE,
        "worst_relative_error": round(worst, 4),
        "cases": results,
    }
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    for name, res in results.items():
        print(name)
        for key, r in res["components"].items():
            if key == "params":
                print(
                    f"  {key:<32}{r['predicted']:>14,} predicted {r['measured']:>14,} measured  ratio {r['ratio']:.3f}"
                )
                continue
            print(
                f"  {key:<32}{r['predicted'] / 2**20:10.1f} MiB predicted {r['measured'] / 2**20:10.1f} "
                f"MiB measured  ratio {r['ratio']:.3f}"
            )
    print(f"worst relative error {worst:.3f} (tolerance {TOLERANCE})")
    return 0 if worst <= TOLERANCE else 1


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        print(json.dumps(_measure(json.loads(sys.argv[2]))))
        raise SystemExit(0)
    raise SystemExit(main())
