// Attention of packed completion rows over their prompts and themselves, forward and backward, float32
// CPU (r1zero/cpu/packed.py builds this file and wraps the pair in an autograd Function; read that first).
//
// Row r (a completion of prompt u, n_r tokens at packed positions s_r .. s_r + n_r - 1) attends, for each
// of its tokens t, to the p_u real keys of its prompt (the last p_u of the P prompt columns: prompts are
// left-padded) and to its own tokens 0 .. t. Each (row, KV head) is one unit of work: its G query heads
// read one key/value head. Only the keys a query may see are computed: no padding, no masked half.
//
// Why: run through SDPA, the rows must be padded into buckets with an additive mask (prompt padding,
// the causal order), so SDPA's kernel computes every masked score, and the padding, prompt gathers and
// scatters around it are ~25 ATen ops per bucket and layer (side r1zero-sdpa of bench/trl_step.py).
//
// The maths is flash attention's: the forward keeps each query's log-sum-exp, the backward recomputes
// the probabilities from it (dS = P * (dP - rowsum(dO * O)), dQ = scale dS K, dK = scale dS^T Q,
// dV = P^T dO). Queries go in tiles of kTile (t, g) pairs; keys in 16-wide vectors.

#include <torch/extension.h>

#include "simd.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <tuple>
#include <vector>

namespace {

using at::Tensor;

using namespace r1zero::simd;  // v16, load, store, splat, vexp (simd.h)

inline float hsum(v16 v) {
  float s = 0.f;
  for (int k = 0; k < 16; ++k) s += v[k];
  return s;
}

constexpr int kTile = 4;  // queries per tile: each key vector loaded feeds kTile FMAs

inline int64_t round16(int64_t n) { return (n + 15) / 16 * 16; }

// Keys (or values) transposed into 16-key panels: component d of key j at (j / 16) 16 D + 16 d + j % 16,
// so the scores of a query against 16 keys read one contiguous panel (D vector FMAs).
class Panels {
 public:
  Panels(int64_t capacity, int64_t D) : data_(round16(capacity) * D, 0.f), D_(D) {}
  const float* data() const { return data_.data(); }
  void set(int64_t j, const float* src) {
    float* dst = data_.data() + (j >> 4) * 16 * D_ + (j & 15);
    for (int64_t d = 0; d < D_; ++d) dst[16 * d] = src[d];
  }
  // zero keys from .. up to the end of from's panel (a shorter row after a longer one leaves stale keys)
  void clear_panel_tail(int64_t from) {
    for (int64_t j = from; j < round16(from); ++j) {
      float* dst = data_.data() + (j >> 4) * 16 * D_ + (j & 15);
      for (int64_t d = 0; d < D_; ++d) dst[16 * d] = 0.f;
    }
  }

 private:
  std::vector<float> data_;
  int64_t D_;
};

// out[i * ld + j] = x_i . key j for the kTile query vectors x (rows of xs, D floats each), over NB panels
// from panel b; returns the next panel.
template <int NV, int NB>
int64_t score_panels(const float* xs, const float* panels, int64_t b, int64_t end, float* out, int64_t ld) {
  constexpr int64_t D = 16 * NV;
  for (; b + NB <= end; b += NB) {
    v16 acc[kTile][NB] = {};
    const float* kp = panels + b * 16 * D;
    for (int64_t d = 0; d < D; ++d) {
      v16 kv[NB];
#pragma GCC unroll 4
      for (int c = 0; c < NB; ++c) kv[c] = load(kp + c * 16 * D + 16 * d);
#pragma GCC unroll 4
      for (int i = 0; i < kTile; ++i) {
        const float x = xs[i * D + d];
#pragma GCC unroll 4
        for (int c = 0; c < NB; ++c) acc[i][c] += x * kv[c];
      }
    }
#pragma GCC unroll 4
    for (int i = 0; i < kTile; ++i) {
#pragma GCC unroll 4
      for (int c = 0; c < NB; ++c) store(out + i * ld + (b + c) * 16, acc[i][c]);
    }
  }
  return b;
}

// Scores of the tile's queries against keys 0 .. n16 - 1 (n16 a multiple of 16).
template <int NV>
void tile_scores(const float* xs, const Panels& keys, int64_t n16, float* out, int64_t ld) {
  const int64_t end = n16 / 16;
  int64_t b = score_panels<NV, 4>(xs, keys.data(), 0, end, out, ld);
  b = score_panels<NV, 2>(xs, keys.data(), b, end, out, ld);
  score_panels<NV, 1>(xs, keys.data(), b, end, out, ld);
}

// out_i = sum_j w[i * ld + j] rows(j) for j < count (kTile outputs of D floats, overwritten).
template <int NV, typename Rows>
void tile_weighted_sum(const float* w, int64_t ld, int64_t count, Rows rows, float* out) {
  v16 acc[kTile][NV] = {};
  for (int64_t j = 0; j < count; ++j) {
    const float* r = rows(j);
    v16 x[NV];
#pragma GCC unroll 8
    for (int c = 0; c < NV; ++c) x[c] = load(r + 16 * c);
#pragma GCC unroll 4
    for (int i = 0; i < kTile; ++i) {
      const float wi = w[i * ld + j];
#pragma GCC unroll 8
      for (int c = 0; c < NV; ++c) acc[i][c] += wi * x[c];
    }
  }
#pragma GCC unroll 4
  for (int i = 0; i < kTile; ++i) {
#pragma GCC unroll 8
    for (int c = 0; c < NV; ++c) store(out + i * 16 * NV + 16 * c, acc[i][c]);
  }
}

// acc[j] += scale * sum_i w[i * ld + j] xs_i for j < count (acc rows of D floats): the key or value
// gradient of a tile, its kTile query vectors held in registers.
template <int NV>
void tile_outer_add(const float* w, int64_t ld, int64_t count, const float* xs, float scale, float* acc) {
  constexpr int64_t D = 16 * NV;
  v16 x[kTile][NV];
#pragma GCC unroll 4
  for (int i = 0; i < kTile; ++i) {
#pragma GCC unroll 8
    for (int c = 0; c < NV; ++c) x[i][c] = load(xs + i * D + 16 * c) * scale;
  }
  for (int64_t j = 0; j < count; ++j) {
    float* a = acc + j * D;
    v16 y[NV];
#pragma GCC unroll 8
    for (int c = 0; c < NV; ++c) y[c] = load(a + 16 * c);
#pragma GCC unroll 4
    for (int i = 0; i < kTile; ++i) {
      const float wi = w[i * ld + j];
#pragma GCC unroll 8
      for (int c = 0; c < NV; ++c) y[c] += wi * x[i][c];
    }
#pragma GCC unroll 8
    for (int c = 0; c < NV; ++c) store(a + 16 * c, y[c]);
  }
}

// Tile i's query (t, g) sees keys j < p + t + 1; entries past that are zeroed, as are the tile's unused
// slots (queries past the row's end).
struct Tile {
  int64_t first, count;  // first query (t G + g) of the tile, real queries in it
  int64_t limit[kTile];  // keys each query sees (0 for unused slots)
  int64_t keys;          // the largest limit
};

Tile tile_at(int64_t first, int64_t queries, int64_t groups, int64_t p) {
  Tile tile{first, std::min<int64_t>(kTile, queries - first), {}, 0};
  for (int i = 0; i < kTile; ++i) {
    tile.limit[i] = i < tile.count ? p + (first + i) / groups + 1 : 0;
    tile.keys = std::max(tile.keys, tile.limit[i]);
  }
  return tile;
}

// The tile's queries (or output gradients) gathered into kTile contiguous rows (zeros in unused slots):
// query (t, g) of the row is src[t * stride + g * D].
template <int NV>
void gather_tile(const Tile& tile, int64_t groups, const float* src, int64_t stride, float* dst) {
  constexpr int64_t D = 16 * NV;
  for (int i = 0; i < kTile; ++i) {
    const int64_t q = tile.first + i;
    const float* row = src + (q / groups) * stride + (q % groups) * D;
#pragma GCC unroll 8
    for (int c = 0; c < NV; ++c) store(dst + i * D + 16 * c, i < tile.count ? load(row + 16 * c) : splat(0.f));
  }
}

template <int NV>
void scatter_tile(const Tile& tile, int64_t groups, const float* src, int64_t stride, float* dst) {
  constexpr int64_t D = 16 * NV;
  for (int i = 0; i < tile.count; ++i) {
    const int64_t q = tile.first + i;
    float* row = dst + (q / groups) * stride + (q % groups) * D;
#pragma GCC unroll 8
    for (int c = 0; c < NV; ++c) store(row + 16 * c, load(src + i * D + 16 * c));
  }
}

struct Shapes {
  int64_t heads, kv_heads, groups, D, P;
};

Shapes shapes_of(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& pk, const Tensor& pv) {
  for (const auto* t : {&q, &k, &v, &pk, &pv}) {
    TORCH_CHECK(t->device().is_cpu() && t->scalar_type() == at::kFloat && t->is_contiguous(),
                "packed attention takes contiguous float32 CPU tensors");
  }
  TORCH_CHECK(q.dim() == 3 && k.dim() == 3 && v.sizes() == k.sizes(), "q must be [N, H, D], k and v [N, Hkv, D]");
  TORCH_CHECK(pk.dim() == 4 && pv.sizes() == pk.sizes(), "prompt keys and values must be [U, Hkv, P, D]");
  const int64_t heads = q.size(1), kv_heads = k.size(1), D = q.size(2);
  TORCH_CHECK(k.size(0) == q.size(0) && k.size(2) == D && pk.size(1) == kv_heads && pk.size(3) == D,
              "q ", q.sizes(), ", k ", k.sizes(), " and prompt keys ", pk.sizes(), " do not match");
  TORCH_CHECK(heads % kv_heads == 0, heads, " query heads are not a multiple of ", kv_heads, " KV heads");
  return {heads, kv_heads, heads / kv_heads, D, pk.size(2)};
}

struct Rows {
  const int64_t* start;
  const int64_t* length;
  const int64_t* prompt;
  const int64_t* prompt_length;
  int64_t count;
};

Rows rows_of(const Tensor& start, const Tensor& length, const Tensor& prompt, const Tensor& prompt_length,
             int64_t tokens, int64_t prompts, int64_t P) {
  for (const auto* t : {&start, &length, &prompt, &prompt_length}) {
    TORCH_CHECK(t->device().is_cpu() && t->scalar_type() == at::kLong && t->is_contiguous() && t->dim() == 1,
                "row indices must be contiguous int64 CPU vectors");
  }
  const int64_t count = start.size(0);
  TORCH_CHECK(length.size(0) == count && prompt.size(0) == count && prompt_length.size(0) == prompts,
              "row indices disagree in size");
  Rows rows{start.data_ptr<int64_t>(), length.data_ptr<int64_t>(), prompt.data_ptr<int64_t>(),
            prompt_length.data_ptr<int64_t>(), count};
  int64_t next = 0;  // rows lie end to end and cover every token (the outputs are written row by row)
  for (int64_t r = 0; r < count; ++r) {
    const int64_t u = rows.prompt[r];
    TORCH_CHECK(u >= 0 && u < prompts, "row ", r, " has prompt ", u, " of ", prompts);
    TORCH_CHECK(rows.prompt_length[u] >= 0 && rows.prompt_length[u] <= P, "prompt ", u, " has length ",
                rows.prompt_length[u], " of ", P, " columns");
    TORCH_CHECK(rows.start[r] == next && rows.length[r] >= 0, "row ", r, " starts at token ", rows.start[r],
                " with ", rows.length[r], " tokens; the rows before it end at ", next);
    next += rows.length[r];
  }
  TORCH_CHECK(next == tokens, "the rows hold ", next, " tokens, the tensors ", tokens);
  return rows;
}

// The rows of each prompt, in row order.
std::vector<std::vector<int64_t>> rows_by_prompt(const Rows& rows, int64_t prompts) {
  std::vector<std::vector<int64_t>> by_prompt(prompts);
  for (int64_t r = 0; r < rows.count; ++r) by_prompt[rows.prompt[r]].push_back(r);
  return by_prompt;
}

// Units (prompt u, KV head h) as u * kv_heads + h, in the order threads take them: the costliest first
// (OpenMP's dynamic schedule then ends with small units, so the threads finish together).
std::vector<int64_t> unit_order(const Rows& rows, const std::vector<std::vector<int64_t>>& by_prompt,
                                int64_t kv_heads) {
  std::vector<int64_t> order(by_prompt.size() * kv_heads), cost(order.size(), 0);
  for (size_t i = 0; i < order.size(); ++i) {
    order[i] = static_cast<int64_t>(i);
    const int64_t u = order[i] / kv_heads;
    for (const int64_t r : by_prompt[u]) cost[i] += rows.length[r] * (rows.prompt_length[u] + rows.length[r]);
  }
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return cost[a] > cost[b]; });
  return order;
}

template <typename Body>
void for_each_unit(const std::vector<int64_t>& order, Body body) {
  const int64_t count = static_cast<int64_t>(order.size());
  const int threads = at::in_parallel_region() ? 1 : at::get_num_threads();
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
  for (int64_t i = 0; i < count; ++i) body(order[i]);
}

// One (prompt, KV head) unit: the prompt's real keys/values, then each of its rows in turn.
struct Unit {
  const float* prompt_k;  // [p, D] the prompt's real keys (its last p columns)
  const float* prompt_v;
  int64_t p, longest;  // prompt keys, the longest row
};

Unit unit_of(const Rows& rows, const std::vector<int64_t>& members, int64_t u, int64_t h, const Shapes& s,
             const float* pk, const float* pv) {
  const int64_t p = rows.prompt_length[u];
  const int64_t offset = ((u * s.kv_heads + h) * s.P + (s.P - p)) * s.D;
  int64_t longest = 0;
  for (const int64_t r : members) longest = std::max(longest, rows.length[r]);
  return {pk + offset, pv + offset, p, longest};
}

// Lanes j .. j + 15 of a row that sees keys < limit: all-ones where j + lane < limit.
inline i16 lanes_below(int64_t j, int64_t limit) {
  const i16 iota = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
  return iota < static_cast<int32_t>(limit - j);
}

// Softmax numerators of a tile's scores in place: row i -> exp(scale s - m_i) for j < limit_i, 0 beyond;
// inv_i = 1 / their sum, lse_i = m_i + log(sum) (in scaled units).
void tile_softmax(const Tile& tile, float scale, float* s, int64_t ld, float* inv, float* lse) {
  const int64_t n16 = round16(tile.keys);
  const v16 ninf = splat(-std::numeric_limits<float>::infinity());
  for (int i = 0; i < kTile; ++i) {
    float* row = s + i * ld;
    const int64_t limit = tile.limit[i];
    if (limit == 0) {
      std::fill(row, row + n16, 0.f);
      inv[i] = 0.f;
      continue;
    }
    v16 top = ninf;
    for (int64_t j = 0; j < n16; j += 16) {
      const v16 x = lanes_below(j, limit) ? load(row + j) * scale : ninf;
      top = x > top ? x : top;
    }
    float m = top[0];
    for (int c = 1; c < 16; ++c) m = std::max(m, top[c]);
    v16 total = {};
    for (int64_t j = 0; j < n16; j += 16) {
      const v16 e = lanes_below(j, limit) ? vexp(load(row + j) * scale - m) : splat(0.f);
      store(row + j, e);
      total += e;
    }
    const float sum = hsum(total);
    inv[i] = 1.f / sum;
    lse[i] = m + std::log(sum);
  }
}

// Key (or value) j of a row: its prompt's first, then the row's own (rows stride apart).
struct RowKeys {
  const float* prompt;
  const float* own;
  int64_t p, D, stride;
  const float* operator()(int64_t j) const { return j < p ? prompt + j * D : own + (j - p) * stride; }
};

template <int NV>
std::tuple<Tensor, Tensor> forward_impl(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& pk,
                                        const Tensor& pv, const Rows& rows, const Shapes& s, double scale) {
  constexpr int64_t D = 16 * NV;
  Tensor out = at::empty_like(q);  // every token belongs to a row (rows_of)
  Tensor lse = at::empty({q.size(0), s.heads}, q.options());
  const float *qp = q.data_ptr<float>(), *kp = k.data_ptr<float>(), *vp = v.data_ptr<float>();
  const float *pkp = pk.data_ptr<float>(), *pvp = pv.data_ptr<float>();
  float *op = out.data_ptr<float>(), *lp = lse.data_ptr<float>();
  const int64_t qstride = s.heads * D, kvstride = s.kv_heads * D;
  const auto by_prompt = rows_by_prompt(rows, pk.size(0));
  for_each_unit(unit_order(rows, by_prompt, s.kv_heads), [&](int64_t index) {
    const int64_t u = index / s.kv_heads, h = index % s.kv_heads;
    const Unit unit = unit_of(rows, by_prompt[u], u, h, s, pkp, pvp);
    const int64_t ld = round16(unit.p + unit.longest);
    Panels keys(unit.p + unit.longest, D);
    for (int64_t j = 0; j < unit.p; ++j) keys.set(j, unit.prompt_k + j * D);
    std::vector<float> scores(kTile * ld), xs(kTile * D), os(kTile * D);
    for (const int64_t r : by_prompt[u]) {
      const int64_t n = rows.length[r], start = rows.start[r];
      if (n == 0) continue;
      for (int64_t t = 0; t < n; ++t) keys.set(unit.p + t, kp + (start + t) * kvstride + h * D);
      keys.clear_panel_tail(unit.p + n);
      const RowKeys values{unit.prompt_v, vp + start * kvstride + h * D, unit.p, D, kvstride};
      const int64_t base = start * qstride + h * s.groups * D;  // query (t, g): base + t qstride + g D
      for (int64_t first = 0; first < n * s.groups; first += kTile) {
        const Tile tile = tile_at(first, n * s.groups, s.groups, unit.p);
        gather_tile<NV>(tile, s.groups, qp + base, qstride, xs.data());
        tile_scores<NV>(xs.data(), keys, round16(tile.keys), scores.data(), ld);
        float tile_inv[kTile], tile_lse[kTile];
        tile_softmax(tile, static_cast<float>(scale), scores.data(), ld, tile_inv, tile_lse);
        tile_weighted_sum<NV>(scores.data(), ld, tile.keys, values, os.data());
        for (int i = 0; i < kTile; ++i) {
#pragma GCC unroll 8
          for (int c = 0; c < NV; ++c) store(os.data() + i * D + 16 * c, load(os.data() + i * D + 16 * c) * tile_inv[i]);
        }
        scatter_tile<NV>(tile, s.groups, os.data(), qstride, op + base);
        for (int i = 0; i < tile.count; ++i) {
          const int64_t qi = tile.first + i;
          lp[(start + qi / s.groups) * s.heads + h * s.groups + qi % s.groups] = tile_lse[i];
        }
      }
    }
  });
  return {out, lse};
}

template <int NV>
std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor> backward_impl(
    const Tensor& dout, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& pk, const Tensor& pv,
    const Tensor& out, const Tensor& lse, const Rows& rows, const Shapes& s, double scale) {
  constexpr int64_t D = 16 * NV;
  Tensor dq = at::empty_like(q), dk = at::empty_like(k), dv = at::empty_like(v);
  Tensor dpk = at::zeros_like(pk), dpv = at::zeros_like(pv);  // prompt padding gets no gradient
  const float *qp = q.data_ptr<float>(), *kp = k.data_ptr<float>(), *vp = v.data_ptr<float>();
  const float *pkp = pk.data_ptr<float>(), *pvp = pv.data_ptr<float>();
  const float *gp = dout.data_ptr<float>(), *op = out.data_ptr<float>(), *lp = lse.data_ptr<float>();
  float *dqp = dq.data_ptr<float>(), *dkp = dk.data_ptr<float>(), *dvp = dv.data_ptr<float>();
  float *dpkp = dpk.data_ptr<float>(), *dpvp = dpv.data_ptr<float>();
  const int64_t qstride = s.heads * D, kvstride = s.kv_heads * D;
  const float fscale = static_cast<float>(scale);
  const auto by_prompt = rows_by_prompt(rows, pk.size(0));
  for_each_unit(unit_order(rows, by_prompt, s.kv_heads), [&](int64_t index) {
    const int64_t u = index / s.kv_heads, h = index % s.kv_heads;
    const Unit unit = unit_of(rows, by_prompt[u], u, h, s, pkp, pvp);
    const int64_t capacity = unit.p + unit.longest, ld = round16(capacity);
    Panels keys(capacity, D), values(capacity, D);
    for (int64_t j = 0; j < unit.p; ++j) {
      keys.set(j, unit.prompt_k + j * D);
      values.set(j, unit.prompt_v + j * D);
    }
    std::vector<float> prob(kTile * ld), dprob(kTile * ld);
    std::vector<float> xs(kTile * D), gs(kTile * D), os(kTile * D), dxs(kTile * D);
    // key/value gradients: the prompt's (summed over its rows), then the current row's own
    std::vector<float> dkeys(capacity * D, 0.f), dvalues(capacity * D, 0.f);
    for (const int64_t r : by_prompt[u]) {
      const int64_t n = rows.length[r], start = rows.start[r];
      if (n == 0) continue;
      for (int64_t t = 0; t < n; ++t) {
        keys.set(unit.p + t, kp + (start + t) * kvstride + h * D);
        values.set(unit.p + t, vp + (start + t) * kvstride + h * D);
      }
      keys.clear_panel_tail(unit.p + n);
      values.clear_panel_tail(unit.p + n);
      std::fill(dkeys.begin() + unit.p * D, dkeys.end(), 0.f);
      std::fill(dvalues.begin() + unit.p * D, dvalues.end(), 0.f);
      const RowKeys row_keys{unit.prompt_k, kp + start * kvstride + h * D, unit.p, D, kvstride};
      const int64_t base = start * qstride + h * s.groups * D;
      for (int64_t first = 0; first < n * s.groups; first += kTile) {
        const Tile tile = tile_at(first, n * s.groups, s.groups, unit.p);
        const int64_t n16 = round16(tile.keys);
        gather_tile<NV>(tile, s.groups, qp + base, qstride, xs.data());
        gather_tile<NV>(tile, s.groups, gp + base, qstride, gs.data());
        gather_tile<NV>(tile, s.groups, op + base, qstride, os.data());
        tile_scores<NV>(xs.data(), keys, n16, prob.data(), ld);
        tile_scores<NV>(gs.data(), values, n16, dprob.data(), ld);
        for (int i = 0; i < kTile; ++i) {
          float* pr = prob.data() + i * ld;
          float* dp = dprob.data() + i * ld;
          const int64_t limit = tile.limit[i];
          if (limit == 0) {
            std::fill(pr, pr + n16, 0.f);
            std::fill(dp, dp + n16, 0.f);
            continue;
          }
          const int64_t qi = tile.first + i;
          const float l = lp[(start + qi / s.groups) * s.heads + h * s.groups + qi % s.groups];
          v16 products = {};  // rowsum(dO * O)
#pragma GCC unroll 8
          for (int c = 0; c < NV; ++c) {
            products += load(gs.data() + i * D + 16 * c) * load(os.data() + i * D + 16 * c);
          }
          const float delta = hsum(products);
          for (int64_t j = 0; j < n16; j += 16) {
            const v16 pj = lanes_below(j, limit) ? vexp(load(pr + j) * fscale - l) : splat(0.f);
            store(pr + j, pj);
            store(dp + j, pj * (load(dp + j) - delta));  // dS, before the scale
          }
        }
        tile_weighted_sum<NV>(dprob.data(), ld, tile.keys, row_keys, dxs.data());
        for (int64_t i = 0; i < kTile * D; ++i) dxs[i] *= fscale;
        scatter_tile<NV>(tile, s.groups, dxs.data(), qstride, dqp + base);
        tile_outer_add<NV>(dprob.data(), ld, tile.keys, xs.data(), fscale, dkeys.data());
        tile_outer_add<NV>(prob.data(), ld, tile.keys, gs.data(), 1.f, dvalues.data());
      }
      for (int64_t t = 0; t < n; ++t) {
        const int64_t at = (start + t) * kvstride + h * D;
        std::copy_n(dkeys.data() + (unit.p + t) * D, D, dkp + at);
        std::copy_n(dvalues.data() + (unit.p + t) * D, D, dvp + at);
      }
    }
    const int64_t offset = ((u * s.kv_heads + h) * s.P + (s.P - unit.p)) * D;
    std::copy_n(dkeys.data(), unit.p * D, dpkp + offset);
    std::copy_n(dvalues.data(), unit.p * D, dpvp + offset);
  });
  return {dq, dk, dv, dpk, dpv};
}

// q [N, H, D], k/v [N, Hkv, D] (packed tokens), pk/pv [U, Hkv, P, D] (prompts, left-padded); rows: start
// and length [b] of each row's tokens, its prompt [b], the prompts' real lengths [U]. Returns (out
// [N, H, D], lse [N, H]).
std::tuple<Tensor, Tensor> packed_attention_forward(const Tensor& q, const Tensor& k, const Tensor& v,
                                                    const Tensor& pk, const Tensor& pv, const Tensor& start,
                                                    const Tensor& length, const Tensor& prompt,
                                                    const Tensor& prompt_length, double scale) {
  const Shapes s = shapes_of(q, k, v, pk, pv);
  const Rows rows = rows_of(start, length, prompt, prompt_length, q.size(0), pk.size(0), s.P);
  switch (s.D) {
    case 32: return forward_impl<2>(q, k, v, pk, pv, rows, s, scale);
    case 64: return forward_impl<4>(q, k, v, pk, pv, rows, s, scale);
    case 128: return forward_impl<8>(q, k, v, pk, pv, rows, s, scale);
    default: TORCH_CHECK(false, "packed attention supports head dims 32, 64 and 128, not ", s.D);
  }
}

// The gradients (dq, dk, dv, dpk, dpv), the prompts' summed over their rows (0 on prompt padding).
std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor> packed_attention_backward(
    const Tensor& dout, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& pk, const Tensor& pv,
    const Tensor& out, const Tensor& lse, const Tensor& start, const Tensor& length, const Tensor& prompt,
    const Tensor& prompt_length, double scale) {
  const Shapes s = shapes_of(q, k, v, pk, pv);
  const Rows rows = rows_of(start, length, prompt, prompt_length, q.size(0), pk.size(0), s.P);
  TORCH_CHECK(dout.sizes() == q.sizes() && out.sizes() == q.sizes() && dout.is_contiguous() && out.is_contiguous(),
              "the output and its gradient must be contiguous like q");
  TORCH_CHECK(lse.is_contiguous() && lse.dim() == 2 && lse.size(0) == q.size(0) && lse.size(1) == s.heads,
              "lse must be [N, H]");
  switch (s.D) {
    case 32: return backward_impl<2>(dout, q, k, v, pk, pv, out, lse, rows, s, scale);
    case 64: return backward_impl<4>(dout, q, k, v, pk, pv, out, lse, rows, s, scale);
    case 128: return backward_impl<8>(dout, q, k, v, pk, pv, out, lse, rows, s, scale);
    default: TORCH_CHECK(false, "packed attention supports head dims 32, 64 and 128, not ", s.D);
  }
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("forward", &packed_attention_forward, "packed attention forward: (out, lse)");
  m.def("backward", &packed_attention_backward, "packed attention backward: (dq, dk, dv, dpk, dpv)");
}
