#pragma once
// The paged KV cache's host side: a pool of 16-position blocks carved from arenas allocated as the
// cache grows, per-slot block tables mirrored to the device, and the checks that keep kernels inside
// allocated blocks. Layout and addressing: paged_kv.h.
#include "backend/backend.h"
#include "backend/cuda/device_buffer.h"
#include "backend/cuda/paged_kv.h"

#include <span>
#include <vector>

namespace octet::backend::cuda {

class CudaKvCache final : public KvCache {
 public:
  CudaKvCache(const KvCacheSpec& spec, cudaStream_t stream);

  uint64_t bytes_per_position() const override;
  // Returns the slot's blocks to the pool (their contents are not cleared: a position is always
  // written before it is read).
  void clear_slot(int64_t slot) override;

  // Gives every slot in the batch blocks for positions [0, its largest position] (all earlier
  // positions too: attention reads them) and mirrors changed table rows to the device, in stream order.
  void reserve(std::span<const int64_t> slots, std::span<const int64_t> positions);
  // Throws unless every token's positions [0, position] are backed by blocks.
  void check_readable(std::span<const int64_t> slots, std::span<const int64_t> positions) const;

  PagedKvView view() const { return view_; }
  float static_k_scale(int64_t layer) const { return spec.static_k_scales.empty() ? 0.0f : spec.static_k_scales[layer]; }
  float static_v_scale(int64_t layer) const { return spec.static_v_scales.empty() ? 0.0f : spec.static_v_scales[layer]; }
  uint64_t allocated_bytes() const;
  int64_t free_blocks() const { return static_cast<int64_t>(free_.size()); }

 private:
  void add_arena();
  void check_slot_position(int64_t slot, int64_t position) const;

  cudaStream_t stream_;
  PagedKvView view_;
  int64_t total_blocks_ = 0;  // slots · max_blocks_per_slot: the pool never needs more
  std::vector<DeviceBuffer<uint8_t>> arenas_;
  std::vector<uint8_t*> arena_pointers_;  // host mirror of arena_table_
  DeviceBuffer<uint8_t*> arena_table_;
  std::vector<int32_t> block_table_;  // host mirror, [slots, max_blocks_per_slot], -1 = none
  DeviceBuffer<int32_t> device_block_table_;
  std::vector<int64_t> blocks_in_use_;  // per slot: logical blocks [0, n) are allocated
  std::vector<int32_t> free_;
};

}  // namespace octet::backend::cuda
