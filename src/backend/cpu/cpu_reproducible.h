#pragma once
// The CPU backend's ops under `numerics: reproducible`: backend/canonical_numerics.h's arithmetic, in
// the order the CUDA backend's reproducible kernels use (cuda/reproducible.cu), so both give the same
// bits. Ops not listed here (embedding gather, residual add, the KV-cache write) already compute the
// same values on both backends and stay as they are.
#include "backend/cpu/cpu_tensors.h"
#include "common/thread_pool.h"

#include <span>

namespace octet::backend::cpu::reproducible {

// out = x / rms(x) · weight, rows of `cols`; out may be x.
void rmsnorm(ThreadPool& pool, const float* x, int64_t rows, int64_t cols, const float* weight, float eps, float* out);
// out = x · Wᵀ in w's format (FP8: the rows quantized per token, or by the static input scale).
void linear(ThreadPool& pool, const CpuActivations& x, const CpuLinear& w, CpuActivations& out);
// x: [tokens, heads · head_dim], rotated in place (rotate-half pairing).
void rope(ThreadPool& pool, float* x, int64_t tokens, int64_t cols, int64_t head_dim, std::span<const int64_t> positions,
          std::span<const float> inverse_frequencies);
// Causal GQA attention over the cache: q, out [tokens, heads · head_dim].
void attention(ThreadPool& pool, const CpuKvCache& cache, int64_t layer, const TokenBatch& batch, const float* q,
               int64_t q_cols, float* out);
// out = silu(gate) · up over count elements.
void swiglu(ThreadPool& pool, const float* gate, const float* up, size_t count, float* out);

}  // namespace octet::backend::cpu::reproducible
