#pragma once
// cuBLASLt matrix products for the linear layers with more rows than the GEMV takes:
// out[m, n] = Σ_k x[m, k] · w[n, k] with row-major x (row stride ldx), w (ldw) and float32 out (ldo).
// In cuBLASLt's column-major terms this is D (n × m) = Wᵀ · X, the "TN" form that FP8 requires.
// FP8 is E4M3 × E4M3 with per-tensor scale 1: per-channel and per-token scales are applied by the
// caller's epilogue (launch_scale_rows_cols). Accumulation is float32 for every type (no TF32 for
// f32, no FP8 fast accumulation). Plans (descriptors, layouts, the chosen algorithm) are cached per
// shape, strides and pointer alignment.
#include <cublasLt.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <map>
#include <tuple>

namespace octet::backend::cuda {

enum class GemmType { e4m3, bf16, f32 };

class CublasLtGemm {
 public:
  CublasLtGemm();  // on the current device
  ~CublasLtGemm();
  CublasLtGemm(const CublasLtGemm&) = delete;
  CublasLtGemm& operator=(const CublasLtGemm&) = delete;

  // False when cuBLASLt has no algorithm for this case (the caller falls back to its own kernel);
  // errors of the call itself throw.
  bool run(GemmType type, const void* x, int64_t ldx, const void* w, int64_t ldw, float* out, int64_t ldo, int64_t m,
           int64_t n, int64_t k, cudaStream_t s);

  static constexpr size_t kWorkspaceBytes = size_t{32} << 20;

 private:
  struct Plan {
    cublasLtMatmulDesc_t desc = nullptr;
    cublasLtMatrixLayout_t a = nullptr, b = nullptr, d = nullptr;
    cublasLtMatmulAlgo_t algo{};
    bool usable = false;
  };
  using Key = std::tuple<int, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, uint32_t, uint32_t, uint32_t>;
  Plan& plan(const Key& key);

  cublasLtHandle_t handle_ = nullptr;
  void* workspace_ = nullptr;
  float* one_ = nullptr;  // device 1.0f for the FP8 scale pointers
  std::map<Key, Plan> plans_;
};

}  // namespace octet::backend::cuda
