"""The ``hf`` rollout engine: Hugging Face ``generate`` on any causal LM, CPU or GPU.

Hugging Face's own warpers are switched off (``temperature=1, top_k=0, top_p=1``) and ours are passed
as a logits processor, so this engine samples with exactly the procedure of the ``fast`` engine
(``r1zero.rollout.base.warp_logits`` + ``select_tokens``). Log-probs are gathered step by step from the
raw logits inside the stopping criterion, so memory stays at one ``[R, V]`` row of log-probs.
"""

from __future__ import annotations

import torch
from transformers import GenerationConfig, LogitsProcessor, LogitsProcessorList, StoppingCriteria

from r1zero.rollout.base import (
    BatchedEngine,
    Rollout,
    SamplingParams,
    StopChecker,
    build_rollouts,
    eos_ids,
    left_pad,
    warp_logits,
)

__all__ = ["HFEngine"]


class _Recorder(LogitsProcessor):
    """Warps logits like the fast engine and keeps this step's log-probs for the stopping criterion."""

    def __init__(self, sampling: SamplingParams) -> None:
        self.sampling = sampling
        self.step_logprobs: torch.Tensor | None = None  # [R, V] of the step being sampled

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        s = self.sampling
        self.step_logprobs = torch.log_softmax(scores / (s.temperature if s.temperature > 0 else 1.0), dim=-1)
        return scores if s.greedy else warp_logits(scores, s.temperature, s.top_k, s.top_p)  # [R, V]


class _StopCriterion(StoppingCriteria):
    """Runs after each appended token: gathers its log-prob and detects stop strings."""

    def __init__(self, recorder: _Recorder, prompt_width: int, stops: StopChecker, rows: int) -> None:
        self.recorder = recorder
        self.prompt_width = prompt_width
        self.stops = stops
        self.logprobs: list[torch.Tensor] = []  # per step [R]
        self.stop_len = torch.zeros(rows, dtype=torch.long)  # [R], 0 = no stop string yet

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs) -> torch.Tensor:
        assert self.recorder.step_logprobs is not None
        newest = input_ids[:, -1:]  # [R, 1]
        self.logprobs.append(self.recorder.step_logprobs.gather(1, newest).squeeze(1).float().cpu())
        generated = input_ids[:, self.prompt_width :].cpu()  # [R, S]
        step = generated.size(1) - 1
        hit = self.stops.hits(generated, step, self.stop_len == 0)
        self.stop_len[hit] = step + 1
        return hit.to(input_ids.device)


class HFEngine(BatchedEngine):
    """Rollouts with ``model.generate`` (batched, left-padded prompts, ``n`` rows per prompt).

    Args:
        model: any ``*ForCausalLM``; the engine generates with this very module, so ``load_weights`` is
            only needed when the learner is a different object.
        tokenizer: its tokenizer (needs a pad or EOS token).
        max_batch_rows: generate at most this many rows (prompts x n) per ``generate`` call.
    """

    name = "hf"

    def __init__(self, model: torch.nn.Module, tokenizer, *, max_batch_rows: int = 1024) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.max_batch_rows = max_batch_rows
        self.eos = eos_ids(tokenizer, model.config)
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (self.eos or [0])[0]
        self.pad_id = int(pad)

    def load_weights(self, model: torch.nn.Module) -> None:
        if model is not self.model:
            self.model.load_state_dict(model.state_dict())

    @torch.no_grad()
    def _generate_batch(self, prompt_ids: list[list[int]], sampling: SamplingParams) -> list[list[Rollout]]:
        device = next(self.model.parameters()).device
        ids, mask = left_pad(prompt_ids, self.pad_id)  # [B, P]
        ids = ids.repeat_interleave(sampling.n, dim=0).to(device)  # [R, P], row = prompt * n + sample
        mask = mask.repeat_interleave(sampling.n, dim=0).to(device)
        vocab = self.model.get_output_embeddings().weight.shape[0]
        stops = self._stop_checker(sampling.stop, vocab)
        recorder = _Recorder(sampling)
        criterion = _StopCriterion(recorder, ids.size(1), stops, ids.size(0))
        # Hugging Face's own warpers off: ours run inside the recorder.
        warpers = {} if sampling.greedy else {"temperature": 1.0, "top_k": 0, "top_p": 1.0}
        config = GenerationConfig(
            do_sample=not sampling.greedy,
            max_new_tokens=sampling.max_new_tokens,
            eos_token_id=self.eos,
            pad_token_id=self.pad_id,
            **warpers,
        )
        out = self.model.generate(
            input_ids=ids,
            attention_mask=mask,
            generation_config=config,
            logits_processor=LogitsProcessorList([recorder]),
            stopping_criteria=[criterion],
        )
        generated = out[:, ids.size(1) :].cpu()  # [R, S]
        steps = generated.size(1)
        logprobs = torch.stack(criterion.logprobs[:steps], dim=1)  # [R, S]
        lengths, stopped = finish_lengths(generated, self.eos, criterion.stop_len)
        return build_rollouts(prompt_ids, generated, logprobs, lengths, stopped, self.tokenizer, sampling)


def finish_lengths(
    generated: torch.Tensor, eos: list[int], stop_len: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row completion length and whether EOS or a stop string ended it.

    Args:
        generated: ``[R, S]`` completion ids; rows that finished early are padded afterwards.
        eos: EOS token ids.
        stop_len: ``[R]`` length at which a stop string completed, 0 if none did.

    >>> finish_lengths(torch.tensor([[5, 2, 0], [5, 5, 5], [7, 8, 0]]), [2], torch.tensor([0, 0, 2]))
    (tensor([2, 3, 2]), tensor([ True, False,  True]))
    """
    rows, steps = generated.shape
    is_eos = torch.isin(generated, torch.tensor(eos, dtype=generated.dtype))  # [R, S]
    has_eos = is_eos.any(1)
    lengths = torch.where(has_eos, is_eos.float().argmax(1) + 1, torch.full((rows,), steps))  # [R]
    lengths = torch.where(stop_len > 0, torch.minimum(lengths, stop_len), lengths)
    return lengths, has_eos | (stop_len > 0)
