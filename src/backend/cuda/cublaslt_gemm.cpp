#include "backend/cuda/cublaslt_gemm.h"

#include "backend/cuda/cuda_check.h"

namespace octet::backend::cuda {

CublasLtGemm::CublasLtGemm() {
  OCTET_CUBLAS_CHECK(cublasLtCreate(&handle_));
  OCTET_CUDA_CHECK(cudaMalloc(&workspace_, workspace_bytes_));
  OCTET_CUDA_CHECK(cudaMalloc(&one_, sizeof(float)));
  const float one = 1.0f;
  OCTET_CUDA_CHECK(cudaMemcpy(one_, &one, sizeof one, cudaMemcpyHostToDevice));
}

CublasLtGemm::~CublasLtGemm() {
  for (auto& [key, p] : plans_) {
    if (p.desc) cublasLtMatmulDescDestroy(p.desc);
    if (p.a) cublasLtMatrixLayoutDestroy(p.a);
    if (p.b) cublasLtMatrixLayoutDestroy(p.b);
    if (p.d) cublasLtMatrixLayoutDestroy(p.d);
  }
  cudaFree(one_);
  cudaFree(workspace_);
  cublasLtDestroy(handle_);
}

CublasLtGemm::Plan& CublasLtGemm::plan(GemmType type, int64_t m, int64_t n, int64_t k) {
  auto key = std::make_tuple(static_cast<int>(type), m, n, k);
  auto it = plans_.find(key);
  if (it != plans_.end()) return it->second;
  Plan& p = plans_[key];
  const cudaDataType input = type == GemmType::e4m3 ? CUDA_R_8F_E4M3 : type == GemmType::bf16 ? CUDA_R_16BF : CUDA_R_32F;
  const cublasComputeType_t compute = CUBLAS_COMPUTE_32F;  // float32 accumulation; no TF32 for the f32 path
  OCTET_CUBLAS_CHECK(cublasLtMatmulDescCreate(&p.desc, compute, CUDA_R_32F));
  const cublasOperation_t transpose = CUBLAS_OP_T, keep = CUBLAS_OP_N;
  OCTET_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_TRANSA, &transpose, sizeof transpose));
  OCTET_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_TRANSB, &keep, sizeof keep));
  if (type == GemmType::e4m3) {
    OCTET_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, &one_, sizeof one_));
    OCTET_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, &one_, sizeof one_));
  }
  // Column-major view: A = W as k×n (ld k) used transposed, B = X as k×m (ld k), D = out as n×m (ld n).
  OCTET_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p.a, input, static_cast<uint64_t>(k), static_cast<uint64_t>(n), k));
  OCTET_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p.b, input, static_cast<uint64_t>(k), static_cast<uint64_t>(m), k));
  OCTET_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p.d, CUDA_R_32F, static_cast<uint64_t>(n), static_cast<uint64_t>(m), n));

  cublasLtMatmulPreference_t preference;
  OCTET_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&preference));
  OCTET_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(preference, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                          &workspace_bytes_, sizeof workspace_bytes_));
  cublasLtMatmulHeuristicResult_t result{};
  int found = 0;
  const cublasStatus_t status =
      cublasLtMatmulAlgoGetHeuristic(handle_, p.desc, p.a, p.b, p.d, p.d, preference, 1, &result, &found);
  cublasLtMatmulPreferenceDestroy(preference);
  if (status == CUBLAS_STATUS_SUCCESS && found > 0) {
    p.algo = result.algo;
    p.usable = true;
  }
  return p;
}

bool CublasLtGemm::run(GemmType type, const void* x, const void* w, float* out, int64_t m, int64_t n, int64_t k,
                       cudaStream_t s) {
  // FP8 needs 16-byte aligned leading dimensions.
  if (type == GemmType::e4m3 && k % 16 != 0) return false;
  Plan& p = plan(type, m, n, k);
  if (!p.usable) return false;
  const float alpha = 1.0f, beta = 0.0f;
  OCTET_CUBLAS_CHECK(cublasLtMatmul(handle_, p.desc, &alpha, w, p.a, x, p.b, &beta, out, p.d, out, p.d, &p.algo,
                                    workspace_, workspace_bytes_, s));
  return true;
}

}  // namespace octet::backend::cuda
