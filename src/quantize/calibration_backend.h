#pragma once
// A Backend that runs every op on another backend and records, on the way, the largest magnitude
// each linear layer's input reached and each layer's K and V reached: the statistics static FP8
// scales are made from (scale = amax / 448). Reads activations back through copy_rows_to_host, so
// it works over any backend, at the cost of a copy per op (calibration is offline).
#include "backend/backend.h"

#include <map>
#include <vector>

namespace octet::quantize {

class CalibrationBackend final : public backend::Backend {
 public:
  CalibrationBackend(backend::Backend& inner, int64_t layers);

  const std::map<const backend::LinearWeight*, float>& input_amax() const { return input_amax_; }
  const std::vector<float>& k_amax() const { return k_amax_; }
  const std::vector<float>& v_amax() const { return v_amax_; }

  std::string name() const override { return "calibration(" + inner_.name() + ")"; }
  std::unique_ptr<backend::LinearWeight> make_linear(const float* weights, int64_t out, int64_t in,
                                                     const backend::LinearSpec& spec) override {
    return inner_.make_linear(weights, out, in, spec);
  }
  std::unique_ptr<backend::LinearWeight> make_fp8_linear(const uint8_t* codes, const float* scales, int64_t out,
                                                         int64_t in, const backend::LinearSpec& spec) override {
    return inner_.make_fp8_linear(codes, scales, out, in, spec);
  }
  std::unique_ptr<backend::LinearWeight> make_fp8_block_linear(const uint8_t* codes, const float* block_scales, int64_t out,
                                                               int64_t in, const backend::LinearSpec& spec) override {
    return inner_.make_fp8_block_linear(codes, block_scales, out, in, spec);
  }
  std::unique_ptr<backend::VectorWeight> make_vector(const float* values, int64_t size) override {
    return inner_.make_vector(values, size);
  }
  std::unique_ptr<backend::EmbeddingTable> make_embedding(const float* table, int64_t vocab, int64_t hidden,
                                                          backend::EmbeddingFormat format) override {
    return inner_.make_embedding(table, vocab, hidden, format);
  }
  std::unique_ptr<backend::EmbeddingTable> make_embedding_sharing(const backend::LinearWeight& fp8_head) override {
    return inner_.make_embedding_sharing(fp8_head);
  }
  std::unique_ptr<backend::Activations> make_activations(int64_t rows, int64_t cols) override {
    return inner_.make_activations(rows, cols);
  }
  std::unique_ptr<backend::KvCache> make_kv_cache(const backend::KvCacheSpec& spec) override {
    return inner_.make_kv_cache(spec);
  }
  void prepare_batch(const backend::TokenBatch& batch) override { inner_.prepare_batch(batch); }
  void synchronize() override { inner_.synchronize(); }
  void embed(const backend::EmbeddingTable& table, std::span<const int32_t> tokens, backend::Activations& out) override {
    inner_.embed(table, tokens, out);
  }
  void rmsnorm(const backend::Activations& x, const backend::VectorWeight& w, float eps, backend::Activations& out) override {
    inner_.rmsnorm(x, w, eps, out);
  }
  void add_rmsnorm(backend::Activations& residual, const backend::Activations& delta, const backend::VectorWeight& w,
                   float eps, backend::Activations& out) override {
    inner_.add_rmsnorm(residual, delta, w, eps, out);
  }
  void linear(const backend::Activations& x, const backend::LinearWeight& weight, backend::Activations& out) override;
  void rope(backend::Activations& x, int64_t head_dim, std::span<const int64_t> positions,
            std::span<const float> inverse_frequencies) override {
    inner_.rope(x, head_dim, positions, inverse_frequencies);
  }
  void kv_write(backend::KvCache& cache, int64_t layer, const backend::TokenBatch& batch, const backend::Activations& k,
                const backend::Activations& v) override;
  void attention(const backend::KvCache& cache, int64_t layer, const backend::TokenBatch& batch,
                 const backend::Activations& q, backend::Activations& out) override {
    inner_.attention(cache, layer, batch, q, out);
  }
  void swiglu(const backend::Activations& gate, const backend::Activations& up, backend::Activations& out) override {
    inner_.swiglu(gate, up, out);
  }
  void add(backend::Activations& x, const backend::Activations& y) override { inner_.add(x, y); }
  void copy_rows_to_host(const backend::Activations& x, std::span<const int64_t> rows, float* out) override {
    inner_.copy_rows_to_host(x, rows, out);
  }
  void gather_rows(const backend::Activations& x, std::span<const int64_t> rows, backend::Activations& out) override {
    inner_.gather_rows(x, rows, out);
  }

 private:
  float amax(const backend::Activations& a);
  backend::Backend& inner_;
  std::map<const backend::LinearWeight*, float> input_amax_;
  std::vector<float> k_amax_, v_amax_;
  std::vector<float> host_;
  std::vector<int64_t> rows_;
};

}  // namespace octet::quantize
