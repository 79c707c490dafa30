#include "backend/cuda/cublaslt_gemm.h"

#include "backend/cuda/cuda_check.h"
#include "backend/cuda/integer_setting.h"
#include "common/error.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include <fmt/format.h>

namespace octet::backend::cuda {
namespace {

bool gemm_tuning() {
  static const bool enabled = [] {
    const char* value = std::getenv("OCTET_CUDA_GEMM_TUNE");
    return value == nullptr || std::string_view(value) != "0";
  }();
  return enabled;
}

// Experiments for prefill shapes, both off by default. OCTET_CUDA_GEMM_TUNE_ROWS=N times the
// candidates of shapes up to N rows (default kMaxTunedRows; every new row count above it would cost
// its own timing, so not for serving); OCTET_CUDA_GEMM_FAST_ACCUM=1 lets FP8 products accumulate in
// the tensor cores' narrower accumulator without periodic float32 promotion (faster, less exact).
int64_t max_tuned_rows() {
  static const int64_t rows =
      integer_setting("OCTET_CUDA_GEMM_TUNE_ROWS", CublasLtGemm::kMaxTunedRows, 0, int64_t{1} << 20, "a row count");
  return rows;
}

// OCTET_CUDA_GEMM_TUNE_LOG=1 prints each tuned shape's candidates (time a run, tile / stages / split-k /
// cluster ids) and the choice on stderr.
bool tuning_log() {
  static const bool enabled = [] {
    const char* value = std::getenv("OCTET_CUDA_GEMM_TUNE_LOG");
    return value != nullptr && std::string_view(value) == "1";
  }();
  return enabled;
}

// OCTET_CUDA_GEMM_ALGO=m:n:k:i,... (an experiment): shape m×n×k takes the heuristic's candidate i
// untimed, so a step can be measured with each candidate in turn. -1: not forced.
int forced_candidate(int64_t m, int64_t n, int64_t k) {
  const char* value = std::getenv("OCTET_CUDA_GEMM_ALGO");
  if (value == nullptr) return -1;
  std::string_view rest(value);
  while (!rest.empty()) {
    const size_t comma = rest.find(',');
    const std::string entry(rest.substr(0, comma));
    rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
    long long fm = 0, fn = 0, fk = 0;
    int index = -1;
    if (std::sscanf(entry.c_str(), "%lld:%lld:%lld:%d", &fm, &fn, &fk, &index) != 4 || index < 0)
      fail("OCTET_CUDA_GEMM_ALGO entry '{}' is not m:n:k:candidate", entry);
    if (fm == m && fn == n && fk == k) return index;
  }
  return -1;
}

bool fast_accumulation() {
  static const bool enabled = [] {
    const char* value = std::getenv("OCTET_CUDA_GEMM_FAST_ACCUM");
    return value != nullptr && std::string_view(value) == "1";
  }();
  return enabled;
}

// The candidate index each tuned shape chose, for the whole process: every CublasLtGemm (one per
// backend) then runs a shape with the same algorithm, so two backends give bit-identical products
// (tests compare an eager backend with a graph-replaying one exactly) and a shape is timed once.
// The index refers to the heuristic's list, which is the same for the same device and shape.
struct TunedChoices {
  std::mutex mutex;
  std::map<std::tuple<int, int, bool, int64_t, int64_t, int64_t>, size_t> index;  // device, type, scaled, m, n, k
};

TunedChoices& tuned_choices() {
  static TunedChoices choices;
  return choices;
}

void set_outer_scales(cublasLtMatmulDesc_t desc, const float* a, const float* b) {
  OCTET_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, &a, sizeof a));
  OCTET_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, &b, sizeof b));
}

}  // namespace

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

CublasLtGemm::Plan& CublasLtGemm::plan(GemmType type, const OuterScales* scales, int64_t m, int64_t n, int64_t k) {
  const bool scaled = scales != nullptr;
  auto key = std::make_tuple(static_cast<int>(type), scaled, m, n, k);
  auto it = plans_.find(key);
  if (it != plans_.end()) {
    if (scaled) set_outer_scales(it->second.desc, scales->a, scales->b);
    return it->second;
  }
  Plan& p = plans_[key];
  p.scaled = scaled;
  p.key = std::make_tuple(0, static_cast<int>(type), scaled, m, n, k);
  OCTET_CUDA_CHECK(cudaGetDevice(&std::get<0>(p.key)));
  const cudaDataType input = type == GemmType::e4m3 ? CUDA_R_8F_E4M3 : type == GemmType::bf16 ? CUDA_R_16BF : CUDA_R_32F;
  const cublasComputeType_t compute = CUBLAS_COMPUTE_32F;  // float32 accumulation; no TF32 for the f32 path
  OCTET_CUBLAS_CHECK(cublasLtMatmulDescCreate(&p.desc, compute, CUDA_R_32F));
  const cublasOperation_t transpose = CUBLAS_OP_T, keep = CUBLAS_OP_N;
  OCTET_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_TRANSA, &transpose, sizeof transpose));
  OCTET_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_TRANSB, &keep, sizeof keep));
  if (type == GemmType::e4m3 && fast_accumulation()) {
    const int8_t fast = 1;
    OCTET_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_FAST_ACCUM, &fast, sizeof fast));
  }
  if (scaled) {
    // Both operands' modes must be the outer vector (cuBLASLt's rule); its vectors have cuBLASLt's M
    // (= our n, A = W) and N (= our m, B = X) elements.
    // A cuBLASLt older than the mode refuses the attribute: the plan stays unusable (the caller's fallback).
    const int32_t mode = CUBLASLT_MATMUL_MATRIX_SCALE_OUTER_VEC_32F;
    if (cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_A_SCALE_MODE, &mode, sizeof mode) != CUBLAS_STATUS_SUCCESS ||
        cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_B_SCALE_MODE, &mode, sizeof mode) != CUBLAS_STATUS_SUCCESS)
      return p;
    set_outer_scales(p.desc, scales->a, scales->b);
  } else if (type == GemmType::e4m3) {
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
  cublasLtMatmulHeuristicResult_t results[kCandidates] = {};
  int found = 0;
  const int wanted = gemm_tuning() && m <= max_tuned_rows() ? kCandidates : 1;
  const cublasStatus_t status =
      cublasLtMatmulAlgoGetHeuristic(handle_, p.desc, p.a, p.b, p.d, p.d, preference, wanted, results, &found);
  cublasLtMatmulPreferenceDestroy(preference);
  if (status != CUBLAS_STATUS_SUCCESS) return p;
  for (int i = 0; i < found; ++i)
    if (results[i].state == CUBLAS_STATUS_SUCCESS && results[i].workspaceSize <= workspace_bytes_)
      p.candidates.push_back(results[i].algo);
  if (!p.candidates.empty()) {
    p.algo = p.candidates.front();
    p.usable = true;
    p.tuned = p.candidates.size() == 1;
    TunedChoices& choices = tuned_choices();
    std::lock_guard lock(choices.mutex);
    if (const int forced = forced_candidate(m, n, k); forced >= 0 && static_cast<size_t>(forced) < p.candidates.size()) {
      p.algo = p.candidates[forced];
      p.tuned = true;
    } else if (auto chosen = choices.index.find(p.key); chosen != choices.index.end() && chosen->second < p.candidates.size()) {
      p.algo = p.candidates[chosen->second];
      p.tuned = true;
    }
  }
  return p;
}

void CublasLtGemm::tune(Plan& p, const void* x, const void* w, float* out, cudaStream_t s) {
  constexpr int kTimedRuns = 5;
  const float alpha = 1.0f, beta = 0.0f;
  cudaEvent_t start = nullptr, stop = nullptr;
  OCTET_CUDA_CHECK(cudaEventCreate(&start));
  OCTET_CUDA_CHECK(cudaEventCreate(&stop));
  std::vector<float> fastest(p.candidates.size(), INFINITY);  // ms of kTimedRuns; INFINITY: refused to run
  for (size_t i = 0; i < p.candidates.size(); ++i) {
    const cublasLtMatmulAlgo_t& algo = p.candidates[i];
    const auto once = [&] {
      return cublasLtMatmul(handle_, p.desc, &alpha, w, p.a, x, p.b, &beta, out, p.d, out, p.d, &algo, workspace_,
                            workspace_bytes_, s);
    };
    if (once() != CUBLAS_STATUS_SUCCESS) continue;  // a candidate that refuses to run is skipped
    OCTET_CUDA_CHECK(cudaEventRecord(start, s));
    for (int run = 0; run < kTimedRuns; ++run) once();
    OCTET_CUDA_CHECK(cudaEventRecord(stop, s));
    OCTET_CUDA_CHECK(cudaEventSynchronize(stop));
    float ms = 0.0f;
    OCTET_CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
    fastest[i] = ms;
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  size_t best = 0;
  for (size_t i = 1; i < fastest.size(); ++i)
    if (fastest[i] < fastest[best]) best = i;
  const bool any_ran = !fastest.empty() && fastest[best] != INFINITY;
  if (tuning_log() && any_ran) {
    std::string line = fmt::format("gemm tune m {} n {} k {}: chose {} of {} (µs a run:", std::get<3>(p.key),
                                   std::get<4>(p.key), std::get<5>(p.key), best, fastest.size());
    for (float ms : fastest) line += ms == INFINITY ? " -" : fmt::format(" {:.1f}", ms * 1000.0f / kTimedRuns);
    line += "; tile, stages, split-k, cluster:";
    for (const cublasLtMatmulAlgo_t& algo : p.candidates) {
      uint32_t tile = 0, stages = 0, cluster = 0;
      int32_t splits = 0;
      size_t written = 0;
      cublasLtMatmulAlgoConfigGetAttribute(&algo, CUBLASLT_ALGO_CONFIG_TILE_ID, &tile, sizeof tile, &written);
      cublasLtMatmulAlgoConfigGetAttribute(&algo, CUBLASLT_ALGO_CONFIG_STAGES_ID, &stages, sizeof stages, &written);
      cublasLtMatmulAlgoConfigGetAttribute(&algo, CUBLASLT_ALGO_CONFIG_SPLITK_NUM, &splits, sizeof splits, &written);
      cublasLtMatmulAlgoConfigGetAttribute(&algo, CUBLASLT_ALGO_CONFIG_CLUSTER_SHAPE_ID, &cluster, sizeof cluster, &written);
      line += fmt::format(" {}/{}/{}/{}", tile, stages, splits, cluster);
    }
    fmt::print(stderr, "{})\n", line);
  }
  if (!any_ran) {  // nothing to choose from: the caller falls back, and no choice is shared
    p.usable = false;
    return;
  }
  TunedChoices& choices = tuned_choices();
  std::lock_guard lock(choices.mutex);
  // A shape another backend tuned meanwhile keeps that choice (the same algorithm everywhere).
  best = choices.index.emplace(p.key, best).first->second;
  p.algo = p.candidates[best < p.candidates.size() ? best : 0];
  p.tuned = true;
}

bool CublasLtGemm::execute(Plan& p, const void* x, const void* w, float* out, cudaStream_t s) {
  if (!p.usable) return false;
  if (!p.tuned) {
    cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
    OCTET_CUDA_CHECK(cudaStreamIsCapturing(s, &capture));
    if (capture == cudaStreamCaptureStatusNone) tune(p, x, w, out, s);
    if (!p.usable) return false;
  }
  const float alpha = 1.0f, beta = 0.0f;
  const cublasStatus_t status = cublasLtMatmul(handle_, p.desc, &alpha, w, p.a, x, p.b, &beta, out, p.d, out, p.d,
                                               &p.algo, workspace_, workspace_bytes_, s);
  // cuBLASLt may refuse a scale mode only when called (its header says so for the scale pointers),
  // before launching anything: the shape then keeps the unscaled path.
  if (status != CUBLAS_STATUS_SUCCESS && p.scaled) {
    p.usable = false;
    return false;
  }
  OCTET_CUBLAS_CHECK(status);
  return true;
}

bool CublasLtGemm::run(GemmType type, const void* x, const void* w, float* out, int64_t m, int64_t n, int64_t k,
                       cudaStream_t s) {
  // FP8 needs 16-byte aligned leading dimensions.
  if (type == GemmType::e4m3 && k % 16 != 0) return false;
  return execute(plan(type, nullptr, m, n, k), x, w, out, s);
}

bool CublasLtGemm::run_e4m3_scaled(const uint8_t* x, const float* row_scales, const uint8_t* w, const float* col_scales,
                                   float* out, int64_t m, int64_t n, int64_t k, cudaStream_t s) {
  if (k % 16 != 0) return false;
  const OuterScales scales{col_scales, row_scales};
  return execute(plan(GemmType::e4m3, &scales, m, n, k), x, w, out, s);
}

}  // namespace octet::backend::cuda
