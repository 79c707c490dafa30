#include "backend/cuda/gemm_cublaslt.h"

#include "backend/cuda/cuda_check.h"

#include <algorithm>

namespace octet::backend::cuda {
namespace {

// Largest power of two (up to 256) that divides the address: cuBLASLt's heuristic assumes 256-byte
// aligned operands unless told otherwise.
uint32_t alignment_of(const void* p) {
  const auto address = reinterpret_cast<uintptr_t>(p);
  uint32_t alignment = 256;
  while (alignment > 1 && address % alignment != 0) alignment /= 2;
  return alignment;
}

}  // namespace

CublasLtGemm::CublasLtGemm() {
  OCTET_CUBLAS_CHECK(cublasLtCreate(&handle_));
  OCTET_CUDA_CHECK(cudaMalloc(&workspace_, kWorkspaceBytes));
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

CublasLtGemm::Plan& CublasLtGemm::plan(const Key& key) {
  auto it = plans_.find(key);
  if (it != plans_.end()) return it->second;
  Plan& p = plans_[key];
  const auto [type_index, m, n, k, ldx, ldw, ldo, align_x, align_w, align_out] = key;
  const auto type = static_cast<GemmType>(type_index);
  const cudaDataType input = type == GemmType::e4m3 ? CUDA_R_8F_E4M3 : type == GemmType::bf16 ? CUDA_R_16BF : CUDA_R_32F;
  OCTET_CUBLAS_CHECK(cublasLtMatmulDescCreate(&p.desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  const cublasOperation_t transpose = CUBLAS_OP_T, keep = CUBLAS_OP_N;
  OCTET_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_TRANSA, &transpose, sizeof transpose));
  OCTET_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_TRANSB, &keep, sizeof keep));
  if (type == GemmType::e4m3) {
    OCTET_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, &one_, sizeof one_));
    OCTET_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, &one_, sizeof one_));
  }
  // Column-major views: A = W as k × n (ld ldw), used transposed; B = X as k × m (ld ldx); C = D = out
  // as n × m (ld ldo).
  OCTET_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p.a, input, static_cast<uint64_t>(k), static_cast<uint64_t>(n), ldw));
  OCTET_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p.b, input, static_cast<uint64_t>(k), static_cast<uint64_t>(m), ldx));
  OCTET_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p.d, CUDA_R_32F, static_cast<uint64_t>(n), static_cast<uint64_t>(m), ldo));

  cublasLtMatmulPreference_t preference;
  OCTET_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&preference));
  const size_t workspace_bytes = kWorkspaceBytes;
  auto set_preference = [&](cublasLtMatmulPreferenceAttributes_t attribute, const auto& value) {
    OCTET_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(preference, attribute, &value, sizeof value));
  };
  set_preference(CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, workspace_bytes);
  set_preference(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, align_w);
  set_preference(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, align_x);
  set_preference(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, align_out);
  set_preference(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, align_out);
  cublasLtMatmulHeuristicResult_t results[4] = {};
  int found = 0;
  const cublasStatus_t status =
      cublasLtMatmulAlgoGetHeuristic(handle_, p.desc, p.a, p.b, p.d, p.d, preference, 4, results, &found);
  cublasLtMatmulPreferenceDestroy(preference);
  // NOT_SUPPORTED (or no result) means this case has no kernel: the caller falls back. Anything else
  // is a real error.
  if (status != CUBLAS_STATUS_SUCCESS && status != CUBLAS_STATUS_NOT_SUPPORTED) OCTET_CUBLAS_CHECK(status);
  for (int i = 0; status == CUBLAS_STATUS_SUCCESS && i < found; ++i) {
    if (results[i].state == CUBLAS_STATUS_SUCCESS) {
      p.algo = results[i].algo;
      p.usable = true;
      break;
    }
  }
  return p;
}

bool CublasLtGemm::run(GemmType type, const void* x, int64_t ldx, const void* w, int64_t ldw, float* out, int64_t ldo,
                       int64_t m, int64_t n, int64_t k, cudaStream_t s) {
  if (m <= 0 || n <= 0 || k <= 0) fail("cuBLASLt GEMM: empty shape m = {}, n = {}, k = {}", m, n, k);
  if (ldx < k || ldw < k || ldo < n) fail("cuBLASLt GEMM: strides {}, {}, {} too small for k = {}, n = {}", ldx, ldw, ldo, k, n);
  // FP8 kernels need k and the leading dimensions in multiples of 16 elements (the callers pad k).
  if (type == GemmType::e4m3 && (k % 16 != 0 || ldx % 16 != 0 || ldw % 16 != 0)) return false;
  Plan& p = plan(Key{static_cast<int>(type), m, n, k, ldx, ldw, ldo, alignment_of(x), alignment_of(w), alignment_of(out)});
  if (!p.usable) return false;
  const float alpha = 1.0f, beta = 0.0f;
  OCTET_CUBLAS_CHECK(cublasLtMatmul(handle_, p.desc, &alpha, w, p.a, x, p.b, &beta, out, p.d, out, p.d, &p.algo,
                                    workspace_, kWorkspaceBytes, s));
  return true;
}

}  // namespace octet::backend::cuda
