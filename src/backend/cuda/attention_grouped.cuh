#pragma once
// The grouped decode attention kernel (attention_grouped.cu) for launch_attention (attention.cu),
// which owns the choice between it and v1 and the scratch both need.
#include "backend/cuda/kernels.h"

#include <cuda_runtime.h>

#include <cstdint>

namespace octet::backend::cuda {

// BF16 / FP8 caches, head_dim 64 or 128, groups of 1–8 query heads per KV head.
bool grouped_attention_fits(const KvLayout& layout, int64_t heads);
// Whether a launch of `tokens` tokens takes the build whose K/V tiles the copy engine (TMA) brings:
// FP8 caches at head_dim 128 in pool blocks of whole 16-position tiles, on sm_90 and later, from 16
// tokens on (or OCTET_CUDA_ATTENTION_TMA_TOKENS). Asks the current device.
bool grouped_attention_tma(const KvLayout& layout, int64_t tokens);
// Splits of each (token, KV head) item: a function of the shape only (replays with any positions),
// aiming at 512 blocks or OCTET_CUDA_GROUPED_ATTENTION_BLOCKS (a count, for tuning).
int grouped_attention_splits(int64_t items, int64_t max_context);
// items = tokens · kv_heads blocks of `splits` each; partial holds items · splits · group ·
// (head_dim + 2) floats when splits > 1, counters one zero per item (left zero).
void launch_grouped_attention(const float* q, int group, const int64_t* slots, const int64_t* positions,
                              const KvLayout& layout, const void* k_cache, const void* v_cache, const float* k_scales,
                              const float* v_scales, int64_t items, int splits, float* out, float* partial,
                              uint32_t* counters, const int32_t* token_list, cudaStream_t s);

}  // namespace octet::backend::cuda
