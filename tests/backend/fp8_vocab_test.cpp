// The fp8 embedding table and the fp8 LM head on the CPU backend against the tests' own FP8
// reference (tests/support): gathered rows are exactly decode(code) · row scale, shared (tied)
// tables read the head's own codes, and an LM-head-sized FP8 linear matches a double-precision
// W8A8 product of the reference codes.
#include "backend/backend.h"
#include "backend/cpu/cpu_tensors.h"
#include "common/error.h"
#include "support/random.h"
#include "support/tiny_checkpoint.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <random>

namespace octet::backend {
namespace {

namespace tw = octet::testing;

std::vector<float> gather(Backend& backend, const EmbeddingTable& table, const std::vector<int32_t>& tokens) {
  auto out = backend.make_activations(static_cast<int64_t>(tokens.size()), table.hidden);
  backend.embed(table, tokens, *out);
  return static_cast<cpu::CpuActivations&>(*out).data;
}

// Tokens covering the first and last rows, repeats and random rows.
std::vector<int32_t> some_tokens(std::mt19937_64& rng, int64_t vocab) {
  std::vector<int32_t> tokens = {0, static_cast<int32_t>(vocab - 1), 5, 5};
  std::uniform_int_distribution<int32_t> id(0, static_cast<int32_t>(vocab - 1));
  for (int i = 0; i < 40; ++i) tokens.push_back(id(rng));
  return tokens;
}

TEST(CpuFp8Embedding, GatherIsTheDecodedCodeTimesTheRowScaleExactly) {
  std::mt19937_64 rng(tw::test_seed("CpuFp8Embedding.GatherIsTheDecodedCodeTimesTheRowScaleExactly"));
  const int64_t vocab = 301, hidden = 83;  // odd: no SIMD-width multiple
  auto table = tw::random_normal(rng, static_cast<size_t>(vocab * hidden), 0.05f);
  for (int64_t c = 0; c < hidden; ++c) table[7 * hidden + c] = 0.0f;  // an all-zero row
  for (int64_t c = 0; c < hidden; ++c) table[9 * hidden + c] *= 1e-3f;  // a row of small values
  const tw::ReferenceFp8 expected = tw::reference_quantize(table, vocab, hidden, /*per_channel=*/true);
  auto backend = make_cpu_backend(1);
  auto fp8_table = backend->make_embedding(table.data(), vocab, hidden, EmbeddingFormat::fp8);
  EXPECT_EQ(fp8_table->bytes(), static_cast<uint64_t>(vocab * hidden + vocab * 4));
  std::vector<int32_t> tokens = some_tokens(rng, vocab);
  tokens.push_back(7);
  tokens.push_back(9);
  const auto rows = gather(*backend, *fp8_table, tokens);
  for (size_t t = 0; t < tokens.size(); ++t)
    for (int64_t c = 0; c < hidden; ++c) {
      const size_t index = static_cast<size_t>(tokens[t] * hidden + c);
      const float want = tw::e4m3_value(expected.codes[index]) * expected.scales[static_cast<size_t>(tokens[t])];
      ASSERT_EQ(rows[t * hidden + c], want) << "token " << tokens[t] << " column " << c;
    }
  // An out-of-range token is refused, naming it.
  const std::vector<int32_t> bad = {static_cast<int32_t>(vocab)};
  auto out = backend->make_activations(1, hidden);
  EXPECT_THROW(backend->embed(*fp8_table, bad, *out), Error);
}

TEST(CpuFp8Embedding, TiedTableSharesTheFp8HeadsCodes) {
  std::mt19937_64 rng(tw::test_seed("CpuFp8Embedding.TiedTableSharesTheFp8HeadsCodes"));
  const int64_t vocab = 260, hidden = 64;
  const auto table = tw::random_normal(rng, static_cast<size_t>(vocab * hidden), 0.05f);
  auto backend = make_cpu_backend(1);
  auto head = backend->make_linear(table.data(), vocab, hidden, LinearSpec{LinearFormat::fp8, 0.0f});
  auto shared = backend->make_embedding_sharing(*head);
  ASSERT_NE(shared, nullptr);
  EXPECT_EQ(shared->bytes(), 0u);  // the head counts the storage
  EXPECT_EQ(shared->vocab, vocab);
  auto own = backend->make_embedding(table.data(), vocab, hidden, EmbeddingFormat::fp8);
  const auto tokens = some_tokens(rng, vocab);
  EXPECT_EQ(gather(*backend, *shared, tokens), gather(*backend, *own, tokens));
  auto bf16_head = backend->make_linear(table.data(), vocab, hidden, LinearSpec{LinearFormat::bf16, 0.0f});
  EXPECT_THROW(backend->make_embedding_sharing(*bf16_head), Error);
}

// y[t][v] = (Σ decode(x codes) · decode(w codes)) · x scale · w scale, in double, from the tests' own
// quantizer (per-token activations, per-row weights). The CPU sums the exact float32 products in
// float32: relative error ≤ 1e-5 of the logits' norm. The distance of the W8A8 logits from the
// unquantized float product is printed for the record.
TEST(CpuFp8LmHead, LogitsMatchADoubleW8A8Reference) {
  std::mt19937_64 rng(tw::test_seed("CpuFp8LmHead.LogitsMatchADoubleW8A8Reference"));
  const int64_t vocab = 4099, hidden = 576, rows = 5;
  const auto w = tw::random_normal(rng, static_cast<size_t>(vocab * hidden), 0.05f);
  const auto x = tw::random_normal(rng, static_cast<size_t>(rows * hidden));
  auto backend = make_cpu_backend(2);
  auto head = backend->make_linear(w.data(), vocab, hidden, LinearSpec{LinearFormat::fp8, 0.0f});
  EXPECT_EQ(head->bytes(), static_cast<uint64_t>(vocab * hidden + vocab * 4));
  auto in = backend->make_activations(rows, hidden);
  static_cast<cpu::CpuActivations&>(*in).data = x;
  auto out = backend->make_activations(rows, vocab);
  backend->linear(*in, *head, *out);
  const auto& logits = static_cast<cpu::CpuActivations&>(*out).data;

  const tw::ReferenceFp8 qw = tw::reference_quantize(w, vocab, hidden, true);
  const tw::ReferenceFp8 qx = tw::reference_quantize(x, rows, hidden, true);
  std::vector<double> w8a8(static_cast<size_t>(rows * vocab)), exact(static_cast<size_t>(rows * vocab));
  for (int64_t t = 0; t < rows; ++t)
    for (int64_t v = 0; v < vocab; ++v) {
      double sum = 0, float_sum = 0;
      for (int64_t i = 0; i < hidden; ++i) {
        sum += static_cast<double>(tw::e4m3_value(qx.codes[t * hidden + i])) * tw::e4m3_value(qw.codes[v * hidden + i]);
        float_sum += static_cast<double>(x[t * hidden + i]) * w[v * hidden + i];
      }
      w8a8[t * vocab + v] = sum * qx.scales[t] * qw.scales[v];
      exact[t * vocab + v] = float_sum;
    }
  EXPECT_LT(tw::relative_error(logits, w8a8), 1e-5);
  std::printf("fp8 LM head: relative error of the W8A8 logits vs the float product %.4f\n",
              tw::relative_error(logits, exact));
  EXPECT_LT(tw::relative_error(logits, exact), 0.06);  // E4M3: 3 mantissa bits on both operands
}

}  // namespace
}  // namespace octet::backend
