// The paged KV pool's free list against a set-based model of which blocks are taken.
#include "common/error.h"
#include "engine/block_allocator.h"
#include "support/random.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <set>

namespace octet::engine {
namespace {

TEST(BlockAllocator, HandsOutDistinctBlocksAndRefusesWhenShort) {
  BlockAllocator pool(5);
  auto a = pool.allocate(3);
  ASSERT_TRUE(a);
  auto b = pool.allocate(2);
  ASSERT_TRUE(b);
  std::set<int32_t> all(a->begin(), a->end());
  all.insert(b->begin(), b->end());
  EXPECT_EQ(all, (std::set<int32_t>{0, 1, 2, 3, 4}));
  EXPECT_EQ(pool.free_count(), 0);
  EXPECT_FALSE(pool.allocate(1));
  EXPECT_EQ(pool.used(), 5);
  pool.release(*a);
  EXPECT_EQ(pool.free_count(), 3);
  EXPECT_FALSE(pool.allocate(4));  // refusal leaves the pool as it was
  EXPECT_EQ(pool.free_count(), 3);
  EXPECT_TRUE(pool.allocate(3));
}

TEST(BlockAllocator, DoubleFreeAndForeignBlocksAreErrors) {
  BlockAllocator pool(4);
  auto a = pool.allocate(2);
  pool.release(*a);
  EXPECT_THROW(pool.release(*a), Error);
  EXPECT_THROW(pool.release({7}), Error);
  EXPECT_THROW(BlockAllocator(0), Error);
}

TEST(BlockAllocator, RandomAllocateReleaseMatchesASetModel) {
  std::mt19937_64 rng(testing::test_seed("BlockAllocator.RandomAllocateReleaseMatchesASetModel"));
  const int64_t total = 64;
  BlockAllocator pool(total);
  std::vector<std::vector<int32_t>> held;
  std::set<int32_t> taken;
  for (int round = 0; round < 2000; ++round) {
    if (held.empty() || rng() % 2 == 0) {
      const auto count = static_cast<int64_t>(rng() % 9);
      auto blocks = pool.allocate(count);
      ASSERT_EQ(blocks.has_value(), count <= total - static_cast<int64_t>(taken.size()));
      if (!blocks) continue;
      for (int32_t b : *blocks) {
        ASSERT_TRUE(b >= 0 && b < total);
        ASSERT_TRUE(taken.insert(b).second) << "block " << b << " handed out twice";
      }
      held.push_back(*blocks);
    } else {
      const size_t i = rng() % held.size();
      pool.release(held[i]);
      for (int32_t b : held[i]) taken.erase(b);
      held.erase(held.begin() + static_cast<std::ptrdiff_t>(i));
    }
    ASSERT_EQ(pool.used(), static_cast<int64_t>(taken.size()));
  }
}

TEST(BlockAllocator, BlocksForRoundsUp) {
  EXPECT_EQ(blocks_for(0, 16), 0);
  EXPECT_EQ(blocks_for(1, 16), 1);
  EXPECT_EQ(blocks_for(16, 16), 1);
  EXPECT_EQ(blocks_for(17, 16), 2);
}

}  // namespace
}  // namespace octet::engine
