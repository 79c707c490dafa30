#pragma once
// CUDA-specific diagnostics of a backend made by make_cuda_backend (backend/device.h).
#include "backend/backend.h"

#include <cstdint>

namespace octet::backend::cuda {

// How many linear() calls took each path since the backend was made: the FP8 GEMV (rows ≤ 8), a
// cuBLASLt matmul, or the slow reference kernel (no cuBLASLt algorithm for the case: it also logs a
// warning once per shape).
struct LinearPathCounts {
  int64_t gemv = 0;
  int64_t cublaslt = 0;
  int64_t simple = 0;
};
// Throws octet::Error when `backend` is not the CUDA backend.
LinearPathCounts linear_path_counts(const Backend& backend);

}  // namespace octet::backend::cuda
