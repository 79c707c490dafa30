// The host-side split of a batch into runs for the tensor-core prefill attention
// (plan_prefill_attention, attention_prefill.cu), checked against its definition on random batches:
// every (token, query head of the group) row is computed exactly once, by a tile of a maximal run
// of >= min_run_tokens entries of one slot at consecutive positions, or by the CUDA-core kernel's
// token list when its maximal run is shorter; tiles are aligned to the kernel's tile height
// (kPrefillTileRows), longest-running first.
// Runs without a GPU (host code only), wherever the CUDA backend is compiled.
#ifdef OCTET_HAVE_CUDA
#include "backend/cuda/kernels.h"
#include "support/random.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <random>
#include <vector>

namespace octet::backend::cuda {
namespace {

TEST(PrefillAttentionPlan, CoversEveryRowOnceByMaximalRuns) {
  std::mt19937_64 rng(testing::test_seed("PrefillAttentionPlan.CoversEveryRowOnceByMaximalRuns"));
  std::uniform_int_distribution<int> pick(0, 99);
  for (int trial = 0; trial < 200; ++trial) {
    // Segments of random length: a decode token, a short run, or a long prompt (chunk), sometimes
    // continuing the previous segment's slot and position (it merges into the same run) or the same
    // slot after a gap (it does not).
    std::vector<int64_t> slots, positions;
    const int segments = 1 + pick(rng) % 6;
    int64_t slot = 0, position = 0;
    for (int s = 0; s < segments; ++s) {
      const int kind = pick(rng);
      if (kind < 60) slot = pick(rng) % 5, position = pick(rng) * 7;
      else if (kind < 80) position += 3;  // same slot, a gap
      const int length = pick(rng) < 40 ? 1 : pick(rng) < 50 ? 1 + pick(rng) % 20 : 1 + pick(rng) * 5;
      for (int i = 0; i < length; ++i) slots.push_back(slot), positions.push_back(position++);
    }
    const auto tokens = static_cast<int64_t>(slots.size());
    for (int64_t group : {1, 3, 4, 8}) {
      const int64_t min_run = 16, tile_rows = kPrefillTileRows;
      const PrefillPlan plan = plan_prefill_attention(slots.data(), positions.data(), tokens, group, min_run);
      auto continues = [&](int64_t t) {  // entry t continues entry t - 1's run
        return t > 0 && t < tokens && slots[t] == slots[t - 1] && positions[t] == positions[t - 1] + 1;
      };
      auto maximal_run_length = [&](int64_t t) {
        int64_t begin = t, end = t + 1;
        while (continues(begin)) --begin;
        while (continues(end)) ++end;
        return end - begin;
      };
      std::vector<int> covered(static_cast<size_t>(tokens * group), 0);
      int64_t previous_last_position = INT64_MAX;
      for (const PrefillTile& tile : plan.tiles) {
        ASSERT_GE(tile.run_tokens, min_run);
        ASSERT_LE(tile.first_token + tile.run_tokens, tokens);
        EXPECT_FALSE(continues(tile.first_token)) << "a run starts mid-run at entry " << tile.first_token;
        EXPECT_FALSE(continues(tile.first_token + tile.run_tokens)) << "a run stops short at entry " << tile.first_token;
        for (int64_t t = tile.first_token + 1; t < tile.first_token + tile.run_tokens; ++t)
          ASSERT_TRUE(continues(t)) << "entry " << t << " is not the next position of the same slot";
        ASSERT_EQ(tile.first_row % tile_rows, 0);
        ASSERT_LT(tile.first_row, tile.run_tokens * group);
        const int64_t end_row = std::min<int64_t>(tile.first_row + tile_rows, tile.run_tokens * group);
        for (int64_t row = tile.first_row; row < end_row; ++row)
          ++covered[static_cast<size_t>((tile.first_token + row / group) * group + row % group)];
        const int64_t last_position = positions[tile.first_token + (end_row - 1) / group];
        EXPECT_LE(last_position, previous_last_position) << "tiles not in falling order of their last position";
        previous_last_position = last_position;
      }
      for (int32_t t : plan.other_tokens) {
        ASSERT_GE(t, 0);
        ASSERT_LT(t, tokens);
        EXPECT_LT(maximal_run_length(t), min_run) << "entry " << t << " belongs to a long run";
        for (int64_t g = 0; g < group; ++g) ++covered[static_cast<size_t>(t * group + g)];
      }
      for (int64_t row = 0; row < tokens * group; ++row)
        ASSERT_EQ(covered[static_cast<size_t>(row)], 1)
            << "row " << row << " of " << tokens * group << ", group " << group << ", tile rows " << tile_rows;
    }
  }
}

TEST(PrefillAttentionPlan, HeadDimsOfTheTensorCoreKernel) {
  EXPECT_TRUE(prefill_attention_fits(64));
  EXPECT_TRUE(prefill_attention_fits(128));
  EXPECT_FALSE(prefill_attention_fits(32));
  EXPECT_FALSE(prefill_attention_fits(96));
}

}  // namespace
}  // namespace octet::backend::cuda
#endif
