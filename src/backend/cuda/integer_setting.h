#pragma once
// Whole-number environment settings of the CUDA backend (OCTET_CUDA_L2_PREFETCH_MB, OCTET_CUDA_PROBE_ROWS,
// OCTET_CUDA_GROUPED_ATTENTION_BLOCKS, OCTET_CUDA_GEMM_TUNE_ROWS, OCTET_CUDA_GEMV_MAX_ROWS,
// OCTET_CUDA_PERSISTENT_IN_FLIGHT / _POLL_NS): one parser, so each refuses a bad value the same way.
#include <cstdint>

namespace octet::backend::cuda {

// The value of `variable`, `fallback` when unset or empty. Anything but a decimal integer in [low, high] fails:
// "<variable> is '<value>', expected <expected> from <low> to <high>" (expected: "a row count", "MiB", …).
int64_t integer_setting(const char* variable, int64_t fallback, int64_t low, int64_t high, const char* expected);

}  // namespace octet::backend::cuda
