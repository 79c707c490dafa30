#include "backend/cpu/cpu_attention.h"

#include "backend/cpu/dot_kernels.h"
#include "common/error.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace octet::backend::cpu {

void attention_over_cache(ThreadPool& pool, const CpuKvCache& cache, int64_t layer, const TokenBatch& batch,
                          const float* q, int64_t q_cols, float* out) {
  const auto& spec = cache.spec;
  const int64_t head_dim = spec.head_dim;
  const int64_t heads = q_cols / head_dim;
  if (heads % spec.kv_heads != 0) fail("attention: {} query heads not a multiple of {} kv heads", heads, spec.kv_heads);
  const int64_t group = heads / spec.kv_heads;
  const float inv_sqrt_dim = 1.0f / std::sqrt(static_cast<float>(head_dim));
  const size_t work = batch.size() * static_cast<size_t>(heads);
  pool.parallel_for(work, [&](size_t begin, size_t end) {
    std::vector<float> scores, key(head_dim), value(head_dim), acc(head_dim);
    for (size_t item = begin; item < end; ++item) {
      const size_t t = item / heads;
      const int64_t h = static_cast<int64_t>(item % heads), kv_head = h / group;
      const int64_t slot = batch.slots[t], last = batch.positions[t];
      const float* query = q + t * q_cols + h * head_dim;
      scores.resize(static_cast<size_t>(last + 1));
      float max_score = -INFINITY;
      for (int64_t p = 0; p <= last; ++p) {
        cache.read_k(layer, slot, p, kv_head, key.data());
        scores[p] = dot(query, key.data(), head_dim) * inv_sqrt_dim;
        max_score = std::max(max_score, scores[p]);
      }
      double total = 0;
      for (int64_t p = 0; p <= last; ++p) {
        scores[p] = std::exp(scores[p] - max_score);
        total += scores[p];
      }
      std::fill(acc.begin(), acc.end(), 0.0f);
      for (int64_t p = 0; p <= last; ++p) {
        cache.read_v(layer, slot, p, kv_head, value.data());
        const float weight = scores[p];
        for (int64_t i = 0; i < head_dim; ++i) acc[i] += weight * value[i];
      }
      float* dst = out + t * q_cols + h * head_dim;
      const float inv_total = static_cast<float>(1.0 / total);
      for (int64_t i = 0; i < head_dim; ++i) dst[i] = acc[i] * inv_total;
    }
  });
}

}  // namespace octet::backend::cpu
