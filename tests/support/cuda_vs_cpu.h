#pragma once
// The fixture of the CUDA-against-CPU tests (tests/backend/cuda_backend_test.cpp: kernels and ops; cuda_model_steps_test.cpp:
// whole model steps): a CPU and a CUDA backend, a per-test seeded generator, and activation pairs holding
// the same values on both. Skips, saying so, where no GPU can be used.
#include "backend/backend.h"
#include "backend/cpu/cpu_tensors.h"
#include "backend/device.h"
#include "support/backend_rows.h"
#include "support/random.h"
#include "support/require_gpu.h"
#include "support/scoped_environment.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <initializer_list>
#include <limits>
#include <memory>
#include <numeric>
#include <random>
#include <vector>

namespace octet::backend {

inline std::vector<float>& host(Activations& a) { return static_cast<cpu::CpuActivations&>(a).data; }

// A KV cache's storage and head size, as the cache tests vary them.
struct KvVariant {
  KvCacheSpec::Storage storage;
  fp8::Format format;
  bool static_scales;
  int64_t head_dim;
};

// The same values in a CPU and a GPU activation buffer.
struct Pair {
  std::unique_ptr<Activations> cpu, gpu;
};

class CudaVsCpu : public ::testing::Test {
 protected:
  void SetUp() override {
    OCTET_REQUIRE_GPU();
    cpu_ = make_cpu_backend(2);
    gpu_ = make_cuda_backend(0);
    rng_.seed(testing::test_seed(::testing::UnitTest::GetInstance()->current_test_info()->name()));
  }

  Pair pair(int64_t rows, int64_t cols, const std::vector<float>& values) {
    Pair p{cpu_->make_activations(rows, cols), gpu_->make_activations(rows, cols)};
    host(*p.cpu) = values;
    upload(*p.gpu, values);
    return p;
  }
  Pair poisoned(int64_t rows, int64_t cols) {
    return pair(rows, cols, std::vector<float>(static_cast<size_t>(rows * cols), std::numeric_limits<float>::quiet_NaN()));
  }
  // Uploads through the backend's own API: a float32 embedding table whose rows are the values,
  // gathered in order.
  void upload(Activations& gpu, const std::vector<float>& values) { testing::upload_rows(*gpu_, values, gpu); }
  std::vector<float> download(const Activations& gpu) { return testing::download_rows(*gpu_, gpu); }
  // Replaces gpu_ (before the test allocates on it) by a backend made with the environment
  // variable set to value (restored afterwards).
  void use_backend_with(const char* variable, const char* value) {
    const testing::ScopedEnvironment environment(variable, value);
    gpu_ = make_cuda_backend(0);
  }
  // Every token's attention on the CUDA-core kernel, for the tests of that kernel's tighter bounds.
  void use_cuda_core_attention() { use_backend_with("OCTET_CUDA_TC_ATTENTION", "0"); }
  // FP8 linears of 17–128 rows on the skinny GEMM instead of cuBLASLt.
  void use_skinny_gemm() { use_backend_with("OCTET_CUDA_SKINNY_GEMM", "1"); }
  // A paged cache of 2 layers and 3 slots in the variant's storage: blocks of block_size positions out of a
  // pool of num_blocks. Static scales (where the variant has them) make layer 1 saturate |k| > 4 and |v| > 3 on
  // both backends.
  static KvCacheSpec paged_spec(const KvVariant& variant, int64_t kv_heads, int64_t max_positions, int64_t block_size,
                                int64_t num_blocks) {
    KvCacheSpec spec{2, kv_heads, variant.head_dim, max_positions, 3, variant.storage, variant.format};
    spec.block_size = block_size;
    spec.num_blocks = num_blocks;
    if (variant.static_scales) {
      spec.static_k_scales = {0.5f, 4.0f / 448.0f};
      spec.static_v_scales = {0.5f, 3.0f / 448.0f};
    }
    return spec;
  }
  // Block tables of the given sizes (one a slot, from slot 0) out of a pool of pool_blocks handed out in a
  // shuffled order, set on both caches: the blocks of a slot are neither contiguous nor in order.
  void set_shuffled_block_tables(KvCache& cpu, KvCache& gpu, int32_t pool_blocks, std::initializer_list<int32_t> sizes) {
    std::vector<int32_t> pool(static_cast<size_t>(pool_blocks));
    std::iota(pool.begin(), pool.end(), 0);
    std::shuffle(pool.begin(), pool.end(), rng_);
    auto next = pool.begin();
    int64_t slot = 0;
    for (const int32_t size : sizes) {
      const std::vector<int32_t> table(next, next + size);
      next += size;
      cpu.set_block_table(slot, table);
      gpu.set_block_table(slot++, table);
    }
  }
  // Three slots' batches: slot 0's prompt of first_prompt tokens; slots 1 and 2's prompts (23 and 17 tokens)
  // in one batch; then two decode steps of all three, in the order 2, 0, 1.
  static std::vector<TokenBatch> three_slot_batches(int64_t first_prompt) {
    std::vector<TokenBatch> batches(4);
    for (int64_t i = 0; i < first_prompt; ++i) batches[0].positions.push_back(i), batches[0].slots.push_back(0);
    for (int64_t slot : {1, 2})
      for (int64_t i = 0; i < (slot == 1 ? 23 : 17); ++i) batches[1].positions.push_back(i), batches[1].slots.push_back(slot);
    for (int64_t step = 0; step < 2; ++step) {
      batches[2 + step].slots = {2, 0, 1};
      batches[2 + step].positions = {17 + step, first_prompt + step, 23 + step};
    }
    for (TokenBatch& batch : batches) batch.tokens.assign(batch.positions.size(), 0);
    return batches;
  }
  double error(const Pair& p) {
    std::vector<float> g = download(*p.gpu);
    const auto& c = host(*p.cpu);
    for (float v : g)
      if (std::isnan(v)) return INFINITY;  // an unwritten (poisoned) element
    return testing::relative_error(g, std::vector<double>(c.begin(), c.end()));
  }

  std::unique_ptr<Backend> cpu_, gpu_;
  std::mt19937_64 rng_;
};

}  // namespace octet::backend
