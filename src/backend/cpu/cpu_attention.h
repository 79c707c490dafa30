#pragma once
#include "backend/cpu/cpu_tensors.h"
#include "common/thread_pool.h"

namespace octet::backend::cpu {

// Causal GQA attention of each batch token over its slot's cached positions [0, position]:
// q, out: [tokens, heads * head_dim]; softmax(q·kᵀ / sqrt(head_dim)) · v, in float32.
void attention_over_cache(ThreadPool& pool, const CpuKvCache& cache, int64_t layer, const TokenBatch& batch,
                          const float* q, int64_t q_cols, float* out);

}  // namespace octet::backend::cpu
