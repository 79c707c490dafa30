#pragma once
// Every decoder layer of a one-token decode step in one persistent kernel (persistent_decode.cu): a
// block per SM streams its share of each layer's FP8 weights through a ring in shared memory while
// the blocks meet at grid-wide barriers between the layer's stages, so the weight stream does not
// stop at the ~10 kernel boundaries a layer has on the op-by-op path.
#include "backend/cuda/kernels.h"

#include <cuda_runtime.h>

#include <cstdint>

namespace octet::backend::cuda {

// One layer's device pointers. Linears in the order q, k, v, o, gate, up, down: E4M3 codes [n, k] and
// one scale per output channel.
struct PersistentLayer {
  static constexpr int kQ = 0, kK = 1, kV = 2, kO = 3, kGate = 4, kUp = 5, kDown = 6, kLinears = 7;
  const uint8_t* codes[kLinears] = {};
  const float* scales[kLinears] = {};
  const float* attn_norm = nullptr;
  const float* ffn_norm = nullptr;
  void* k_cache = nullptr;
  void* v_cache = nullptr;
  float* k_scales = nullptr;
  float* v_scales = nullptr;
  float static_k_scale = 0.0f;  // > 0: the checkpoint's; else amax / max per (position, head)
  float static_v_scale = 0.0f;
};

struct PersistentDecodeShape {
  int layers = 0;
  int hidden = 0, heads = 0, kv_heads = 0, head_dim = 0, ffn = 0;
  float eps = 0.0f;
};

// Step scratch in device memory (persistent_decode_scratch sizes it).
struct PersistentDecodeBuffers {
  float* x = nullptr;        // [hidden]: the embedded token in, the residual after the last layer out
  float* qkv = nullptr;      // [q_dim + 2 kv_dim]
  float* attn = nullptr;     // [q_dim]
  float* act = nullptr;      // [ffn]
  float* partial = nullptr;  // attention splits: [kv_heads, splits, group, head_dim + 2]
  float* amax = nullptr;     // [layers, 2]: the attention output's and SwiGLU's amax
  unsigned* barrier = nullptr;  // 2 + kv_heads counters, zero before the first launch; launches leave them zero
};

// Why the kernel cannot run this shape (nullptr: it can). Needs sm_90, head_dim 64 or 128, a GQA group
// of at most 8, hidden ≤ 8192, every k a multiple of 64, every n a multiple of 16, an FP8 cache.
const char* persistent_decode_refusal(const PersistentDecodeShape& shape, KvStorage storage, int compute_capability);

// Floats of PersistentDecodeBuffers' partial and amax (the others are the shape's), for `splits`.
int64_t persistent_decode_partial_floats(const PersistentDecodeShape& shape, int splits);
// The attention's splits over the positions: from the shape only (a recorded step replays at any position).
int persistent_decode_splits(const PersistentDecodeShape& shape, int blocks);
// The grid: one block per SM that the device can hold at once (0: none fits).
int persistent_decode_blocks(const PersistentDecodeShape& shape, int device);

// Timestamps for finding where a step's time goes (OCTET_CUDA_PERSISTENT_TRACE): per block and layer,
// kTraceEvents globaltimer readings of consumer thread 0 (0 layer start; 1 q/k/v input ready, 2 its
// tiles done, 3 past the barrier; 4 attention and merge done, 5 past the barrier; 6 o input ready,
// 7 done, 8 past the barrier; 9 gate/up input ready, 10 done, 11 past the barrier; 12 down input
// ready, 13 done), then per block the producer's and warp 0's total wait (ns).
inline constexpr int kTraceEvents = 14;
inline int64_t persistent_decode_trace_words(int blocks, int layers) {
  return static_cast<int64_t>(blocks) * layers * kTraceEvents + 2 * blocks;
}

// layers: shape.layers device PersistentLayers. slot and position of the one token are read on the device.
void launch_persistent_decode(const PersistentLayer* layers, const PersistentDecodeShape& shape,
                              const PersistentDecodeBuffers& buffers, const int64_t* slots, const int64_t* positions,
                              const KvLayout& layout, const float* inverse_frequencies, int splits, int blocks,
                              cudaStream_t s, unsigned long long* trace = nullptr, int in_flight = 0, int poll_ns = 0);

}  // namespace octet::backend::cuda
