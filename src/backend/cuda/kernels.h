#pragma once
// Launch wrappers of the CUDA kernels, one family per .cu file. Each runs on the given stream,
// checks its arguments (octet::Error) and the launch (cudaGetLastError). Activations are float32
// row-major unless a name says otherwise; sizes are elements unless a name says bytes.
#include "backend/cuda/paged_kv.h"

#include <cuda_runtime.h>

#include <cstdint>

namespace octet::backend::cuda {

// FP8 and BF16 operands (weights and the activations converted for them) keep their inner dimension
// padded with zeros to a multiple of kPadK elements: every row starts 64-byte aligned, the GEMV needs
// no tail code, and cuBLASLt's 16-element rule for FP8 holds for any in_features.
inline constexpr int64_t kPadK = 64;
inline int64_t padded_k(int64_t k) { return (k + kPadK - 1) / kPadK * kPadK; }

// embedding.cu: out[t] = table[tokens[t]] (table bf16 or float32); out[i] = x[rows[i]].
void launch_embed_bf16(const uint16_t* table, const int32_t* tokens, int64_t count, int64_t hidden, float* out,
                       cudaStream_t s);
void launch_embed_f32(const float* table, const int32_t* tokens, int64_t count, int64_t hidden, float* out,
                      cudaStream_t s);
void launch_gather_rows(const float* x, const int64_t* rows, int64_t count, int64_t cols, float* out, cudaStream_t s);

// rmsnorm.cu: out = x / rms(x) · weight per row (out may alias x); the fused form first does
// residual += delta and normalizes the sum; add is x += y.
void launch_rmsnorm(const float* x, const float* weight, float eps, int64_t rows, int64_t cols, float* out,
                    cudaStream_t s);
void launch_add_rmsnorm(float* residual, const float* delta, const float* weight, float eps, int64_t rows,
                        int64_t cols, float* out, cudaStream_t s);
void launch_add(float* x, const float* y, int64_t count, cudaStream_t s);

// rope.cu: x [tokens, heads · head_dim] rotated in place, rotate-half pairing (i, i + head_dim/2),
// angle = float(position) · inverse_frequencies[i] in float32.
void launch_rope(float* x, int64_t tokens, int64_t heads, int64_t head_dim, const int64_t* positions,
                 const float* inverse_frequencies, cudaStream_t s);

// swiglu.cu: out = silu(gate) · up
void launch_swiglu(const float* gate, const float* up, int64_t count, float* out, cudaStream_t s);

// quantize.cu
// codes [rows, out_stride]: E4M3 of x / scale with scale = max(amax(row) / 448, FLT_MIN) (1 for an
// all-zero row), or static_scale when > 0; columns [cols, out_stride) are zero. Same arithmetic as
// fp8::quantize_row on the CPU, so the codes match bit for bit.
void launch_quantize_rows_e4m3(const float* x, int64_t rows, int64_t cols, int64_t out_stride, float static_scale,
                               uint8_t* codes, float* row_scales, cudaStream_t s);
// out [rows, out_stride] bf16 (round to nearest even), zero past cols.
void launch_rows_to_bf16(const float* x, int64_t rows, int64_t cols, int64_t out_stride, uint16_t* out,
                         cudaStream_t s);
// dst[m, n] = src[m, n] · row_scales[m] · col_scales[n]; null scales count as 1 (a strided copy). dst
// may alias src when the strides agree.
void launch_scale_rows_cols(const float* src, int64_t src_stride, float* dst, int64_t dst_stride, int64_t rows,
                            int64_t cols, const float* row_scales, const float* col_scales, cudaStream_t s);

// gemv_fp8.cu: y[m, n] = x_scales[m] · w_scales[n] · Σ_k x[m, k] · w[n, k] for 1 ≤ rows ≤ kGemvMaxRows,
// x [rows, k_padded] and w [n, k_padded] E4M3 codes (k_padded a multiple of kPadK, 16-byte aligned
// bases), y [rows, n].
inline constexpr int64_t kGemvMaxRows = 8;
void launch_gemv_e4m3(const uint8_t* x, const float* x_scales, int64_t rows, const uint8_t* w,
                      const float* w_scales, int64_t n, int64_t k_padded, float* y, cudaStream_t s);
// Tuning variants of the same kernel, for the micro-benchmark; launch_gemv_e4m3 picks one by n.
struct GemvVariant {
  int warps;      // warps per block, splitting K
  int row_tiles;  // 16-row tiles per block
  int unroll;     // 64-byte K tiles per warp in flight
};
int gemv_variant_count();
GemvVariant gemv_variant(int index);
void launch_gemv_e4m3_variant(int index, const uint8_t* x, const float* x_scales, int64_t rows, const uint8_t* w,
                              const float* w_scales, int64_t n, int64_t k_padded, float* y, cudaStream_t s);

// matmul_simple.cu: one thread per output, any shape and stride: the fallback when cuBLASLt has no
// algorithm, and an independent check of the fast paths. Scales may be null (1).
enum class OperandType { e4m3, bf16, f32 };
void launch_matmul_simple(OperandType type, const void* x, int64_t x_stride, const float* x_scales, int64_t rows,
                          const void* w, int64_t w_stride, const float* w_scales, int64_t n, int64_t k, float* y,
                          int64_t y_stride, cudaStream_t s);

// kv_cache.cu: k, v [tokens, kv_heads · head_dim] into layer's blocks at each token's (slot,
// position); FP8 storage scales each (token, head) by its amax (or the static scale when > 0).
void launch_kv_write(const float* k, const float* v, int64_t tokens, const int64_t* slots, const int64_t* positions,
                     const PagedKvView& cache, int64_t layer, float static_k_scale, float static_v_scale,
                     cudaStream_t s);

// attention.cu: causal GQA of q [tokens, heads · head_dim] over each token's slot, positions
// [0, position]; out has q's shape. Long sequences are split over `splits` blocks per (token, kv head)
// (flash-decoding), whose partial results (workspace of attention_workspace_floats) are merged by a
// second kernel.
int attention_splits(int64_t tokens, int64_t kv_heads, int64_t longest_sequence, int multiprocessors);
int64_t attention_workspace_floats(int64_t tokens, int64_t heads, int64_t head_dim, int splits);
void launch_attention(const float* q, int64_t tokens, int64_t heads, const int64_t* slots, const int64_t* positions,
                      const PagedKvView& cache, int64_t layer, int splits, float* workspace, float* out,
                      cudaStream_t s);

// random_weights.cu: deterministic pseudo-random tensors made on the device (--dummy-weights).
// E4M3 codes of N(0, 1) · 112 (amax ≈ 448) in [rows, stride] with zeros past cols.
void launch_random_e4m3(uint8_t* codes, int64_t rows, int64_t cols, int64_t stride, uint64_t seed, cudaStream_t s);
void launch_random_bf16(uint16_t* out, int64_t rows, int64_t cols, int64_t stride, float stddev, uint64_t seed,
                        cudaStream_t s);
void launch_random_f32(float* out, int64_t count, float mean, float stddev, uint64_t seed, cudaStream_t s);

}  // namespace octet::backend::cuda
