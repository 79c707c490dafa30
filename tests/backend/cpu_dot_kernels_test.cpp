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

#include <cstdint>
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

}  // namespace
}  // namespace octet::backend
