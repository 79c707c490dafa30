// numerics reproducible on the CPU: each op within rounding of the fast CPU ops (only the order of
// sums and the exp / sin / cos functions differ), and whole-model logits that do not depend on the
// thread count or on the sequences batched together (bit for bit). That the CUDA backend gives the
// same bits is checked on the GPU (cuda_reproducible_test.cpp).
#include "backend/backend.h"
#include "support/backend_rows.h"
#include "support/random.h"
#include "support/rope_frequencies.h"
#include "support/tiny_llama.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

namespace octet::backend {
namespace {

class CpuReproducible : public ::testing::Test {
 protected:
  void SetUp() override { rng_.seed(testing::test_seed(::testing::UnitTest::GetInstance()->current_test_info()->name())); }

  std::unique_ptr<Activations> make(Backend& backend, int64_t rows, int64_t cols, const std::vector<float>& values) {
    auto a = backend.make_activations(rows, cols);
    testing::upload_rows(backend, values, *a);
    return a;
  }
  static double error(Backend& backend, const Activations& got, Backend& reference_backend, const Activations& reference) {
    const auto g = testing::download_rows(backend, got), r = testing::download_rows(reference_backend, reference);
    for (float v : g)
      if (std::isnan(v)) return INFINITY;
    return testing::relative_error(g, std::vector<double>(r.begin(), r.end()));
  }

  std::unique_ptr<Backend> fast_ = make_cpu_backend(2);
  std::unique_ptr<Backend> exact_ = make_cpu_backend(2, Numerics::reproducible);
  std::mt19937_64 rng_;
};

TEST_F(CpuReproducible, LinearsAgreeWithTheFastPathToRounding) {
  const int64_t rows = 5, in = 1000, out = 130;
  const auto x = testing::random_normal(rng_, rows * in), w = testing::random_normal(rng_, out * in, 0.05f);
  const std::vector<float> poison(rows * out, NAN);
  for (LinearFormat format : {LinearFormat::fp8, LinearFormat::bf16, LinearFormat::f32})
    for (float static_scale : {0.0f, 0.01f}) {
      if (format != LinearFormat::fp8 && static_scale > 0) continue;
      auto wf = fast_->make_linear(w.data(), out, in, LinearSpec{format, static_scale});
      auto we = exact_->make_linear(w.data(), out, in, LinearSpec{format, static_scale});
      auto xf = make(*fast_, rows, in, x), xe = make(*exact_, rows, in, x);
      auto yf = make(*fast_, rows, out, poison), ye = make(*exact_, rows, out, poison);
      fast_->linear(*xf, *wf, *yf);
      exact_->linear(*xe, *we, *ye);
      // The same codes and scales, summed in another order (float32 against exact double).
      EXPECT_LT(error(*exact_, *ye, *fast_, *yf), 1e-5) << "format " << int(format) << " static " << static_scale;
    }
  const auto codes = testing::random_e4m3_codes(rng_, out * in);
  const auto scales = testing::random_fp8_scales(rng_, fp8_scale_blocks(out) * fp8_scale_blocks(in));
  auto wf = fast_->make_fp8_block_linear(codes.data(), scales.data(), out, in, LinearSpec{});
  auto we = exact_->make_fp8_block_linear(codes.data(), scales.data(), out, in, LinearSpec{});
  auto xf = make(*fast_, rows, in, x), xe = make(*exact_, rows, in, x);
  auto yf = make(*fast_, rows, out, poison), ye = make(*exact_, rows, out, poison);
  fast_->linear(*xf, *wf, *yf);
  exact_->linear(*xe, *we, *ye);
  EXPECT_LT(error(*exact_, *ye, *fast_, *yf), 1e-5) << "block-scaled";
}

TEST_F(CpuReproducible, NormsRopeSwigluAndAttentionAgreeWithTheFastPath) {
  const int64_t rows = 7, cols = 192, head_dim = 64, heads = 3, kv_heads = 1;
  const auto x = testing::random_normal(rng_, rows * cols), y = testing::random_normal(rng_, rows * cols, 3.0f);
  const auto w = testing::random_normal(rng_, cols);
  auto nf = fast_->make_vector(w.data(), cols);
  auto ne = exact_->make_vector(w.data(), cols);
  auto xf = make(*fast_, rows, cols, x), xe = make(*exact_, rows, cols, x);
  auto yf = make(*fast_, rows, cols, y), ye = make(*exact_, rows, cols, y);
  auto of = fast_->make_activations(rows, cols), oe = exact_->make_activations(rows, cols);
  fast_->rmsnorm(*xf, *nf, 1e-5f, *of);
  exact_->rmsnorm(*xe, *ne, 1e-5f, *oe);
  EXPECT_LT(error(*exact_, *oe, *fast_, *of), 1e-6) << "rmsnorm";
  fast_->swiglu(*yf, *xf, *of);
  exact_->swiglu(*ye, *xe, *oe);
  EXPECT_LT(error(*exact_, *oe, *fast_, *of), 1e-6) << "swiglu";

  const std::vector<float> freqs = testing::rope_inverse_frequencies(head_dim, 500000.0f);
  TokenBatch batch;
  for (int64_t i = 0; i < rows; ++i) batch.tokens.push_back(0), batch.slots.push_back(0), batch.positions.push_back(i * 300);
  fast_->rope(*xf, head_dim, batch.positions, freqs);
  exact_->rope(*xe, head_dim, batch.positions, freqs);
  EXPECT_LT(error(*exact_, *xe, *fast_, *xf), 1e-6) << "rope";

  for (auto storage : {KvCacheSpec::Storage::f32, KvCacheSpec::Storage::bf16, KvCacheSpec::Storage::fp8}) {
    const KvCacheSpec spec{1, kv_heads, head_dim, 2000, 1, storage};
    auto cf = fast_->make_kv_cache(spec), ce = exact_->make_kv_cache(spec);
    const int64_t tokens = 1900;
    TokenBatch prefill;
    for (int64_t i = 0; i < tokens; ++i) prefill.tokens.push_back(0), prefill.slots.push_back(0), prefill.positions.push_back(i);
    const auto k = testing::random_normal(rng_, tokens * kv_heads * head_dim), q = testing::random_normal(rng_, tokens * heads * head_dim);
    auto kf = make(*fast_, tokens, kv_heads * head_dim, k), ke = make(*exact_, tokens, kv_heads * head_dim, k);
    auto qf = make(*fast_, tokens, heads * head_dim, q), qe = make(*exact_, tokens, heads * head_dim, q);
    fast_->kv_write(*cf, 0, prefill, *kf, *kf);
    exact_->kv_write(*ce, 0, prefill, *ke, *ke);
    auto af = fast_->make_activations(tokens, heads * head_dim), ae = exact_->make_activations(tokens, heads * head_dim);
    fast_->attention(*cf, 0, prefill, *qf, *af);
    exact_->attention(*ce, 0, prefill, *qe, *ae);
    EXPECT_LT(error(*exact_, *ae, *fast_, *af), 1e-5) << "attention, storage " << int(storage);
  }
}

// The tiny Llama's FP8 logits under reproducible numerics are as close to the float32 result as the
// fast path's (the two FP8 paths carry independent FP8 noise), and bit for bit the same with one
// thread or two, and with the sequences run together or one at a time.
TEST_F(CpuReproducible, ModelLogitsDoNotDependOnThreadsOrBatching) {
  const model::LlamaConfig config = tiny_config();
  RandomWeights weights(rng_());
  model::ModelOptions options;
  options.max_context = 64;
  options.precision = Precision::f32;
  const std::vector<int64_t> prompts = {37, 20, 5};
  const auto reference = tiny_llama_logits(*fast_, config, weights, options, prompts);
  options.precision = Precision::fp8;
  const auto fast = tiny_llama_logits(*fast_, config, weights, options, prompts);
  const auto exact = tiny_llama_logits(*exact_, config, weights, options, prompts);
  for (size_t step = 0; step < exact.size(); ++step) {
    const std::vector<double> want(reference[step].begin(), reference[step].end());
    const double fast_error = testing::relative_error(fast[step], want), exact_error = testing::relative_error(exact[step], want);
    EXPECT_LT(exact_error, 1.5 * fast_error + 1e-3) << "step " << step << ": reproducible " << exact_error << ", fast " << fast_error;
  }
  auto one_thread = make_cpu_backend(1, Numerics::reproducible);
  EXPECT_TRUE(same_steps(tiny_llama_logits(*one_thread, config, weights, options, prompts), exact));
  // Sequence 0 alone (tiny_llama_logits' tokens depend on the slot, so only slot 0 keeps its tokens):
  // its rows of the batched steps.
  const auto alone = tiny_llama_logits(*exact_, config, weights, options, {prompts[0]});
  for (size_t step = 0; step < alone.size(); ++step) {
    const std::vector<float> batched(exact[step].begin(), exact[step].begin() + config.vocab);
    EXPECT_TRUE(same_bits(alone[step], batched)) << "step " << step;
  }
}

}  // namespace
}  // namespace octet::backend
