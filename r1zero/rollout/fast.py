"""The ``fast`` rollout engine: a hand-written decode loop for Llama/Qwen2-style models on CPU.

It runs the Hugging Face model's own weights (copied, with Q/K/V and gate/up fused into one matmul each)
through a plain decoder: RMSNorm, RoPE (the model's own rotary table), grouped-query attention over a
preallocated static KV cache, SwiGLU. Each decode step is one batched forward over all rows plus the
shared sampling step (``r1zero.rollout.base.select_tokens``), with no cache objects, no processor
lists and no per-token Python beyond the layers. Each prompt is prefilled once and its KV cache copied to
its ``n`` rows. Why: Hugging Face ``generate`` spends milliseconds of overhead per step, which dominates
at tiny-base sizes; ``bench/rollout.py`` measures the difference.

With ``decode_threads = k > 1`` the prompts of a call are split into ``k`` contiguous shards, each
prefilled and decoded by its own Python thread on one torch thread with its own seeded RNG stream
(``torch.Generator``): the threads run their small ops side by side instead of meeting at an OpenMP
barrier after every op, and the samples depend on the seed and ``k``, never on timing.

Finished rows leave the decode batch (compaction, each time a quarter of it has finished), so the cost
of a step follows the rows still generating; the sampling step still draws over every row (finished
rows keep their last logits and get the pad token, as in ``generate``), so the RNG draws match the
``hf`` engine for the same seed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import torch
import torch.nn.functional as F

from r1zero import cpu
from r1zero.cpu import onednn as _onednn
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
    """One block's weights, rearranged for the decode loop (the same maths as the model's block).

    The RMSNorm weights are folded into the matmul after each norm and the attention scale
    ``Dh ** -0.5`` into the query rows (RoPE is linear, so scaling before it is the same); the output
    projections add the residual in the same call (``onednn.add_linear``).
    """

    qkv_w: torch.Tensor  # [(H + 2 Hkv) Dh, d]: input norm folded in, query rows scaled
    qkv_b: torch.Tensor | None  # query part scaled
    o_w: torch.Tensor  # [d, H Dh]
    gate_up_w: torch.Tensor  # [2 F, d]: post-attention norm folded in
    down_w: torch.Tensor  # [d, F]


class FastEngine(BatchedEngine):
    """Static-KV-cache sampler over a Llama/Qwen2 ``*ForCausalLM``'s weights (any device, built for CPU).

    Args:
        model: a ``LlamaForCausalLM`` or ``Qwen2ForCausalLM`` (without sliding-window attention).
        tokenizer: its tokenizer.
        max_batch_rows: decode at most this many rows (prompts x n) at once.
        decode_threads: Python threads that each prefill and decode their own share of the prompts on
            one torch thread (1: the whole batch in the calling thread; the prefill keeps the caller's
            torch threads, the decode loop runs on one). The decode's matmuls are small (a
            ``[64, 256] x [256, 1024]`` one is ~0.5 ms): split over threads by prompt they run side by
            side, where a 2-thread OpenMP decode waits at a barrier after each op
            (``bench/decode_threads.py`` measures both). Samples for a seed depend on this count.
        onednn: float32 CPU matmuls through oneDNN's GEMM, on weights packed in its layout at each
            ``load_weights`` (``r1zero.cpu.onednn``; ``bench/onednn.py`` measures generation against
            PyTorch's default GEMM); False: PyTorch's default; None: where ``onednn.preferred()``.
    """

    name = "fast"

    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer,
        *,
        max_batch_rows: int = 1024,
        decode_threads: int = 1,
        onednn: bool | None = None,
        native: bool = True,
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
        self.onednn = _onednn.resolve(onednn)
        self._linear = _onednn.linear if self.onednn else F.linear
        self._add_linear = _onednn.add_linear if self.onednn else _addmm
        self.heads = cfg.num_attention_heads
        self.kv_heads = getattr(cfg, "num_key_value_heads", None) or self.heads
        self.head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // self.heads
        self.eps = cfg.rms_norm_eps
        self.eos = eos_ids(tokenizer, cfg)
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (self.eos or [0])[0]
        self.pad_id = int(pad)
        self.max_positions = cfg.max_position_embeddings
        self.load_weights(model)
        self._native = cpu.decode_kernel(self.device, self.dtype, self.head_dim) if native else None

    def load_weights(self, model: torch.nn.Module) -> None:
        """Copy (and fuse) the learner's weights; call after every optimiser step."""
        base = model.get_decoder()
        self.device = base.embed_tokens.weight.device
        self.dtype = base.embed_tokens.weight.dtype
        with torch.no_grad():
            self.embed = base.embed_tokens.weight.detach().clone()  # [V, d]
            head = model.get_output_embeddings().weight
            self.lm_head = head * base.norm.weight  # [V, d], the final norm folded in
            self.layers = [self._fuse(layer, self.head_dim**-0.5) for layer in base.layers]
            if self.onednn:  # oneDNN's blocked layout, once per load instead of in every GEMM call
                self.lm_head = _onednn.pack(self.lm_head)
                self.layers = [_pack(layer) for layer in self.layers]
            positions = torch.arange(self.max_positions, device=self.device)[None]  # [1, Pmax]
            probe = torch.zeros(1, dtype=torch.float32, device=self.device)
            cos, sin = base.rotary_emb(probe, positions)  # [1, Pmax, Dh]
            half = self.head_dim // 2
            signed_sin = torch.cat([-sin[0, :, :half], sin[0, :, half:]], dim=-1)  # see _rope
            self.rope = torch.stack([cos[0], signed_sin], dim=1).to(self.dtype)  # [Pmax, 2, Dh]

    @staticmethod
    def _fuse(layer: torch.nn.Module, scale: float) -> _Layer:
        attn, mlp = layer.self_attn, layer.mlp
        queries = attn.q_proj.weight.size(0)
        qkv_w = torch.cat([attn.q_proj.weight, attn.k_proj.weight, attn.v_proj.weight])
        qkv_w = qkv_w * layer.input_layernorm.weight
        qkv_w[:queries] *= scale
        qkv_b = None
        if attn.q_proj.bias is not None:
            qkv_b = torch.cat([attn.q_proj.bias, attn.k_proj.bias, attn.v_proj.bias])
            qkv_b[:queries] *= scale
        gate_up_w = (
            torch.cat([mlp.gate_proj.weight, mlp.up_proj.weight]) * layer.post_attention_layernorm.weight
        )
        return _Layer(
            qkv_w=qkv_w,
            qkv_b=qkv_b,
            o_w=attn.o_proj.weight.detach().clone(),
            gate_up_w=gate_up_w,
            down_w=mlp.down_proj.weight.detach().clone(),
        )

    def _add_matmul(self, x: torch.Tensor, h: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """``x + h @ w.T`` in one GEMM call (``x``: ``[..., d]``, ``h``: ``[..., k]``, ``w``: ``[d, k]``)."""
        return self._add_linear(x.reshape(-1, x.size(-1)), h.reshape(-1, h.size(-1)), w).view(x.shape)

    # ----------------------------------------------------------------------------------------------
    def _generate_batch(self, prompt_ids: list[list[int]], sampling: SamplingParams) -> list[list[Rollout]]:
        shards = min(self.decode_threads, len(prompt_ids))
        if shards <= 1:
            return self._generate_shard(prompt_ids, sampling, None)
        seeds = torch.randint(0, 2**62, (shards,)).tolist()  # from the global RNG (seeded by generate)
        parts = _split(prompt_ids, shards)
        with _threads(1), ThreadPoolExecutor(shards, thread_name_prefix="r1zero-decode") as pool:
            futures = [
                pool.submit(self._generate_in_thread, part, sampling, seed)
                for part, seed in zip(parts, seeds, strict=True)
            ]
            return [group for future in futures for group in future.result()]

    def _generate_in_thread(self, prompt_ids, sampling: SamplingParams, seed: int) -> list[list[Rollout]]:
        """One shard on this worker thread: one torch thread, its own RNG stream."""
        torch.set_num_threads(1)  # OpenMP's thread count is per thread: set it in this one
        generator = torch.Generator(device=self.device).manual_seed(seed)
        return self._generate_shard(prompt_ids, sampling, generator)

    @torch.no_grad()
    def _generate_shard(
        self, prompt_ids: list[list[int]], sampling: SamplingParams, generator: torch.Generator | None
    ) -> list[list[Rollout]]:
        """Prefill and decode ``prompt_ids`` (``generator``: the sampling RNG; None for torch's global one)."""
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
        prompt_bias = prompt_bias.masked_fill_(~mask, float("-inf"))  # [B, P]
        grid = _PromptGrid.build(prompt_caches, prompt_bias, sampling.n, self.heads)
        position = positions[:, -1].repeat_interleave(sampling.n, 0)  # [R]
        with _threads(1):
            return self._decode(prompt_ids, logits, grid, position, sampling, generator)

    def _decode(
        self, prompt_ids, logits, grid: _PromptGrid, position, sampling, generator=None
    ) -> list[list[Rollout]]:
        rows, steps = logits.size(0), sampling.max_new_tokens
        stops = self._stop_checker(sampling.stop, self.lm_head.size(0))
        eos = torch.tensor(self.eos, dtype=torch.long, device=self.device)
        # the C++ step keeps the keys transposed, [R, Hkv, Dh, S], S a multiple of 16
        slots = steps if self._native is None else _round16(steps)
        shape = (rows, self.kv_heads, slots, self.head_dim)  # [R, Hkv, S, Dh]
        k_shape = shape if self._native is None else (rows, self.kv_heads, self.head_dim, slots)
        caches = [(self._zeros(k_shape), self._zeros(shape)) for _ in self.layers]
        generated = torch.full((rows, steps), self.pad_id, dtype=torch.long)  # [R, S] on CPU
        logprobs = torch.zeros(rows, steps)  # [R, S]
        lengths = torch.full((rows,), steps, dtype=torch.long)
        stopped = torch.zeros(rows, dtype=torch.bool)
        active = torch.ones(rows, dtype=torch.bool, device=self.device)
        live = torch.arange(rows, device=self.device)  # [L] rows in the decode batch (cache slots)
        t = sampling.temperature
        for step in range(steps):
            scores = logits if sampling.greedy else warp_logits(logits, t, sampling.top_k, sampling.top_p)
            tokens = select_tokens(scores, sampling.greedy, generator)  # [R]
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
                grid = grid.rows(live)
            out = self._step(tokens[live], position[live], grid, caches, step).float()  # [L, V]
            # finished rows keep stale logits (their draws are unused)
            logits = out if live.numel() == rows else logits.index_put_((live,), out)
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
        rope = self.rope[positions]  # [B, P, 2, Dh]
        cos, sin = rope[:, None, :, 0], rope[:, None, :, 1]  # [B, 1, P, Dh]
        bias = self._zeros(allowed.shape).masked_fill_(~allowed, float("-inf"))[:, None]  # [B, 1, P, P]
        bias = bias.expand(rows, h // hkv, length, length).reshape(rows, 1, h // hkv * length, length)
        caches = []
        for layer in self.layers:
            qkv = self._linear(self._norm(x), layer.qkv_w, layer.qkv_b)  # [B, P, (H + 2 Hkv) Dh]
            q, k, v = qkv.split([h * dh, hkv * dh, hkv * dh], dim=-1)
            q = _rope(q.view(rows, length, h, dh).transpose(1, 2), cos, sin)  # [B, H, P, Dh]
            k = _rope(k.view(rows, length, hkv, dh).transpose(1, 2), cos, sin).contiguous()  # [B, Hkv, P, Dh]
            v = v.view(rows, length, hkv, dh).transpose(1, 2).contiguous()
            caches.append((k, v))
            attn = _attend(q, k, v, bias)  # [B, H, P, Dh]
            x = self._add_matmul(x, attn.transpose(1, 2).reshape(rows, length, h * dh), layer.o_w)
            x = self._mlp(layer, x)
        return caches, self._linear(self._norm(x[:, -1]), self.lm_head)  # [B, V]

    def _step(self, tokens, position, grid: _PromptGrid, caches, step) -> torch.Tensor:
        """One decode step of the ``L`` rows ``grid.live``: ``tokens [L]`` at ``position [L]``; logits ``[L, V]``."""
        if self._native is not None:
            return self._native_step(tokens, position, grid, caches, step)
        rows = tokens.size(0)
        h, hkv, dh = self.heads, self.kv_heads, self.head_dim
        x = F.embedding(tokens, self.embed)  # [L, d]
        rope = self.rope[position]  # [L, 2, Dh]
        cos, sin = rope[:, None, 0], rope[:, None, 1]  # [L, 1, Dh]
        for index, (layer, (kg, vg)) in enumerate(zip(self.layers, caches, strict=True)):
            qkv = self._linear(self._norm(x), layer.qkv_w, layer.qkv_b)  # [L, (H + 2 Hkv) Dh]
            qk = _rope(qkv[:, : (h + hkv) * dh].view(rows, h + hkv, dh), cos, sin)  # [L, H + Hkv, Dh]
            kg[:, :, step] = qk[:, h:]
            vg[:, :, step] = qkv[:, (h + hkv) * dh :].view(rows, hkv, dh)
            attn = grid.attend(index, qk[:, :h], kg[:, :, : step + 1], vg[:, :, : step + 1])  # [L, H Dh]
            x = self._mlp(layer, self._add_matmul(x, attn, layer.o_w))
        return self._linear(self._norm(x), self.lm_head)  # [L, V]

    def _native_step(self, tokens, position, grid: _PromptGrid, caches, step) -> torch.Tensor:
        """``_step`` in C++ (``decode_step.cpp``: the same maths, the GIL released for the whole step)."""
        layers = self.layers
        return self._native.decode_step(
            tokens,
            position,
            self.embed,
            self.rope,
            [layer.qkv_w for layer in layers],
            [layer.qkv_b for layer in layers] if layers[0].qkv_b is not None else [],
            [layer.o_w for layer in layers],
            [layer.gate_up_w for layer in layers],
            [layer.down_w for layer in layers],
            self.lm_head,
            [k for k, _ in caches],
            [v for _, v in caches],
            grid.prompt_keys,
            grid.values,
            grid.padded_bias,
            grid.prompt,
            step,
            self.heads,
            self.kv_heads,
            self.eps,
        )

    def _norm(self, x: torch.Tensor) -> torch.Tensor:
        """RMSNorm without its weight (folded into the next matmul)."""
        return F.rms_norm(x, (x.size(-1),), None, self.eps)

    def _mlp(self, layer: _Layer, x: torch.Tensor) -> torch.Tensor:
        """``x`` plus the SwiGLU block's output."""
        gate, up = self._linear(self._norm(x), layer.gate_up_w).chunk(2, dim=-1)  # [..., F] each
        return self._add_matmul(x, F.silu(gate).mul_(up), layer.down_w)


@dataclasses.dataclass(frozen=True)
class _PromptGrid:
    """The prompt side of cascade attention for one decode batch of ``R = B n`` rows (``n`` per prompt).

    Each decode row attends to its prompt's keys/values (shared by the prompt's ``n`` rows) and to its
    own generated ones, under one softmax. The prompt part runs as one matmul per (prompt, KV head)
    over a grid ``[B, Hkv, n, G, .]`` of its rows' queries; the rows still decoding (``live``, after
    compaction) are written into the grid and read back from it, and the slots of finished rows keep
    stale values that no live row reads.

    Attributes:
        keys: per layer ``[B Hkv, Dh, P]`` prompt keys (transposed); values: per layer ``[B Hkv, P, Dh]``.
        prompt_keys: per layer ``[B Hkv, Dh, P16]``, ``keys`` made contiguous and zero-padded to a
            multiple of 16 positions (for the C++ step, which scores 16 keys per vector).
        bias: ``[B Hkv, 1, P]`` 0 or -inf (left padding).
        padded_bias: ``[B Hkv, P16]``, ``bias`` with -inf past ``P`` (for the C++ step).
        queries, weights: the grids ``[B, Hkv, n, G, Dh]`` and ``[B, Hkv, n, G, P]`` (scratch).
        prompt, sample: ``[L]`` the grid slot ``(prompt, sample)`` of each live row.
    """

    keys: list[torch.Tensor]
    values: list[torch.Tensor]
    prompt_keys: list[torch.Tensor]
    bias: torch.Tensor
    padded_bias: torch.Tensor
    queries: torch.Tensor
    weights: torch.Tensor
    prompt: torch.Tensor
    sample: torch.Tensor

    @staticmethod
    def build(caches: list[tuple[torch.Tensor, torch.Tensor]], bias: torch.Tensor, n: int, heads: int):
        """From the prefill's ``[B, Hkv, P, Dh]`` caches and the ``[B, P]`` padding bias, for ``n`` rows each."""
        prompts, kv_heads, width, dh = caches[0][0].shape
        groups = heads // kv_heads
        live = torch.arange(prompts * n, device=bias.device)
        pad = _round16(width) - width
        keys = [k.view(prompts * kv_heads, width, dh).transpose(1, 2) for k, _ in caches]
        bias = bias[:, None, None].expand(prompts, kv_heads, 1, width).reshape(prompts * kv_heads, 1, width)
        return _PromptGrid(
            keys=keys,
            values=[v.view(prompts * kv_heads, width, dh) for _, v in caches],
            prompt_keys=[F.pad(k, (0, pad)).contiguous() for k in keys],  # [B Hkv, Dh, P16]
            bias=bias.contiguous(),
            padded_bias=F.pad(bias[:, 0], (0, pad), value=float("-inf")).contiguous(),  # [B Hkv, P16]
            queries=bias.new_zeros(prompts, kv_heads, n, groups, dh),
            weights=bias.new_zeros(prompts, kv_heads, n, groups, width),
            prompt=live // n,
            sample=live % n,
        )

    def rows(self, live: torch.Tensor) -> _PromptGrid:
        """The grid for the decode rows ``live [L]`` (row ids ``prompt * n + sample``)."""
        n = self.queries.size(2)
        return dataclasses.replace(self, prompt=live // n, sample=live % n)

    def attend(self, layer: int, q: torch.Tensor, kg: torch.Tensor, vg: torch.Tensor) -> torch.Tensor:
        """One-token attention of the live rows over their prompt and their generated tokens.

        Args:
            layer: the layer (its prompt keys/values).
            q: ``[L, H, Dh]`` queries, already scaled by ``Dh ** -0.5``.
            kg, vg: ``[L, Hkv, t, Dh]`` each row's generated keys/values (all valid).

        Returns:
            ``[L, H Dh]``.
        """
        rows = q.size(0)
        prompts, kv_heads, n, groups, dh = self.queries.shape
        width = self.bias.size(-1)
        grid = (prompts * kv_heads, n * groups)
        q = q.view(rows, kv_heads, groups, dh)
        self.queries[self.prompt, :, self.sample] = q
        sp = torch.baddbmm(self.bias, self.queries.view(*grid, dh), self.keys[layer])  # [B Hkv, n G, P]
        sp = sp.view(prompts, kv_heads, n, groups, width)[self.prompt, :, self.sample]  # [L, Hkv, G, P]
        sg = torch.matmul(q, kg.transpose(-1, -2))  # [L, Hkv, G, t]
        weights = torch.cat([sp, sg], dim=-1).softmax(dim=-1)  # [L, Hkv, G, P + t]
        self.weights[self.prompt, :, self.sample] = weights[..., :width]
        op = torch.bmm(self.weights.view(*grid, width), self.values[layer])  # [B Hkv, n G, Dh]
        op = op.view(prompts, kv_heads, n, groups, dh)[self.prompt, :, self.sample]  # [L, Hkv, G, Dh]
        steps = kg.size(2)
        out = torch.baddbmm(
            op.view(rows * kv_heads, groups, dh),
            weights[..., width:].reshape(rows * kv_heads, groups, steps),
            vg.reshape(rows * kv_heads, steps, dh),
        )  # [L Hkv, G, Dh]
        return out.view(rows, kv_heads * groups * dh)


@contextlib.contextmanager
def _threads(count: int) -> Iterator[None]:
    """Run the block with ``count`` torch threads, then restore the caller's count."""
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _round16(n: int) -> int:
    """``n`` rounded up to a multiple of 16 (the C++ step's vector width in floats).

    >>> _round16(100), _round16(128)
    (112, 128)
    """
    return -(-n // 16) * 16


def _split(items: list, parts: int) -> list[list]:
    """``items`` in ``parts`` contiguous, nearly equal shares (the first ones one longer).

    >>> _split([1, 2, 3, 4, 5], 2)
    [[1, 2, 3], [4, 5]]
    """
    size, extra = divmod(len(items), parts)
    bounds = [k * size + min(k, extra) for k in range(parts + 1)]
    return [items[a:b] for a, b in itertools.pairwise(bounds)]


def _pack(layer: _Layer) -> _Layer:
    """``layer`` with its matmul weights in oneDNN's layout (``onednn.pack``; the bias stays as is)."""
    return dataclasses.replace(
        layer,
        qkv_w=_onednn.pack(layer.qkv_w),
        o_w=_onednn.pack(layer.o_w),
        gate_up_w=_onednn.pack(layer.gate_up_w),
        down_w=_onednn.pack(layer.down_w),
    )


def _addmm(x: torch.Tensor, h: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """``x + h @ w.T`` by PyTorch's own GEMM (``x [M, d]``, ``h [M, k]``, ``w [d, k]``)."""
    return torch.addmm(x, h, w.t())


def _rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotary position embedding, half-split layout as in Hugging Face Llama.

    ``rotate_half(x) * sin`` equals ``swap_halves(x) * signed_sin`` with the first half of ``sin``
    negated (``FastEngine.rope`` stores it so): one ``flip`` and one ``addcmul`` instead of a negation,
    a concatenation, two products and a sum.
    """
    half = x.size(-1) // 2
    swapped = x.unflatten(-1, (2, half)).flip(-2).flatten(-2)
    return torch.addcmul(x * cos, swapped, sin)


def _attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """Grouped-query attention as plain matmuls (``q`` already scaled by ``Dh ** -0.5``).

    Args:
        q: ``[B, H, S, Dh]``; k, v: ``[B, Hkv, L, Dh]``; bias: ``[B, 1, (H / Hkv) S, L]`` (0 or -inf).
    """
    rows, heads, length, dh = q.shape
    kv_heads = k.size(1)
    q = q.reshape(rows, kv_heads, heads // kv_heads * length, dh)  # [B, Hkv, G S, Dh]
    scores = torch.matmul(q, k.transpose(-1, -2)) + bias  # [B, Hkv, G S, L]
    out = torch.matmul(scores.softmax(dim=-1), v)  # [B, Hkv, G S, Dh]
    return out.reshape(rows, heads, length, dh)
