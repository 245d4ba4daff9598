"""The ``fast`` rollout engine: a hand-written decode loop for Llama/Qwen2-style models on CPU.

It runs the Hugging Face model's own weights (copied, with Q/K/V and gate/up fused into one matmul each)
through a plain decoder: RMSNorm, RoPE (the model's own rotary table), grouped-query attention over a
preallocated static KV cache, SwiGLU. Each decode step is one batched forward over all rows plus the
shared sampling step (``r1zero.rollout.base.select_tokens``), with no cache objects, no processor
lists and no per-token Python beyond the layers. Each prompt is prefilled once and its KV cache copied to
its ``n`` rows. Why: Hugging Face ``generate`` spends milliseconds of overhead per step, which dominates
at tiny-base sizes (DESIGN.md section 6); ``bench/rollout.py`` measures the difference.

Finished rows leave the decode batch (compaction, each time a quarter of it has finished), so the cost
of a step follows the rows still generating; the sampling step still draws over every row (finished
rows keep their last logits and get the pad token, as in ``generate``), so the RNG draws match the
``hf`` engine for the same seed.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator

import torch
import torch.nn.functional as F

from r1zero.rollout.base import (
    BatchedEngine,
    Rollout,
    SamplingParams,
    build_rollouts,
    eos_ids,
    left_pad,
    select_tokens,
    token_logprobs,
    warp_logits,
)

__all__ = ["SUPPORTED_MODEL_TYPES", "FastEngine"]

#: Compact the decode batch when the rows still generating fall to this fraction of it.
COMPACT_AT = 0.75

#: ``config.model_type`` values with the Llama block layout (Qwen2 adds Q/K/V biases).
SUPPORTED_MODEL_TYPES = ("llama", "qwen2")


@dataclasses.dataclass(frozen=True)
class _Layer:
    norm1: torch.Tensor  # [d]
    qkv_w: torch.Tensor  # [(H + 2 Hkv) Dh, d]
    qkv_b: torch.Tensor | None
    o_w: torch.Tensor  # [d, H Dh]
    norm2: torch.Tensor  # [d]
    gate_up_w: torch.Tensor  # [2 F, d]
    down_w: torch.Tensor  # [d, F]


class FastEngine(BatchedEngine):
    """Static-KV-cache sampler over a Llama/Qwen2 ``*ForCausalLM``'s weights (any device, built for CPU).

    Args:
        model: a ``LlamaForCausalLM`` or ``Qwen2ForCausalLM`` (without sliding-window attention).
        tokenizer: its tokenizer.
        max_batch_rows: decode at most this many rows (prompts x n) at once.
        decode_threads: torch threads for the token-by-token decode loop (at most the caller's count;
            the prompt prefill keeps the caller's). Its ops are small (a ``[64, 256] x [256, 1024]``
            matmul is ~0.2 ms), so splitting each across OpenMP threads buys little, and every op ends
            at a barrier that waits for the slowest thread: when another process holds a core, a
            2-thread decode measured 30x slower than a 1-thread one on a 2-core machine.
    """

    name = "fast"

    def __init__(
        self, model: torch.nn.Module, tokenizer, *, max_batch_rows: int = 1024, decode_threads: int = 1
    ) -> None:
        cfg = model.config
        if cfg.model_type not in SUPPORTED_MODEL_TYPES:
            raise ValueError(
                f"fast engine supports model_type in {SUPPORTED_MODEL_TYPES}, got {cfg.model_type!r}; "
                "use the 'hf' or 'vllm' backend"
            )
        if getattr(cfg, "use_sliding_window", False):
            raise ValueError("fast engine does not implement sliding-window attention; use 'hf' or 'vllm'")
        self.tokenizer = tokenizer
        self.max_batch_rows = max_batch_rows
        if decode_threads < 1:
            raise ValueError(f"decode_threads={decode_threads} must be >= 1")
        self.decode_threads = decode_threads
        self.heads = cfg.num_attention_heads
        self.kv_heads = getattr(cfg, "num_key_value_heads", None) or self.heads
        self.head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // self.heads
        self.eps = cfg.rms_norm_eps
        self.eos = eos_ids(tokenizer, cfg)
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (self.eos or [0])[0]
        self.pad_id = int(pad)
        self.max_positions = cfg.max_position_embeddings
        self.load_weights(model)

    def load_weights(self, model: torch.nn.Module) -> None:
        """Copy (and fuse) the learner's weights; call after every optimiser step."""
        base = model.get_decoder()
        self.device = base.embed_tokens.weight.device
        self.dtype = base.embed_tokens.weight.dtype
        self.embed = base.embed_tokens.weight.detach().clone()  # [V, d]
        self.lm_head = model.get_output_embeddings().weight.detach().clone()  # [V, d]
        self.final_norm = base.norm.weight.detach().clone()
        self.layers = [self._fuse(layer) for layer in base.layers]
        positions = torch.arange(self.max_positions, device=self.device)[None]  # [1, Pmax]
        probe = torch.zeros(1, dtype=torch.float32, device=self.device)
        cos, sin = base.rotary_emb(probe, positions)  # [1, Pmax, Dh]
        self.cos, self.sin = cos[0].to(self.dtype), sin[0].to(self.dtype)  # [Pmax, Dh]

    @staticmethod
    def _fuse(layer: torch.nn.Module) -> _Layer:
        attn, mlp = layer.self_attn, layer.mlp
        qkv_b = None
        if attn.q_proj.bias is not None:
            qkv_b = torch.cat([attn.q_proj.bias, attn.k_proj.bias, attn.v_proj.bias]).detach().clone()
        return _Layer(
            norm1=layer.input_layernorm.weight.detach().clone(),
            qkv_w=torch.cat([attn.q_proj.weight, attn.k_proj.weight, attn.v_proj.weight]).detach().clone(),
            qkv_b=qkv_b,
            o_w=attn.o_proj.weight.detach().clone(),
            norm2=layer.post_attention_layernorm.weight.detach().clone(),
            gate_up_w=torch.cat([mlp.gate_proj.weight, mlp.up_proj.weight]).detach().clone(),
            down_w=mlp.down_proj.weight.detach().clone(),
        )

    # ----------------------------------------------------------------------------------------------
    @torch.no_grad()
    def _generate_batch(self, prompt_ids: list[list[int]], sampling: SamplingParams) -> list[list[Rollout]]:
        ids, mask = left_pad(prompt_ids, self.pad_id)  # [B, P]
        width = ids.size(1)
        if width + sampling.max_new_tokens > self.max_positions:
            raise ValueError(
                f"prompt ({width} tokens) + max_new_tokens ({sampling.max_new_tokens}) exceeds the model's "
                f"max_position_embeddings={self.max_positions}"
            )
        ids, mask = ids.to(self.device), mask.to(self.device).bool()
        positions = (mask.long().cumsum(1) - 1).clamp(min=0)  # [B, P], as generate does for left padding
        causal = torch.ones(width, width, dtype=torch.bool, device=self.device).tril()  # [P, P]
        allowed = causal[None] & mask[:, None, :]  # [B, P, P]
        allowed |= torch.eye(width, dtype=torch.bool, device=self.device)[None]  # pad queries see themselves
        prompt_caches, logits = self._prefill(ids, positions, allowed)  # logits [B, V]
        logits = logits.repeat_interleave(sampling.n, 0).float()  # [R, V], row = prompt * n + sample
        prompt_bias = torch.zeros(mask.shape, dtype=self.dtype, device=self.device)
        prompt_bias = prompt_bias.masked_fill_(~mask, float("-inf"))[:, None, None, :]  # [B, 1, 1, P]
        position = positions[:, -1].repeat_interleave(sampling.n, 0)  # [R]
        with _threads(min(self.decode_threads, torch.get_num_threads())):
            return self._decode(prompt_ids, logits, prompt_caches, prompt_bias, position, sampling)

    def _decode(
        self, prompt_ids, logits, prompt_caches, prompt_bias, position, sampling
    ) -> list[list[Rollout]]:
        rows, steps = logits.size(0), sampling.max_new_tokens
        stops = self._stop_checker(sampling.stop, self.lm_head.size(0))
        eos = torch.tensor(self.eos, dtype=torch.long, device=self.device)
        shape = (rows, self.kv_heads, steps, self.head_dim)  # [R, Hkv, S, Dh]
        caches = [(self._zeros(shape), self._zeros(shape)) for _ in self.layers]
        generated = torch.full((rows, steps), self.pad_id, dtype=torch.long)  # [R, S] on CPU
        logprobs = torch.zeros(rows, steps)  # [R, S]
        lengths = torch.full((rows,), steps, dtype=torch.long)
        stopped = torch.zeros(rows, dtype=torch.bool)
        active = torch.ones(rows, dtype=torch.bool, device=self.device)
        live = torch.arange(rows, device=self.device)  # [L] rows in the decode batch (cache slots)
        t = sampling.temperature
        for step in range(steps):
            scores = logits if sampling.greedy else warp_logits(logits, t, sampling.top_k, sampling.top_p)
            tokens = select_tokens(scores, sampling.greedy)  # [R]
            tokens = torch.where(active, tokens, self.pad_id)
            generated[:, step] = tokens.cpu()
            logprobs[:, step] = token_logprobs(logits, tokens, t).cpu()
            finished = (active & torch.isin(tokens, eos)).cpu() | stops.hits(generated, step, active.cpu())
            lengths[finished] = step + 1
            stopped |= finished
            active &= ~finished.to(self.device)
            if step + 1 == steps or not bool(active.any()):
                break
            position = position + 1
            if int(active.sum()) <= COMPACT_AT * live.numel():  # drop finished rows from the batch
                keep = active[live].nonzero().flatten()  # [L'] slots still generating
                live = live[keep]
                caches = [(k[keep], v[keep]) for k, v in caches]
            rows_in = live if live.numel() < rows else None
            out = self._step(
                tokens[live], position[live], prompt_caches, prompt_bias, caches, step, rows_in, rows
            )
            logits[live] = out.float()  # [R, V]; finished rows keep stale logits (their draws are unused)
        return build_rollouts(prompt_ids, generated, logprobs, lengths, stopped, self.tokenizer, sampling)

    def _zeros(self, shape: tuple[int, ...]) -> torch.Tensor:
        return torch.zeros(shape, dtype=self.dtype, device=self.device)

    def _prefill(
        self, ids, positions, allowed
    ) -> tuple[list[tuple[torch.Tensor, torch.Tensor]], torch.Tensor]:
        """Run the left-padded prompts ``ids [B, P]`` once; return their K/V caches and last logits ``[B, V]``.

        ``allowed`` is the boolean attention mask ``[B, P, P]`` (causal and not padding).
        """
        rows, length = ids.shape
        h, hkv, dh = self.heads, self.kv_heads, self.head_dim
        x = F.embedding(ids, self.embed)  # [B, P, d]
        cos, sin = self.cos[positions][:, None], self.sin[positions][:, None]  # [B, 1, P, Dh]
        bias = self._zeros(allowed.shape).masked_fill_(~allowed, float("-inf"))[:, None]  # [B, 1, P, P]
        bias = bias.expand(rows, h // hkv, length, length).reshape(rows, 1, h // hkv * length, length)
        caches = []
        for layer in self.layers:
            y = F.rms_norm(x, (x.size(-1),), layer.norm1, self.eps)
            qkv = F.linear(y, layer.qkv_w, layer.qkv_b)  # [B, P, (H + 2 Hkv) Dh]
            q, k, v = qkv.split([h * dh, hkv * dh, hkv * dh], dim=-1)
            q = _rope(q.view(rows, length, h, dh).transpose(1, 2), cos, sin)  # [B, H, P, Dh]
            k = _rope(k.view(rows, length, hkv, dh).transpose(1, 2), cos, sin).contiguous()  # [B, Hkv, P, Dh]
            v = v.view(rows, length, hkv, dh).transpose(1, 2).contiguous()
            caches.append((k, v))
            attn = _attend(q, k, v, bias)  # [B, H, P, Dh]
            x = x + F.linear(attn.transpose(1, 2).reshape(rows, length, h * dh), layer.o_w)
            x = x + self._mlp(layer, x)
        x = F.rms_norm(x[:, -1], (x.size(-1),), self.final_norm, self.eps)
        return caches, F.linear(x, self.lm_head)  # [B, V]

    def _step(
        self, tokens, position, prompt_caches, prompt_bias, caches, step, live=None, rows_total=0
    ) -> torch.Tensor:
        """One decode step: ``tokens [L]`` at ``position [L]``; returns logits ``[L, V]``.

        The ``L`` rows are all ``R = rows_total`` rows, or the rows ``live [L]`` after compaction.
        Attention is split (cascade attention): the prompt part is computed once per prompt for its
        ``n`` rows as one matmul, the generated part per row; one softmax spans both.
        """
        rows = tokens.size(0)
        h, hkv, dh = self.heads, self.kv_heads, self.head_dim
        x = F.embedding(tokens, self.embed)  # [R, d]
        cos, sin = self.cos[position][:, None], self.sin[position][:, None]  # [R, 1, Dh]
        for layer, (kp, vp), (kg, vg) in zip(self.layers, prompt_caches, caches, strict=True):
            y = F.rms_norm(x, (x.size(-1),), layer.norm1, self.eps)
            qkv = F.linear(y, layer.qkv_w, layer.qkv_b)  # [R, (H + 2 Hkv) Dh]
            q, k, v = qkv.split([h * dh, hkv * dh, hkv * dh], dim=-1)
            q = _rope(q.view(rows, h, dh), cos, sin)  # [R, H, Dh]
            kg[:, :, step] = _rope(k.view(rows, hkv, dh), cos, sin)
            vg[:, :, step] = v.view(rows, hkv, dh)
            attn = _attend_cascade(
                q, kp, vp, prompt_bias, kg[:, :, : step + 1], vg[:, :, : step + 1], live, rows_total
            )
            x = x + F.linear(attn, layer.o_w)  # [R, d]
            x = x + self._mlp(layer, x)
        x = F.rms_norm(x, (x.size(-1),), self.final_norm, self.eps)
        return F.linear(x, self.lm_head)  # [R, V]

    def _mlp(self, layer: _Layer, x: torch.Tensor) -> torch.Tensor:
        y = F.rms_norm(x, (x.size(-1),), layer.norm2, self.eps)
        gate, up = F.linear(y, layer.gate_up_w).chunk(2, dim=-1)  # [..., F] each
        return F.linear(F.silu(gate) * up, layer.down_w)


@contextlib.contextmanager
def _threads(count: int) -> Iterator[None]:
    """Run the block with ``count`` torch threads, then restore the caller's count."""
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotary position embedding, half-split layout as in Hugging Face Llama (``rotate_half``)."""
    half = x.size(-1) // 2
    rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
    return x * cos + rotated * sin


def _attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """Grouped-query attention as plain matmuls.

    Args:
        q: ``[B, H, S, Dh]``; k, v: ``[B, Hkv, L, Dh]``; bias: ``[B, 1, (H / Hkv) S, L]`` (0 or -inf).
    """
    rows, heads, length, dh = q.shape
    kv_heads = k.size(1)
    q = q.reshape(rows, kv_heads, heads // kv_heads * length, dh)  # [B, Hkv, G S, Dh]
    scores = torch.matmul(q, k.transpose(-1, -2)) * dh**-0.5 + bias  # [B, Hkv, G S, L]
    out = torch.matmul(scores.softmax(dim=-1), v)  # [B, Hkv, G S, Dh]
    return out.reshape(rows, heads, length, dh)


def _attend_cascade(q, kp, vp, prompt_bias, kg, vg, live=None, rows=0) -> torch.Tensor:
    """One-token attention over a shared prompt cache plus each row's own generated cache.

    Args:
        q: ``[L, H, Dh]``: every row (``L = R = B n``, row = prompt * n + sample), or the rows ``live``.
        kp, vp: ``[B, Hkv, P, Dh]`` prompt keys/values; prompt_bias: ``[B, 1, 1, P]`` (0 or -inf).
        kg, vg: ``[L, Hkv, t, Dh]`` generated keys/values (all valid).
        live: ``[L]`` row ids after compaction, or None for all rows. The prompt part then runs on the
            full ``[R]`` grid (zero queries for finished rows), so it stays one matmul per prompt.
        rows: ``R``, the rows of the full grid (used with ``live``).

    Returns:
        ``[L, H Dh]``.
    """
    heads, dh = q.shape[1:]
    prompts, kv_heads, width, _ = kp.shape
    rows = q.size(0) if live is None else rows
    groups = heads // kv_heads
    q = q.view(-1, kv_heads, groups, dh)  # [L, Hkv, G, Dh]
    grid = q if live is None else q.new_zeros(rows, kv_heads, groups, dh).index_copy_(0, live, q)  # [R, ...]
    n = rows // prompts
    qp = (
        grid.view(prompts, n, kv_heads, groups, dh).transpose(1, 2).reshape(prompts, kv_heads, n * groups, dh)
    )
    scale = dh**-0.5
    sp = torch.matmul(qp, kp.transpose(-1, -2)) * scale + prompt_bias  # [B, Hkv, n G, P]
    sp = sp.view(prompts, kv_heads, n, groups, width).transpose(1, 2).reshape(rows, kv_heads, groups, width)
    if live is not None:
        sp = sp[live]  # [L, Hkv, G, P]
    sg = torch.matmul(q, kg.transpose(-1, -2)) * scale  # [L, Hkv, G, t]
    weights = torch.cat([sp, sg], dim=-1).softmax(dim=-1)  # [L, Hkv, G, P + t]
    wp, wg = weights.split([width, kg.size(2)], dim=-1)
    if live is not None:
        wp = wp.new_zeros(rows, kv_heads, groups, width).index_copy_(0, live, wp)  # [R, Hkv, G, P]
    wp = (
        wp.reshape(prompts, n, kv_heads, groups, width)
        .transpose(1, 2)
        .reshape(prompts, kv_heads, n * groups, width)
    )
    op = torch.matmul(wp, vp)  # [B, Hkv, n G, Dh]
    op = op.view(prompts, kv_heads, n, groups, dh).transpose(1, 2).reshape(rows, kv_heads, groups, dh)
    if live is not None:
        op = op[live]  # [L, Hkv, G, Dh]
    out = op + torch.matmul(wg, vg)  # [L, Hkv, G, Dh]
    return out.reshape(-1, heads * dh)
