#pragma once
// The CUDA KV cache: per layer a pool of blocks [pool_blocks, block_size, kv_heads, head_dim] for K and
// V (plus one float scale per (pool row, kv head) in FP8), and one device block table
// [slots, blocks_per_slot] int32 shared by all layers. The table's device address never changes, so
// recorded steps (CUDA graphs) read whatever set_block_table last uploaded.
#include "backend/backend.h"
#include "backend/cuda/device_buffer.h"
#include "backend/cuda/kernels.h"
#include "backend/cuda/step_graphs.h"

#include <memory>
#include <vector>

namespace octet::backend::cuda {

// Device bytes of one pool block (all layers, K and V, scales) and how many blocks fit now within
// spec.gpu_memory_utilization of the device's memory.
uint64_t kv_block_bytes(const KvCacheSpec& spec);
int64_t kv_blocks_that_fit(const KvCacheSpec& spec);

class CudaKvCache;
// The backend's live caches, so that it can upload their block-table changes before a step.
using LiveKvCaches = std::shared_ptr<std::vector<CudaKvCache*>>;

class CudaKvCache final : public KvCache {
 public:
  CudaKvCache(const KvCacheSpec& spec, cudaStream_t stream, LiveKvCaches live = nullptr);
  ~CudaKvCache() override;
  CudaKvCache(const CudaKvCache&) = delete;
  CudaKvCache& operator=(const CudaKvCache&) = delete;

  uint64_t bytes_per_position() const override;
  void clear_slot(int64_t slot) override;  // positions are overwritten before they are read
  // Edits the host table; the device copy follows at upload_block_table_changes.
  void set_block_table(int64_t slot, std::span<const int32_t> blocks) override;
  // One copy of the slots changed since the last upload (none: nothing queued). The backend calls it
  // in prepare_batch, before any recording starts; check_batch calls it too (outside a recording).
  void upload_block_table_changes() const;

  // Fails naming the token unless every (slot, position) of the batch is inside the cache and has a block.
  void check_batch(const TokenBatch& batch) const;
  KvLayout layout() const;
  bool fp8() const { return spec.storage == KvCacheSpec::Storage::fp8; }
  float static_k_scale(int64_t layer) const { return spec.static_k_scales.empty() ? 0.0f : spec.static_k_scales[layer]; }
  float static_v_scale(int64_t layer) const { return spec.static_v_scales.empty() ? 0.0f : spec.static_v_scales[layer]; }

  EpochTicket ticket;  // freeing the cache drops recorded steps
  KvStorage storage;
  std::vector<DeviceBuffer<uint8_t>> k, v;
  std::vector<DeviceBuffer<float>> k_scales, v_scales;

 private:
  void check_slot(int64_t slot) const;

  cudaStream_t stream_;
  std::vector<int32_t> table_host_;     // [slots, blocks_per_slot], -1 where unmapped
  std::vector<int64_t> mapped_blocks_;  // per slot: the length of its table
  DeviceBuffer<int32_t> table_;
  mutable int64_t dirty_begin_ = 0, dirty_end_ = 0;  // slots [begin, end) edited since the last upload
  LiveKvCaches live_;
};

}  // namespace octet::backend::cuda
