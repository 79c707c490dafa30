// Every decoder layer of a one-token decode step in one kernel. Why: at batch 1 a layer is ~10 kernels,
// and at each boundary the weight stream stops (the next kernel's first loads wait for the previous
// one's last block); on Llama-3.1-8B that left the step at 64% of the copy roofline in version 8.
//
// Shape of the kernel: one block per SM, all resident at once (the grid is what the device holds; a
// GPU shared with other work that keeps an SM would leave a block waiting to start while the others
// wait at the first barrier, so the kernel needs the device to itself).
// Each block owns a share of every weight matrix: 16-row units, dealt out to the blocks in order. A
// producer warp streams the block's tiles (16 rows × up to 2048 bytes of k) for the whole step —
// layer after layer, stage after stage — through a ring of shared-memory slots with bulk copies (TMA),
// never waiting for activations: weights are constant through the step. Consumer warps multiply tiles
// by the stage's input on the tensor cores (mma m16n8k32 E4M3, the token in column 0) and meet the
// other blocks at a grid barrier after each stage whose successor needs every block's output:
//
//   A  rmsnorm(x) → E4M3 (each block, whole row) · q/k/v                       → qkv
//   B  RoPE, the new K/V into the cache, attention splits; the block finishing
//      a kv head's last split merges its group                                  → attn, its amax
//   C  attn → E4M3 · o, added to x                                              → x
//   D  rmsnorm(x) → E4M3 · gate/up, SwiGLU                                      → act, its amax
//   E  act → E4M3 · down, added to x                                            → x
//
// While consumers wait at a barrier the producer keeps filling the ring with the next stages' tiles,
// so a barrier costs compute time, not stream time, as long as the ring (≈ 200 KB a SM, ~6 µs of its
// share of the copy bandwidth) outlasts it.
//
// Measured (H200, docs/PERFORMANCE.md version 10): it does not. Blocks leave a barrier 4–6 µs after the
// last one arrives (fence, arrival, poll: memory round trips, whatever the ring's depth), the attention
// stage (table, K, V, fence, count, merge) takes 18 µs;
// Llama-3.1-8B spends 62 of a layer's 105 µs outside its tiles, the ring is full for 51 µs of them, and
// the step is slower than the layer-by-layer ops (3.68 against 2.98 ms). Hence off by default
// (cuda_backend_persistent.cpp); OCTET_CUDA_PERSISTENT_TRACE prints that breakdown. Closing the gap needs
// far fewer round trips a layer than five barriers: dataflow counters per input instead of grid-wide
// barriers, so a block starts the next stage as soon as the rows it reads are written.
//
// The arithmetic is the op-by-op path's (the same norms, E4M3 encodings, scales and SwiGLU per element;
// the KV cache written as rope_kv_write_kernel writes it): only sums run in another order. A unit's
// sum over its k tiles is added in tile order, and splits are merged in split order, so the result is
// the same at every run.
#include "backend/cuda/persistent_decode.h"

#include "backend/cuda/async_copy.cuh"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/e4m3_encode.cuh"
#include "backend/cuda/kv_layout.cuh"
#include "backend/cuda/launch.cuh"
#include "backend/cuda/mma_e4m3.cuh"

#include <cuda_fp16.h>
#include <cuda_fp8.h>

#include <algorithm>

namespace octet::backend::cuda {
namespace {

constexpr int kConsumerWarps = 8;
constexpr int kConsumers = kConsumerWarps * 32;
constexpr int kThreads = kConsumers + 32;  // + the producer warp
constexpr int kTileRows = 16;
constexpr int kSliceBytes = 2048;                 // k bytes of one tile row
constexpr int kRowPitch = kSliceBytes + 64;       // rows g and g + 1 start 16 banks apart: conflict-free lds
constexpr int kSlotBytes = kTileRows * kRowPitch;  // 33,792
constexpr int kMaxSlots = 8;
constexpr int kMaxNormVectors = 8;  // float4s a consumer holds for a norm: hidden ≤ 8192
constexpr int kMaxGroup = 8;
constexpr int kChunk = 128;  // positions per attention chunk (Llama-3.1-8B at context 1024: one per split)

enum Stage { kQkv = 0, kOut = 1, kGateUp = 2, kDown = 3, kStages = 4 };

struct Params {
  const PersistentLayer* layers;
  PersistentDecodeShape shape;
  PersistentDecodeBuffers buffers;
  const int64_t* slots;
  const int64_t* positions;
  KvLayout layout;
  const float* inverse_frequencies;
  int splits;
  int slots_in_ring;
  int in_flight;      // > 0: at most this many tiles' copies outstanding (see produce)
  int poll_ns;        // > 0: the grid barrier's poll sleeps this long between reads
  int xs_bytes;       // the stage input's E4M3 codes
  int unit_floats;    // the per-(unit, tile) sums
  unsigned long long* trace;  // nullptr, or PersistentDecodeTrace's timestamps
};

__device__ __forceinline__ unsigned long long now_ns() {
  unsigned long long t;
  asm volatile("mov.u64 %0, %globaltimer;\n" : "=l"(t));
  return t;
}

// Consumer thread 0's timestamp of event e of layer (see kTraceEvents in the header).
__device__ __forceinline__ void mark(const Params& p, int layer, int event) {
  if (p.trace != nullptr && threadIdx.x == 0)
    p.trace[(static_cast<int64_t>(blockIdx.x) * p.shape.layers + layer) * kTraceEvents + event] = now_ns();
}
// Where the waits of a block went, at the end of the trace: [producer waiting for a free slot, warp 0
// waiting for a tile].
__device__ __forceinline__ unsigned long long* wait_totals(const Params& p) {
  return p.trace + static_cast<int64_t>(gridDim.x) * p.shape.layers * kTraceEvents + 2 * blockIdx.x;
}

// ---- shared-memory layout (dynamic) ----
struct AttentionShared {
  float q[kMaxGroup * 128];
  uint8_t new_key[128];  // the new token's K codes and K/V scales (written to the cache by this block)
  float new_key_scale, new_value_scale;
  float scores[kMaxGroup][kChunk];
  int cells[kChunk];
  float v_scales[kChunk];
  float running_max[kMaxGroup], running_sum[kMaxGroup], correction[kMaxGroup];
};

struct SmallShared {
  unsigned long long full[kMaxSlots];
  unsigned long long empty[kMaxSlots];
  float reduce[kConsumerWarps];
  int last_split;
};

__host__ __device__ constexpr size_t align128(size_t bytes) { return (bytes + 127) / 128 * 128; }

struct Layout {
  size_t ring, xs, units, attention, small, total;
};

__host__ __device__ inline Layout shared_layout(int slots, int xs_bytes, int unit_floats) {
  Layout l{};
  l.ring = 0;
  l.xs = l.ring + static_cast<size_t>(slots) * kSlotBytes;
  l.units = l.xs + align128(xs_bytes);
  l.attention = l.units + align128(static_cast<size_t>(unit_floats) * 4);
  l.small = l.attention + align128(sizeof(AttentionShared));
  l.total = l.small + align128(sizeof(SmallShared));
  return l;
}

// The consumer warps only (named barrier 1): the producer never joins it.
__device__ __forceinline__ void consumers_sync() { asm volatile("bar.sync 1, %0;\n" ::"n"(kConsumers) : "memory"); }

__device__ __forceinline__ unsigned load_acquire(const unsigned* p) {
  unsigned v;
  asm volatile("ld.acquire.gpu.global.u32 %0, [%1];\n" : "=r"(v) : "l"(p) : "memory");
  return v;
}

// All blocks' consumers: every write before it is visible to every read after it. counter[0] counts
// arrivals over the launch (the k-th barrier is passed at k · blocks); each block adds its arrival
// without waiting for the old value and polls, one round trip fewer than an atomic that returns.
// counter[1] counts the blocks that left, and the last one resets both for the next launch.
__device__ void grid_barrier(unsigned* counter, unsigned& passed, int poll_ns) {
  consumers_sync();
  ++passed;
  if (threadIdx.x == 0) {
    __threadfence();
    asm volatile("red.release.gpu.global.add.u32 [%0], 1;\n" ::"l"(counter) : "memory");
    const unsigned target = passed * gridDim.x;
    while (load_acquire(counter) < target) {
      if (poll_ns > 0) __nanosleep(poll_ns);  // fewer polls in the line the arrivals update
    }
    __threadfence();
  }
  consumers_sync();
}

__device__ void leave_grid(unsigned* counter) {
  if (threadIdx.x != 0) return;
  if (atomicAdd(counter + 1, 1u) == gridDim.x - 1) {  // every other block is past its last poll
    atomicExch(counter, 0u);
    atomicExch(counter + 1, 0u);
  }
}

// The sum (or max) of one float per consumer thread, in every consumer thread (block_reduce.cuh's
// block_sum / block_max synchronise the whole block, which the producer warp never joins). Both
// identities are 0: the maxima taken here are of absolute values.
template <bool kMax>
__device__ float consumers_reduce(float v, float* scratch) {
  const auto combine = [](float a, float b) { return kMax ? fmaxf(a, b) : a + b; };
  for (int o = 16; o > 0; o /= 2) v = combine(v, __shfl_xor_sync(0xFFFFFFFF, v, o));
  if (threadIdx.x % 32 == 0) scratch[threadIdx.x / 32] = v;
  consumers_sync();
  float total = 0.0f;
#pragma unroll
  for (int w = 0; w < kConsumerWarps; ++w) total = combine(total, scratch[w]);
  consumers_sync();
  return total;
}
__device__ __forceinline__ float consumers_sum(float v, float* scratch) { return consumers_reduce<false>(v, scratch); }
__device__ __forceinline__ float consumers_max(float v, float* scratch) { return consumers_reduce<true>(v, scratch); }

// ---- which tiles a block owns ----
// A stage's matrix in units of 16 rows: q/k/v stacked (q_dim + 2 kv_dim rows), o, gate/up as pairs
// (a unit of gate rows then the same unit of up rows), down. Block b owns units [begin, end) of the
// stage's count (pairs for gate/up) and each unit's slices = ceil(k / 2048) tiles.
struct StageTiles {
  int begin = 0, count = 0;  // the block's units (pairs for gate/up)
  int units = 0;             // its units in tiles' order (2 · count for gate/up)
  int slices = 0, k = 0;
  __device__ int tiles() const { return units * slices; }
};

__device__ __forceinline__ StageTiles stage_tiles(const PersistentDecodeShape& s, int stage) {
  const int q_dim = s.heads * s.head_dim, kv_dim = s.kv_heads * s.head_dim;
  int total = 0;
  StageTiles t;
  switch (stage) {
    case kQkv: total = (q_dim + 2 * kv_dim) / kTileRows, t.k = s.hidden; break;
    case kOut: total = s.hidden / kTileRows, t.k = q_dim; break;
    case kGateUp: total = s.ffn / kTileRows, t.k = s.hidden; break;
    default: total = s.hidden / kTileRows, t.k = s.ffn; break;
  }
  const int b = blockIdx.x, blocks = gridDim.x;
  t.begin = static_cast<int>(static_cast<int64_t>(b) * total / blocks);
  t.count = static_cast<int>(static_cast<int64_t>(b + 1) * total / blocks) - t.begin;
  t.units = stage == kGateUp ? 2 * t.count : t.count;
  t.slices = (t.k + kSliceBytes - 1) / kSliceBytes;
  return t;
}

// Where unit u (in the block's order) of a stage lives: its linear and first row there.
__device__ __forceinline__ int unit_source(const PersistentDecodeShape& s, int stage, const StageTiles& t, int u,
                                           int& first_row) {
  const int q_dim = s.heads * s.head_dim, kv_dim = s.kv_heads * s.head_dim;
  switch (stage) {
    case kQkv: {
      const int row = (t.begin + u) * kTileRows;
      if (row < q_dim) return first_row = row, PersistentLayer::kQ;
      if (row < q_dim + kv_dim) return first_row = row - q_dim, PersistentLayer::kK;
      return first_row = row - q_dim - kv_dim, PersistentLayer::kV;
    }
    case kOut: return first_row = (t.begin + u) * kTileRows, PersistentLayer::kO;
    case kGateUp: return first_row = (t.begin + u / 2) * kTileRows, u % 2 == 0 ? PersistentLayer::kGate : PersistentLayer::kUp;
    default: return first_row = (t.begin + u) * kTileRows, PersistentLayer::kDown;
  }
}

// The positions [begin, end) of attention split `split` for a token at `position`: ceil((position + 1) /
// splits) each, so the token's own position falls in the last non-empty split.
struct SplitPositions {
  int begin, end;
};
__device__ __forceinline__ SplitPositions split_positions(int position, int split, int splits) {
  const int span = (position + splits) / splits;
  const int begin = split * span;
  return {begin, min(position + 1, begin + span)};
}

// ---- producer ----
// The cached K/V rows (and scales) the block's first attention item of the layer will read, brought into
// L2 while the layer's q/k/v tiles stream: under the weight stream a DRAM round trip takes microseconds,
// and the attention's loads are on every block's critical path. Positions before the token's own are
// constant through the step (the slot's table and position were uploaded before the step began).
__device__ void prefetch_attention_rows(const Params& p, const PersistentLayer& L, int lane) {
  const int item = blockIdx.x;
  if (lane < 16 || item >= p.shape.kv_heads * p.splits) return;
  const int kv = item / p.splits, split = item % p.splits;
  const int position = static_cast<int>(p.positions[0]);
  const SplitPositions positions = split_positions(position, split, p.splits);
  const int begin = positions.begin, end = min(position, positions.end);  // the new position is written later
  const int64_t slot = p.slots[0];
  const int64_t row_bytes = p.shape.head_dim;
  for (int j = begin + lane - 16; j < end; j += 16) {
    const int64_t cell = cache_cell(p.layout, slot, j, kv);
    asm volatile("prefetch.global.L2 [%0];\n" ::"l"(static_cast<const uint8_t*>(L.k_cache) + cell * row_bytes));
    asm volatile("prefetch.global.L2 [%0];\n" ::"l"(static_cast<const uint8_t*>(L.v_cache) + cell * row_bytes));
    asm volatile("prefetch.global.L2 [%0];\n" ::"l"(L.k_scales + cell));
    asm volatile("prefetch.global.L2 [%0];\n" ::"l"(L.v_scales + cell));
  }
}

__device__ void produce(const Params& p, uint8_t* ring, SmallShared& small) {
  const int lane = threadIdx.x % 32;
  const uint64_t policy = evict_first_policy();
  uint32_t sequence = 0;  // the block's tiles in order, over all layers and stages
  unsigned long long waited = 0;
  for (int layer = 0; layer < p.shape.layers; ++layer) {
    const PersistentLayer& L = p.layers[layer];
    for (int stage = 0; stage < kStages; ++stage) {
      const StageTiles t = stage_tiles(p.shape, stage);
      for (int tile = 0; tile < t.tiles(); ++tile, ++sequence) {
        const int unit = tile / t.slices, slice = tile % t.slices;
        int first_row = 0;
        const int linear = unit_source(p.shape, stage, t, unit, first_row);
        const int k0 = slice * kSliceBytes;
        const unsigned row_bytes = static_cast<unsigned>(min(kSliceBytes, t.k - k0));
        const int slot = static_cast<int>(sequence % p.slots_in_ring);
        const uint32_t use = sequence / p.slots_in_ring;
        if (lane == 0) {
          // Copies in flight beyond what saturates DRAM only queue, and every other access of the step
          // (barriers, attention) waits behind them: with in_flight > 0 the producer first waits for the
          // copy issued in_flight tiles ago to land (the ring still buffers what has landed).
          if (p.in_flight > 0 && sequence >= static_cast<uint32_t>(p.in_flight)) {
            const uint32_t earlier = sequence - p.in_flight;
            const unsigned long long before = p.trace ? now_ns() : 0;
            mbarrier_wait(&small.full[earlier % p.slots_in_ring], (earlier / p.slots_in_ring) & 1);
            if (p.trace) waited += now_ns() - before;
          }
          if (use > 0) {
            const unsigned long long before = p.trace ? now_ns() : 0;
            mbarrier_wait(&small.empty[slot], (use - 1) & 1);
            if (p.trace) waited += now_ns() - before;
          }
          mbarrier_expect_bytes(&small.full[slot], row_bytes * kTileRows);
        }
        __syncwarp();
        if (lane < kTileRows) {
          const uint8_t* src = L.codes[linear] + (static_cast<int64_t>(first_row) + lane) * t.k + k0;
          bulk_copy(ring + static_cast<size_t>(slot) * kSlotBytes + lane * kRowPitch, src, row_bytes, &small.full[slot],
                    policy);
        }
      }
      if (stage == kQkv) prefetch_attention_rows(p, L, lane);
    }
  }
  if (p.trace && lane == 0) wait_totals(p)[0] = waited;
}

// ---- consumers: the tiles of one stage ----
// Warp w takes the tiles of the slots w, w + 8, … (with at most 8 slots: slot w; warps past the ring
// idle). A slot must have one consumer: mbarrier waits go by phase parity, so a warp waiting for a
// slot's next tile before the tile now in it had landed would see that tile's phase as done. Each
// warp writes its unit's 16 row sums for its slice to units[(unit · slices + slice) · 16 + row].
__device__ void consume_tiles(const Params& p, const StageTiles& t, uint32_t& sequence, const uint8_t* ring,
                              const uint8_t* xs, float* units, SmallShared& small, unsigned long long& waited) {
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, q = lane % 4;
  const uint4 zero = make_uint4(0, 0, 0, 0);
  for (int tile = 0; tile < t.tiles(); ++tile) {
    const uint32_t s = sequence + tile;
    const int slot = static_cast<int>(s % p.slots_in_ring);
    if (slot % kConsumerWarps != warp) continue;
    const unsigned long long before = p.trace ? now_ns() : 0;
    mbarrier_wait(&small.full[slot], (s / p.slots_in_ring) & 1);
    if (p.trace) waited += now_ns() - before;
    const int unit = tile / t.slices, slice = tile % t.slices;
    const int k0 = slice * kSliceBytes;
    const int steps = min(kSliceBytes, t.k - k0) / 64;
    const uint8_t* lo_row = ring + static_cast<size_t>(slot) * kSlotBytes + g * kRowPitch + q * 16;
    const uint8_t* hi_row = lo_row + 8 * kRowPitch;
    const uint8_t* x_row = xs + k0 + q * 16;
    float c[4] = {0.0f, 0.0f, 0.0f, 0.0f};
#pragma unroll 4
    for (int step = 0; step < steps; ++step) {
      const uint4 lo = *reinterpret_cast<const uint4*>(lo_row + step * 64);
      const uint4 hi = *reinterpret_cast<const uint4*>(hi_row + step * 64);
      const uint4 xv = g == 0 ? *reinterpret_cast<const uint4*>(x_row + step * 64) : zero;
      mma_step(c, lo, hi, xv);
    }
    __syncwarp();
    if (lane == 0) mbarrier_arrive(&small.empty[slot]);
    // Column 0 (the token) of the accumulator: c0 of row g and c2 of row g + 8, in lanes with q == 0.
    if (q == 0) {
      float* sums = units + (unit * t.slices + slice) * kTileRows;
      sums[g] = c[0];
      sums[g + 8] = c[2];
    }
  }
  sequence += t.tiles();
  consumers_sync();
}

// A row's dot over its unit's slices, in slice order.
__device__ __forceinline__ float unit_row_sum(const float* units, const StageTiles& t, int unit, int row) {
  float sum = 0.0f;
  for (int slice = 0; slice < t.slices; ++slice) sum += units[(unit * t.slices + slice) * kTileRows + row];
  return sum;
}

// ---- consumers: stage inputs ----
// xs = E4M3(rmsnorm(x) · weight) with one scale for the row, as add_rmsnorm_rows_kernel encodes it.
__device__ float prepare_norm(const Params& p, const float* weight, uint8_t* xs, SmallShared& small) {
  const int vectors = p.shape.hidden / 4;
  const float4* x = reinterpret_cast<const float4*>(p.buffers.x);
  const float4* w = reinterpret_cast<const float4*>(weight);
  float4 value[kMaxNormVectors], scale[kMaxNormVectors];
  float sum = 0.0f;
#pragma unroll
  for (int j = 0; j < kMaxNormVectors; ++j) {
    const int i = threadIdx.x + j * kConsumers;
    value[j] = i < vectors ? __ldcg(x + i) : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    scale[j] = i < vectors ? __ldg(w + i) : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
  }
#pragma unroll
  for (int j = 0; j < kMaxNormVectors; ++j)
    sum += value[j].x * value[j].x + value[j].y * value[j].y + value[j].z * value[j].z + value[j].w * value[j].w;
  const float inv_rms = rsqrtf(consumers_sum(sum, small.reduce) / static_cast<float>(p.shape.hidden) + p.shape.eps);
  float amax = 0.0f;
#pragma unroll
  for (int j = 0; j < kMaxNormVectors; ++j) {
    value[j] = make_float4(value[j].x * inv_rms * scale[j].x, value[j].y * inv_rms * scale[j].y,
                           value[j].z * inv_rms * scale[j].z, value[j].w * inv_rms * scale[j].w);
    amax = fmaxf(fmaxf(fmaxf(fmaxf(amax, fabsf(value[j].x)), fabsf(value[j].y)), fabsf(value[j].z)), fabsf(value[j].w));
  }
  const float x_scale = e4m3_row_scale(consumers_max(amax, small.reduce));
  const float inverse = 1.0f / x_scale;
#pragma unroll
  for (int j = 0; j < kMaxNormVectors; ++j) {
    const int i = threadIdx.x + j * kConsumers;
    if (i < vectors) reinterpret_cast<uint32_t*>(xs)[i] = encode4_e4m3(value[j], inverse);
  }
  consumers_sync();
  return x_scale;
}

// xs = E4M3(values) with the scale of their amax (published by the stage that wrote them).
__device__ float prepare_scaled(const float* values, int count, const float* amax, uint8_t* xs) {
  const float x_scale = e4m3_row_scale(__ldcg(amax));
  const float inverse = 1.0f / x_scale;
  const float4* v = reinterpret_cast<const float4*>(values);
  for (int i = threadIdx.x; i < count / 4; i += kConsumers) reinterpret_cast<uint32_t*>(xs)[i] = encode4_e4m3(__ldcg(v + i), inverse);
  consumers_sync();
  return x_scale;
}

__device__ __forceinline__ void publish_amax(float* where, float block_amax) {
  if (threadIdx.x == 0) atomicMax(reinterpret_cast<unsigned*>(where), __float_as_uint(block_amax));
}

// ---- consumers: attention ----
__device__ __forceinline__ float widen_code(uint8_t code, __nv_fp8_interpretation_t kind) {
  const __half_raw raw = __nv_cvt_fp8_to_halfraw(static_cast<__nv_fp8_storage_t>(code), kind);
  return __half2float(__half(raw));
}

// The new token's K (rotated) or V head row into the cache, as rope_kv_write_kernel's store_head
// stores it: one warp, the row's amax for a dynamic scale.
template <int D>
__device__ void store_new_row(const Params& p, const PersistentLayer& L, const float* src, bool rotate, int64_t cell,
                              float position, AttentionShared& sh) {
  const int lane = threadIdx.x % 32;
  constexpr int kPerLane = D / 32;
  float value[kPerLane];
  if (rotate) {
#pragma unroll
    for (int j = 0; j < kPerLane / 2; ++j) {
      const int i = lane + 32 * j;  // pairs (i, i + D/2)
      float sine, cosine;
      sincosf(position * p.inverse_frequencies[i], &sine, &cosine);
      const float a = __ldcg(src + i), b = __ldcg(src + i + D / 2);
      value[j] = a * cosine - b * sine;
      value[j + kPerLane / 2] = b * cosine + a * sine;
    }
  } else {
#pragma unroll
    for (int j = 0; j < kPerLane; ++j) value[j] = __ldcg(src + lane + 32 * j);
  }
  float amax = 0.0f;
#pragma unroll
  for (int j = 0; j < kPerLane; ++j) amax = fmaxf(amax, fabsf(value[j]));
  for (int o = 16; o > 0; o /= 2) amax = fmaxf(amax, __shfl_xor_sync(0xFFFFFFFF, amax, o));
  const bool e4m3 = p.layout.storage == KvStorage::e4m3;
  const float static_scale = rotate ? L.static_k_scale : L.static_v_scale;
  const float scale = static_scale > 0.0f ? static_scale : fp8_cache_scale(amax, e4m3);
  float* scales = rotate ? L.k_scales : L.v_scales;
  if (lane == 0) scales[cell] = scale;
  if (lane == 0) (rotate ? sh.new_key_scale : sh.new_value_scale) = scale;
  const float inverse = 1.0f / scale;
  auto* codes = static_cast<__nv_fp8_storage_t*>(rotate ? L.k_cache : L.v_cache) + cell * D;
#pragma unroll
  for (int j = 0; j < kPerLane; ++j) {
    const __nv_fp8_storage_t code = __nv_cvt_float_to_fp8(value[j] * inverse, __NV_SATFINITE, e4m3 ? __NV_E4M3 : __NV_E5M2);
    codes[lane + 32 * j] = code;
    if (rotate) sh.new_key[lane + 32 * j] = code;
  }
}

// One (kv head, split) item: RoPE on the group's queries, the new K/V into the cache where the split
// holds the token's position, then the split's (max, sum, unnormalised output) per query head.
template <int D>
__device__ void attention_item(const Params& p, const PersistentLayer& L, int item, AttentionShared& sh) {
  const PersistentDecodeShape& s = p.shape;
  const int group = s.heads / s.kv_heads, q_dim = s.heads * D, kv_dim = s.kv_heads * D;
  const int kv = item / p.splits, split = item % p.splits;
  const int position = static_cast<int>(p.positions[0]);
  const int64_t slot = p.slots[0];
  const auto [begin, end] = split_positions(position, split, p.splits);
  float* out = p.buffers.partial + static_cast<int64_t>(kv * p.splits + split) * group * (D + 2);
  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
  if (begin >= end) {
    if (tid < group) out[tid * (D + 2) + D] = -INFINITY, out[tid * (D + 2) + D + 1] = 0.0f;
    return;
  }
  const __nv_fp8_interpretation_t kind = p.layout.storage == KvStorage::e4m3 ? __NV_E4M3 : __NV_E5M2;
  constexpr int kPerLane = D / 32;
  const uint8_t* k_cache = static_cast<const uint8_t*>(L.k_cache);
  const uint8_t* v_cache = static_cast<const uint8_t*>(L.v_cache);
  // Warp w scores positions w, w + 8, … of a chunk: every load of its positions in flight before the
  // arithmetic, the first chunk's before the queries (they do not depend on them). The new position's
  // row is this block's to write: its key comes from shared memory below.
  constexpr int kPerWarp = kChunk / kConsumerWarps;
  int cells[kPerWarp];  // pool row · kv_heads + head: far below 2^31
  uint32_t words[kPerWarp];
  float k_scales[kPerWarp];
  const auto issue_loads = [&](int chunk, int n) {
#pragma unroll
    for (int i = 0; i < kPerWarp; ++i)
      if (warp + i * kConsumerWarps < n) cells[i] = static_cast<int>(cache_cell(p.layout, slot, chunk + warp + i * kConsumerWarps, kv));
#pragma unroll
    for (int i = 0; i < kPerWarp; ++i) {
      const int j = warp + i * kConsumerWarps;
      if (j >= n || chunk + j == position) continue;
      const uint8_t* row = k_cache + static_cast<int64_t>(cells[i]) * D + lane * kPerLane;
      if constexpr (kPerLane == 4) words[i] = __ldcg(reinterpret_cast<const unsigned*>(row));
      else words[i] = __ldcg(reinterpret_cast<const unsigned short*>(row));
      k_scales[i] = __ldcg(L.k_scales + cells[i]);
      if (lane == 0) sh.cells[j] = cells[i], sh.v_scales[j] = __ldcg(L.v_scales + cells[i]);
    }
  };
  issue_loads(begin, min(kChunk, end - begin));

  const float* qkv = p.buffers.qkv;
  const float fposition = static_cast<float>(position);
  const float softmax_scale = rsqrtf(static_cast<float>(D));
  for (int i = tid; i < group * D / 2; i += kConsumers) {
    const int h = i / (D / 2), d = i % (D / 2);
    const float* row = qkv + (kv * group + h) * D;
    float sine, cosine;
    sincosf(fposition * p.inverse_frequencies[d], &sine, &cosine);
    const float a = __ldcg(row + d), b = __ldcg(row + d + D / 2);
    sh.q[h * D + d] = (a * cosine - b * sine) * softmax_scale;
    sh.q[h * D + d + D / 2] = (b * cosine + a * sine) * softmax_scale;
  }
  if (tid < group) sh.running_max[tid] = -INFINITY, sh.running_sum[tid] = 0.0f;
  if (position >= begin && position < end && warp < 2) {
    const int64_t cell = cache_cell(p.layout, slot, position, kv);
    store_new_row<D>(p, L, qkv + q_dim + (warp == 0 ? 0 : kv_dim) + kv * D, warp == 0, cell, fposition, sh);
  }
  consumers_sync();  // the queries, and the new row in the cache (its V read below through L2)

  const int h_mine = tid / (D / 4), d_mine = tid % (D / 4) * 4;  // V accumulation: 4 dims of one head
  const bool accumulates = h_mine < group;
  float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
  for (int chunk = begin; chunk < end; chunk += kChunk) {
    const int n = min(kChunk, end - chunk);
    if (chunk != begin) issue_loads(chunk, n);
#pragma unroll
    for (int i = 0; i < kPerWarp; ++i) {
      const int j = warp + i * kConsumerWarps;
      if (j < n && chunk + j == position) {
        words[i] = kPerLane == 4 ? *reinterpret_cast<const unsigned*>(sh.new_key + lane * 4)
                                 : *reinterpret_cast<const unsigned short*>(sh.new_key + lane * 2);
        k_scales[i] = sh.new_key_scale;
        if (lane == 0) sh.cells[j] = cells[i], sh.v_scales[j] = sh.new_value_scale;
      }
    }
#pragma unroll
    for (int i = 0; i < kPerWarp; ++i) {
      if (warp + i * kConsumerWarps >= n) continue;
      float key[kPerLane];
#pragma unroll
      for (int e = 0; e < kPerLane; ++e) key[e] = widen_code(static_cast<uint8_t>(words[i] >> (8 * e)), kind);
      for (int h = 0; h < group; ++h) {
        float dot = 0.0f;
#pragma unroll
        for (int e = 0; e < kPerLane; ++e) dot = fmaf(sh.q[h * D + lane * kPerLane + e], key[e], dot);
        for (int o = 16; o > 0; o /= 2) dot += __shfl_xor_sync(0xFFFFFFFF, dot, o);
        if (lane == 0) sh.scores[h][warp + i * kConsumerWarps] = dot * k_scales[i];
      }
    }
    consumers_sync();
    if (warp < group) {  // warp h: the chunk's softmax update for head h
      constexpr int kPerLaneScores = kChunk / 32;
      float e[kPerLaneScores];
      float chunk_max = -INFINITY;
#pragma unroll
      for (int i = 0; i < kPerLaneScores; ++i) {
        e[i] = lane + 32 * i < n ? sh.scores[warp][lane + 32 * i] : -INFINITY;
        chunk_max = fmaxf(chunk_max, e[i]);
      }
      for (int o = 16; o > 0; o /= 2) chunk_max = fmaxf(chunk_max, __shfl_xor_sync(0xFFFFFFFF, chunk_max, o));
      const float old_max = sh.running_max[warp], new_max = fmaxf(old_max, chunk_max);
      float sum = 0.0f;
#pragma unroll
      for (int i = 0; i < kPerLaneScores; ++i) {
        e[i] = lane + 32 * i < n ? __expf(e[i] - new_max) : 0.0f;
        sum += e[i];
      }
      __syncwarp();
#pragma unroll
      for (int i = 0; i < kPerLaneScores; ++i)
        if (lane + 32 * i < n) sh.scores[warp][lane + 32 * i] = e[i];
      for (int o = 16; o > 0; o /= 2) sum += __shfl_xor_sync(0xFFFFFFFF, sum, o);
      const float correction = old_max == -INFINITY ? 0.0f : __expf(old_max - new_max);
      if (lane == 0) {
        sh.running_sum[warp] = sh.running_sum[warp] * correction + sum;
        sh.running_max[warp] = new_max;
        sh.correction[warp] = correction;
      }
    }
    consumers_sync();
    if (accumulates) {
      const float correction = sh.correction[h_mine];
#pragma unroll
      for (int e = 0; e < 4; ++e) acc[e] *= correction;
#pragma unroll 16
      for (int j = 0; j < n; ++j) {
        const uint32_t word = __ldcg(reinterpret_cast<const unsigned*>(v_cache + static_cast<int64_t>(sh.cells[j]) * D + d_mine));
        const float weight = sh.scores[h_mine][j] * sh.v_scales[j];
#pragma unroll
        for (int e = 0; e < 4; ++e) acc[e] = fmaf(weight, widen_code(static_cast<uint8_t>(word >> (8 * e)), kind), acc[e]);
      }
    }
    consumers_sync();  // scores and cells are rewritten by the next chunk
  }
  if (accumulates) {
    float* mine = out + h_mine * (D + 2);
#pragma unroll
    for (int e = 0; e < 4; ++e) mine[d_mine + e] = acc[e];
    if (d_mine == 0) mine[D] = sh.running_max[h_mine], mine[D + 1] = sh.running_sum[h_mine];
  }
}

// The group of kv head kv: each query head's output from the splits' partials, into attn; returns the
// thread's |value| max. Run by the block that finished the group's last split.
template <int D>
__device__ float merge_group(const Params& p, int kv) {
  const PersistentDecodeShape& s = p.shape;
  const int group = s.heads / s.kv_heads;
  const int64_t stride = static_cast<int64_t>(group) * (D + 2);  // between splits
  float amax = 0.0f;
  for (int index = threadIdx.x; index < group * D; index += kConsumers) {
    const int h = index / D, d = index % D;
    const float* base = p.buffers.partial + static_cast<int64_t>(kv * p.splits) * stride + h * (D + 2);
    float top = -INFINITY;
#pragma unroll 8
    for (int split = 0; split < p.splits; ++split) top = fmaxf(top, __ldcg(base + split * stride + D));
    float sum = 0.0f, value = 0.0f;
#pragma unroll 8
    for (int split = 0; split < p.splits; ++split) {
      const float m = __ldcg(base + split * stride + D);
      if (m == -INFINITY) continue;
      const float w = __expf(m - top);
      sum += w * __ldcg(base + split * stride + D + 1);
      value += w * __ldcg(base + split * stride + d);
    }
    const float result = value / sum;
    p.buffers.attn[(kv * group + h) * D + d] = result;
    amax = fmaxf(amax, fabsf(result));
  }
  return amax;
}

// x[row] += the block's rows of a stage (o, down), scaled as the layer-by-layer ops scale the product.
__device__ void add_to_residual(const Params& p, const StageTiles& t, const float* units, float x_scale,
                                const float* col_scales) {
  for (int r = threadIdx.x; r < t.units * kTileRows; r += kConsumers) {
    const int row = (t.begin + r / kTileRows) * kTileRows + r % kTileRows;
    p.buffers.x[row] = __ldcg(p.buffers.x + row) + unit_row_sum(units, t, r / kTileRows, r % kTileRows) * (x_scale * col_scales[row]);
  }
}

// The tiles of one stage, between the stage's input and its epilogue, marked for the trace.
__device__ void stream_stage(const Params& p, const StageTiles& t, int layer, int first_event, uint32_t& sequence,
                             const uint8_t* ring, const uint8_t* xs, float* units, SmallShared& small,
                             unsigned long long& waited) {
  mark(p, layer, first_event);
  consume_tiles(p, t, sequence, ring, xs, units, small, waited);
  mark(p, layer, first_event + 1);
}

// ---- the kernel ----
template <int D>
__global__ void __launch_bounds__(kThreads, 1) persistent_decode_kernel(Params p) {
  extern __shared__ __align__(128) uint8_t shared[];
  const Layout l = shared_layout(p.slots_in_ring, p.xs_bytes, p.unit_floats);
  uint8_t* ring = shared + l.ring;
  uint8_t* xs = shared + l.xs;
  float* units = reinterpret_cast<float*>(shared + l.units);
  AttentionShared& attention = *reinterpret_cast<AttentionShared*>(shared + l.attention);
  SmallShared& small = *reinterpret_cast<SmallShared*>(shared + l.small);
  if (threadIdx.x == 0) {
    for (int i = 0; i < p.slots_in_ring; ++i) mbarrier_init(&small.full[i], 1), mbarrier_init(&small.empty[i], 1);
    mbarrier_init_fence();
  }
  __syncthreads();
  if (threadIdx.x >= kConsumers) {  // weights only: before the wait for the kernel that wrote x
    produce(p, ring, small);
    return;
  }
  await_earlier_kernels();
  const PersistentDecodeShape& s = p.shape;
  const int q_dim = s.heads * D;
  float* amax = p.buffers.amax;
  if (blockIdx.x == 0)
    for (int i = threadIdx.x; i < 2 * s.layers; i += kConsumers) amax[i] = 0.0f;  // read after the first barrier
  uint32_t sequence = 0;
  unsigned passed = 0;            // grid barriers
  unsigned long long waited = 0;  // warp 0's, for the trace
  for (int layer = 0; layer < s.layers; ++layer) {
    const PersistentLayer& L = p.layers[layer];
    mark(p, layer, 0);
    // A: q/k/v
    {
      const StageTiles t = stage_tiles(s, kQkv);
      const float x_scale = prepare_norm(p, L.attn_norm, xs, small);
      stream_stage(p, t, layer, 1, sequence, ring, xs, units, small, waited);
      for (int r = threadIdx.x; r < t.units * kTileRows; r += kConsumers) {
        const int unit = r / kTileRows;
        int first_row = 0;
        const int linear = unit_source(s, kQkv, t, unit, first_row);
        const int row = first_row + r % kTileRows;
        p.buffers.qkv[(t.begin + unit) * kTileRows + r % kTileRows] =
            unit_row_sum(units, t, unit, r % kTileRows) * (x_scale * L.scales[linear][row]);
      }
    }
    grid_barrier(p.buffers.barrier, passed, p.poll_ns);
    mark(p, layer, 3);
    // B: attention splits; the block finishing a kv head's last split merges its group
    for (int item = blockIdx.x; item < s.kv_heads * p.splits; item += gridDim.x) {
      attention_item<D>(p, L, item, attention);
      __threadfence();  // this split's partial, before it is counted
      consumers_sync();
      const int kv = item / p.splits;
      unsigned* finished = p.buffers.barrier + 2 + kv;
      if (threadIdx.x == 0) small.last_split = atomicAdd(finished, 1u) == static_cast<unsigned>(p.splits - 1);
      consumers_sync();
      if (small.last_split) {
        __threadfence();  // the other splits' partials, after their count
        publish_amax(amax + 2 * layer, consumers_max(merge_group<D>(p, kv), small.reduce));
        if (threadIdx.x == 0) *finished = 0;  // every split of this layer has counted
      }
    }
    mark(p, layer, 4);
    grid_barrier(p.buffers.barrier, passed, p.poll_ns);
    mark(p, layer, 5);
    // C: o, added to x
    {
      const StageTiles t = stage_tiles(s, kOut);
      const float x_scale = prepare_scaled(p.buffers.attn, q_dim, amax + 2 * layer, xs);
      stream_stage(p, t, layer, 6, sequence, ring, xs, units, small, waited);
      add_to_residual(p, t, units, x_scale, L.scales[PersistentLayer::kO]);
    }
    grid_barrier(p.buffers.barrier, passed, p.poll_ns);
    mark(p, layer, 8);
    // D: gate/up and SwiGLU
    {
      const StageTiles t = stage_tiles(s, kGateUp);
      const float x_scale = prepare_norm(p, L.ffn_norm, xs, small);
      stream_stage(p, t, layer, 9, sequence, ring, xs, units, small, waited);
      float block_amax = 0.0f;
      for (int r = threadIdx.x; r < t.count * kTileRows; r += kConsumers) {
        const int pair = r / kTileRows, within = r % kTileRows;
        const int row = (t.begin + pair) * kTileRows + within;
        const float g = unit_row_sum(units, t, 2 * pair, within) * (x_scale * L.scales[PersistentLayer::kGate][row]);
        const float u = unit_row_sum(units, t, 2 * pair + 1, within) * (x_scale * L.scales[PersistentLayer::kUp][row]);
        const float a = g / (1.0f + __expf(-g)) * u;
        p.buffers.act[row] = a;
        block_amax = fmaxf(block_amax, fabsf(a));
      }
      publish_amax(amax + 2 * layer + 1, consumers_max(block_amax, small.reduce));
    }
    grid_barrier(p.buffers.barrier, passed, p.poll_ns);
    mark(p, layer, 11);
    // E: down, added to x
    {
      const StageTiles t = stage_tiles(s, kDown);
      const float x_scale = prepare_scaled(p.buffers.act, s.ffn, amax + 2 * layer + 1, xs);
      stream_stage(p, t, layer, 12, sequence, ring, xs, units, small, waited);
      add_to_residual(p, t, units, x_scale, L.scales[PersistentLayer::kDown]);
    }
    if (layer + 1 < s.layers) grid_barrier(p.buffers.barrier, passed, p.poll_ns);  // the next layer's norm reads all of x
  }
  leave_grid(p.buffers.barrier);
  if (p.trace && threadIdx.x == 0) wait_totals(p)[1] = waited;
}

// Units a block owns at most in any stage (pairs count twice), times slices: the per-tile sums' floats.
int64_t unit_floats(const PersistentDecodeShape& s, int blocks) {
  const int q_dim = s.heads * s.head_dim, kv_dim = s.kv_heads * s.head_dim;
  const auto most = [&](int64_t total) { return (total + blocks - 1) / blocks; };
  const auto slices = [](int64_t k) { return (k + kSliceBytes - 1) / kSliceBytes; };
  int64_t floats = 0;
  floats = std::max(floats, most((q_dim + 2 * kv_dim) / kTileRows) * slices(s.hidden));
  floats = std::max(floats, most(s.hidden / kTileRows) * slices(q_dim));
  floats = std::max(floats, 2 * most(s.ffn / kTileRows) * slices(s.hidden));
  floats = std::max(floats, most(s.hidden / kTileRows) * slices(s.ffn));
  return floats * kTileRows;
}

int xs_bytes(const PersistentDecodeShape& s) { return std::max({s.hidden, s.heads * s.head_dim, s.ffn}); }

int max_shared_bytes(int device) {
  int bytes = 0;
  OCTET_CUDA_CHECK(cudaDeviceGetAttribute(&bytes, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
  return bytes;
}

// Ring slots that fit next to the rest (at most kMaxSlots; 0 if fewer than 2).
int ring_slots(const PersistentDecodeShape& s, int blocks, int device) {
  const int limit = max_shared_bytes(device);
  for (int slots = kMaxSlots; slots >= 2; --slots)
    if (shared_layout(slots, xs_bytes(s), static_cast<int>(unit_floats(s, blocks))).total <= static_cast<size_t>(limit))
      return slots;
  return 0;
}

}  // namespace

const char* persistent_decode_refusal(const PersistentDecodeShape& s, KvStorage storage, int compute_capability) {
  if (compute_capability < 90) return "it needs sm_90 (bulk copies and mbarriers)";
  if (s.head_dim != 64 && s.head_dim != 128) return "head_dim is not 64 or 128";
  if (s.kv_heads < 1 || s.heads % s.kv_heads != 0 || s.heads / s.kv_heads > kMaxGroup) return "the GQA group is over 8";
  if (s.hidden > kMaxNormVectors * kConsumers * 4) return "hidden is over 8192";
  const int q_dim = s.heads * s.head_dim;
  if (s.hidden % 64 != 0 || s.ffn % 64 != 0 || q_dim % 64 != 0) return "a k is not a multiple of 64";
  if ((s.kv_heads * s.head_dim) % kTileRows != 0) return "an n is not a multiple of 16";
  if (storage != KvStorage::e4m3 && storage != KvStorage::e5m2) return "the KV cache is not FP8";
  if (s.layers < 1) return "there are no layers";
  return nullptr;
}

int persistent_decode_splits(const PersistentDecodeShape& s, int blocks) {
  return std::clamp(blocks / std::max(1, s.kv_heads), 1, 64);
}

int64_t persistent_decode_partial_floats(const PersistentDecodeShape& s, int splits) {
  return static_cast<int64_t>(s.kv_heads) * splits * (s.heads / s.kv_heads) * (s.head_dim + 2);
}

int persistent_decode_blocks(const PersistentDecodeShape& s, int device) {
  int sms = 0;
  OCTET_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
  return ring_slots(s, sms, device) >= 2 ? sms : 0;
}

void launch_persistent_decode(const PersistentLayer* layers, const PersistentDecodeShape& shape,
                              const PersistentDecodeBuffers& buffers, const int64_t* slots, const int64_t* positions,
                              const KvLayout& layout, const float* inverse_frequencies, int splits, int blocks,
                              cudaStream_t s, unsigned long long* trace, int in_flight, int poll_ns) {
  int device = 0;
  OCTET_CUDA_CHECK(cudaGetDevice(&device));
  Params p{};
  p.layers = layers;
  p.shape = shape;
  p.buffers = buffers;
  p.slots = slots;
  p.positions = positions;
  p.layout = layout;
  p.inverse_frequencies = inverse_frequencies;
  p.splits = splits;
  p.trace = trace;
  p.in_flight = in_flight;
  p.poll_ns = poll_ns;
  p.slots_in_ring = ring_slots(shape, blocks, device);
  p.xs_bytes = xs_bytes(shape);
  p.unit_floats = static_cast<int>(unit_floats(shape, blocks));
  if (p.slots_in_ring < 2) fail("persistent decode: the shape's shared memory does not fit a SM");
  const size_t bytes = shared_layout(p.slots_in_ring, p.xs_bytes, p.unit_floats).total;
  const auto kernel = shape.head_dim == 128 ? persistent_decode_kernel<128> : persistent_decode_kernel<64>;
  OCTET_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)));
  LaunchShape launch{dim3(static_cast<unsigned>(blocks)), dim3(kThreads)};
  launch.shared_bytes = bytes;
  launch_kernel(kernel, launch, s, p);
  OCTET_CUDA_LAUNCH_CHECK();
}

}  // namespace octet::backend::cuda
