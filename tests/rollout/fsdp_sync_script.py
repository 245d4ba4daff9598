"""Run under ``torchrun --nproc_per_node 2`` (gloo, CPU): shard a tiny Qwen2 with FSDP2, stream its
weights with ``full_weights`` on every rank, and on rank 0 either compare them with the unsharded model's
(``--check``) or load them into a vLLM engine and compare its greedy tokens with Hugging Face's
(``--engine``). Rank 0 writes a JSON verdict to the path given."""

from __future__ import annotations

import copy
import json
import sys

import torch
import torch.distributed as dist

from r1zero.rollout.weights import full_weights
from r1zero.train.sharding import shard_model
from tests.rollout.fixtures import char_tokenizer, tiny_qwen2

PROMPTS = ["User: what is 3+4?\nAssistant: <think>", "hello", "12+7=19, 3+"]


def _greedy(engine) -> list:
    from r1zero.rollout import SamplingParams

    sampling = SamplingParams(n=1, temperature=0.0, max_new_tokens=24)
    return [g[0].completion_ids for g in engine.generate(PROMPTS, sampling)]


def main(out: str, mode: str) -> None:
    dist.init_process_group("gloo")
    torch.set_num_threads(1)
    rank = dist.get_rank()
    tokenizer = char_tokenizer()
    initial, updated = tiny_qwen2(seed=6), tiny_qwen2(seed=7)  # the same on every rank
    engine = None
    if mode == "--engine" and rank == 0:
        from r1zero.rollout.vllm import VLLMEngine

        engine = VLLMEngine(initial, tokenizer, max_model_len=256, bucket_mb=0.001)
    learner = shard_model(copy.deepcopy(updated), device=torch.device("cpu"))
    from torch.distributed.tensor import DTensor

    sharded = sum(isinstance(p, DTensor) for p in learner.parameters())
    verdict: dict = {"sharded_params": sharded, "world": dist.get_world_size()}
    stream = full_weights(learner)
    if engine is not None:
        from r1zero.rollout.hf import HFEngine

        before = _greedy(engine)
        engine.load_stream(stream)
        engine.finish_load()
        after = _greedy(engine)
        verdict["equal_to_hf"] = after == _greedy(HFEngine(updated, tokenizer))
        verdict["changed"] = after != before
        engine.close()
    else:
        reference = dict(updated.named_parameters())
        got = {name: tensor.clone() for name, tensor in stream}  # every rank iterates (a collective)
        verdict["names_equal"] = sorted(got) == sorted(reference)
        verdict["tensors_equal"] = all(torch.equal(got[n], reference[n]) for n in got if n in reference)
    dist.barrier()
    if rank == 0:
        with open(out, "w") as f:
            json.dump(verdict, f)
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
