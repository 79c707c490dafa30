// CPU reference backend: multi-threaded loops over plain float32 activations. Linear layers widen
// one weight row at a time (FP8 or BF16 → float32) and reuse it across every token of the batch, so
// a weight is read from memory once per forward pass. Under numerics reproducible, the norms, linears,
// RoPE, attention and SwiGLU are cpu_reproducible.h's instead (the CUDA backend's bits).
#include "backend/backend.h"
#include "backend/cpu/cpu_attention.h"
#include "backend/cpu/cpu_reproducible.h"
#include "backend/cpu/cpu_tensors.h"
#include "backend/cpu/dot_kernels.h"
#include "common/bf16.h"
#include "common/error.h"
#include "common/thread_pool.h"
#include "fp8/scaling.h"

#include <algorithm>
#include <cmath>

namespace octet::backend {
namespace cpu {
namespace {

const CpuActivations& cast(const Activations& a) { return static_cast<const CpuActivations&>(a); }
CpuActivations& cast(Activations& a) { return static_cast<CpuActivations&>(a); }

void check_shape(const Activations& a, int64_t rows, int64_t cols, const char* what) {
  if (a.rows < rows || a.cols != cols)
    fail("cpu backend: {} has shape [{}, {}], expected [>= {}, {}]", what, a.rows, a.cols, rows, cols);
}

class CpuBackend final : public Backend {
 public:
  CpuBackend(int threads, Numerics numerics) : pool_(threads), reproducible_(numerics == Numerics::reproducible) {}

  std::string name() const override { return "cpu"; }
  Numerics numerics() const override { return reproducible_ ? Numerics::reproducible : Numerics::fast; }

  std::unique_ptr<LinearWeight> make_linear(const float* weights, int64_t out_features, int64_t in_features,
                                            const LinearSpec& spec) override {
    return std::make_unique<CpuLinear>(weights, out_features, in_features, spec);
  }

  std::unique_ptr<LinearWeight> make_fp8_linear(const uint8_t* e4m3_codes, const float* channel_scales,
                                                int64_t out_features, int64_t in_features,
                                                const LinearSpec& spec) override {
    return std::make_unique<CpuLinear>(e4m3_codes, channel_scales, out_features, in_features, spec);
  }

  std::unique_ptr<LinearWeight> make_fp8_block_linear(const uint8_t* e4m3_codes, const float* block_scales,
                                                      int64_t out_features, int64_t in_features,
                                                      const LinearSpec& spec) override {
    const auto count = static_cast<size_t>(fp8_scale_blocks(out_features) * fp8_scale_blocks(in_features));
    return std::make_unique<CpuLinear>(e4m3_codes, std::span<const float>(block_scales, count), out_features,
                                       in_features, spec);
  }

  std::unique_ptr<LinearWeight> make_linear_from_stored(const StoredTensor& weights, const LinearSpec& spec) override {
    if (weights.dtype == StoredDtype::e4m3 || !spec.weight_scales.empty()) return Backend::make_linear_from_stored(weights, spec);
    return std::make_unique<CpuLinear>(weights, spec, pool_);
  }

  std::unique_ptr<EmbeddingTable> make_embedding_from_stored(const StoredTensor& table, EmbeddingFormat format) override {
    return std::make_unique<CpuEmbedding>(table, format, pool_);
  }

  std::unique_ptr<VectorWeight> make_vector(const float* values, int64_t size) override {
    auto v = std::make_unique<CpuVector>();
    v->size = size;
    v->values.assign(values, values + size);
    return v;
  }

  std::unique_ptr<EmbeddingTable> make_embedding(const float* table, int64_t vocab, int64_t hidden,
                                                 EmbeddingFormat format) override {
    return std::make_unique<CpuEmbedding>(table, vocab, hidden, format);
  }

  std::unique_ptr<EmbeddingTable> make_embedding_sharing(const LinearWeight& fp8_head) override {
    return std::make_unique<CpuEmbedding>(static_cast<const CpuLinear&>(fp8_head));
  }

  std::unique_ptr<Activations> make_activations(int64_t rows, int64_t cols) override {
    return std::make_unique<CpuActivations>(rows, cols);
  }

  std::unique_ptr<KvCache> make_kv_cache(const KvCacheSpec& spec) override {
    return std::make_unique<CpuKvCache>(spec);
  }

  void embed(const EmbeddingTable& table, std::span<const int32_t> tokens, Activations& out) override {
    const auto& t = static_cast<const CpuEmbedding&>(table);
    check_shape(out, static_cast<int64_t>(tokens.size()), t.hidden, "embedding output");
    float* dst = cast(out).data.data();
    for (size_t i = 0; i < tokens.size(); ++i) {
      if (tokens[i] < 0 || tokens[i] >= t.vocab) fail("token id {} outside the vocabulary [0, {})", tokens[i], t.vocab);
      t.row(tokens[i], dst + i * t.hidden);
    }
  }

  void rmsnorm(const Activations& x, const VectorWeight& weight, float eps, Activations& out) override {
    const int64_t cols = x.cols;
    check_shape(out, x.rows, cols, "rmsnorm output");
    const float* src = cast(x).data.data();
    const float* w = static_cast<const CpuVector&>(weight).values.data();
    float* dst = cast(out).data.data();
    if (reproducible_) return reproducible::rmsnorm(pool_, src, x.rows, cols, w, eps, dst);
    pool_.parallel_for(static_cast<size_t>(x.rows), [&](size_t begin, size_t end) {
      for (size_t r = begin; r < end; ++r) {
        const float* row = src + r * cols;
        double sum_squares = 0;
        for (int64_t i = 0; i < cols; ++i) sum_squares += static_cast<double>(row[i]) * row[i];
        float inv_rms = 1.0f / std::sqrt(static_cast<float>(sum_squares / cols) + eps);
        for (int64_t i = 0; i < cols; ++i) dst[r * cols + i] = row[i] * inv_rms * w[i];
      }
    }, 4);
  }

  void linear(const Activations& x, const LinearWeight& weight, Activations& out) override {
    const auto& w = static_cast<const CpuLinear&>(weight);
    const int64_t rows = x.rows, in = w.in_features, n_out = w.out_features;
    check_shape(x, rows, in, "linear input");
    check_shape(out, rows, n_out, "linear output");
    if (reproducible_) return reproducible::linear(pool_, cast(x), w, cast(out));
    // x_ready: the activation values as the weight format sees them (rounded to bf16, or E4M3 codes
    // decoded exactly, with per-row scales applied after the dot products).
    const float* x_ready = prepare_input(cast(x), w);
    float* dst = cast(out).data.data();
    if (!w.block_scales.empty()) {
      linear_block_scaled(x_ready, rows, w, dst);
      return;
    }
    pool_.parallel_for(static_cast<size_t>(n_out), [&](size_t begin, size_t end) {
      for (size_t o = begin; o < end; ++o) {
        w.dot_rows(static_cast<int64_t>(o), 0, in, x_ready, in, rows, dst + o, n_out);
        if (w.format == LinearFormat::fp8) {
          const float channel_scale = w.scales[o];
          for (int64_t t = 0; t < rows; ++t) dst[t * n_out + o] *= channel_scale * row_scales_[t];
        }
      }
    }, 8);
  }

  void rope(Activations& x, int64_t head_dim, std::span<const int64_t> positions,
            std::span<const float> inverse_frequencies) override {
    const int64_t half = head_dim / 2;
    if (static_cast<int64_t>(inverse_frequencies.size()) != half || x.cols % head_dim != 0)
      fail("rope: head_dim {} does not match {} frequencies / {} columns", head_dim, inverse_frequencies.size(), x.cols);
    float* data = cast(x).data.data();
    if (reproducible_)
      return reproducible::rope(pool_, data, static_cast<int64_t>(positions.size()), x.cols, head_dim, positions,
                                inverse_frequencies);
    const int64_t heads = x.cols / head_dim;
    pool_.parallel_for(positions.size(), [&](size_t begin, size_t end) {
      std::vector<float> cos_table(half), sin_table(half);
      for (size_t t = begin; t < end; ++t) {
        for (int64_t i = 0; i < half; ++i) {
          // float32 angle as in the HF reference, so long positions round the same way.
          float angle = static_cast<float>(positions[t]) * inverse_frequencies[i];
          cos_table[i] = std::cos(angle);
          sin_table[i] = std::sin(angle);
        }
        for (int64_t h = 0; h < heads; ++h) {
          float* head = data + t * x.cols + h * head_dim;
          for (int64_t i = 0; i < half; ++i) {
            float a = head[i], b = head[i + half];
            head[i] = a * cos_table[i] - b * sin_table[i];
            head[i + half] = b * cos_table[i] + a * sin_table[i];
          }
        }
      }
    });
  }

  void kv_write(KvCache& cache, int64_t layer, const TokenBatch& batch, const Activations& k,
                const Activations& v) override {
    static_cast<CpuKvCache&>(cache).write(layer, batch, cast(k).data.data(), cast(v).data.data());
  }

  void attention(const KvCache& cache, int64_t layer, const TokenBatch& batch, const Activations& q,
                 Activations& out) override {
    check_shape(out, q.rows, q.cols, "attention output");
    if (reproducible_)
      return reproducible::attention(pool_, static_cast<const CpuKvCache&>(cache), layer, batch, cast(q).data.data(),
                                     q.cols, cast(out).data.data());
    attention_over_cache(pool_, static_cast<const CpuKvCache&>(cache), layer, batch, cast(q).data.data(),
                         q.cols, cast(out).data.data());
  }

  void swiglu(const Activations& gate, const Activations& up, Activations& out) override {
    check_shape(up, gate.rows, gate.cols, "swiglu up");
    check_shape(out, gate.rows, gate.cols, "swiglu output");
    const float* g = cast(gate).data.data();
    const float* u = cast(up).data.data();
    float* dst = cast(out).data.data();
    const size_t count = static_cast<size_t>(gate.rows * gate.cols);
    if (reproducible_) return reproducible::swiglu(pool_, g, u, count, dst);
    pool_.parallel_for(count, [&](size_t begin, size_t end) {
      for (size_t i = begin; i < end; ++i) dst[i] = g[i] / (1.0f + std::exp(-g[i])) * u[i];
    }, 4096);
  }

  void add(Activations& x, const Activations& y) override {
    check_shape(y, x.rows, x.cols, "residual");
    float* dst = cast(x).data.data();
    const float* src = cast(y).data.data();
    const size_t count = static_cast<size_t>(x.rows * x.cols);
    for (size_t i = 0; i < count; ++i) dst[i] += src[i];
  }

  void copy_rows_to_host(const Activations& x, std::span<const int64_t> rows, float* out) override {
    const float* src = cast(x).data.data();
    for (size_t i = 0; i < rows.size(); ++i)
      std::copy_n(src + rows[i] * x.cols, x.cols, out + i * x.cols);
  }

  void gather_rows(const Activations& x, std::span<const int64_t> rows, Activations& out) override {
    check_shape(out, static_cast<int64_t>(rows.size()), x.cols, "gather output");
    copy_rows_to_host(x, rows, cast(out).data.data());
  }

 private:
  const float* prepare_input(const CpuActivations& x, const CpuLinear& w) {
    const int64_t rows = x.rows, cols = x.cols;
    if (w.format == LinearFormat::f32) return x.data.data();
    scratch_.resize(static_cast<size_t>(rows * cols));
    if (w.format == LinearFormat::bf16) {
      for (size_t i = 0; i < scratch_.size(); ++i) scratch_[i] = round_to_bf16(x.data[i]);
      return scratch_.data();
    }
    codes_.resize(static_cast<size_t>(rows * cols));
    row_scales_.resize(static_cast<size_t>(rows));
    for (int64_t r = 0; r < rows; ++r) {
      const float* row = x.data.data() + r * cols;
      uint8_t* codes = codes_.data() + r * cols;
      float scale;
      if (w.static_input_scale > 0) {
        scale = w.static_input_scale;
        fp8::encode_scaled(fp8::Format::e4m3, row, 1.0f / scale, codes, static_cast<size_t>(cols));
      } else {
        scale = fp8::quantize_row(row, static_cast<size_t>(cols), codes);
      }
      row_scales_[r] = scale * kE4M3WidenFactor;
      widen_e4m3_row(codes, cols, scratch_.data() + r * cols);
    }
    return scratch_.data();
  }

  // Block-scaled FP8: each 128-wide run of in-features is a float32 sum of exact code products, scaled
  // by its block's scale; the runs' sum is then scaled by the token's activation scale.
  void linear_block_scaled(const float* x_ready, int64_t rows, const CpuLinear& w, float* dst) {
    const int64_t in = w.in_features, n_out = w.out_features, k_blocks = fp8_scale_blocks(in);
    pool_.parallel_for(static_cast<size_t>(n_out), [&](size_t begin, size_t end) {
      thread_local std::vector<float> block_sums;
      block_sums.resize(static_cast<size_t>(rows));
      for (size_t o = begin; o < end; ++o) {
        const float* scales = w.block_scales.data() + static_cast<int64_t>(o) / kFp8ScaleBlock * k_blocks;
        for (int64_t t = 0; t < rows; ++t) dst[t * n_out + o] = 0.0f;
        for (int64_t b = 0; b < k_blocks; ++b) {
          const int64_t first = b * kFp8ScaleBlock, count = std::min(kFp8ScaleBlock, in - first);
          w.dot_rows(static_cast<int64_t>(o), first, count, x_ready + first, in, rows, block_sums.data(), 1);
          for (int64_t t = 0; t < rows; ++t) dst[t * n_out + o] += block_sums[t] * scales[b];
        }
        for (int64_t t = 0; t < rows; ++t) dst[t * n_out + o] *= row_scales_[t];
      }
    }, 8);
  }

  ThreadPool pool_;
  bool reproducible_;
  std::vector<float> scratch_;
  std::vector<uint8_t> codes_;
  std::vector<float> row_scales_;
};

}  // namespace
}  // namespace cpu

std::unique_ptr<Backend> make_cpu_backend(int threads, Numerics numerics) {
  return std::make_unique<cpu::CpuBackend>(threads, numerics);
}

}  // namespace octet::backend
