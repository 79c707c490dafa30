#include "backend/cpu/cpu_reproducible.h"

#include "backend/canonical_numerics.h"
#include "backend/cpu/dot_kernels.h"
#include "common/bf16.h"
#include "common/error.h"
#include "fp8/scaling.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace octet::backend::cpu::reproducible {
namespace {

// Σ a[i]·b[i] in double, the canonical lane order; every product is exact (float × float fits in 53 bits).
double canonical_dot(const float* a, const float* b, int64_t count) {
  return canonical::lane_sum(count, [&](int64_t i) { return static_cast<double>(a[i]) * static_cast<double>(b[i]); });
}
double canonical_dot(const double* a, const float* b, int64_t count) {
  return canonical::lane_sum(count, [&](int64_t i) { return a[i] * static_cast<double>(b[i]); });
}

// FP8 operands are widened as the fast path widens them, decode(code) / kE4M3WidenFactor (exact), so a
// code-product sum comes out divided by kE4M3WidenFactor² — exactly, and multiplied back exactly.
constexpr double kCodeProductFactor = static_cast<double>(kE4M3WidenFactor) * kE4M3WidenFactor;

// The activation rows as the weight's format sees them, in double (converted once, not per weight row):
// bf16-rounded values, or E4M3 codes widened with each row's scale beside them.
struct PreparedInput {
  std::vector<double> values;
  std::vector<float> row_scales;  // fp8 only
};

PreparedInput prepare(const CpuActivations& x, const CpuLinear& w) {
  PreparedInput in;
  const int64_t rows = x.rows, cols = x.cols;
  in.values.resize(static_cast<size_t>(rows * cols));
  if (w.format == LinearFormat::f32) {
    std::copy(x.data.begin(), x.data.begin() + rows * cols, in.values.begin());  // float → double: exact
    return in;
  }
  if (w.format == LinearFormat::bf16) {
    for (size_t i = 0; i < in.values.size(); ++i) in.values[i] = round_to_bf16(x.data[i]);
    return in;
  }
  in.row_scales.resize(static_cast<size_t>(rows));
  std::vector<uint8_t> codes(static_cast<size_t>(cols));
  std::vector<float> widened(static_cast<size_t>(cols));
  for (int64_t r = 0; r < rows; ++r) {
    const float* row = x.data.data() + r * cols;
    float scale = w.static_input_scale;
    if (scale <= 0) scale = canonical::fp8_scale_from_amax(fp8::amax(row, static_cast<size_t>(cols)), fp8::kE4M3Max);
    fp8::encode_scaled(fp8::Format::e4m3, row, 1.0f / scale, codes.data(), codes.size());
    in.row_scales[static_cast<size_t>(r)] = scale;
    widen_e4m3_row(codes.data(), cols, widened.data());
    std::copy(widened.begin(), widened.end(), in.values.begin() + r * cols);
  }
  return in;
}

// Weight row o widened to float exactly (FP8: the codes widened, without the channel scale).
void widen_row(const CpuLinear& w, int64_t o, float* out) {
  const int64_t in = w.in_features;
  switch (w.format) {
    case LinearFormat::f32: std::copy_n(w.f32.data() + o * in, in, out); break;
    case LinearFormat::bf16: widen_bf16_row(w.bf16.data() + o * in, in, out); break;
    case LinearFormat::fp8: widen_e4m3_row(w.codes.data() + o * in, in, out); break;
  }
}

}  // namespace

void rmsnorm(ThreadPool& pool, const float* x, int64_t rows, int64_t cols, const float* weight, float eps, float* out) {
  pool.parallel_for(static_cast<size_t>(rows), [&](size_t begin, size_t end) {
    for (size_t r = begin; r < end; ++r) {
      const float* row = x + r * cols;
      const double sum_squares = canonical_dot(row, row, cols);
      const float mean_square = static_cast<float>(sum_squares / static_cast<double>(cols));
      const float inv_rms = 1.0f / std::sqrt(mean_square + eps);
      for (int64_t i = 0; i < cols; ++i) out[r * cols + i] = row[i] * inv_rms * weight[i];
    }
  }, 4);
}

void linear(ThreadPool& pool, const CpuActivations& x, const CpuLinear& w, CpuActivations& out) {
  const int64_t rows = x.rows, in = w.in_features, n_out = w.out_features;
  if (w.format == LinearFormat::fp8 && in > canonical::kMaxExactFp8Terms)
    fail("reproducible numerics: an FP8 linear of {} in-features is beyond the {} whose sums are exact", in,
         canonical::kMaxExactFp8Terms);
  const PreparedInput input = prepare(x, w);
  const int64_t k_blocks = fp8_scale_blocks(in);
  float* dst = out.data.data();
  pool.parallel_for(static_cast<size_t>(n_out), [&](size_t begin, size_t end) {
    std::vector<float> row(static_cast<size_t>(in));
    for (size_t o = begin; o < end; ++o) {
      widen_row(w, static_cast<int64_t>(o), row.data());
      for (int64_t t = 0; t < rows; ++t) {
        const double* xt = input.values.data() + t * in;
        float& y = dst[t * n_out + static_cast<int64_t>(o)];
        if (w.format != LinearFormat::fp8) {
          y = static_cast<float>(canonical_dot(xt, row.data(), in));
        } else if (w.block_scales.empty()) {
          y = canonical::fp8_linear_output(canonical_dot(xt, row.data(), in) * kCodeProductFactor, input.row_scales[t],
                                           w.scales[o] / kE4M3WidenFactor);
        } else {  // each 128-wide block's exact sum times its scale, added in block order
          const float* scales = w.block_scales.data() + static_cast<int64_t>(o) / kFp8ScaleBlock * k_blocks;
          double total = 0.0;
          for (int64_t b = 0; b < k_blocks; ++b) {
            const int64_t first = b * kFp8ScaleBlock, count = std::min(kFp8ScaleBlock, in - first);
            const double block_sum = canonical_dot(xt + first, row.data() + first, count) * kCodeProductFactor;
            total = std::fma(block_sum, static_cast<double>(scales[b] / kE4M3WidenFactor), total);
          }
          y = static_cast<float>(total * static_cast<double>(input.row_scales[t]));
        }
      }
    }
  }, 8);
}

void rope(ThreadPool& pool, float* x, int64_t tokens, int64_t cols, int64_t head_dim, std::span<const int64_t> positions,
          std::span<const float> inverse_frequencies) {
  const int64_t half = head_dim / 2, heads = cols / head_dim;
  pool.parallel_for(static_cast<size_t>(tokens), [&](size_t begin, size_t end) {
    std::vector<float> cos_table(static_cast<size_t>(half)), sin_table(static_cast<size_t>(half));
    for (size_t t = begin; t < end; ++t) {
      for (int64_t i = 0; i < half; ++i)
        canonical::sincos(static_cast<float>(positions[t]) * inverse_frequencies[i], &sin_table[i], &cos_table[i]);
      for (int64_t h = 0; h < heads; ++h) {
        float* head = x + t * cols + h * head_dim;
        for (int64_t i = 0; i < half; ++i) {
          const float a = head[i], b = head[i + half];
          head[i] = canonical::rotate_first(a, b, cos_table[i], sin_table[i]);
          head[i + half] = canonical::rotate_second(a, b, cos_table[i], sin_table[i]);
        }
      }
    }
  });
}

void attention(ThreadPool& pool, const CpuKvCache& cache, int64_t layer, const TokenBatch& batch, const float* q,
               int64_t q_cols, float* out) {
  const auto& spec = cache.spec;
  const int64_t head_dim = spec.head_dim, heads = q_cols / head_dim;
  if (heads % spec.kv_heads != 0) fail("attention: {} query heads not a multiple of {} kv heads", heads, spec.kv_heads);
  const int64_t group = heads / spec.kv_heads;
  const double inv_sqrt_dim = 1.0 / std::sqrt(static_cast<double>(head_dim));
  pool.parallel_for(batch.size() * static_cast<size_t>(heads), [&](size_t begin, size_t end) {
    std::vector<float> scores;
    std::vector<double> key(static_cast<size_t>(head_dim)), value(static_cast<size_t>(head_dim));
    std::vector<double> partials(static_cast<size_t>(canonical::kLanes * head_dim));  // [lane][dim]
    for (size_t item = begin; item < end; ++item) {
      const size_t t = item / static_cast<size_t>(heads);
      const int64_t h = static_cast<int64_t>(item % static_cast<size_t>(heads)), kv_head = h / group;
      const int64_t slot = batch.slots[t], positions = batch.positions[t] + 1;
      const float* query = q + t * q_cols + h * head_dim;
      scores.resize(static_cast<size_t>(positions));
      float max_score = -INFINITY;
      for (int64_t p = 0; p < positions; ++p) {
        cache.read_k_exact(layer, slot, p, kv_head, key.data());
        const double dot = canonical::lane_sum(head_dim, [&](int64_t d) { return static_cast<double>(query[d]) * key[d]; });
        scores[p] = static_cast<float>(dot * inv_sqrt_dim);
        max_score = std::max(max_score, scores[p]);
      }
      for (int64_t p = 0; p < positions; ++p) scores[p] = canonical::exp(scores[p] - max_score);
      const double total = canonical::lane_sum(positions, [&](int64_t p) { return static_cast<double>(scores[p]); });
      // Σ_p weight_p · v_p per dimension, each in the canonical lane order over p.
      std::fill(partials.begin(), partials.end(), 0.0);
      for (int64_t p = 0; p < positions; ++p) {
        cache.read_v_exact(layer, slot, p, kv_head, value.data());
        double* lane = partials.data() + (p % canonical::kLanes) * head_dim;
        const double weight = scores[p];
        for (int64_t d = 0; d < head_dim; ++d) lane[d] += weight * value[d];
      }
      float* dst = out + t * q_cols + h * head_dim;
      double lanes[canonical::kLanes];
      for (int64_t d = 0; d < head_dim; ++d) {
        for (int l = 0; l < canonical::kLanes; ++l) lanes[l] = partials[static_cast<size_t>(l * head_dim + d)];
        dst[d] = static_cast<float>(canonical::combine_lanes(lanes) / total);
      }
    }
  });
}

void swiglu(ThreadPool& pool, const float* gate, const float* up, size_t count, float* out) {
  pool.parallel_for(count, [&](size_t begin, size_t end) {
    for (size_t i = begin; i < end; ++i) out[i] = canonical::swiglu(gate[i], up[i], canonical::exp(-gate[i]));
  }, 4096);
}

}  // namespace octet::backend::cpu::reproducible
