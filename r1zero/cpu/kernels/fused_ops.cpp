// Fused float32 CPU kernels of the learner's forward and backward: RMSNorm, SwiGLU, RoPE
// (r1zero/cpu/fused.py builds this file and wraps each pair in an autograd Function; read that first).
//
// Why: in eager PyTorch an RMSNorm forward+backward is ~20 elementwise ATen ops, each one pass over the
// activations, and SwiGLU's is ~7; on the CPU learner of a small model these passes cost a fifth of the
// update (side r1zero-unfused of bench/trl_step.py). Here each is one pass forward and one backward,
// split over rows with at::parallel_for (torch's intra-op threads).

#include <torch/extension.h>

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <tuple>
#include <vector>

namespace {

using at::Tensor;

constexpr int64_t kLanes = 16;

// sum_j a[j] * b[j], in kLanes partial sums (vectorised by the compiler).
inline float dot(const float* a, const float* b, int64_t n) {
  float acc[kLanes] = {0.0f};
  int64_t j = 0;
  for (; j + kLanes <= n; j += kLanes) {
    for (int64_t k = 0; k < kLanes; ++k) acc[k] += a[j + k] * b[j + k];
  }
  float sum = 0.0f;
  for (int64_t k = 0; k < kLanes; ++k) sum += acc[k];
  for (; j < n; ++j) sum += a[j] * b[j];
  return sum;
}

// exp(x) for float32 in a form the compiler vectorises (libm's expf is a scalar call): Cody-Waite range
// reduction to r in [-ln2/2, ln2/2] and Cephes' degree-6 polynomial, within 2 ulp of expf; x is clamped to
// [-87.3, 88.7] (exp underflows to ~1e-38 instead of 0 and never overflows).
inline float vexp(float x) {
  x = std::min(std::max(x, -87.3f), 88.7f);
  const float n = std::nearbyint(x * 1.44269504088896341f);
  const float r = x - n * 0.693359375f + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float e = p * r * r + r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof(scale));
  return e * scale;
}

void check(const Tensor& t, const char* name) {
  TORCH_CHECK(t.device().is_cpu() && t.scalar_type() == at::kFloat && t.is_contiguous(), name,
              " must be a contiguous float32 CPU tensor");
}

// ---------------------------------------------------------------------------- RMSNorm
// x [N, H], w [H] -> (y = x * rstd * w, rstd [N]) with rstd = 1 / sqrt(mean(x^2) + eps).
std::tuple<Tensor, Tensor> rmsnorm_forward(const Tensor& x, const Tensor& w, double eps) {
  check(x, "x");
  check(w, "w");
  const int64_t rows = x.size(0), h = x.size(1);
  TORCH_CHECK(w.numel() == h, "w has ", w.numel(), " elements, x rows have ", h);
  Tensor y = at::empty_like(x);
  Tensor rstd = at::empty({rows}, x.options());
  const float* xp = x.data_ptr<float>();
  const float* wp = w.data_ptr<float>();
  float* yp = y.data_ptr<float>();
  float* rp = rstd.data_ptr<float>();
  at::parallel_for(0, rows, 16, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const float* xi = xp + i * h;
      float* yi = yp + i * h;
      const float r = 1.0f / std::sqrt(dot(xi, xi, h) / static_cast<float>(h) + static_cast<float>(eps));
      rp[i] = r;
      for (int64_t j = 0; j < h; ++j) yi[j] = (xi[j] * r) * wp[j];
    }
  });
  return {y, rstd};
}

// dy, x [N, H], w [H], rstd [N] -> (dx [N, H], dw [H]).
// xhat = x * rstd, g = dy * w: dx = rstd * (g - xhat * mean(g * xhat)), dw = sum over rows of dy * xhat.
std::tuple<Tensor, Tensor> rmsnorm_backward(const Tensor& dy, const Tensor& x, const Tensor& w,
                                            const Tensor& rstd) {
  check(dy, "dy");
  check(x, "x");
  check(w, "w");
  check(rstd, "rstd");
  const int64_t rows = x.size(0), h = x.size(1);
  Tensor dx = at::empty_like(x);
  const int64_t threads = at::get_num_threads();
  Tensor partial = at::zeros({threads, h}, x.options());  // each thread's share of dw
  const float* dyp = dy.data_ptr<float>();
  const float* xp = x.data_ptr<float>();
  const float* wp = w.data_ptr<float>();
  const float* rp = rstd.data_ptr<float>();
  float* dxp = dx.data_ptr<float>();
  float* pp = partial.data_ptr<float>();
  at::parallel_for(0, rows, 16, [&](int64_t begin, int64_t end) {
    float* dw = pp + at::get_thread_num() * h;
    std::vector<float> g(h), xhat(h);
    for (int64_t i = begin; i < end; ++i) {
      const float* dyi = dyp + i * h;
      const float* xi = xp + i * h;
      float* dxi = dxp + i * h;
      const float r = rp[i];
      for (int64_t j = 0; j < h; ++j) {
        xhat[j] = xi[j] * r;
        g[j] = dyi[j] * wp[j];
        dw[j] += dyi[j] * xhat[j];
      }
      const float mean = dot(g.data(), xhat.data(), h) / static_cast<float>(h);
      for (int64_t j = 0; j < h; ++j) dxi[j] = r * (g[j] - xhat[j] * mean);
    }
  });
  return {dx, partial.sum(0)};
}

// ---------------------------------------------------------------------------- SwiGLU
// silu(gate) * up, elementwise (torch's silu: x / (1 + exp(-x)), exp by vexp).
Tensor swiglu_forward(const Tensor& gate, const Tensor& up) {
  check(gate, "gate");
  check(up, "up");
  TORCH_CHECK(gate.sizes() == up.sizes(), "gate ", gate.sizes(), " and up ", up.sizes(), " differ");
  Tensor y = at::empty_like(gate);
  const float* gp = gate.data_ptr<float>();
  const float* up_ = up.data_ptr<float>();
  float* yp = y.data_ptr<float>();
  at::parallel_for(0, gate.numel(), 4096, [&](int64_t begin, int64_t end) {
    for (int64_t j = begin; j < end; ++j) yp[j] = gp[j] / (1.0f + vexp(-gp[j])) * up_[j];
  });
  return y;
}

// dy, gate, up -> (dgate, dup): s = sigmoid(gate), dup = dy * gate * s,
// dgate = dy * up * s * (1 + gate * (1 - s)) (torch's silu_backward).
std::tuple<Tensor, Tensor> swiglu_backward(const Tensor& dy, const Tensor& gate, const Tensor& up) {
  check(dy, "dy");
  check(gate, "gate");
  check(up, "up");
  Tensor dgate = at::empty_like(gate);
  Tensor dup = at::empty_like(up);
  const float* dyp = dy.data_ptr<float>();
  const float* gp = gate.data_ptr<float>();
  const float* up_ = up.data_ptr<float>();
  float* dgp = dgate.data_ptr<float>();
  float* dup_ = dup.data_ptr<float>();
  at::parallel_for(0, gate.numel(), 4096, [&](int64_t begin, int64_t end) {
    for (int64_t j = begin; j < end; ++j) {
      const float s = 1.0f / (1.0f + vexp(-gp[j]));
      dup_[j] = dyp[j] * (gp[j] * s);
      dgp[j] = dyp[j] * up_[j] * (s * (1.0f + gp[j] * (1.0f - s)));
    }
  });
  return {dgate, dup};
}

// ---------------------------------------------------------------------------- RoPE
// Hugging Face's apply_rotary_pos_emb on rows: x [R, H, D] (R = batch x positions), cos, sin [R, D];
// y = x * cos + rotate_half(x) * sin with rotate_half(x) = [-x2, x1] (x1, x2 the halves of D).
// backward: the transposed rotation, dx = dy * cos + [dy2 * sin2, -dy1 * sin1] (per half).
Tensor rope(const Tensor& x, const Tensor& cos, const Tensor& sin, bool backward) {
  check(x, "x");
  check(cos, "cos");
  check(sin, "sin");
  TORCH_CHECK(x.dim() == 3 && x.size(2) % 2 == 0, "x must be [rows, heads, even dim], got ", x.sizes());
  const int64_t rows = x.size(0), heads = x.size(1), d = x.size(2), half = d / 2;
  TORCH_CHECK(cos.sizes() == sin.sizes() && cos.dim() == 2 && cos.size(0) == rows && cos.size(1) == d,
              "cos and sin must be [", rows, ", ", d, "], got ", cos.sizes(), " and ", sin.sizes());
  Tensor y = at::empty_like(x);
  const float* xp = x.data_ptr<float>();
  const float* cp = cos.data_ptr<float>();
  const float* sp = sin.data_ptr<float>();
  float* yp = y.data_ptr<float>();
  at::parallel_for(0, rows, 16, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const float* c = cp + r * d;
      const float* s = sp + r * d;
      for (int64_t h = 0; h < heads; ++h) {
        const float* xi = xp + (r * heads + h) * d;
        float* yi = yp + (r * heads + h) * d;
        if (backward) {
          for (int64_t j = 0; j < half; ++j) {
            const float a = xi[j], b = xi[j + half];
            yi[j] = a * c[j] + b * s[j + half];
            yi[j + half] = b * c[j + half] - a * s[j];
          }
        } else {
          for (int64_t j = 0; j < half; ++j) {
            const float a = xi[j], b = xi[j + half];
            yi[j] = a * c[j] - b * s[j];
            yi[j + half] = b * c[j + half] + a * s[j + half];
          }
        }
      }
    }
  });
  return y;
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("rmsnorm_forward", &rmsnorm_forward, "RMSNorm forward: (y, rstd)");
  m.def("rmsnorm_backward", &rmsnorm_backward, "RMSNorm backward: (dx, dw)");
  m.def("swiglu_forward", &swiglu_forward, "silu(gate) * up");
  m.def("swiglu_backward", &swiglu_backward, "SwiGLU backward: (dgate, dup)");
  m.def("rope", &rope, "rotary position embedding (or its backward) of x [rows, heads, dim]");
}
