#pragma once
// Launch wrappers of the kernels of `numerics: reproducible` (reproducible.cu): the arithmetic of
// backend/canonical_numerics.h in the order the CPU backend's cpu_reproducible.cpp uses, so both give
// the same bits. They trade speed for that (one warp per dot product, every sum in double).
#include "backend/cuda/kernels.h"

#include <cuda_runtime.h>

#include <cstdint>

namespace octet::backend::cuda::reproducible {

// residual += delta (delta == nullptr: nothing added); out = residual / rms(residual) · weight; out may be residual.
void launch_rmsnorm(float* residual, const float* delta, const float* weight, float eps, int64_t rows, int64_t cols,
                    float* out, cudaStream_t s);
// Per-row E4M3 codes and scales of x (static_scale > 0: that scale for every row).
void launch_quantize_rows(const float* x, int64_t rows, int64_t cols, float static_scale, uint8_t* codes, float* scales,
                          cudaStream_t s);

// One linear layer's weights as the kernels read them (exactly one of the pointers is set).
struct LinearOperand {
  const uint8_t* e4m3_codes = nullptr;  // [out, in]
  const float* channel_scales = nullptr;  // per-channel FP8
  const float* block_scales = nullptr;    // block-scaled FP8: [ceil(out/128), ceil(in/128)]
  const uint16_t* bf16 = nullptr;
  const float* f32 = nullptr;
};
// y = x · Wᵀ: [rows, in] → [rows, out]. FP8 reads x_codes / x_scales (launch_quantize_rows), the other
// formats x (bf16 rounds it first).
void launch_linear(const float* x, const uint8_t* x_codes, const float* x_scales, const LinearOperand& w, int64_t rows,
                   int64_t in, int64_t out, float* y, cudaStream_t s);

// x: [tokens, heads · head_dim], rotated in place.
void launch_rope(float* x, int64_t tokens, int64_t heads, int64_t head_dim, const int64_t* positions,
                 const float* inverse_frequencies, cudaStream_t s);

// Causal GQA attention of each token over its slot's positions [0, position]; head_dim ≤ kMaxHeadDim.
inline constexpr int64_t kMaxHeadDim = 256;
void launch_attention(const float* q, int64_t tokens, int64_t heads, const int64_t* slots, const int64_t* positions,
                      const KvLayout& layout, const void* k_cache, const void* v_cache, const float* k_scales,
                      const float* v_scales, float* out, cudaStream_t s);

// out = silu(gate) · up over count elements.
void launch_swiglu(const float* gate, const float* up, int64_t count, float* out, cudaStream_t s);

}  // namespace octet::backend::cuda::reproducible
