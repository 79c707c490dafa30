#pragma once
// Layout of the paged KV cache, shared by the host allocator (cuda_kv_cache.cpp) and the kernels
// that write and read it (kv_cache.cu, attention.cu).
//
// Positions of a sequence slot live in fixed blocks of kKvBlockPositions positions. A physical block
// holds those positions for every layer; one layer's part of a block is
//   K [kv_heads][kKvBlockPositions][head_dim], V [same], then for FP8 storage
//   K scales [kv_heads][kKvBlockPositions] float, V scales [same],
// so one (block, layer, kv head) is a contiguous run of 16 · head_dim elements. Blocks are carved
// from arenas (separate allocations, made as the cache grows); block id b lives in arena
// b / blocks_per_arena. Each slot's block table maps its logical block i (positions [16 i, 16 i + 16))
// to a physical block id, -1 where none is allocated yet.
#include <cstdint>

#if defined(__CUDACC__)
#define OCTET_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define OCTET_HOST_DEVICE inline
#endif

namespace octet::backend::cuda {

enum class KvStorage : int32_t { f32, bf16, e4m3, e5m2 };

inline constexpr int64_t kKvBlockPositions = 16;

struct PagedKvView {
  uint8_t* const* arenas = nullptr;     // device array of arena base addresses
  const int32_t* block_table = nullptr;  // device [slots, max_blocks_per_slot]
  int64_t max_blocks_per_slot = 0;
  int64_t blocks_per_arena = 1;
  int64_t layers = 0;
  int64_t slots = 0;
  int32_t kv_heads = 0;
  int32_t head_dim = 0;
  KvStorage storage = KvStorage::f32;

  OCTET_HOST_DEVICE int64_t element_bytes() const {
    return storage == KvStorage::f32 ? 4 : storage == KvStorage::bf16 ? 2 : 1;
  }
  OCTET_HOST_DEVICE bool scaled() const { return storage == KvStorage::e4m3 || storage == KvStorage::e5m2; }
  // Bytes of K (or V) of one layer in one block.
  OCTET_HOST_DEVICE int64_t values_bytes() const {
    return static_cast<int64_t>(kv_heads) * kKvBlockPositions * head_dim * element_bytes();
  }
  OCTET_HOST_DEVICE int64_t scales_bytes() const {
    return scaled() ? static_cast<int64_t>(kv_heads) * kKvBlockPositions * 4 : 0;
  }
  OCTET_HOST_DEVICE int64_t layer_bytes() const { return 2 * values_bytes() + 2 * scales_bytes(); }
  OCTET_HOST_DEVICE int64_t block_bytes() const { return layers * layer_bytes(); }

  // Start of (physical block, layer); K values at +0, V at +values_bytes(), K scales at
  // +2·values_bytes(), V scales after them.
  OCTET_HOST_DEVICE uint8_t* layer_base(int32_t block, int64_t layer) const {
    return arenas[block / blocks_per_arena] + ((block % blocks_per_arena) * layers + layer) * layer_bytes();
  }
  OCTET_HOST_DEVICE int32_t physical_block(int64_t slot, int64_t position) const {
    return block_table[slot * max_blocks_per_slot + position / kKvBlockPositions];
  }
};

}  // namespace octet::backend::cuda
