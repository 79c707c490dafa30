// Padded step sizes and the padding of one step (engine/step_padding.h).
#include "engine/step_padding.h"

#include <gtest/gtest.h>

#include <algorithm>

namespace octet::engine {
namespace {

TEST(StepPadding, SizesArePowersOfTwoToEightThenMultiplesOfEight) {
  EXPECT_EQ(padded_step_size(1, 128), 1);
  EXPECT_EQ(padded_step_size(3, 128), 4);
  EXPECT_EQ(padded_step_size(5, 128), 8);
  EXPECT_EQ(padded_step_size(9, 128), 16);
  EXPECT_EQ(padded_step_size(64, 128), 64);
  EXPECT_EQ(padded_step_size(65, 128), 72);
  EXPECT_EQ(padded_step_size(128, 128), 128);
  EXPECT_EQ(padded_step_size(129, 128), 129);  // above the recorded sizes: unchanged
  EXPECT_EQ(padded_step_size(100, 100), 100);  // capped at the largest
  EXPECT_EQ(padded_step_size(97, 100), 100);
  for (int64_t n = 1; n <= 200; ++n) {
    const int64_t size = padded_step_size(n, 128);
    EXPECT_GE(size, n);
    if (n <= 128) {
      EXPECT_LE(size - n, 7) << n;
    }
    EXPECT_EQ(padded_step_size(size, 128), size) << n;  // a padded size pads to itself
  }
}

TEST(StepPadding, EverySizeListedOnceLargestFirst) {
  const auto sizes = padded_step_sizes(128);
  ASSERT_EQ(sizes.size(), 4u + 15u);  // 1, 2, 4, 8 and 16 … 128
  EXPECT_EQ(sizes.front(), 128);
  EXPECT_EQ(sizes.back(), 1);
  EXPECT_TRUE(std::is_sorted(sizes.rbegin(), sizes.rend()));
  for (int64_t n = 1; n <= 128; ++n)
    EXPECT_NE(std::find(sizes.begin(), sizes.end(), padded_step_size(n, 128)), sizes.end()) << n;
  EXPECT_EQ(padded_step_sizes(6), (std::vector<int64_t>{6, 4, 2, 1}));
}

backend::TokenBatch batch_of(int64_t tokens) {
  backend::TokenBatch b;
  for (int64_t i = 0; i < tokens; ++i) {
    b.tokens.push_back(static_cast<int32_t>(100 + i));
    b.positions.push_back(10 + i);
    b.slots.push_back(i % 3);
  }
  return b;
}

TEST(StepPadding, PaddingTokensFollowTheRealOnesInTheirSlot) {
  auto batch = batch_of(5);
  std::vector<int64_t> rows = {0, 1, 2, 3, 4};
  EXPECT_EQ(pad_step(batch, rows, 7, 128), 3);
  ASSERT_EQ(batch.size(), 8u);
  for (int64_t i = 0; i < 5; ++i) {  // the real ones unchanged, in order
    EXPECT_EQ(batch.tokens[i], 100 + i);
    EXPECT_EQ(batch.positions[i], 10 + i);
  }
  for (size_t i = 5; i < 8; ++i) {
    EXPECT_EQ(batch.tokens[i], 0);
    EXPECT_EQ(batch.positions[i], 0);
    EXPECT_EQ(batch.slots[i], 7);
  }
  EXPECT_EQ(rows, (std::vector<int64_t>{0, 1, 2, 3, 4, 5, 6, 7}));
}

TEST(StepPadding, LogitRowsArePaddedToo) {
  // A mixed step: 10 tokens (→ 16), 3 logit rows (→ 4): one padding token's row is added.
  auto batch = batch_of(10);
  std::vector<int64_t> rows = {2, 5, 9};
  EXPECT_EQ(pad_step(batch, rows, 1, 128), 6);
  EXPECT_EQ(batch.size(), 16u);
  EXPECT_EQ(rows, (std::vector<int64_t>{2, 5, 9, 10}));
  // More rows missing than padding tokens: the last padding token's row repeats.
  auto b2 = batch_of(15);
  std::vector<int64_t> rows2(9);
  for (int64_t i = 0; i < 9; ++i) rows2[i] = i;
  EXPECT_EQ(pad_step(b2, rows2, 1, 128), 1);  // 15 → 16 tokens, 9 → 16 rows
  ASSERT_EQ(rows2.size(), 16u);
  EXPECT_EQ(rows2[9], 15);
  EXPECT_EQ(rows2[15], 15);
  // No padding token at all: the last real token's row repeats.
  auto b3 = batch_of(8);
  std::vector<int64_t> rows3 = {0, 1, 2, 3, 4};
  EXPECT_EQ(pad_step(b3, rows3, 1, 128), 0);
  EXPECT_EQ(rows3, (std::vector<int64_t>{0, 1, 2, 3, 4, 7, 7, 7}));
}

TEST(StepPadding, StepsAboveTheLargestSizeAreLeftAlone) {
  auto batch = batch_of(130);
  std::vector<int64_t> rows = {3, 129, 7};
  EXPECT_EQ(pad_step(batch, rows, 1, 128), 0);
  EXPECT_EQ(batch.size(), 130u);
  EXPECT_EQ(rows.size(), 3u);
}

}  // namespace
}  // namespace octet::engine
