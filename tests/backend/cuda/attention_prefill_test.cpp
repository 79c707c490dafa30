// The tensor-core prefill attention (attention_prefill.cu) against the CPU backend on shapes the
// CudaVsCpu test does not reach: a 1000-token chunk continuing a 300-position cached prefix in the
// same batch as a 203-token prompt (not a multiple of the kernel's tile) and a 16-token chunk (the
// shortest run the kernel takes) continuing it; GQA groups 1, 2, 3 (a token's rows straddle tiles), 7 and 8; head_dim 64 and
// 128; every KV storage, FP8 with dynamic and static scales; block sizes that shift and divide;
// shuffled block tables; outputs poisoned with NaN. Fresh random inputs per run (seed printed).
// Tolerances: the tensor-core rows within 1e-2 norm-relative over the batch and 2e-2 per token (q
// and the probabilities are rounded to BF16, 2^-9 relative each, ~2e-3 expected; a wrong mask,
// block, row or scale is off by O(1), and the per-token bound catches a single wrong token that the
// batch-wide norm would dilute); the CUDA-core rows the bounds of that kernel (1e-5 f32, 1e-3 else).
#include "backend/backend.h"
#include "backend/cpu/cpu_tensors.h"
#include "backend/device.h"
#include "support/backend_rows.h"
#include "support/random.h"
#include "support/require_gpu.h"
#include "support/token_segments.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <vector>

namespace octet::backend {
namespace {

struct Case {
  int64_t heads, kv_heads, head_dim;
  KvCacheSpec::Storage storage;
  fp8::Format format;
  bool static_scales;
  int64_t block_size;
};

// One backend under test with its cache.
struct Subject {
  std::string name;
  std::unique_ptr<Backend> backend;
  std::unique_ptr<KvCache> cache;
};

TEST(CudaPrefillAttention, LongChunksEveryGroupAndStorageMatchCpu) {
  OCTET_REQUIRE_GPU();
  std::mt19937_64 rng(testing::test_seed("CudaPrefillAttention.LongChunksEveryGroupAndStorageMatchCpu"));
  const Case cases[] = {{8, 1, 128, KvCacheSpec::Storage::fp8, fp8::Format::e4m3, false, 16},
                        {4, 4, 64, KvCacheSpec::Storage::bf16, fp8::Format::e4m3, false, 7},
                        {6, 2, 64, KvCacheSpec::Storage::fp8, fp8::Format::e5m2, false, 16},
                        {7, 1, 128, KvCacheSpec::Storage::f32, fp8::Format::e4m3, false, 5},
                        {4, 2, 128, KvCacheSpec::Storage::fp8, fp8::Format::e4m3, true, 32}};
  // Batch 1: slot 0's first 300 positions, slot 1's 203-token prompt, slot 2's first token.
  // Batch 2: slot 2's second token, slot 0's 1000-token chunk after its 300, slot 1's 16-token chunk.
  const std::vector<std::vector<testing::TokenSegment>> batches = {{{0, 0, 300}, {1, 0, 203}, {2, 0, 1}},
                                                                   {{2, 1, 1}, {0, 300, 1000}, {1, 203, 16}}};
  constexpr int64_t slots = 3, max_positions = 1300;
  const int64_t reach[slots] = {1300, 219, 2};
  auto cpu = make_cpu_backend(2);
  for (const Case& c : cases) {
    const std::string what = "heads " + std::to_string(c.heads) + "/" + std::to_string(c.kv_heads) + " head_dim " +
                             std::to_string(c.head_dim) + " storage " + std::to_string(int(c.storage)) + " format " +
                             std::to_string(int(c.format)) + " static " + std::to_string(c.static_scales);
    KvCacheSpec spec{1, c.kv_heads, c.head_dim, max_positions, slots, c.storage, c.format};
    spec.block_size = c.block_size;
    std::vector<int64_t> needed(slots);
    int64_t total = 0;
    for (int64_t slot = 0; slot < slots; ++slot) total += needed[slot] = (reach[slot] + c.block_size - 1) / c.block_size;
    spec.num_blocks = total + 2;
    if (c.static_scales) {
      spec.static_k_scales = {4.0f / 448.0f};  // values of |x| > 4 saturate, on every backend
      spec.static_v_scales = {3.0f / 448.0f};
    }
    std::vector<int32_t> pool(static_cast<size_t>(spec.num_blocks));
    for (size_t b = 0; b < pool.size(); ++b) pool[b] = static_cast<int32_t>(b);
    std::shuffle(pool.begin(), pool.end(), rng);
    auto cache_cpu = cpu->make_kv_cache(spec);
    std::vector<Subject> subjects;
    subjects.push_back({"pipelined", make_cuda_backend(0), nullptr});
    for (Subject& subject : subjects) subject.cache = subject.backend->make_kv_cache(spec);
    auto next = pool.begin();
    for (int64_t slot = 0; slot < slots; ++slot) {
      const std::vector<int32_t> table(next, next + needed[slot]);
      next += needed[slot];
      cache_cpu->set_block_table(slot, table);
      for (Subject& subject : subjects) subject.cache->set_block_table(slot, table);
    }

    for (const auto& segments : batches) {
      std::vector<bool> tensor_core;  // per token: in a run the tensor-core kernel takes
      const TokenBatch batch = testing::batch_of_segments(segments, 16, tensor_core);
      const auto count = static_cast<int64_t>(batch.size());
      const int64_t q_cols = c.heads * c.head_dim, kv_cols = c.kv_heads * c.head_dim;
      const auto q = testing::random_normal(rng, static_cast<size_t>(count * q_cols));
      const auto k = testing::random_normal(rng, static_cast<size_t>(count * kv_cols));
      const auto v = testing::random_normal(rng, static_cast<size_t>(count * kv_cols));
      auto qc = cpu->make_activations(count, q_cols), kc = cpu->make_activations(count, kv_cols),
           vc = cpu->make_activations(count, kv_cols), oc = cpu->make_activations(count, q_cols);
      static_cast<cpu::CpuActivations&>(*qc).data = q;
      static_cast<cpu::CpuActivations&>(*kc).data = k;
      static_cast<cpu::CpuActivations&>(*vc).data = v;
      cpu->prepare_batch(batch);
      cpu->kv_write(*cache_cpu, 0, batch, *kc, *vc);
      cpu->attention(*cache_cpu, 0, batch, *qc, *oc);
      const std::vector<float>& want = static_cast<cpu::CpuActivations&>(*oc).data;

      for (Subject& subject : subjects) {
        Backend& gpu = *subject.backend;
        auto qg = gpu.make_activations(count, q_cols), kg = gpu.make_activations(count, kv_cols),
             vg = gpu.make_activations(count, kv_cols), og = gpu.make_activations(count, q_cols);
        testing::upload_rows(gpu, q, *qg);
        testing::upload_rows(gpu, k, *kg);
        testing::upload_rows(gpu, v, *vg);
        testing::upload_rows(gpu, std::vector<float>(static_cast<size_t>(count * q_cols), std::numeric_limits<float>::quiet_NaN()), *og);
        gpu.prepare_batch(batch);
        gpu.kv_write(*subject.cache, 0, batch, *kg, *vg);
        gpu.attention(*subject.cache, 0, batch, *qg, *og);
        const std::vector<float> got = testing::download_rows(gpu, *og);

        const std::string where = subject.name + " kernel, " + what + ", tokens " + std::to_string(count);
        std::vector<float> got_rows[2];
        std::vector<double> want_rows[2];
        double worst_token_error = 0;
        int64_t worst_token = -1;
        for (int64_t token = 0; token < count; ++token) {
          const auto begin = static_cast<size_t>(token * q_cols), end = static_cast<size_t>((token + 1) * q_cols);
          for (size_t i = begin; i < end; ++i)
            ASSERT_FALSE(std::isnan(got[i])) << "token " << token << " element " << i - begin << " unwritten, " << where;
          const std::vector<float> got_token(got.begin() + begin, got.begin() + end);
          const std::vector<double> want_token(want.begin() + begin, want.begin() + end);
          got_rows[tensor_core[token]].insert(got_rows[tensor_core[token]].end(), got_token.begin(), got_token.end());
          want_rows[tensor_core[token]].insert(want_rows[tensor_core[token]].end(), want_token.begin(), want_token.end());
          if (tensor_core[token]) {
            const double e = testing::relative_error(got_token, want_token);
            if (e > worst_token_error) worst_token_error = e, worst_token = token;
          }
        }
        ASSERT_FALSE(got_rows[1].empty()) << where;
        EXPECT_LT(testing::relative_error(got_rows[1], want_rows[1]), 1e-2) << "tensor-core rows, " << where;
        EXPECT_LT(worst_token_error, 2e-2) << "tensor-core token " << worst_token << " (position "
                                           << (worst_token >= 0 ? batch.positions[worst_token] : -1) << ", slot "
                                           << (worst_token >= 0 ? batch.slots[worst_token] : -1) << "), " << where;
        if (!got_rows[0].empty()) {
          EXPECT_LT(testing::relative_error(got_rows[0], want_rows[0]), c.storage == KvCacheSpec::Storage::f32 ? 1e-5 : 1e-3)
              << "CUDA-core rows, " << where;
        }
      }
    }
  }
}

}  // namespace
}  // namespace octet::backend
