"""The rollout protocol: sampling parameters, the ``Rollout`` record, and the sampling step every
torch backend shares.

An engine is token-in/token-out plus text (nanochat's engine knows nothing of rewards; neither does
this one): ``generate(prompts, sampling) -> list of groups``, one group of ``sampling.n`` rollouts per
prompt, and ``load_weights(model)`` after each learner update.

**Which log-probs.** ``Rollout.logprobs[t]`` is ``log softmax(logits_t / T)[token_t]``: the log-prob of
the sampled token under the temperature-scaled model distribution *before* top-k/top-p truncation
(``T = 1`` when decoding greedily, ``temperature=0``). This is what the learner recomputes with
``r1zero.train.forward.sequence_logprobs(..., temperature=T)``, so the ratio of the two is the
importance-sampling correction between engine and learner. vLLM calls this
``logprobs_mode="processed_logprobs"`` only when no top-k/top-p is set; see ``r1zero.rollout.vllm``.

**Same seed, same samples.** ``hf`` and ``fast`` both draw with ``select_tokens`` below (the same
warping and one ``torch.multinomial`` call over all rows per step, finished rows included) from the
global torch generator seeded with ``sampling.seed`` inside ``seeded_rng`` (the caller's RNG state is
restored afterwards). Samples therefore depend on the seed *and* the batch (prompts, order, ``n``), as in
Hugging Face ``generate``. The two engines compute logits with different kernels, so a draw can differ
when a uniform number lands within float rounding (~1e-7) of a bucket edge; in tests it never did.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator, Sequence
from typing import Any, Literal, Protocol, runtime_checkable

import torch

__all__ = [
    "FINISH_REASONS",
    "BatchedEngine",
    "Rollout",
    "RolloutEngine",
    "SamplingParams",
    "StopChecker",
    "seeded_rng",
    "select_tokens",
    "token_logprobs",
    "truncate_at_stop",
    "warp_logits",
]

FinishReason = Literal["stop", "length"]
#: "stop": EOS or a stop string ended the completion; "length": ``max_new_tokens`` ran out.
FINISH_REASONS: tuple[str, ...] = ("stop", "length")


@dataclasses.dataclass(frozen=True)
class SamplingParams:
    """How to sample completions.

    >>> SamplingParams(n=8, temperature=1.0, stop=("</answer>",)).greedy
    False
    >>> SamplingParams(temperature=0.0).greedy
    True
    """

    n: int = 1
    """Completions per prompt (the GRPO group size G)."""
    temperature: float = 1.0
    """Softmax temperature; 0 means greedy (argmax) decoding."""
    top_p: float = 1.0
    """Nucleus sampling mass in (0, 1]; 1 disables it."""
    top_k: int = 0
    """Keep only the k most likely tokens; 0 disables it."""
    max_new_tokens: int = 128
    """Upper bound on completion length in tokens (finish_reason "length" when reached)."""
    stop: tuple[str, ...] = ()
    """Stop strings; the completion text ends right after the first one (it is kept, e.g. "</answer>")."""
    seed: int | None = 0
    """Seed of the sampling RNG; None draws from the caller's global torch RNG state."""

    def __post_init__(self) -> None:
        if self.n < 1:
            raise ValueError(f"n={self.n} must be >= 1")
        if self.temperature < 0:
            raise ValueError(f"temperature={self.temperature} must be >= 0 (0 = greedy)")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p={self.top_p} must be in (0, 1]")
        if self.top_k < 0:
            raise ValueError(f"top_k={self.top_k} must be >= 0 (0 = off)")
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens={self.max_new_tokens} must be >= 1")
        if isinstance(self.stop, str) or any(not s for s in self.stop):
            raise ValueError(f"stop={self.stop!r} must be a tuple of non-empty strings")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0


@dataclasses.dataclass(frozen=True)
class Rollout:
    """One sampled completion.

    ``completion_ids`` include the EOS token when the model emitted it, and the whole token that
    completed a stop string; ``text`` is the decoded completion without special tokens, cut right after
    the stop string. ``logprobs`` has one entry per completion id (see the module docstring).
    """

    prompt_ids: tuple[int, ...]
    completion_ids: tuple[int, ...]
    text: str
    logprobs: tuple[float, ...]
    finish_reason: FinishReason


@runtime_checkable
class RolloutEngine(Protocol):
    """What the trainer needs from a rollout backend."""

    def generate(
        self, prompts: Sequence[str] | Sequence[Sequence[int]], sampling: SamplingParams
    ) -> list[list[Rollout]]:
        """Sample ``sampling.n`` completions per prompt (text or token ids); one group per prompt."""
        ...

    def load_weights(self, model: torch.nn.Module) -> None:
        """Take the learner's current weights (call after every optimiser step)."""
        ...


def warp_logits(logits: torch.Tensor, temperature: float, top_k: int, top_p: float) -> torch.Tensor:
    """Temperature, then top-k, then top-p, exactly as Hugging Face's logits warpers do them.

    Args:
        logits: ``[R, V]`` float32 next-token logits.

    Returns:
        ``[R, V]`` scores with filtered tokens at ``-inf``.

    >>> warp_logits(torch.tensor([[2.0, 1.0, 0.0]]), 2.0, 2, 1.0)
    tensor([[1.0000, 0.5000,   -inf]])
    """
    scores = logits / temperature if temperature not in (0.0, 1.0) else logits  # [R, V]
    if top_k > 0:
        k = min(top_k, scores.size(-1))
        kth = torch.topk(scores, k)[0][..., -1, None]  # [R, 1]
        scores = scores.masked_fill(scores < kth, float("-inf"))
    if top_p < 1.0:
        sorted_scores, sorted_idx = torch.sort(scores, descending=False)  # [R, V]
        cumulative = sorted_scores.softmax(dim=-1).cumsum(dim=-1)
        remove_sorted = cumulative <= (1 - top_p)
        remove_sorted[..., -1:] = False  # keep at least one token
        remove = remove_sorted.scatter(1, sorted_idx, remove_sorted)
        scores = scores.masked_fill(remove, float("-inf"))
    return scores


def select_tokens(
    scores: torch.Tensor, greedy: bool, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Pick the next token of every row from warped scores ``[R, V]``: argmax, or one multinomial draw
    (from ``generator``, or torch's global RNG).

    >>> select_tokens(torch.tensor([[0.0, 3.0, 1.0]]), greedy=True)
    tensor([1])
    """
    if greedy:
        return torch.argmax(scores, dim=-1)  # [R]
    probs = torch.softmax(scores, dim=-1)
    return torch.multinomial(probs, num_samples=1, generator=generator).squeeze(1)  # [R]


def token_logprobs(logits: torch.Tensor, tokens: torch.Tensor, temperature: float) -> torch.Tensor:
    """Log-prob of ``tokens`` ``[R]`` under ``softmax(logits / T)`` (``T = 1`` for greedy), before top-k/p.

    >>> token_logprobs(torch.tensor([[0.0, 0.0]]), torch.tensor([1]), 1.0)
    tensor([-0.6931])
    """
    scaled = logits / temperature if temperature > 0 else logits  # [R, V]
    return torch.log_softmax(scaled.float(), dim=-1).gather(1, tokens[:, None]).squeeze(1)  # [R]


@contextlib.contextmanager
def seeded_rng(seed: int | None) -> Iterator[None]:
    """Seed torch's global RNG for the block and restore the caller's state afterwards (None: no-op)."""
    if seed is None:
        yield
        return
    devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def truncate_at_stop(text: str, stop: Sequence[str]) -> tuple[str, bool]:
    """Cut ``text`` right after the earliest-ending stop string; report whether one was found.

    >>> truncate_at_stop("<answer>7</answer> and more", ["</answer>"])
    ('<answer>7</answer>', True)
    >>> truncate_at_stop("no stop here", ["</answer>"])
    ('no stop here', False)
    """
    ends = [i + len(s) for s in stop if (i := text.find(s)) >= 0]
    if not ends:
        return text, False
    return text[: min(ends)], True


class StopChecker:
    """Finds rows whose newest token completed a stop string, decoding only a short tail of rare rows.

    A row is decoded only when its new token's text contains the last character of a stop string
    (or cannot be decoded alone, e.g. a partial UTF-8 byte), so the common step costs one tensor lookup.
    """

    def __init__(self, tokenizer, stop: Sequence[str], vocab_size: int) -> None:
        self.tokenizer = tokenizer
        self.stop = tuple(stop)
        self.tail = 4 * max((len(s) for s in self.stop), default=0) + 4
        may_end = torch.zeros(vocab_size, dtype=torch.bool)
        if self.stop:
            last_chars = {s[-1] for s in self.stop}
            pieces = tokenizer.batch_decode([[i] for i in range(min(vocab_size, len(tokenizer)))])
            for token_id, piece in enumerate(pieces):
                may_end[token_id] = "\ufffd" in piece or any(c in piece for c in last_chars)
        self.may_end = may_end  # [V]

    def hits(self, generated: torch.Tensor, step: int, active: torch.Tensor) -> torch.Tensor:
        """Rows (bool ``[R]``) that now contain a stop string.

        Args:
            generated: ``[R, S]`` completion token ids so far (CPU); column ``step`` is the newest.
            step: index of the newest column.
            active: ``[R]`` bool, rows still generating.
        """
        hit = torch.zeros(generated.size(0), dtype=torch.bool)
        if not self.stop:
            return hit
        newest = generated[:, step].clamp(0, self.may_end.numel() - 1)
        rows = (active & self.may_end[newest]).nonzero().flatten().tolist()
        lo = max(0, step + 1 - self.tail)
        for row in rows:
            text = self.tokenizer.decode(generated[row, lo : step + 1].tolist(), skip_special_tokens=True)
            hit[row] = any(s in text for s in self.stop)
        return hit


def build_rollouts(
    prompt_ids: Sequence[Sequence[int]],
    generated: torch.Tensor,
    logprobs: torch.Tensor,
    lengths: torch.Tensor,
    stopped: torch.Tensor,
    tokenizer,
    sampling: SamplingParams,
) -> list[list[Rollout]]:
    """Assemble groups of ``Rollout`` from an engine's row-major outputs (row = prompt * n + sample).

    Args:
        prompt_ids: one token list per prompt.
        generated: ``[R, S]`` completion ids (anything past a row's length is padding).
        logprobs: ``[R, S]`` float log-probs of ``generated``.
        lengths: ``[R]`` completion length of each row.
        stopped: ``[R]`` bool, True when EOS or a stop string ended the row.
    """
    groups: list[list[Rollout]] = []
    gen, lps = generated.tolist(), logprobs.tolist()
    for p, prompt in enumerate(prompt_ids):
        group = []
        for row in range(p * sampling.n, (p + 1) * sampling.n):
            length = int(lengths[row])
            ids = tuple(gen[row][:length])
            text, _ = truncate_at_stop(tokenizer.decode(ids, skip_special_tokens=True), sampling.stop)
            reason: FinishReason = "stop" if bool(stopped[row]) else "length"
            group.append(Rollout(tuple(prompt), ids, text, tuple(lps[row][:length]), reason))
        groups.append(group)
    return groups


def encode_prompts(tokenizer, prompts: Sequence[str] | Sequence[Sequence[int]]) -> list[list[int]]:
    """Token ids of each prompt: text is encoded with the tokenizer's own special tokens (e.g. BOS)."""
    if not prompts:
        raise ValueError("prompts is empty; pass at least one prompt")
    if all(isinstance(p, str) for p in prompts):
        return [list(tokenizer(p)["input_ids"]) for p in prompts]
    if any(isinstance(p, str) for p in prompts):
        raise ValueError("prompts mixes strings and token-id lists; pass one kind")
    out = [[int(t) for t in p] for p in prompts]
    if any(not p for p in out):
        raise ValueError("a prompt has no tokens")
    return out


def eos_ids(tokenizer, model_config) -> list[int]:
    """EOS ids from the tokenizer and the model config (Qwen-style configs list several)."""
    ids: set[int] = set()
    for source in (getattr(model_config, "eos_token_id", None), tokenizer.eos_token_id):
        if isinstance(source, int):
            ids.add(source)
        elif source is not None:
            ids.update(int(i) for i in source)
    return sorted(ids)


def left_pad(prompts: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-pad prompts to one length: ``(input_ids [B, P], attention_mask [B, P])``.

    >>> left_pad([[5, 6], [7]], pad_id=0)
    (tensor([[5, 6],
            [0, 7]]), tensor([[1, 1],
            [0, 1]]))
    """
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for i, p in enumerate(prompts):
        ids[i, width - len(p) :] = torch.tensor(p, dtype=torch.long)
        mask[i, width - len(p) :] = 1
    return ids, mask


class BatchedEngine:
    """What the ``hf`` and ``fast`` engines share: encode the prompts, split them into batches of at most
    ``max_batch_rows`` sequences (prompts x n), sample every batch under one seeded RNG, and keep one
    ``StopChecker`` per stop-string set. A subclass sets ``tokenizer`` and ``max_batch_rows`` and defines
    ``_generate_batch(prompt_ids, sampling) -> list[list[Rollout]]``.
    """

    tokenizer: Any
    max_batch_rows: int

    def generate(
        self, prompts: Sequence[str] | Sequence[Sequence[int]], sampling: SamplingParams
    ) -> list[list[Rollout]]:
        prompt_ids = encode_prompts(self.tokenizer, prompts)
        per_call = max(1, self.max_batch_rows // sampling.n)
        groups: list[list[Rollout]] = []
        with seeded_rng(sampling.seed):
            for start in range(0, len(prompt_ids), per_call):
                groups += self._generate_batch(prompt_ids[start : start + per_call], sampling)
        return groups

    def _stop_checker(self, stop: tuple[str, ...], vocab: int) -> StopChecker:
        """One ``StopChecker`` per stop-string set (building one decodes the whole vocabulary once)."""
        cache = self.__dict__.setdefault("_stops", {})
        if (stop, vocab) not in cache:
            cache[(stop, vocab)] = StopChecker(self.tokenizer, stop, vocab)
        return cache[(stop, vocab)]
