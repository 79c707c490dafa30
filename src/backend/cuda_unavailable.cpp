// Builds without the CUDA toolkit: the GPU functions exist and say why they cannot help.
#include "backend/device.h"
#include "common/error.h"

namespace octet::backend {

CudaStatus probe_cuda() {
  CudaStatus status;
  status.reason = "this build of octet has no CUDA backend (nvcc was not found when it was built)";
  return status;
}

std::unique_ptr<Backend> make_cuda_backend(int, Numerics) { fail("{}", probe_cuda().reason); }
double measure_copy_bandwidth_bytes_per_s(int) { fail("{}", probe_cuda().reason); }
double measure_fp8_gemm_flops(int) { fail("{}", probe_cuda().reason); }
uint64_t device_memory_used_bytes(int) { return 0; }

}  // namespace octet::backend
