#pragma once
// Device-side mapping of (slot, position) to a row of the paged KV pool (KvLayout in kernels.h).
#include "backend/cuda/kernels.h"

namespace octet::backend::cuda {

// The pool row holding `position` of the slot whose block table row is `table`. Positions and
// block sizes stay far below 2^31, so 32-bit arithmetic; a power-of-two block size (the default
// 16) shifts instead of dividing.
__device__ __forceinline__ int64_t pool_row(const KvLayout& layout, const int32_t* table, int64_t position) {
  const int p = static_cast<int>(position);
  if (layout.block_shift >= 0)
    return (static_cast<int64_t>(table[p >> layout.block_shift]) << layout.block_shift) + (p & ((1 << layout.block_shift) - 1));
  const int b = static_cast<int>(layout.block_size);
  return static_cast<int64_t>(table[p / b]) * b + p % b;
}

// The cache cell (pool row, kv head) of a token.
__device__ __forceinline__ int64_t cache_cell(const KvLayout& layout, int64_t slot, int64_t position, int64_t head) {
  return pool_row(layout, layout.block_table + slot * layout.blocks_per_slot, position) * layout.kv_heads + head;
}

}  // namespace octet::backend::cuda
