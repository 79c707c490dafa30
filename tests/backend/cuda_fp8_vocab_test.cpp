// The CUDA backend's fp8 embedding table and fp8 LM head against the CPU backend (itself checked in
// fp8_vocab_test.cpp): gathers bit for bit (decode(code) · scale is one exact product on both),
// an LM-head-sized FP8 linear within the FP8 linears' 1e-3, and a tiny model with both in fp8.
// Skips, saying so, where no GPU can be used.
#include "backend/backend.h"
#include "backend/device.h"
#include "model/llama_model.h"
#include "support/backend_rows.h"
#include "support/cuda_vs_cpu.h"
#include "support/random.h"
#include "support/tiny_checkpoint.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>

namespace octet::backend {
namespace {

namespace tw = octet::testing;

// On the CUDA-against-CPU fixture (a CPU and a CUDA backend, a per-test seeded generator).
class CudaFp8Vocab : public CudaVsCpu {
 protected:
  // The rows of `table` for `tokens`, gathered by `backend` into a NaN-poisoned buffer and read back.
  std::vector<float> gather(Backend& backend, const EmbeddingTable& table, const std::vector<int32_t>& tokens) {
    auto out = backend.make_activations(static_cast<int64_t>(tokens.size()), table.hidden);
    fill(backend, *out, std::vector<float>(tokens.size() * static_cast<size_t>(table.hidden),
                                           std::numeric_limits<float>::quiet_NaN()));
    TokenBatch batch;
    for (int32_t t : tokens) {
      batch.tokens.push_back(t);
      batch.positions.push_back(0);
      batch.slots.push_back(0);
    }
    backend.prepare_batch(batch);
    backend.embed(table, tokens, *out);
    return read(backend, *out);
  }
  // Sets a buffer's rows through the backend's own API (a float32 table gathered in order).
  void fill(Backend& backend, Activations& a, const std::vector<float>& values) { testing::upload_rows(backend, values, a); }
  std::vector<float> read(Backend& backend, const Activations& a) { return testing::download_rows(backend, a); }
  std::vector<int32_t> tokens(int64_t vocab, int count) {
    std::vector<int32_t> out = {0, static_cast<int32_t>(vocab - 1), 3, 3};
    std::uniform_int_distribution<int32_t> id(0, static_cast<int32_t>(vocab - 1));
    for (int i = 0; i < count; ++i) out.push_back(id(rng_));
    return out;
  }
};

TEST_F(CudaFp8Vocab, EmbeddingGatherMatchesCpuBitForBit) {
  for (int64_t hidden : {576, 4100, 83}) {
    const int64_t vocab = 1001;
    auto table = tw::random_normal(rng_, static_cast<size_t>(vocab * hidden), 0.05f);
    for (int64_t c = 0; c < hidden; ++c) table[c] = 0.0f;  // row 0: all zero
    auto on_cpu = cpu_->make_embedding(table.data(), vocab, hidden, EmbeddingFormat::fp8);
    auto on_gpu = gpu_->make_embedding(table.data(), vocab, hidden, EmbeddingFormat::fp8);
    EXPECT_EQ(on_gpu->bytes(), on_cpu->bytes());
    const auto ids = tokens(vocab, 61);
    EXPECT_EQ(gather(*gpu_, *on_gpu, ids), gather(*cpu_, *on_cpu, ids)) << "hidden " << hidden;
  }
}

TEST_F(CudaFp8Vocab, TiedTableSharesTheHeadsCodesAndMatchesCpu) {
  const int64_t vocab = 777, hidden = 576;
  const auto table = tw::random_normal(rng_, static_cast<size_t>(vocab * hidden), 0.05f);
  const LinearSpec spec{LinearFormat::fp8, 0.0f};
  auto head_cpu = cpu_->make_linear(table.data(), vocab, hidden, spec);
  auto head_gpu = gpu_->make_linear(table.data(), vocab, hidden, spec);
  auto shared_cpu = cpu_->make_embedding_sharing(*head_cpu);
  auto shared_gpu = gpu_->make_embedding_sharing(*head_gpu);
  ASSERT_NE(shared_gpu, nullptr);
  EXPECT_EQ(shared_gpu->bytes(), 0u);
  const auto ids = tokens(vocab, 40);
  EXPECT_EQ(gather(*gpu_, *shared_gpu, ids), gather(*cpu_, *shared_cpu, ids));
}

TEST_F(CudaFp8Vocab, RandomFp8TableHasCodesAndARowScale) {
  const int64_t vocab = 5003, hidden = 576;
  auto table = gpu_->make_random_embedding(vocab, hidden, EmbeddingFormat::fp8, 7);
  EXPECT_EQ(table->bytes(), static_cast<uint64_t>(vocab * hidden + vocab * 4));
  const auto rows = gather(*gpu_, *table, tokens(vocab, 20));
  double sum_squares = 0;
  for (float v : rows) {
    ASSERT_TRUE(std::isfinite(v));
    sum_squares += static_cast<double>(v) * v;
  }
  const double stddev = std::sqrt(sum_squares / static_cast<double>(rows.size()));
  EXPECT_GT(stddev, 0.01);  // the dummy weights' 0.02, within the codes' rounding
  EXPECT_LT(stddev, 0.04);
}

// An LM head's shape (vocabulary rows, odd count) in FP8 against the CPU: the FP8 linears' 1e-3
// (tensor cores accumulate narrower than the CPU's float32; the codes are the same).
TEST_F(CudaFp8Vocab, LmHeadMatchesCpu) {
  const int64_t vocab = 32003;
  for (auto [hidden, rows] : {std::pair<int64_t, int64_t>{576, 1}, {576, 3}, {576, 64}, {4096, 1}, {4096, 8}, {4096, 17}}) {
    const auto w = tw::random_normal(rng_, static_cast<size_t>(vocab * hidden), 0.02f);
    const auto x = tw::random_normal(rng_, static_cast<size_t>(rows * hidden));
    const LinearSpec spec{LinearFormat::fp8, 0.0f};
    auto head_cpu = cpu_->make_linear(w.data(), vocab, hidden, spec);
    auto head_gpu = gpu_->make_linear(w.data(), vocab, hidden, spec);
    auto in_cpu = cpu_->make_activations(rows, hidden), in_gpu = gpu_->make_activations(rows, hidden);
    static_cast<cpu::CpuActivations&>(*in_cpu).data = x;
    fill(*gpu_, *in_gpu, x);
    auto out_cpu = cpu_->make_activations(rows, vocab), out_gpu = gpu_->make_activations(rows, vocab);
    fill(*gpu_, *out_gpu, std::vector<float>(static_cast<size_t>(rows * vocab), std::numeric_limits<float>::quiet_NaN()));
    cpu_->linear(*in_cpu, *head_cpu, *out_cpu);
    gpu_->linear(*in_gpu, *head_gpu, *out_gpu);
    const auto gpu_logits = read(*gpu_, *out_gpu);
    const auto& cpu_logits = static_cast<cpu::CpuActivations&>(*out_cpu).data;
    for (float v : gpu_logits) ASSERT_FALSE(std::isnan(v)) << "an unwritten logit, hidden " << hidden << " rows " << rows;
    EXPECT_LT(tw::relative_error(gpu_logits, std::vector<double>(cpu_logits.begin(), cpu_logits.end())), 1e-3)
        << "hidden " << hidden << " rows " << rows;
  }
}

// A tiny model (untied and tied) with the fp8 table and head: the GPU as close to float32 as the
// CPU's fp8 path is (1.5× + 1e-3, as CudaVsCpu.TinyLlamaLogitsMatchInEveryPrecision states), and
// random weights (--dummy-weights) with both in fp8 run to finite logits.
TEST_F(CudaFp8Vocab, TinyModelWithFp8VocabularyMatchesCpu) {
  for (bool tied : {false, true}) {
    const tw::TinyLlama m = tw::TinyLlama::random(rng_, tied);
    tw::TestWeightSource weights;
    weights.weights = m.weights;
    const model::LlamaConfig config = model::config_from_hf_json(m.config_json(), "tiny");
    const auto on_cpu = tw::tiny_logits(config, weights, Precision::fp8, VocabPrecision::fp8);
    const auto exact = tw::tiny_logits(config, weights, Precision::f32);
    const auto on_gpu = tw::tiny_logits(config, weights, Precision::fp8, VocabPrecision::fp8, gpu_.get());
    const double cpu_error = tw::relative_difference(on_cpu, exact), gpu_error = tw::relative_difference(on_gpu, exact);
    EXPECT_LT(gpu_error, 1.5 * cpu_error + 1e-3) << (tied ? "tied" : "untied") << ": GPU " << gpu_error << ", CPU " << cpu_error;

    model::ModelOptions options;
    options.max_context = 64;
    options.lm_head_precision = options.embedding_precision = VocabPrecision::fp8;
    model::LlamaModel dummy(config, nullptr, *gpu_, options);
    EXPECT_TRUE(dummy.embedding_fp8() && dummy.lm_head_fp8());
    const TokenBatch batch{{256, 72, 101, 10}, {0, 1, 2, 3}, {0, 0, 0, 0}};
    const std::vector<int64_t> rows = {0, 1, 2, 3};
    std::vector<float> dummy_logits(rows.size() * static_cast<size_t>(config.vocab));
    dummy.forward(batch, rows, dummy_logits.data());
    for (float v : dummy_logits) ASSERT_TRUE(std::isfinite(v)) << (tied ? "tied" : "untied");
  }
}

}  // namespace
}  // namespace octet::backend
