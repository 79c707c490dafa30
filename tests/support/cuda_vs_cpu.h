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

#include <cmath>
#include <limits>
#include <memory>
#include <random>
#include <vector>

namespace octet::backend {

inline std::vector<float>& host(Activations& a) { return static_cast<cpu::CpuActivations&>(a).data; }

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
