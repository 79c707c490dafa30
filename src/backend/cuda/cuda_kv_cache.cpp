#include "backend/cuda/cuda_kv_cache.h"

#include "common/error.h"

#include <algorithm>
#include <limits>

namespace octet::backend::cuda {
namespace {

// Arenas are allocated this large (or one block, if a block is larger): big enough that a long
// context needs few allocations, small enough that a short one wastes little.
constexpr int64_t kArenaBytes = int64_t{256} << 20;

KvStorage storage_of(const KvCacheSpec& spec) {
  switch (spec.storage) {
    case KvCacheSpec::Storage::f32: return KvStorage::f32;
    case KvCacheSpec::Storage::bf16: return KvStorage::bf16;
    case KvCacheSpec::Storage::fp8: return spec.fp8_format == fp8::Format::e4m3 ? KvStorage::e4m3 : KvStorage::e5m2;
  }
  return KvStorage::f32;
}

}  // namespace

CudaKvCache::CudaKvCache(const KvCacheSpec& s, cudaStream_t stream) : stream_(stream) {
  spec = s;
  if (s.layers <= 0 || s.kv_heads <= 0 || s.head_dim <= 0 || s.max_positions <= 0 || s.slots <= 0)
    fail("kv cache: layers {}, kv heads {}, head_dim {}, positions {}, slots {} must all be positive", s.layers,
         s.kv_heads, s.head_dim, s.max_positions, s.slots);
  if (!s.static_k_scales.empty() && static_cast<int64_t>(s.static_k_scales.size()) != s.layers)
    fail("kv cache: {} static K scales for {} layers", s.static_k_scales.size(), s.layers);
  if (!s.static_v_scales.empty() && static_cast<int64_t>(s.static_v_scales.size()) != s.layers)
    fail("kv cache: {} static V scales for {} layers", s.static_v_scales.size(), s.layers);
  if (s.kv_heads > std::numeric_limits<int32_t>::max() || s.head_dim > std::numeric_limits<int32_t>::max())
    fail("kv cache: {} kv heads of {} dimensions are out of range", s.kv_heads, s.head_dim);

  view_.storage = storage_of(s);
  view_.kv_heads = static_cast<int32_t>(s.kv_heads);
  view_.head_dim = static_cast<int32_t>(s.head_dim);
  view_.layers = s.layers;
  view_.slots = s.slots;
  view_.max_blocks_per_slot = (s.max_positions + kKvBlockPositions - 1) / kKvBlockPositions;
  total_blocks_ = s.slots * view_.max_blocks_per_slot;
  if (total_blocks_ > std::numeric_limits<int32_t>::max())
    fail("kv cache: {} slots × {} positions need more than 2^31 blocks", s.slots, s.max_positions);
  view_.blocks_per_arena = std::clamp<int64_t>(kArenaBytes / view_.block_bytes(), 1, total_blocks_);

  const int64_t max_arenas = (total_blocks_ + view_.blocks_per_arena - 1) / view_.blocks_per_arena;
  arena_table_ = DeviceBuffer<uint8_t*>(static_cast<size_t>(max_arenas));
  arena_table_.zero(stream_);
  view_.arenas = arena_table_.data();
  block_table_.assign(static_cast<size_t>(total_blocks_), -1);
  device_block_table_ = DeviceBuffer<int32_t>(block_table_.size());
  device_block_table_.upload(block_table_.data(), block_table_.size(), stream_);
  view_.block_table = device_block_table_.data();
  blocks_in_use_.assign(static_cast<size_t>(s.slots), 0);
}

uint64_t CudaKvCache::bytes_per_position() const {
  uint64_t per_lane = static_cast<uint64_t>(spec.kv_heads * spec.head_dim * view_.element_bytes());
  if (view_.scaled()) per_lane += static_cast<uint64_t>(spec.kv_heads) * 4;
  return 2 * per_lane * static_cast<uint64_t>(spec.layers);
}

uint64_t CudaKvCache::allocated_bytes() const {
  uint64_t total = 0;
  for (const auto& arena : arenas_) total += arena.bytes();
  return total;
}

void CudaKvCache::add_arena() {
  const int64_t first = static_cast<int64_t>(arenas_.size()) * view_.blocks_per_arena;
  const int64_t count = std::min(view_.blocks_per_arena, total_blocks_ - first);
  if (count <= 0) fail("kv cache: all {} blocks are in use", total_blocks_);  // cannot happen: see total_blocks_
  arenas_.emplace_back(static_cast<size_t>(count * view_.block_bytes()));
  arenas_.back().zero(stream_);  // unwritten positions read as zeros, as in the CPU cache
  arena_pointers_.push_back(arenas_.back().data());
  arena_table_.upload(&arena_pointers_.back(), 1, stream_, arena_pointers_.size() - 1);
  for (int64_t id = first + count - 1; id >= first; --id) free_.push_back(static_cast<int32_t>(id));
}

void CudaKvCache::check_slot_position(int64_t slot, int64_t position) const {
  if (slot < 0 || slot >= spec.slots) fail("kv cache: slot {} outside [0, {})", slot, spec.slots);
  if (position < 0 || position >= spec.max_positions)
    fail("kv cache: position {} outside the context of {} tokens", position, spec.max_positions);
}

void CudaKvCache::reserve(std::span<const int64_t> slots, std::span<const int64_t> positions) {
  if (slots.size() != positions.size()) fail("kv cache: {} slots for {} positions", slots.size(), positions.size());
  std::vector<int64_t> first_new(static_cast<size_t>(spec.slots), -1);
  for (size_t t = 0; t < slots.size(); ++t) {
    check_slot_position(slots[t], positions[t]);
    const int64_t slot = slots[t], needed = positions[t] / kKvBlockPositions + 1;
    int64_t& in_use = blocks_in_use_[static_cast<size_t>(slot)];
    if (in_use >= needed) continue;
    if (first_new[static_cast<size_t>(slot)] < 0) first_new[static_cast<size_t>(slot)] = in_use;
    for (; in_use < needed; ++in_use) {
      if (free_.empty()) add_arena();
      block_table_[static_cast<size_t>(slot * view_.max_blocks_per_slot + in_use)] = free_.back();
      free_.pop_back();
    }
  }
  for (int64_t slot = 0; slot < spec.slots; ++slot) {
    const int64_t first = first_new[static_cast<size_t>(slot)];
    if (first < 0) continue;
    const size_t offset = static_cast<size_t>(slot * view_.max_blocks_per_slot + first);
    device_block_table_.upload(block_table_.data() + offset,
                               static_cast<size_t>(blocks_in_use_[static_cast<size_t>(slot)] - first), stream_, offset);
  }
}

void CudaKvCache::check_readable(std::span<const int64_t> slots, std::span<const int64_t> positions) const {
  if (slots.size() != positions.size()) fail("kv cache: {} slots for {} positions", slots.size(), positions.size());
  for (size_t t = 0; t < slots.size(); ++t) {
    check_slot_position(slots[t], positions[t]);
    if (blocks_in_use_[static_cast<size_t>(slots[t])] * kKvBlockPositions <= positions[t])
      fail("attention: slot {} has no cached keys up to position {} (kv_write that batch first)", slots[t],
           positions[t]);
  }
}

void CudaKvCache::clear_slot(int64_t slot) {
  if (slot < 0 || slot >= spec.slots) fail("kv cache: slot {} outside [0, {})", slot, spec.slots);
  int64_t& in_use = blocks_in_use_[static_cast<size_t>(slot)];
  if (in_use == 0) return;
  const size_t offset = static_cast<size_t>(slot * view_.max_blocks_per_slot);
  for (int64_t i = 0; i < in_use; ++i) {
    free_.push_back(block_table_[offset + static_cast<size_t>(i)]);
    block_table_[offset + static_cast<size_t>(i)] = -1;
  }
  // Stream order: kernels already queued still see the old table; later ones see the new one.
  device_block_table_.upload(block_table_.data() + offset, static_cast<size_t>(in_use), stream_, offset);
  in_use = 0;
}

}  // namespace octet::backend::cuda
