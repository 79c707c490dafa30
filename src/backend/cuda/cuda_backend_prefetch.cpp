// The CUDA backend's weight prefetch (Backend::prefetch_for_following_linear). Between two linear
// ops of a decode step run kernels that read almost nothing (norms, RoPE, the attention of a short
// context): DRAM idles while the next weights wait. After a linear op's own weight stream, the hint's
// FP8 weights (their first OCTET_CUDA_L2_PREFETCH_MB MiB) are asked of L2 by a small kernel on a second
// stream, forked from the step's stream at that point and joined back at the step's end, so none of
// the step's kernels waits for it and a recorded step holds it as a side branch. The lines carry the
// evict_last priority so that the linear's stream of other weights does not push them out before
// they are read. 4 MiB a hint by default (OCTET_CUDA_L2_PREFETCH_MB=0: off): larger prefetches were
// slower, their traffic delaying the small kernels' own memory round trips (docs/PERFORMANCE.md,
// version 11).
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/integer_setting.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <utility>

namespace octet::backend::cuda {
namespace {

constexpr int64_t kMaxPrefetchRows = 128;  // decode-sized inputs: above them the linears are compute-bound

// The E4M3 codes an FP8 linear streams (where they begin, how many bytes); none for other formats:
// with BF16 weights the prefetch made the 8B step slower (5.334 → 5.568 ms at one row, version 11).
std::pair<const void*, int64_t> streamed_fp8_bytes(const CudaLinear& w) {
  if (w.format != LinearFormat::fp8) return {nullptr, 0};
  return {w.e4m3_codes(), w.out_features * w.in_features};
}

}  // namespace

int64_t l2_prefetch_bytes_setting() {
  constexpr int64_t kDefaultMiB = 4;
  return integer_setting("OCTET_CUDA_L2_PREFETCH_MB", kDefaultMiB, 0, 4096, "MiB") << 20;
}

bool l2_prefetch_evict_last_setting() {
  const char* value = std::getenv("OCTET_CUDA_L2_PREFETCH_EVICT");
  if (value == nullptr || *value == '\0' || std::strcmp(value, "last") == 0) return true;
  if (std::strcmp(value, "normal") == 0) return false;
  fail("OCTET_CUDA_L2_PREFETCH_EVICT is '{}', expected last or normal", value);
}

void CudaBackend::prefetch_for_following_linear(std::span<const LinearWeight* const> weights) {
  pending_prefetch_ = {};
  if (prefetch_bytes_ == 0) return;
  int64_t budget = prefetch_bytes_;
  for (const LinearWeight* weight : weights) {
    if (weight == nullptr || budget <= 0 || pending_prefetch_.count == L2PrefetchRanges::kMax) break;
    const auto [start, bytes] = streamed_fp8_bytes(static_cast<const CudaLinear&>(*weight));
    if (start == nullptr || bytes <= 0) continue;
    pending_prefetch_.start[pending_prefetch_.count] = start;
    pending_prefetch_.bytes[pending_prefetch_.count] = std::min(bytes, budget);
    budget -= pending_prefetch_.bytes[pending_prefetch_.count];
    ++pending_prefetch_.count;
  }
}

void CudaBackend::issue_weight_prefetch(int64_t rows) {
  if (pending_prefetch_.count == 0) return;
  const L2PrefetchRanges ranges = pending_prefetch_;
  pending_prefetch_ = {};
  if (rows > kMaxPrefetchRows || prefetch_stream_ == nullptr) return;
  OCTET_CUDA_CHECK(cudaEventRecord(prefetch_fork_, stream_));
  OCTET_CUDA_CHECK(cudaStreamWaitEvent(prefetch_stream_, prefetch_fork_, 0));
  launch_l2_prefetch(ranges, prefetch_evict_last_, prefetch_stream_);
  prefetch_unjoined_ = true;
}

void CudaBackend::join_weight_prefetch() {
  pending_prefetch_ = {};
  if (!prefetch_unjoined_) return;
  prefetch_unjoined_ = false;
  OCTET_CUDA_CHECK(cudaEventRecord(prefetch_join_, prefetch_stream_));
  OCTET_CUDA_CHECK(cudaStreamWaitEvent(stream_, prefetch_join_, 0));
}

}  // namespace octet::backend::cuda
