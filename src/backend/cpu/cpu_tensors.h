#pragma once
// Storage of the CPU backend: activations, weights in their precision, and the KV cache.
#include "backend/backend.h"

#include <cstdint>
#include <cstdlib>
#include <memory>

namespace octet { class ThreadPool; }
#include <span>
#include <vector>

namespace octet::backend::cpu {

struct CpuActivations final : Activations {
  CpuActivations(int64_t r, int64_t c) : data(static_cast<size_t>(r * c)) {
    rows = r;
    cols = c;
  }
  std::vector<float> data;
};

struct CpuVector final : VectorWeight {
  std::vector<float> values;
};

struct CpuLinear final : LinearWeight {
  CpuLinear(const float* weights, int64_t out, int64_t in, const LinearSpec& spec);
  // fp8 codes and per-output-channel scales taken as they are (a pre-quantized checkpoint).
  CpuLinear(const uint8_t* e4m3_codes, const float* channel_scales, int64_t out, int64_t in, const LinearSpec& spec);
  // fp8 codes with one scale per 128×128 block ([ceil(out/128), ceil(in/128)], make_fp8_block_linear).
  CpuLinear(const uint8_t* e4m3_codes, std::span<const float> block_scales_128, int64_t out, int64_t in,
            const LinearSpec& spec);
  // Float values as a checkpoint stores them, converted row-parallel on pool (no float32 copy of the
  // whole tensor): the same weights as the float32 constructor given their widening.
  CpuLinear(const StoredTensor& weights, const LinearSpec& spec, ThreadPool& pool);
  uint64_t bytes() const override;
  // out[t · out_stride] = dot(x + t · x_stride, columns [first, first + count) of weight row `row`) for
  // t in [0, tokens), the row widened to float32 as it is read (FP8 rows come out divided by
  // kE4M3WidenFactor, which scales[] already compensates).
  void dot_rows(int64_t row, int64_t first, int64_t count, const float* x, int64_t x_stride, int64_t tokens, float* out,
                int64_t out_stride) const;

  LinearFormat format;
  float static_input_scale;
  std::vector<float> f32;
  std::vector<uint16_t> bf16;
  std::vector<uint8_t> codes;
  std::vector<float> scales;  // per output channel, times kE4M3WidenFactor (empty for block scales)
  std::vector<float> block_scales;  // block-scaled fp8: [ceil(out/128), ceil(in/128)], times kE4M3WidenFactor
};

struct CpuEmbedding final : EmbeddingTable {
  CpuEmbedding(const float* table, int64_t vocab, int64_t hidden, EmbeddingFormat format);
  CpuEmbedding(const StoredTensor& table, EmbeddingFormat format, ThreadPool& pool);  // float dtypes, row-parallel
  // fp8: gathers the codes and scales of an fp8 linear (tied LM head) without a copy.
  explicit CpuEmbedding(const CpuLinear& fp8_head);
  uint64_t bytes() const override;
  void row(int32_t token, float* out) const;

  EmbeddingFormat format;
  std::vector<float> f32;
  std::vector<uint16_t> bf16;
  std::vector<uint8_t> codes;        // fp8, owned: [vocab, hidden]
  std::vector<float> scales;         // fp8, owned: per row, times kE4M3WidenFactor (as CpuLinear's)
  const uint8_t* fp8_codes = nullptr;  // fp8: codes, or a tied head's
  const float* fp8_scales = nullptr;   // fp8: scales, or a tied head's
};

// A pool of position blocks per (K or V, layer), mapped to slots by block tables (backend.h).
class CpuKvCache final : public KvCache {
 public:
  explicit CpuKvCache(const KvCacheSpec& spec);
  uint64_t bytes_per_position() const override;
  void clear_slot(int64_t slot) override;
  void set_block_table(int64_t slot, std::span<const int32_t> blocks) override;

  void write(int64_t layer, const TokenBatch& batch, const float* k, const float* v);
  // Reads one head's vector at a position as float32.
  void read_k(int64_t layer, int64_t slot, int64_t position, int64_t head, float* out) const;
  void read_v(int64_t layer, int64_t slot, int64_t position, int64_t head, float* out) const;
  // The same vectors widened to double without a rounding (FP8: decode(code) · scale is exact in
  // double): what the reproducible attention multiplies (backend/canonical_numerics.h).
  void read_k_exact(int64_t layer, int64_t slot, int64_t position, int64_t head, double* out) const;
  void read_v_exact(int64_t layer, int64_t slot, int64_t position, int64_t head, double* out) const;
  int64_t length(int64_t slot) const { return lengths_[slot]; }

 private:
  struct Free {
    void operator()(void* p) const { std::free(p); }
  };
  struct Lane {  // one of K or V, for one layer: [pool rows, kv_heads, head_dim], zeros until written
    std::unique_ptr<uint8_t[], Free> bytes;
    std::unique_ptr<float[], Free> scales;  // per (row, head), fp8 only
  };
  void check_slot(int64_t slot) const;
  int64_t row_of(int64_t slot, int64_t position) const;  // the pool row holding (slot, position)
  void store(Lane& lane, int64_t row, const float* values, float static_scale);
  void load(const Lane& lane, int64_t row, int64_t head, float* out) const;
  void load_exact(const Lane& lane, int64_t row, int64_t head, double* out) const;

  int64_t element_bytes_;
  std::vector<Lane> lanes_;  // [2][layers]
  std::vector<std::vector<int32_t>> block_tables_;  // per slot
  std::vector<int64_t> lengths_;
};

}  // namespace octet::backend::cpu
