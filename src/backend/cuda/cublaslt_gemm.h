#pragma once
// cuBLASLt matrix products for the linear layers: out[m, n] = Σ_k x[m, k] · w[n, k] with
// row-major x [m, k], w [n, k] and out [m, n] (cuBLASLt's column-major "TN" form: D = Wᵀ·X).
// FP8 (E4M3 × E4M3 → float32, either with per-tensor scale 1, the caller scaling the output, or with
// the per-row / per-channel scales applied in cuBLASLt's epilogue), BF16 × BF16 → float32, and
// float32 without TF32.
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
  // Experiments (off by default): OCTET_CUDA_GEMM_TUNE_ROWS=N tunes shapes up to N rows (prefill),
  // OCTET_CUDA_GEMM_FAST_ACCUM=1 turns on cuBLASLt's fast (less exact) FP8 accumulation,
  // OCTET_CUDA_GEMM_ALGO=m:n:k:i,… runs shape m×n×k with the heuristic's candidate i (untimed), and
  // OCTET_CUDA_GEMM_TUNE_LOG=1 prints the candidates' times and the choices.
  bool run(GemmType type, const void* x, const void* w, float* out, int64_t m, int64_t n, int64_t k, cudaStream_t s);

  // out[i, j] = row_scales[i] · col_scales[j] · Σ_k x[i, k] · w[j, k] for E4M3 x and w, the scales
  // applied in cuBLASLt's epilogue ("outer vector" scaling, cuBLAS ≥ 12.9 on Hopper): the output is
  // written once instead of written, read and written again by a scaling pass. False when cuBLASLt
  // offers no such algorithm for the shape or refuses the call (decided on the shape's first call and
  // kept): the caller then runs run(GemmType::e4m3, …) and scales the output itself. Tuned like run()
  // (a separate choice per shape). The scale vectors are set on this instance's descriptor for each
  // call; cuBLASLt reads them when the call is made (also into a captured graph), so one caller at a
  // time per instance (one backend, one stream) is safe.
  bool run_e4m3_scaled(const uint8_t* x, const float* row_scales, const uint8_t* w, const float* col_scales, float* out,
                       int64_t m, int64_t n, int64_t k, cudaStream_t s);

  static constexpr int kCandidates = 16;
  static constexpr int64_t kMaxTunedRows = 128;

 private:
  struct Plan {
    cublasLtMatmulDesc_t desc = nullptr;
    cublasLtMatrixLayout_t a = nullptr, b = nullptr, d = nullptr;
    cublasLtMatmulAlgo_t algo{};
    std::tuple<int, int, bool, int64_t, int64_t, int64_t> key;  // device, type, scaled, m, n, k
    std::vector<cublasLtMatmulAlgo_t> candidates;                // the heuristic's, best guess first
    bool scaled = false;  // outer-vector scales in the epilogue (run_e4m3_scaled)
    bool usable = false;
    bool tuned = false;
  };
  // The scale vectors of a scaled plan: a = per row of cuBLASLt's D (our columns), b = per column.
  struct OuterScales {
    const float* a = nullptr;
    const float* b = nullptr;
  };
  // scales non-null: the scaled variant, its descriptor pointing at these vectors.
  Plan& plan(GemmType type, const OuterScales* scales, int64_t m, int64_t n, int64_t k);
  // Tunes the plan on its first eager call, then runs it; false when it has no algorithm, or (scaled
  // plans only) when cuBLASLt refuses the call, which then marks the plan unusable.
  bool execute(Plan& p, const void* x, const void* w, float* out, cudaStream_t s);
  // Times the plan's candidates on these operands (synchronising s) and keeps the fastest (or the
  // one another instance chose meanwhile). A plan none of whose candidates runs becomes unusable.
  void tune(Plan& p, const void* x, const void* w, float* out, cudaStream_t s);

  cublasLtHandle_t handle_ = nullptr;
  void* workspace_ = nullptr;
  size_t workspace_bytes_ = 32u << 20;
  float* one_ = nullptr;  // device 1.0f for the FP8 scale pointers
  std::map<std::tuple<int, bool, int64_t, int64_t, int64_t>, Plan> plans_;  // type, scaled, m, n, k
};

}  // namespace octet::backend::cuda
