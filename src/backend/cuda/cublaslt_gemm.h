#pragma once
// cuBLASLt matrix products for the linear layers: out[m, n] = Σ_k x[m, k] · w[n, k] with
// row-major x [m, k], w [n, k] and out [m, n] (cuBLASLt's column-major "TN" form: D = Wᵀ·X).
// FP8 (E4M3 × E4M3 → float32, per-tensor scale 1; per-row / per-channel scales are applied by the
// caller's epilogue), BF16 × BF16 → float32, and float32 without TF32.
#include <cublasLt.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <map>
#include <tuple>
#include <vector>

namespace octet::backend::cuda {

enum class GemmType { e4m3, bf16, f32 };

class CublasLtGemm {
 public:
  CublasLtGemm();
  ~CublasLtGemm();
  CublasLtGemm(const CublasLtGemm&) = delete;
  CublasLtGemm& operator=(const CublasLtGemm&) = delete;

  // False when cuBLASLt has no algorithm for this shape (the caller falls back to its own kernel).
  // Decode-sized products (m ≤ kMaxTunedRows) are timed on their first eager call: each of up to
  // kCandidates algorithms the heuristic offers runs on the call's own operands, and the fastest
  // is kept for the shape (the heuristic's first pick reached 21–32% of the H200's bandwidth roofline
  // on 8B at 32–128 tokens). Never while the stream is being captured into a CUDA graph (a captured
  // call keeps the heuristic's pick; the next eager call tunes). OCTET_CUDA_GEMM_TUNE=0 keeps the
  // heuristic's first pick everywhere (for comparison). The choice is shared by every CublasLtGemm
  // of the process, so all backends run a shape with the same algorithm (bit-identical results).
  bool run(GemmType type, const void* x, const void* w, float* out, int64_t m, int64_t n, int64_t k, cudaStream_t s);

  static constexpr int kCandidates = 16;
  static constexpr int64_t kMaxTunedRows = 128;

 private:
  struct Plan {
    cublasLtMatmulDesc_t desc = nullptr;
    cublasLtMatrixLayout_t a = nullptr, b = nullptr, d = nullptr;
    cublasLtMatmulAlgo_t algo{};
    std::tuple<int, int, int64_t, int64_t, int64_t> key;  // device, type, m, n, k
    std::vector<cublasLtMatmulAlgo_t> candidates;          // the heuristic's, best guess first
    bool usable = false;
    bool tuned = false;
  };
  Plan& plan(GemmType type, int64_t m, int64_t n, int64_t k);
  // Times the plan's candidates on these operands (synchronising s) and keeps the fastest (or the
  // one another instance chose meanwhile).
  void tune(Plan& p, const void* x, const void* w, float* out, cudaStream_t s);

  cublasLtHandle_t handle_ = nullptr;
  void* workspace_ = nullptr;
  size_t workspace_bytes_ = 32u << 20;
  float* one_ = nullptr;  // device 1.0f for the FP8 scale pointers
  std::map<std::tuple<int, int64_t, int64_t, int64_t>, Plan> plans_;
};

}  // namespace octet::backend::cuda
