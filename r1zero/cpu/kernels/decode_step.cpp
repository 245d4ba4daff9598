// One decode step of the ``fast`` engine in C++ (float32, CPU): r1zero/cpu/extensions.py builds it.
//
// The same maths as FastEngine._step in r1zero/rollout/fast.py (read that first): RMSNorm without its
// weight (folded into the next matmul), the fused Q/K/V matmul, RoPE on the queries and keys, the new
// key/value written into each row's cache, cascade attention over the row's prompt (shared by its
// group) and its own generated tokens under one softmax, the output projection added to the residual,
// SwiGLU, the LM head. The matmuls are the same oneDNN (or ATen) calls as the Python step; everything
// between them runs here as plain loops over the decode batch, with no tensor allocated per op and the
// GIL released for the whole step. Why: in Python the step spends about half its time in ~150 small ATen
// ops (the attention's batched matmuls on tiny matrices, index/put on the prompt grid, norms, RoPE),
// more than in its GEMMs (bench/onednn.py, decode_step).

#include <torch/extension.h>

#include "simd.h"

#include <ATen/core/dispatch/Dispatcher.h>

#include <algorithm>
#include <cstring>
#include <cmath>
#include <limits>
#include <optional>
#include <string>
#include <vector>

namespace {

using at::Tensor;

// ---------------------------------------------------------------------------- matmuls
const c10::OperatorHandle& onednn_linear() {
  static const c10::OperatorHandle op =
      c10::Dispatcher::singleton().findSchemaOrThrow("mkldnn::_linear_pointwise", "");
  return op;
}

const c10::OperatorHandle& onednn_add_linear() {
  static const c10::OperatorHandle op =
      c10::Dispatcher::singleton().findSchemaOrThrow("mkldnn::_linear_pointwise", "binary");
  return op;
}

// x [M, k] @ w.T + b: oneDNN for a weight packed by r1zero.cpu.onednn.pack, else ATen
// (onednn.linear's choice).
Tensor gemm(const Tensor& x, const Tensor& w, const std::optional<Tensor>& b) {
  if (!w.is_mkldnn()) {
    return at::linear(x, w, b);
  }
  std::vector<c10::IValue> stack{x,
                                 w,
                                 b ? c10::IValue(*b) : c10::IValue(),
                                 std::string("none"),
                                 c10::List<std::optional<at::Scalar>>(),
                                 std::string("")};
  onednn_linear().callBoxed(&stack);
  return stack[0].toTensor().contiguous();
}

// x + h @ w.T in one call (onednn.add_linear, or addmm for a plain weight).
Tensor add_gemm(const Tensor& x, const Tensor& h, const Tensor& w) {
  if (!w.is_mkldnn()) {
    return at::addmm(x, h, w.t());
  }
  std::vector<c10::IValue> stack{h, x, w, c10::IValue(), std::string("add")};
  onednn_add_linear().callBoxed(&stack);
  return stack[0].toTensor().contiguous();
}

// ---------------------------------------------------------------------------- small kernels
using namespace r1zero::simd;  // v16, load, store, splat, vexp (simd.h)

inline float dot(const float* a, const float* b, int64_t n) {
  v16 acc = {};
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) acc += load(a + i) * load(b + i);
  float s = 0.f;
  for (int k = 0; k < 16; ++k) s += acc[k];
  for (; i < n; ++i) s += a[i] * b[i];
  return s;
}

// Scores of NQ queries (rows of q, stride dh) against 16-key blocks of K stored transposed ([dh, ld]):
// out[g * os + i] = q_g . K[:, i] for i < n16 (a multiple of 16; the caller masks keys past its own
// count). Each key vector loaded feeds NQ FMAs, and NQ * NB independent FMA chains hide their latency.
template <int NQ, int NB>
inline int64_t score_blocks(const float* q, int64_t dh, const float* kt, int64_t ld, int64_t i, int64_t n16,
                            float* out, int64_t os) {
  for (; i + 16 * NB <= n16; i += 16 * NB) {
    v16 acc[NQ][NB] = {};
    for (int64_t d = 0; d < dh; ++d) {
      const float* k = kt + d * ld + i;
      v16 kv[NB];
#pragma GCC unroll 4
      for (int b = 0; b < NB; ++b) kv[b] = load(k + 16 * b);
#pragma GCC unroll 4
      for (int g = 0; g < NQ; ++g) {
        const float qd = q[g * dh + d];
#pragma GCC unroll 4
        for (int b = 0; b < NB; ++b) acc[g][b] += qd * kv[b];
      }
    }
#pragma GCC unroll 4
    for (int g = 0; g < NQ; ++g) {
#pragma GCC unroll 4
      for (int b = 0; b < NB; ++b) store(out + g * os + i + 16 * b, acc[g][b]);
    }
  }
  return i;
}

template <int NQ>
inline void scores(const float* q, int64_t dh, const float* kt, int64_t ld, int64_t n16, float* out, int64_t os) {
  constexpr int NB = NQ >= 4 ? 1 : 4 / NQ;
  int64_t i = score_blocks<NQ, NB>(q, dh, kt, ld, 0, n16, out, os);
  if constexpr (NB > 1) score_blocks<NQ, 1>(q, dh, kt, ld, i, n16, out, os);
}

// out_g += sum_i w[g * ws + i] v[i] over ``count`` rows of v ([count, 16 NV]), for NQ queries at once
// (each value vector loaded feeds NQ FMAs); the sums stay in NQ * NV registers.
template <int NV, int NQ>
inline void weighted_sum(const float* w, int64_t ws, const float* v, int64_t count, float* out) {
  v16 acc[NQ][NV] = {};
  for (int64_t i = 0; i < count; ++i) {
    v16 vv[NV];
#pragma GCC unroll 16
    for (int k = 0; k < NV; ++k) vv[k] = load(v + (i * NV + k) * 16);
#pragma GCC unroll 4
    for (int g = 0; g < NQ; ++g) {
      const float wi = w[g * ws + i];
#pragma GCC unroll 16
      for (int k = 0; k < NV; ++k) acc[g][k] += wi * vv[k];
    }
  }
#pragma GCC unroll 4
  for (int g = 0; g < NQ; ++g) {
#pragma GCC unroll 16
    for (int k = 0; k < NV; ++k) store(out + (g * NV + k) * 16, load(out + (g * NV + k) * 16) + acc[g][k]);
  }
}

// In place over n16 scores (a multiple of 16; -inf where masked): exp(x - max), exactly 0 where
// masked; returns the sum.
inline float softmax_numerators(float* x, int64_t n16) {
  const v16 ninf = splat(-std::numeric_limits<float>::infinity());
  v16 top = ninf;
  for (int64_t i = 0; i < n16; i += 16) {
    const v16 xi = load(x + i);
    top = xi > top ? xi : top;
  }
  float m = top[0];
  for (int k = 1; k < 16; ++k) m = std::max(m, top[k]);
  v16 total = {};
  for (int64_t i = 0; i < n16; i += 16) {
    const v16 xi = load(x + i);
    const v16 e = xi == ninf ? splat(0.f) : vexp(xi - m);
    store(x + i, e);
    total += e;
  }
  float sum = 0.f;
  for (int k = 0; k < 16; ++k) sum += total[k];
  return sum;
}

// RMSNorm without weight, row by row: x / sqrt(mean(x^2) + eps).
Tensor rms_norm(const Tensor& x, double eps) {
  const int64_t rows = x.size(0), d = x.size(1);
  Tensor out = at::empty_like(x);
  const float* src = x.data_ptr<float>();
  float* dst = out.data_ptr<float>();
  for (int64_t r = 0; r < rows; ++r) {
    const float* row = src + r * d;
    const float scale = 1.f / std::sqrt(dot(row, row, d) / static_cast<float>(d) + static_cast<float>(eps));
    for (int64_t i = 0; i < d; ++i) dst[r * d + i] = row[i] * scale;
  }
  return out;
}

// In place: x * cos + swap_halves(x) * signed_sin (the rotate-half RoPE; see fast._rope).
inline void rope(float* x, const float* cos, const float* signed_sin, int64_t dh) {
  const int64_t half = dh / 2;
  float tmp[512];
  std::copy(x, x + dh, tmp);
  for (int64_t i = 0; i < dh; ++i) {
    const float swapped = tmp[i < half ? i + half : i - half];
    x[i] = tmp[i] * cos[i] + swapped * signed_sin[i];
  }
}

// silu(gate) * up for gate_up = [gate | up] rows of width 2F.
Tensor silu_mul(const Tensor& gate_up) {
  const int64_t rows = gate_up.size(0), f = gate_up.size(1) / 2;
  Tensor out = at::empty({rows, f}, gate_up.options());
  const float* src = gate_up.data_ptr<float>();
  float* dst = out.data_ptr<float>();
  for (int64_t r = 0; r < rows; ++r) {
    const float* gate = src + r * 2 * f;
    const float* up = gate + f;
    float* o = dst + r * f;
    int64_t i = 0;
    for (; i + 16 <= f; i += 16) {
      const v16 g = load(gate + i);
      store(o + i, g / (1.f + vexp(-g)) * load(up + i));
    }
    for (; i < f; ++i) o[i] = gate[i] / (1.f + std::exp(-gate[i])) * up[i];
  }
  return out;
}

struct Shape {
  int64_t rows, heads, kv_heads, dh, width, key_width, slots, step;
};

inline int64_t round16(int64_t n) { return (n + 15) / 16 * 16; }

// NQ query heads ``q`` (pre-scaled, [NQ, Dh]) of one row and KV head over its prompt (keys kp [Dh, key_width],
// values vp [width, Dh], padding bias bp [key_width]: 0, or -inf on left padding and past ``width``)
// and its generated tokens (kg [Dh, slots], vg [slots, Dh], t of them) under one softmax; into
// dst [NQ, Dh]. sc is scratch of NQ * (key_width + round16(t)) floats.
template <int NV, int NQ>
void attend_heads(const float* q, const float* kp, const float* vp, const float* bp, const float* kg,
                  const float* vg, int64_t t, const Shape& s, float* sc, float* dst) {
  constexpr int64_t dh = NV * 16;
  const int64_t pw = s.key_width, tw = round16(t), ws = pw + tw;
  const float ninf = -std::numeric_limits<float>::infinity();
  scores<NQ>(q, dh, kp, pw, pw, sc, ws);
  scores<NQ>(q, dh, kg, s.slots, tw, sc + pw, ws);
  float inv[NQ];
  for (int g = 0; g < NQ; ++g) {
    float* row = sc + g * ws;
    for (int64_t i = 0; i < pw; i += 16) store(row + i, load(row + i) + load(bp + i));
    for (int64_t i = pw + t; i < ws; ++i) row[i] = ninf;  // cache slots not yet written
    inv[g] = 1.f / softmax_numerators(row, ws);
  }
  float o[NQ * dh] = {0.f};
  weighted_sum<NV, NQ>(sc, ws, vp, s.width, o);
  weighted_sum<NV, NQ>(sc + pw, ws, vg, t, o);
  for (int g = 0; g < NQ; ++g) {
    for (int64_t d = 0; d < dh; ++d) dst[g * dh + d] = o[g * dh + d] * inv[g];
  }
}

// RoPE on the queries and keys of ``qkv`` (in place), the new keys/values into the caches, and each
// row's attention over its prompt and its generated tokens under one softmax into out [L, H Dh].
// Keys are stored transposed: prompt_kt [B Hkv, Dh, P16], k_cache [L, Hkv, Dh, S]; values as rows:
// prompt_v [B Hkv, P, Dh], v_cache [L, Hkv, S, Dh]; bias [B Hkv, P16] (0 or -inf; -inf past P);
// generated positions 0..step. Queries are pre-scaled. NV = Dh / 16. The query heads of a KV head go
// through in chunks of up to 4 (fewer for wide heads, so that their sums fit in registers).
template <int NV>
void attend(float* qkv, const float* rope_rows, const int64_t* prompt, const float* prompt_kt,
            const float* prompt_v, const float* bias, float* k_cache, float* v_cache, float* out,
            const Shape& s) {
  constexpr int64_t dh = NV * 16;
  constexpr int chunk = NV <= 4 ? 4 : NV == 8 ? 2 : 1;
  const int64_t groups = s.heads / s.kv_heads, t = s.step + 1;
  const int64_t stride = (s.heads + 2 * s.kv_heads) * dh;
  std::vector<float> buffer(static_cast<size_t>(chunk * (s.key_width + round16(t))));
  float* sc = buffer.data();
  for (int64_t r = 0; r < s.rows; ++r) {
    float* row = qkv + r * stride;
    const float* cos = rope_rows + r * 2 * dh;
    const float* sin = cos + dh;
    for (int64_t h = 0; h < s.heads + s.kv_heads; ++h) rope(row + h * dh, cos, sin, dh);
    for (int64_t j = 0; j < s.kv_heads; ++j) {
      const int64_t slot = (r * s.kv_heads + j) * s.slots;
      float* kg = k_cache + slot * dh;  // [Dh, S]
      float* vg = v_cache + slot * dh;  // [S, Dh]
      const float* k_new = row + (s.heads + j) * dh;
      for (int64_t d = 0; d < dh; ++d) kg[d * s.slots + s.step] = k_new[d];
      std::copy(row + (s.heads + s.kv_heads + j) * dh, row + (s.heads + s.kv_heads + j + 1) * dh,
                vg + s.step * dh);
      const int64_t block = prompt[r] * s.kv_heads + j;
      const float* kp = prompt_kt + block * s.key_width * dh;
      const float* vp = prompt_v + block * s.width * dh;
      const float* bp = bias + block * s.key_width;
      for (int64_t g = 0; g < groups;) {
        const float* q = row + (j * groups + g) * dh;
        float* dst = out + r * s.heads * dh + (j * groups + g) * dh;
        if constexpr (chunk >= 4) {
          if (groups - g >= 4) {
            attend_heads<NV, 4>(q, kp, vp, bp, kg, vg, t, s, sc, dst);
            g += 4;
            continue;
          }
        }
        if constexpr (chunk >= 2) {
          if (groups - g >= 2) {
            attend_heads<NV, 2>(q, kp, vp, bp, kg, vg, t, s, sc, dst);
            g += 2;
            continue;
          }
        }
        attend_heads<NV, 1>(q, kp, vp, bp, kg, vg, t, s, sc, dst);
        g += 1;
      }
    }
  }
}

void check(const Tensor& x, const char* name) {
  TORCH_CHECK(x.device().is_cpu() && x.scalar_type() == at::kFloat && x.is_contiguous(), name,
              " must be a contiguous float32 CPU tensor");
}

}  // namespace

// Logits [L, V] of one decode step; writes the step's keys/values into the caches.
Tensor decode_step(const Tensor& tokens, const Tensor& position, const Tensor& embed, const Tensor& rope_table,
                   const std::vector<Tensor>& qkv_w, const std::vector<Tensor>& qkv_b,
                   const std::vector<Tensor>& o_w, const std::vector<Tensor>& gate_up_w,
                   const std::vector<Tensor>& down_w, const Tensor& lm_head, const std::vector<Tensor>& k_caches,
                   const std::vector<Tensor>& v_caches, const std::vector<Tensor>& prompt_k,
                   const std::vector<Tensor>& prompt_v, const Tensor& prompt_bias, const Tensor& prompt,
                   int64_t step, int64_t heads, int64_t kv_heads, double eps) {
  const size_t layers = qkv_w.size();
  TORCH_CHECK(o_w.size() == layers && gate_up_w.size() == layers && down_w.size() == layers &&
                  k_caches.size() == layers && v_caches.size() == layers && prompt_k.size() == layers &&
                  prompt_v.size() == layers && (qkv_b.empty() || qkv_b.size() == layers),
              "one weight, cache and prompt tensor per layer");
  check(embed, "embed");
  check(rope_table, "rope");
  check(prompt_bias, "prompt_bias");
  const int64_t dh = rope_table.size(2);
  TORCH_CHECK(dh == 16 || dh == 32 || dh == 64 || dh == 128 || dh == 256,
              "head_dim must be 16, 32, 64, 128 or 256, got ", dh);
  Tensor pos = position.to(at::kLong).contiguous();
  Tensor rows_of_prompt = prompt.to(at::kLong).contiguous();
  Tensor rope_rows = rope_table.index_select(0, pos).contiguous();  // [L, 2, Dh]
  Tensor x = embed.index_select(0, tokens.to(at::kLong)).contiguous();  // [L, d]
  Shape s{x.size(0), heads, kv_heads, dh, prompt_v[0].size(1), prompt_k[0].size(2), k_caches[0].size(3), step};
  TORCH_CHECK(s.key_width % 16 == 0 && s.slots % 16 == 0 && prompt_bias.size(-1) == s.key_width,
              "prompt keys, their bias and the key cache must be padded to a multiple of 16 positions");
  TORCH_CHECK(v_caches[0].size(2) == s.slots, "key and value caches must have the same slots");
  TORCH_CHECK(step >= 0 && step < s.slots, "step ", step, " outside the cache's ", s.slots, " slots");
  for (size_t l = 0; l < layers; ++l) {
    check(k_caches[l], "k_cache");
    check(v_caches[l], "v_cache");
    check(prompt_k[l], "prompt_k");
    check(prompt_v[l], "prompt_v");
    TORCH_CHECK(k_caches[l].size(0) == s.rows, "caches must hold one row per token");
    std::optional<Tensor> bias;
    if (!qkv_b.empty()) bias = qkv_b[l];
    Tensor qkv = gemm(rms_norm(x, eps), qkv_w[l], bias);  // [L, (H + 2 Hkv) Dh]
    check(qkv, "qkv");
    Tensor out = at::empty({s.rows, heads * dh}, x.options());
    const auto kernel = dh == 16    ? attend<1>
                        : dh == 32  ? attend<2>
                        : dh == 64  ? attend<4>
                        : dh == 128 ? attend<8>
                                    : attend<16>;
    kernel(qkv.data_ptr<float>(), rope_rows.data_ptr<float>(), rows_of_prompt.data_ptr<int64_t>(),
           prompt_k[l].data_ptr<float>(), prompt_v[l].data_ptr<float>(), prompt_bias.data_ptr<float>(),
           k_caches[l].data_ptr<float>(), v_caches[l].data_ptr<float>(), out.data_ptr<float>(), s);
    x = add_gemm(x, out, o_w[l]);
    x = add_gemm(x, silu_mul(gemm(rms_norm(x, eps), gate_up_w[l], std::nullopt)), down_w[l]);
  }
  return gemm(rms_norm(x, eps), lm_head, std::nullopt);
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("decode_step", &decode_step, "One float32 CPU decode step of the fast engine (GIL released).",
        py::call_guard<py::gil_scoped_release>());
}
