#include "engine/block_allocator.h"

#include "common/error.h"

namespace octet::engine {

BlockAllocator::BlockAllocator(int64_t total_blocks) {
  if (total_blocks <= 0) fail("kv block allocator: the pool needs at least one block, got {}", total_blocks);
  allocated_.assign(static_cast<size_t>(total_blocks), false);
  free_.reserve(static_cast<size_t>(total_blocks));
  // Highest id at the bottom of the stack, so a fresh pool hands out 0, 1, 2, ...
  for (int64_t b = total_blocks - 1; b >= 0; --b) free_.push_back(static_cast<int32_t>(b));
}

std::optional<std::vector<int32_t>> BlockAllocator::allocate(int64_t count) {
  if (count < 0) fail("kv block allocator: cannot allocate {} blocks", count);
  if (count > free_count()) return std::nullopt;
  std::vector<int32_t> blocks(free_.end() - count, free_.end());
  free_.resize(free_.size() - static_cast<size_t>(count));
  for (int32_t b : blocks) allocated_[static_cast<size_t>(b)] = true;
  return blocks;
}

void BlockAllocator::release(const std::vector<int32_t>& blocks) {
  for (int32_t b : blocks) {
    if (b < 0 || b >= total() || !allocated_[static_cast<size_t>(b)])
      fail("kv block allocator: block {} released but not allocated (pool of {})", b, total());
    allocated_[static_cast<size_t>(b)] = false;
    free_.push_back(b);
  }
}

}  // namespace octet::engine
