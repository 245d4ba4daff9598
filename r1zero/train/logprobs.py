"""Token log-probs and entropies from final hidden states, the LM head run over chunks of positions.

At a 152k vocabulary (Qwen2.5) the full ``[b, T, V]`` float32 logits of a micro-batch of 8 rows x 512
tokens take 2.5 GB, and the log-softmax, its backward and the entropy hold several such tensors at once:
the peak memory of a learner step. ``chunked_logprobs`` runs the LM head and the log-softmax on
``chunk_size`` positions at a time and recomputes each chunk in the backward pass
(``torch.utils.checkpoint``, as Liger-Kernel's fused linear cross-entropy and verl's chunked entropy do),
so only ``[b, chunk_size, V]`` lives at once, forward and backward. The result is the full computation's
up to float rounding. ``chunk_positions`` decides when that is worth it: small logits (the CPU demo's
vocabulary of ~100) keep the one-shot path.

Log-probs are of ``softmax(logits / temperature)``, what the rollout engines return
(``r1zero.rollout.base``), so their ratio is the importance-sampling correction.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch.utils.checkpoint import checkpoint

from r1zero.algo.grpo import entropy_from_logp

__all__ = [
    "CHUNK_BYTES",
    "FULL_LOGITS_MAX_BYTES",
    "chunk_positions",
    "chunked_logprobs",
    "token_logprobs",
]

#: entropy alongside the log-probs: none (False), without gradient (True), or with it ("grad")
EntropyMode = bool | Literal["grad"]

#: float32 logits of a micro-batch up to this size run in one piece (``chunk_positions``)
FULL_LOGITS_MAX_BYTES = 256 * 2**20
#: float32 logits per chunk of the chunked path (a chunk is at least one position)
CHUNK_BYTES = 64 * 2**20


def chunk_positions(
    rows: int,
    positions: int,
    vocab: int,
    max_bytes: int | None = None,
    chunk_bytes: int | None = None,
) -> int | None:
    """Positions per LM-head chunk for ``[rows, positions, vocab]`` float32 logits; None when they fit.

    Args:
        rows, positions, vocab: the logits' shape.
        max_bytes: the largest logits run in one piece (None: ``FULL_LOGITS_MAX_BYTES`` at call time).
        chunk_bytes: the logits of one chunk (None: ``CHUNK_BYTES`` at call time).

    >>> chunk_positions(6, 20, 128) is None  # the CPU demo: 61 KB of logits
    True
    >>> chunk_positions(8, 512, 151_936)  # Qwen2.5's vocabulary: 2.5 GB in chunks of 64 MiB
    13
    """
    max_bytes = FULL_LOGITS_MAX_BYTES if max_bytes is None else max_bytes
    chunk_bytes = CHUNK_BYTES if chunk_bytes is None else chunk_bytes
    per_position = 4 * rows * vocab
    if per_position * positions <= max_bytes:
        return None
    return max(1, min(positions, chunk_bytes // per_position))


def token_logprobs(
    logits: torch.Tensor, targets: torch.Tensor, temperature: float = 1.0, with_entropy: EntropyMode = False
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Log-prob of ``targets`` under ``softmax(logits / temperature)`` in float32, and its entropy (no grad;
    with gradient when ``with_entropy`` is ``"grad"``, for an entropy bonus).

    ``temperature`` 0 (greedy rollouts) or 1 leaves the logits as they are.

    Args:
        logits: ``[..., V]``; targets: ``[...]`` token ids.

    >>> logp, entropy = token_logprobs(torch.zeros(1, 4), torch.tensor([2]), with_entropy=True)
    >>> round(logp.item(), 4), round(entropy.item(), 4)
    (-1.3863, 1.3863)
    >>> token_logprobs(torch.tensor([[0.0, 1.0]]), torch.tensor([1]), temperature=0.5)[0]
    tensor([-0.1269])
    """
    logits = logits.float()  # [..., V]
    if temperature > 0 and temperature != 1.0:
        logits = logits / temperature
    logp = torch.log_softmax(logits, dim=-1)  # [..., V]
    picked = logp.gather(-1, targets[..., None]).squeeze(-1)  # [...]
    entropy = None
    if with_entropy == "grad":
        entropy = entropy_from_logp(logp)  # [...]
    elif with_entropy:
        with torch.no_grad():
            entropy = entropy_from_logp(logp)  # [...]
    return picked, entropy


def chunked_logprobs(
    hidden: torch.Tensor,
    head: torch.nn.Module,
    targets: torch.Tensor,
    temperature: float = 1.0,
    chunk_size: int = 64,
    with_entropy: EntropyMode = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``token_logprobs(head(hidden), targets, ...)`` with ``head`` run on ``chunk_size`` positions at a time.

    With gradients on, each chunk's logits are recomputed in the backward pass instead of kept, so the
    peak is one chunk's ``[b, chunk_size, V]`` logits and log-softmax (and their gradients), not the
    whole ``[b, T, V]``. ``head`` is called as a module (``model.get_output_embeddings()``): a bias, tied
    embeddings, LoRA or a sharded root whose parameters are gathered for its forward all work as in the
    model's own forward.

    Args:
        hidden: ``[b, T, H]`` final hidden states (after the last norm) at the positions predicting ``targets``.
        head: the LM head, ``[..., H] -> [..., V]``.
        targets: ``[b, T]`` token ids.
        temperature: as ``token_logprobs``.
        chunk_size: positions per chunk (the last chunk may be shorter).
        with_entropy: also return the entropy ``[b, T]`` (no grad; ``"grad"``: with its gradient).

    >>> head = torch.nn.Linear(2, 3, bias=False)
    >>> torch.nn.init.zeros_(head.weight) is head.weight
    True
    >>> logp, _ = chunked_logprobs(torch.ones(1, 5, 2), head, torch.zeros(1, 5, dtype=torch.long), chunk_size=2)
    >>> logp.shape, round(logp[0, 4].item(), 4)  # a uniform distribution over 3 tokens
    (torch.Size([1, 5]), -1.0986)
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size={chunk_size} must be >= 1")

    def score(h: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        return token_logprobs(head(h), y, temperature, with_entropy)  # logits [b, chunk, V] live only here

    recompute = torch.is_grad_enabled()
    logps, entropies = [], []
    for start in range(0, hidden.shape[1], chunk_size):
        h, y = (
            hidden[:, start : start + chunk_size],
            targets[:, start : start + chunk_size],
        )  # [b, c, H], [b, c]
        logp, entropy = checkpoint(score, h, y, use_reentrant=False) if recompute else score(h, y)
        logps.append(logp)  # [b, c]
        entropies.append(entropy)
    entropy = torch.cat(entropies, dim=1) if with_entropy else None  # [b, T]
    return torch.cat(logps, dim=1), entropy  # [b, T]
