#include "backend/cuda/cuda_kv_cache.h"

#include "backend/cuda/cuda_check.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace octet::backend::cuda {
namespace {

KvStorage storage_of(const KvCacheSpec& spec) {
  switch (spec.storage) {
    case KvCacheSpec::Storage::f32: return KvStorage::f32;
    case KvCacheSpec::Storage::bf16: return KvStorage::bf16;
    case KvCacheSpec::Storage::fp8: return spec.fp8_format == fp8::Format::e4m3 ? KvStorage::e4m3 : KvStorage::e5m2;
  }
  return KvStorage::f32;
}

int64_t element_bytes(KvStorage s) { return s == KvStorage::f32 ? 4 : s == KvStorage::bf16 ? 2 : 1; }

void check_static_scales(const std::vector<float>& scales, int64_t layers, const char* which) {
  if (scales.empty()) return;
  if (static_cast<int64_t>(scales.size()) != layers)
    fail("kv cache: {} static {} scales for {} layers", scales.size(), which, layers);
  for (size_t layer = 0; layer < scales.size(); ++layer)
    if (!(scales[layer] > 0.0f) || !std::isfinite(scales[layer]))
      fail("kv cache: static {} scale of layer {} is {}, expected a positive finite number", which, layer, scales[layer]);
}

// Refuses a pool that would take the device past its memory budget, saying what would fit.
void check_fits(const KvCacheSpec& spec) {
  const int64_t fit = kv_blocks_that_fit(spec);
  if (spec.pool_blocks() <= fit) return;
  const double gib = 1073741824.0;
  const double need = static_cast<double>(kv_block_bytes(spec)) * static_cast<double>(spec.pool_blocks());
  const std::string budget = fmt::format("{:.2f} GiB fit within gpu_memory_utilization {:.2f}",
                                         static_cast<double>(kv_block_bytes(spec)) * static_cast<double>(std::max<int64_t>(fit, 0)) / gib,
                                         spec.gpu_memory_utilization);
  if (spec.num_blocks > 0)
    fail("kv cache: {} blocks of {} positions need {:.2f} GiB; {}: at most {} blocks", spec.num_blocks, spec.block_size,
         need / gib, budget, std::max<int64_t>(fit, 0));
  const int64_t context = std::max<int64_t>(fit, 0) / spec.slots * spec.block_size;
  fail("kv cache: {} slot(s) of {} positions need {:.2f} GiB; {}: the largest context that fits is {} positions per "
       "slot ({} slot(s)), or lower the number of sequences",
       spec.slots, spec.max_positions, need / gib, budget, context, spec.slots);
}

}  // namespace

uint64_t kv_block_bytes(const KvCacheSpec& spec) {
  uint64_t per_row = static_cast<uint64_t>(spec.kv_heads * spec.head_dim * element_bytes(storage_of(spec)));
  if (spec.storage == KvCacheSpec::Storage::fp8) per_row += static_cast<uint64_t>(spec.kv_heads) * 4;
  return 2 * per_row * static_cast<uint64_t>(spec.layers * spec.block_size);
}

int64_t kv_blocks_that_fit(const KvCacheSpec& spec) {
  if (!(spec.gpu_memory_utilization > 0.0 && spec.gpu_memory_utilization <= 1.0))
    fail("kv cache: gpu_memory_utilization {} is outside (0, 1]", spec.gpu_memory_utilization);
  size_t free_bytes = 0, total_bytes = 0;
  OCTET_CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
  const double in_use = static_cast<double>(total_bytes - free_bytes);
  const double budget = spec.gpu_memory_utilization * static_cast<double>(total_bytes) - in_use;
  const uint64_t per_block = kv_block_bytes(spec);
  // The block table and allocation rounding are small against any pool: 1% headroom covers them.
  return budget <= 0 || per_block == 0 ? 0 : static_cast<int64_t>(budget * 0.99 / static_cast<double>(per_block));
}

CudaKvCache::CudaKvCache(const KvCacheSpec& s, cudaStream_t stream, LiveKvCaches live)
    : storage(storage_of(s)), stream_(stream), live_(std::move(live)) {
  spec = s;
  if (spec.layers <= 0 || spec.kv_heads <= 0 || spec.head_dim <= 0 || spec.slots <= 0 || spec.max_positions <= 0 ||
      spec.block_size <= 0 || spec.num_blocks < 0)
    fail("kv cache: layers, kv_heads, head_dim, slots, max_positions and block_size must be positive");
  if (spec.pool_blocks() * spec.block_size >= (int64_t{1} << 31))
    fail("kv cache: a pool of {} blocks of {} positions exceeds 2^31 rows", spec.pool_blocks(), spec.block_size);
  check_static_scales(spec.static_k_scales, spec.layers, "K");
  check_static_scales(spec.static_v_scales, spec.layers, "V");
  check_fits(spec);
  const int64_t cells = spec.pool_blocks() * spec.block_size * spec.kv_heads;  // (pool row, kv head)
  for (int64_t layer = 0; layer < spec.layers; ++layer) {
    k.emplace_back(static_cast<size_t>(cells * spec.head_dim * element_bytes(storage)));
    v.emplace_back(static_cast<size_t>(cells * spec.head_dim * element_bytes(storage)));
    if (fp8()) {
      k_scales.emplace_back(static_cast<size_t>(cells));
      v_scales.emplace_back(static_cast<size_t>(cells));
    }
  }
  // Zeros rather than stale memory: positions a benchmark never wrote read as 0, never as NaN.
  for (auto* lanes : {&k, &v})
    for (auto& b : *lanes) OCTET_CUDA_CHECK(cudaMemsetAsync(b.data(), 0, b.bytes(), stream_));
  for (auto* lanes : {&k_scales, &v_scales})
    for (auto& b : *lanes) OCTET_CUDA_CHECK(cudaMemsetAsync(b.data(), 0, b.bytes(), stream_));

  const int64_t per_slot = spec.blocks_per_slot();
  table_host_.assign(static_cast<size_t>(spec.slots * per_slot), -1);
  mapped_blocks_.assign(static_cast<size_t>(spec.slots), 0);
  if (spec.num_blocks == 0) {  // each slot its own contiguous run of blocks
    for (int64_t i = 0; i < spec.slots * per_slot; ++i) table_host_[i] = static_cast<int32_t>(i);
    mapped_blocks_.assign(static_cast<size_t>(spec.slots), per_slot);
  }
  table_ = DeviceBuffer<int32_t>(table_host_.size());
  table_.upload(table_host_.data(), table_host_.size(), stream_);
  OCTET_CUDA_CHECK(cudaStreamSynchronize(stream_));
  if (live_) live_->push_back(this);
}

CudaKvCache::~CudaKvCache() {
  if (live_) std::erase(*live_, this);
}

uint64_t CudaKvCache::bytes_per_position() const { return kv_block_bytes(spec) / static_cast<uint64_t>(spec.block_size); }

void CudaKvCache::check_slot(int64_t slot) const {
  if (slot < 0 || slot >= spec.slots) fail("kv cache: slot {} outside [0, {})", slot, spec.slots);
}

void CudaKvCache::clear_slot(int64_t slot) { check_slot(slot); }

void CudaKvCache::set_block_table(int64_t slot, std::span<const int32_t> blocks) {
  check_slot(slot);
  const int64_t per_slot = spec.blocks_per_slot();
  if (static_cast<int64_t>(blocks.size()) > per_slot)
    fail("kv cache: {} blocks for slot {}; a slot holds at most {} ({} positions)", blocks.size(), slot, per_slot,
         spec.max_positions);
  for (int32_t b : blocks)
    if (b < 0 || b >= spec.pool_blocks()) fail("kv cache: block {} outside the pool of {}", b, spec.pool_blocks());
  int32_t* row = table_host_.data() + slot * per_slot;
  std::fill(row, row + per_slot, -1);
  std::copy(blocks.begin(), blocks.end(), row);
  mapped_blocks_[static_cast<size_t>(slot)] = static_cast<int64_t>(blocks.size());
  if (dirty_begin_ == dirty_end_) {
    dirty_begin_ = slot;
    dirty_end_ = slot + 1;
  } else {
    dirty_begin_ = std::min(dirty_begin_, slot);
    dirty_end_ = std::max(dirty_end_, slot + 1);
  }
}

void CudaKvCache::upload_block_table_changes() const {
  if (dirty_begin_ == dirty_end_) return;
  cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
  OCTET_CUDA_CHECK(cudaStreamIsCapturing(stream_, &capture));
  if (capture != cudaStreamCaptureStatusNone)
    fail("kv cache: block tables changed after prepare_batch, inside a recorded step");
  const int64_t per_slot = spec.blocks_per_slot();
  // Stream-ordered: kernels queued before this copy still see the old table. The pageable source is
  // staged by the driver before cudaMemcpyAsync returns, so later host edits cannot race it.
  OCTET_CUDA_CHECK(cudaMemcpyAsync(table_.data() + dirty_begin_ * per_slot, table_host_.data() + dirty_begin_ * per_slot,
                                   static_cast<size_t>((dirty_end_ - dirty_begin_) * per_slot) * sizeof(int32_t),
                                   cudaMemcpyHostToDevice, stream_));
  dirty_begin_ = dirty_end_ = 0;
}

void CudaKvCache::check_batch(const TokenBatch& batch) const {
  upload_block_table_changes();
  for (size_t t = 0; t < batch.size(); ++t) {
    const int64_t slot = batch.slots[t], position = batch.positions[t];
    check_slot(slot);
    if (position < 0 || position >= spec.max_positions)
      fail("kv cache: position {} outside the context of {} tokens", position, spec.max_positions);
    if (position / spec.block_size >= mapped_blocks_[static_cast<size_t>(slot)])
      fail("kv cache: position {} of slot {} has no block (the slot holds {} blocks of {} positions)", position, slot,
           mapped_blocks_[static_cast<size_t>(slot)], spec.block_size);
  }
}

KvLayout CudaKvCache::layout() const {
  int shift = -1;
  for (int bit = 0; bit < 31; ++bit)
    if ((int64_t{1} << bit) == spec.block_size) shift = bit;
  return KvLayout{table_.data(), spec.blocks_per_slot(), spec.block_size, spec.kv_heads, spec.head_dim, storage, shift,
                  spec.pool_blocks() * spec.block_size};
}

}  // namespace octet::backend::cuda
