#pragma once
// The free list of the paged KV pool: hands out physical block ids to sequences and takes them back.
// Not thread-safe: the scheduler's step loop is its only user.
#include <cstdint>
#include <optional>
#include <vector>

namespace octet::engine {

class BlockAllocator {
 public:
  explicit BlockAllocator(int64_t total_blocks);

  // count distinct free blocks, or nothing (and no change) when fewer are free.
  std::optional<std::vector<int32_t>> allocate(int64_t count);
  // Returns blocks to the pool; a block that is not currently allocated is an error (double free).
  void release(const std::vector<int32_t>& blocks);

  int64_t total() const { return static_cast<int64_t>(allocated_.size()); }
  int64_t free_count() const { return static_cast<int64_t>(free_.size()); }
  int64_t used() const { return total() - free_count(); }

 private:
  std::vector<int32_t> free_;     // a stack: recently freed blocks are reused first (warm pages)
  std::vector<bool> allocated_;   // per block
};

// Blocks that hold `positions` positions.
inline int64_t blocks_for(int64_t positions, int64_t block_size) { return (positions + block_size - 1) / block_size; }

}  // namespace octet::engine
