// 16-float vectors for the C++ kernels (rollout/decode_step.cpp, attention_ops.cpp): GCC/Clang vector
// extensions, one AVX-512 register (two AVX2 ones elsewhere), and the helpers both kernels use. A change
// here rebuilds both: the extensions' ninja builds track included headers.
#pragma once

#include <cstdint>

namespace r1zero::simd {

using v16 = float __attribute__((vector_size(64)));
using v16u = float __attribute__((vector_size(64), aligned(4)));
using i16 = int32_t __attribute__((vector_size(64)));

inline v16 load(const float* p) { return *reinterpret_cast<const v16u*>(p); }
inline void store(float* p, v16 v) { *reinterpret_cast<v16u*>(p) = v; }
inline v16 splat(float x) { return v16{} + x; }

// exp(x) lane by lane: Cephes' single-precision range reduction and polynomial (within 2 ulp of expf on
// [-87, 88]); below -87.3 it gives ~1e-38 instead of 0 (callers zero masked entries themselves).
inline v16 vexp(v16 x) {
  x = x < splat(-87.3f) ? splat(-87.3f) : x;
  x = x > splat(88.7f) ? splat(88.7f) : x;
  const v16 fx = x * 1.44269504088896341f + 0.5f;
  i16 k = __builtin_convertvector(fx, i16);  // truncates; floor below
  k += __builtin_convertvector(k, v16) > fx;  // true is -1
  const v16 kf = __builtin_convertvector(k, v16);
  const v16 r = x - kf * 0.693359375f - kf * -2.12194440e-4f;
  v16 p = splat(1.9875691500e-4f);
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.f;
  return p * __builtin_bit_cast(v16, (k + 127) << 23);
}

}  // namespace r1zero::simd
