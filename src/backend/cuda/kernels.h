#pragma once
// Launch wrappers of the CUDA kernels, one family per .cu file. All run on the given stream and
// check the launch; on a programmatic stream (programmatic_launch.h: the backend's, on sm_90+) the
// step's and sampling's kernels are programmatic dependent launches (launch.cuh). Activations are
// float32 row-major unless a name says otherwise.
#include "backend/cuda/wgmma_narrow_plan.h"

#include <cuda_runtime.h>

#include <cstdint>
#include <vector>

namespace octet::backend::cuda {

// elementwise.cu
void launch_embed_bf16(const uint16_t* table, const int32_t* tokens, int64_t count, int64_t hidden, float* out, cudaStream_t s);
void launch_embed_f32(const float* table, const int32_t* tokens, int64_t count, int64_t hidden, float* out, cudaStream_t s);
// out[t] = decode(codes[tokens[t]]) · row_scales[tokens[t]]: an fp8 table, E4M3 codes [vocab, hidden] with a scale per row.
void launch_embed_e4m3(const uint8_t* codes, const float* row_scales, const int32_t* tokens, int64_t count, int64_t hidden,
                       float* out, cudaStream_t s);
// residual += delta (delta == nullptr: nothing added); out = rmsnorm(residual) — one pass instead of two.
// With codes != nullptr, the normalised rows are also quantized to E4M3 per row (scale = amax / 448)
// into codes / row_scales, exactly as launch_quantize_rows_e4m3 would from out: the next FP8 linear
// skips its own quantize launch.
void launch_add_rmsnorm_quantize(float* residual, const float* delta, const float* weight, float eps, int64_t rows,
                                 int64_t cols, float* out, uint8_t* codes, float* row_scales, cudaStream_t s);
void launch_add(float* x, const float* y, int64_t count, cudaStream_t s);
void launch_swiglu(const float* gate, const float* up, int64_t count, float* out, cudaStream_t s);
// out = silu(gate) · up, rows × cols, and its per-row E4M3 codes / scales (one block per row), as
// launch_quantize_rows_e4m3 would compute them from out.
void launch_swiglu_quantize(const float* gate, const float* up, int64_t rows, int64_t cols, float* out, uint8_t* codes,
                            float* row_scales, cudaStream_t s);
void launch_rope(float* x, int64_t tokens, int64_t heads, int64_t head_dim, const int64_t* positions,
                 const float* inverse_frequencies, cudaStream_t s);
void launch_gather_rows(const float* x, const int64_t* rows, int64_t count, int64_t cols, float* out, cudaStream_t s);

// l2_prefetch.cu: asks L2 for every 128-byte line of up to kMax byte ranges (nothing is read back),
// with the evict_last priority or the normal one; the kernel ends as soon as the requests are issued.
struct L2PrefetchRanges {
  static constexpr int kMax = 4;
  int count = 0;
  const void* start[kMax] = {};
  int64_t bytes[kMax] = {};
};
void launch_l2_prefetch(const L2PrefetchRanges& ranges, bool evict_last, cudaStream_t s);

// sampling.cu: tokens_out[i] = the token drawn from logits row specs[i].row ([*, vocab]) as
// backend::RowSampling says (one block per row; only the ids are written).
struct SampleRowSpec {
  int64_t row = 0;
  float temperature = 0.0f;
  int32_t top_k = 0;
  float top_p = 1.0f;
  float min_p = 0.0f;
  uint64_t seed = 0;
  uint64_t step = 0;
};
void launch_sample_rows(const float* logits, int64_t vocab, const SampleRowSpec* specs, int64_t count, int32_t* tokens_out,
                        cudaStream_t s);

// quantize.cu: per-row dynamic E4M3 (scale = amax / 448) or a static scale; float → bf16.
void launch_quantize_rows_e4m3(const float* x, int64_t rows, int64_t cols, float static_scale, uint8_t* codes,
                               float* row_scales, cudaStream_t s);
void launch_to_bf16(const float* x, int64_t count, uint16_t* out, cudaStream_t s);
// out[m, n] *= row_scales[m] * col_scales[n]
void launch_scale_rows_cols(float* out, int64_t rows, int64_t cols, const float* row_scales, const float* col_scales,
                            cudaStream_t s);

// scale_split.cu: after one GEMM over a group of linears that share their input, product [rows,
// product_cols] (row-major, float32) is split by columns into the members' outputs out[i] [rows,
// cols[i]] (member i holds product columns [first_col[i], first_col[i] + cols[i]), in increasing order;
// columns outside every member are padding, not read), each element multiplied by row_scales[r] ·
// col_scales[c] as launch_scale_rows_cols does; both scales null: copied as they are (a GEMM that
// applied them in its epilogue).
struct ScaleSplit {
  static constexpr int kMaxMembers = 4;
  int count = 0;
  int64_t product_cols = 0;
  float* out[kMaxMembers] = {};
  int64_t first_col[kMaxMembers] = {};
  int64_t cols[kMaxMembers] = {};
};
void launch_scale_split(const float* product, int64_t rows, const float* row_scales, const float* col_scales,
                        const ScaleSplit& split, cudaStream_t s);

// row_kernels.cu: the per-row operations above (add + rmsnorm + quantize, SwiGLU + quantize,
// quantize) with each row in registers, all its loads issued before use; rows of small batches are
// split over a thread-block cluster of 2–8 blocks on sm_90. The same outputs (codes and scales
// bit-exact to launch_quantize_rows_e4m3 of the float output). The launch_* functions call these
// first; they launch nothing and return false where a row does not fit (cols not a multiple of 4,
// a block's span of more than 32768 floats — 16384 for rmsnorm —, pointers not 16-byte aligned) or
// OCTET_CUDA_ROW_KERNELS=0 keeps the loop kernels; =noclusters: one block per row (for comparison).
bool try_launch_add_rmsnorm_quantize_in_registers(float* residual, const float* delta, const float* weight, float eps,
                                                  int64_t rows, int64_t cols, float* out, uint8_t* codes,
                                                  float* row_scales, cudaStream_t s);
bool try_launch_swiglu_quantize_in_registers(const float* gate, const float* up, int64_t rows, int64_t cols, float* out,
                                             uint8_t* codes, float* row_scales, cudaStream_t s);
// The same two with inputs straight from an unscaled FP8 GEMM (no scaling pass between): element (r, c)
// of the product is value · (product_row_scales[r] · product_col_scales[c]), exactly as
// launch_scale_rows_cols / launch_scale_split would scale it. SwiGLU's gate and up are the product's
// columns [gate_col, gate_col + cols) and [up_col, …) of rows product_cols wide (one fused gate/up GEMM),
// product_col_scales indexed by product column. False (nothing launched) where they do not fit.
// Whether the two below would launch (asked before running the GEMM they need).
bool add_product_rmsnorm_quantize_fits(const float* residual, const float* product, const float* product_col_scales,
                                       const float* weight, int64_t rows, int64_t cols, const float* out,
                                       const uint8_t* codes);
bool swiglu_quantize_product_fits(const float* product, int64_t product_cols, int64_t gate_col, int64_t up_col,
                                  const float* product_col_scales, int64_t rows, int64_t cols, const float* out,
                                  const uint8_t* codes);
bool try_launch_swiglu_quantize_product_in_registers(const float* product, int64_t product_cols, int64_t gate_col,
                                                     int64_t up_col, const float* product_row_scales,
                                                     const float* product_col_scales, int64_t rows, int64_t cols,
                                                     float* out, uint8_t* codes, float* row_scales, cudaStream_t s);
bool try_launch_add_product_rmsnorm_quantize_in_registers(float* residual, const float* product,
                                                          const float* product_row_scales, const float* product_col_scales,
                                                          const float* weight, float eps, int64_t rows, int64_t cols,
                                                          float* out, uint8_t* codes, float* row_scales, cudaStream_t s);
bool try_launch_quantize_rows_e4m3_in_registers(const float* x, int64_t rows, int64_t cols, float static_scale,
                                                uint8_t* codes, float* row_scales, cudaStream_t s);

// gemv_fp8.cu: y[m, n] = row_scales[m] · col_scales[n] · Σ_k x[m, k] · w[n, k] with E4M3 x and w for
// the few rows of decode batches; w is [n, k] row-major. k a multiple of 64: FP8 tensor cores
// (mma.sync), 2 to 16 rows; one row, or k a multiple of 16 only: CUDA cores, up to 8 rows.
// OCTET_CUDA_TENSOR_GEMV=0 keeps every shape on the CUDA-core kernel, =all puts one row on the
// tensor cores too (both for comparison); read at each call.
bool gemv_e4m3_fits(int64_t rows, int64_t k);
// Whether the backend gives a launch of n weight rows (a group's together) to the GEMV rather than to
// cuBLASLt: up to 8 rows, and no weight with n and k both >= 8192 (measured faster on cuBLASLt at every
// row count). OCTET_CUDA_GEMV_MAX_ROWS=R and OCTET_CUDA_GEMV_LARGE=N,K (=0: none) move the bounds.
bool gemv_e4m3_preferred(int64_t rows, int64_t n, int64_t k);
void launch_gemv_e4m3(const uint8_t* x, const float* row_scales, int64_t rows, const uint8_t* w, const float* col_scales,
                      int64_t n, int64_t k, float* y, cudaStream_t s);
// Weights that share the input x, in one launch: y_i[m, n_i] = x · w_iᵀ, each [n_i, k].
struct GemvGroup {
  static constexpr int kMaxMembers = 4;
  int count = 0;
  const uint8_t* w[kMaxMembers] = {};
  const float* col_scales[kMaxMembers] = {};
  float* y[kMaxMembers] = {};
  int64_t n[kMaxMembers] = {};
};
void launch_gemv_e4m3_group(const uint8_t* x, const float* row_scales, int64_t rows, const GemvGroup& group, int64_t k,
                            cudaStream_t s);
// Any shape, plain loops: the fallback and the reference the fast paths are tested against.
void launch_matmul_e4m3_simple(const uint8_t* x, const float* row_scales, int64_t rows, const uint8_t* w,
                               const float* col_scales, int64_t n, int64_t k, float* y, cudaStream_t s);

// skinny_gemm_fp8.cu: the same product (one weight or a GemvGroup) for 1–128 rows, k a multiple of
// 64, any n: each block streams 128 weight rows through shared memory (cp.async) with the batch's
// rows staged beside them, on FP8 tensor cores (mma.sync); k is split over blocks where the tiles
// alone would leave the GPU idle, the splits' raw sums kept in scratch (scratch_floats() floats,
// 0 when unsplit) and added in a fixed order: results are deterministic. No allocation or host
// synchronization: capturable in CUDA graphs.
bool skinny_gemm_e4m3_fits(int64_t rows, int64_t k);
int skinny_gemm_e4m3_splits(int64_t rows, const GemvGroup& group, int64_t k);
size_t skinny_gemm_e4m3_scratch_floats(int64_t rows, const GemvGroup& group, int64_t k);
void launch_skinny_gemm_e4m3_group(const uint8_t* x, const float* row_scales, int64_t rows, const GemvGroup& group,
                                   int64_t k, float* scratch, size_t scratch_floats, cudaStream_t s);

// skinny_gemm_wgmma.cu: the same product on sm_90's FP8 warpgroup MMAs (wgmma, the fast path for
// 9–128 rows), k a multiple of 128, any n: persistent blocks split the (tile, k chunk) units evenly;
// tiles shared by several blocks are added in a fixed order (deterministic). scratch: floats for
// the shared tiles' parts and one counter a tile, zero before the first launch (launches leave them
// so). Fits only on sm_90 (the build's 90a code). No allocation or host synchronization.
bool wgmma_skinny_gemm_fits(int64_t rows, int64_t k);
struct WgmmaScratch {
  size_t floats = 0;
  size_t counters = 0;
};
WgmmaScratch wgmma_skinny_gemm_scratch(int64_t rows, const GemvGroup& group, int64_t k);
void launch_wgmma_skinny_gemm(const uint8_t* x, const float* row_scales, int64_t rows, const GemvGroup& group, int64_t k,
                              float* scratch, size_t scratch_floats, uint32_t* counters, size_t counter_count,
                              cudaStream_t s);

// skinny_gemm_wgmma_narrow.cu: the same product for 1–64 rows on wgmma with the batch as the MMA's m
// and the weight rows as its n: tiles of 2·half rows (half 8–128), one a block where they fit the
// SMs, each block over its tile's whole k (no parts, no scratch, deterministic); above 16 rows in
// clusters of `cluster` blocks that share each token chunk's copy (OCTET_CUDA_WGMMA_CLUSTER=1, 2 or 4,
// default 2); up to OCTET_CUDA_WGMMA_STAGE_CHUNKS=1–4 (default 4) 128-byte chunks of k a pipeline
// stage. sm_90 only, k a multiple of 128. No allocation or host synchronization.
bool wgmma_narrow_gemm_fits(int64_t rows, int64_t k);
WgmmaNarrowPlan wgmma_narrow_gemm_plan(int64_t rows, const GemvGroup& group, int64_t k);
void launch_wgmma_narrow_gemm(const uint8_t* x, const float* row_scales, int64_t rows, const GemvGroup& group, int64_t k,
                              cudaStream_t s);

// linear_fp8_block.cu: y[m, n] = row_scales[m] · Σ_b block_scales[n/128][b] · Σ_{k in 128-wide block b}
// x[m, k] · w[n, k], for weights with one scale per 128×128 block (block_scales [ceil(n/128),
// ceil(k/128)]); any shape (partial last blocks), CUDA cores, fast only for decode-sized batches.
void launch_linear_e4m3_block128(const uint8_t* x, const float* row_scales, int64_t rows, const uint8_t* w,
                                 const float* block_scales, int64_t n, int64_t k, float* y, cudaStream_t s);

// kv_cache.cu: K/V rows of a batch into the paged cache. The cache of a layer is a pool of blocks
// [pool_blocks, block_size, kv_heads, head_dim]; position p of slot s lives in block
// block_table[s * blocks_per_slot + p / block_size] at row p % block_size (KvCacheSpec).
enum class KvStorage { f32, bf16, e4m3, e5m2 };
struct KvLayout {
  const int32_t* block_table = nullptr;  // [slots, blocks_per_slot]
  int64_t blocks_per_slot = 0;
  int64_t block_size = 0;
  int64_t kv_heads = 0;
  int64_t head_dim = 0;
  KvStorage storage = KvStorage::f32;
  int block_shift = -1;  // log2(block_size) when it is a power of two, else -1
  int64_t pool_rows = 0;  // rows (pool blocks · block_size) of each layer's K and V pool; 0: not known
};
// Static scales > 0 (a checkpoint's per-layer K/V scales) replace the dynamic per-(token, head) amax.
void launch_kv_write(const float* k, const float* v, int64_t tokens, const int64_t* slots, const int64_t* positions,
                     const KvLayout& layout, float static_k_scale, float static_v_scale, void* k_cache, void* v_cache,
                     float* k_scales, float* v_scales, cudaStream_t s);

// RoPE on q [tokens, heads, head_dim] and k in place, then k and v into the cache: one launch for
// what launch_rope (twice) and launch_kv_write do. With a QkvProduct, q, k and v are first taken from
// the unscaled product of one GEMM over the fused q/k/v group, scaled exactly as launch_scale_split
// would (value · (row_scales[t] · col_scales[c])) into q, k and values_out (v is then not read): the
// split pass's launch is saved, the bits are the same.
struct QkvProduct {
  const float* product = nullptr;  // [tokens, cols]
  int64_t cols = 0;
  int64_t first_col[3] = {};  // q's, k's and v's first product column
  const float* row_scales = nullptr;  // per token
  const float* col_scales = nullptr;  // per product column
  float* values_out = nullptr;  // [tokens, kv_heads · head_dim]: v's rows as the split would write them
};
void launch_rope_kv_write(float* q, float* k, const float* v, int64_t tokens, int64_t heads, const int64_t* slots,
                          const int64_t* positions, const float* inverse_frequencies, const KvLayout& layout,
                          float static_k_scale, float static_v_scale, void* k_cache, void* v_cache, float* k_scales,
                          float* v_scales, cudaStream_t s, const QkvProduct* from_product = nullptr);

// attention.cu: causal GQA over each token's slot, positions [0, position]. Long contexts with few
// items are split over the positions (flash-decoding) and the splits merged. The number of splits
// depends only on the shape (tokens, heads, max_context = the cache's positions per slot), never on
// the positions themselves, so a recorded step replays with any positions; each token divides its
// own positions among the splits. Two kernels: `grouped` (v2: a block per (token, KV head, split),
// the group's query heads together on tensor cores, the splits merged in the same launch by the last
// block of each item) for BF16/FP8 caches, head_dim 64 or 128 and groups of 1–8; v1 (a block per
// (token, query head, split), merged by a second kernel) for the rest and for A/B comparison.
// scratch holds attention_scratch().floats floats; counters holds .counters zeros, and launches
// leave them zero again. token_list != nullptr: only the batch entries token_list[0 .. tokens) are
// computed (q and out are still indexed by batch entry), the others being left to
// launch_prefill_attention.
enum class DecodeAttention { v1, grouped };
struct AttentionScratch {
  size_t floats = 0;    // split partials
  size_t counters = 0;  // uint32 per (token, KV head): finished splits
};
AttentionScratch attention_scratch(int64_t tokens, int64_t heads, int64_t max_context, const KvLayout& layout,
                                   DecodeAttention kernel);
void launch_attention(const float* q, int64_t tokens, int64_t heads, const int64_t* slots, const int64_t* positions,
                      int64_t max_context, const KvLayout& layout, const void* k_cache, const void* v_cache,
                      const float* k_scales, const float* v_scales, float* scratch, uint32_t* counters, float* out,
                      cudaStream_t s, DecodeAttention kernel, const int32_t* token_list = nullptr);

// attention_prefill.cu: the same attention on tensor cores (mma.sync, BF16 operands, float32
// softmax and accumulators) for runs of a batch: entries of one slot at consecutive positions, in
// batch order, at least min_run_tokens long. head_dim 64 or 128. A run's rows are its (token,
// query head of the KV group) pairs, kPrefillTileRows per block, a block per (tile, KV head); the
// next K/V tile is loaded while the current one is computed.
constexpr int kPrefillTileRows = 128;
struct PrefillTile {
  int32_t first_token = 0;  // the run's first batch entry
  int32_t run_tokens = 0;
  int32_t first_row = 0;  // of the tile, within the run's run_tokens · group rows
};
struct PrefillPlan {
  std::vector<PrefillTile> tiles;     // the longest-running tiles first
  std::vector<int32_t> other_tokens;  // batch entries outside every run, for launch_attention
};
bool prefill_attention_fits(int64_t head_dim);
PrefillPlan plan_prefill_attention(const int64_t* slots, const int64_t* positions, int64_t tokens, int64_t group,
                                   int64_t min_run_tokens);
void launch_prefill_attention(const float* q, int64_t heads, const int64_t* slots, const int64_t* positions,
                              const PrefillTile* tiles, int64_t tile_count, const KvLayout& layout, const void* k_cache,
                              const void* v_cache, const float* k_scales, const float* v_scales, float* out,
                              cudaStream_t s);

// random_weights.cu: deterministic pseudo-random weights generated on the device.
void launch_random_e4m3(uint8_t* codes, int64_t count, uint64_t seed, cudaStream_t s);  // codes of N(0,1)·(448/4)
void launch_random_f32(float* out, int64_t count, float mean, float stddev, uint64_t seed, cudaStream_t s);
void launch_random_bf16(uint16_t* out, int64_t count, float stddev, uint64_t seed, cudaStream_t s);

}  // namespace octet::backend::cuda
