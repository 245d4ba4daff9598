"""Weight sync into a colocated vLLM engine on CPU: in memory vs through disk.

Run in the vLLM environment: ``.venv-vllm/bin/python bench/vllm_sync.py`` (a few minutes on 2 shared
cores); writes ``bench/results/vllm_sync.json``.

- **Model.** tiny-base's shape (the packaged checkpoint if present, else a random model of its config),
  float32, and a larger random Llama of the same family (``--hidden``, ``--layers``) so the per-byte cost
  shows.
- **In memory.** ``VLLMEngine.load_weights``: the learner's tensors streamed into the workers'
  ``reload_weights`` (no file): with vLLM's worker processes (its CPU default), as safetensors-encoded
  buckets of whole decoder layers through ``collective_rpc``; with the engine in-process
  (``VLLM_ENABLE_V1_MULTIPROCESSING=0``, as under the GPU external launcher), as one lazy iterator.
- **Disk.** The former path: ``save_policy`` (safetensors + tokenizer, atomic rename) into a directory,
  then ``reload_weights(weights_path=...)`` on the workers.
- Each path is timed once after one untimed warm-up push, each push on freshly perturbed weights; after
  each timed push the engine's greedy tokens are compared with Hugging Face's on the learner.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
PROMPTS = ["User: what is 3+4+5?\nAssistant: <think>", "12+7=19, 3+"]


def _models(hidden: int, layers: int):
    from transformers import LlamaConfig, LlamaForCausalLM

    from r1zero.models.tiny import build_tokenizer, tiny_config

    tokenizer = build_tokenizer()
    torch.manual_seed(0)
    path = ROOT / "r1zero" / "assets" / "tiny-base"
    if (path / "config.json").is_file():
        from r1zero.models.loading import load_policy

        tiny, tokenizer = load_policy(str(path))
        yield "tiny-base", tiny.float().eval(), tokenizer
    else:
        yield "tiny-base (random init)", LlamaForCausalLM(tiny_config()).eval(), tokenizer
    config = tiny_config().to_dict()
    config.update(
        hidden_size=hidden,
        intermediate_size=4 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=hidden // 64,
        num_key_value_heads=hidden // 64,
        head_dim=64,
    )
    yield f"llama h{hidden} x{layers} (random)", LlamaForCausalLM(LlamaConfig(**config)).eval(), tokenizer


def _perturb(model: torch.nn.Module, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.01)


def _disk_sync(engine, model, tokenizer, directory: Path) -> None:
    """The former sync: checkpoint to disk, then every worker reloads from it."""
    from r1zero.models.loading import save_policy
    from r1zero.rollout.vllm import _retie_lm_head

    save_policy(model, tokenizer, directory)
    engine.llm.collective_rpc("reload_weights", kwargs={"weights_path": str(directory)})
    if engine.tied:
        engine.llm.collective_rpc(_retie_lm_head)
    engine.llm.reset_prefix_cache()


def _greedy(engine) -> list[tuple[int, ...]]:
    from r1zero.rollout import SamplingParams

    sampling = SamplingParams(n=1, temperature=0.0, max_new_tokens=16)
    return [g[0].completion_ids for g in engine.generate(PROMPTS, sampling)]


def bench_one(label: str, model, tokenizer, in_process: bool) -> dict:
    from r1zero.rollout.hf import HFEngine
    from r1zero.rollout.vllm import VLLMEngine

    os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0" if in_process else "1"
    engine = VLLMEngine(model, tokenizer, max_model_len=256)
    assert engine.in_process == in_process
    seconds: dict[str, float] = {}
    matches: dict[str, bool] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="r1zero-sync-bench-") as tmp:
            pushes = {
                "memory": lambda: engine.load_weights(model),
                "disk": lambda: _disk_sync(engine, model, tokenizer, Path(tmp) / "weights"),
            }
            for i, (name, push) in enumerate(pushes.items()):
                _perturb(model, seed=2 * i)
                push()  # warm-up
                _perturb(model, seed=2 * i + 1)
                t = time.perf_counter()
                push()
                seconds[name] = time.perf_counter() - t
                matches[name] = _greedy(engine) == _greedy(HFEngine(model, tokenizer))
    finally:
        engine.close()
    params = sum(p.numel() for p in model.parameters())
    return {
        "model": label,
        "engine": "in-process (one lazy iterator)" if in_process else "worker processes (RPC buckets)",
        "parameters": params,
        "weight_mb": round(sum(p.numel() * p.element_size() for p in model.parameters()) / 2**20, 1),
        "memory_s": round(seconds["memory"], 4),
        "disk_s": round(seconds["disk"], 4),
        "disk_over_memory": round(seconds["disk"] / seconds["memory"], 2),
        "greedy_matches_hf": matches,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "vllm_sync.json"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    import vllm

    rows = [
        bench_one(*m, in_process) for m in _models(args.hidden, args.layers) for in_process in (False, True)
    ]
    result = {
        "machine": {
            "cpu": platform.machine(),
            "cores": os.cpu_count(),
            "torch": torch.__version__,
            "vllm": vllm.__version__,
        },
        "method": "one timed push per path after one warm-up; float32; CPU; load from other jobs on 2 cores",
        "runs": rows,
    }
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
