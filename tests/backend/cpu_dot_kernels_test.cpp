// The CPU linear layers' dot products over weight rows widened as they are read (dot_rows_e4m3,
// dot_rows_bf16) against widening the row first (widen_e4m3_row / widen_bf16_row) and dot_rows:
// exact equality, so a linear's bits do not depend on which path computed it. Every E4M3 code but the
// NaNs (subnormals, zeros of both signs, ±448), random BF16 values; lengths with and without a
// masked tail, 1 to 9 activation rows (the four-row and one-row loops), and a row offset that is not
// a multiple of 16 (the block-scaled layers' 128-wide runs start anywhere in a row's storage).
#include "backend/cpu/dot_kernels.h"
#include "common/bf16.h"
#include "support/random.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

namespace octet::backend {
namespace {

std::vector<uint8_t> e4m3_codes(std::mt19937_64& rng, size_t count) {
  std::uniform_int_distribution<int> code(0, 255);
  std::vector<uint8_t> codes(count);
  for (uint8_t& c : codes) {
    do c = static_cast<uint8_t>(code(rng));
    while ((c & 0x7F) == 0x7F);  // NaN: never encoded
  }
  return codes;
}

TEST(CpuDotKernels, RowsWidenedAsReadGiveTheBitsOfWideningFirst) {
  std::mt19937_64 rng(testing::test_seed("CpuDotKernels.RowsWidenedAsReadGiveTheBitsOfWideningFirst"));
  for (int64_t count : {1, 7, 16, 17, 31, 128, 576, 1000, 1536}) {
    for (int64_t tokens : {1, 2, 4, 5, 9}) {
      for (int64_t offset : {0, 3}) {
        const auto x = testing::random_normal(rng, static_cast<size_t>(tokens * count));
        const auto codes = e4m3_codes(rng, static_cast<size_t>(offset + count));
        std::vector<uint16_t> values(static_cast<size_t>(offset + count));
        const auto floats = testing::random_normal(rng, values.size());
        for (size_t i = 0; i < values.size(); ++i) values[i] = float_to_bf16(floats[i]);
        std::vector<float> widened(static_cast<size_t>(count)), want(static_cast<size_t>(tokens)), got(want.size());
        const std::string what = "count " + std::to_string(count) + ", tokens " + std::to_string(tokens) + ", offset " +
                                 std::to_string(offset);

        cpu::widen_e4m3_row(codes.data() + offset, count, widened.data());
        cpu::dot_rows(x.data(), count, tokens, widened.data(), count, want.data(), 1);
        cpu::dot_rows_e4m3(x.data(), count, tokens, codes.data() + offset, count, got.data(), 1);
        for (int64_t t = 0; t < tokens; ++t) ASSERT_EQ(got[t], want[t]) << "e4m3, " << what << ", row " << t;

        cpu::widen_bf16_row(values.data() + offset, count, widened.data());
        cpu::dot_rows(x.data(), count, tokens, widened.data(), count, want.data(), 1);
        cpu::dot_rows_bf16(x.data(), count, tokens, values.data() + offset, count, got.data(), 1);
        for (int64_t t = 0; t < tokens; ++t) ASSERT_EQ(got[t], want[t]) << "bf16, " << what << ", row " << t;
      }
    }
  }
}

// The summation order dot_kernels.h documents, written out one lane at a time.
float dot_in_the_documented_order(const float* x, const float* w, int64_t count) {
  if (std::strcmp(cpu::dot_kernels_vector_unit(), "scalar") == 0) {
    float sum = 0.0f;
    for (int64_t i = 0; i < count; ++i) sum = std::fma(x[i], w[i], sum);
    return sum;
  }
  float lanes[16] = {};
  const int64_t padded = (count + 15) / 16 * 16;
  for (int64_t i = 0; i < padded; ++i) {
    const bool inside = i < count;
    lanes[i % 16] = std::fma(inside ? x[i] : 0.0f, inside ? w[i] : 0.0f, lanes[i % 16]);
  }
  float eight[8], four[4];
  for (int l = 0; l < 8; ++l) eight[l] = lanes[l] + lanes[l + 8];
  for (int l = 0; l < 4; ++l) four[l] = eight[l] + eight[l + 4];
  return (four[0] + four[2]) + (four[1] + four[3]);
}

// An AVX2-only host and an AVX-512 one give a model the same bits: both follow the documented order.
// A row's result does not depend on how many rows share the call either (the wide groups, the
// fours and the single rows each sum it the same way).
TEST(CpuDotKernels, EveryRowSumsInTheDocumentedOrderWhateverItsBatch) {
  std::mt19937_64 rng(testing::test_seed("CpuDotKernels.EveryRowSumsInTheDocumentedOrderWhateverItsBatch"));
  SCOPED_TRACE(std::string("vector unit ") + cpu::dot_kernels_vector_unit());
  for (int64_t count : {1, 15, 16, 33, 576, 1000}) {
    for (int64_t tokens : {1, 3, 4, 8, 13}) {
      const auto x = testing::random_normal(rng, static_cast<size_t>(tokens * count));
      const auto w = testing::random_normal(rng, static_cast<size_t>(count));
      std::vector<float> got(static_cast<size_t>(tokens));
      cpu::dot_rows(x.data(), count, tokens, w.data(), count, got.data(), 1);
      for (int64_t t = 0; t < tokens; ++t) {
        const float want = dot_in_the_documented_order(x.data() + t * count, w.data(), count);
        ASSERT_EQ(got[static_cast<size_t>(t)], want) << "count " << count << ", tokens " << tokens << ", row " << t;
      }
    }
  }
}

}  // namespace
}  // namespace octet::backend
