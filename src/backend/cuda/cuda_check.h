#pragma once
// Every CUDA and cuBLASLt call is checked; failures become octet::Error naming the call site.
#include "common/error.h"

#include <cublasLt.h>
#include <cuda_runtime.h>

#define OCTET_CUDA_CHECK(call)                                                                           \
  do {                                                                                                   \
    cudaError_t status_ = (call);                                                                        \
    if (status_ != cudaSuccess)                                                                          \
      ::octet::fail("CUDA error at {}:{}: {} ({})", __FILE__, __LINE__, cudaGetErrorString(status_), #call); \
  } while (0)

#define OCTET_CUBLAS_CHECK(call)                                                                          \
  do {                                                                                                    \
    cublasStatus_t status_ = (call);                                                                      \
    if (status_ != CUBLAS_STATUS_SUCCESS)                                                                 \
      ::octet::fail("cuBLASLt error at {}:{}: {} ({})", __FILE__, __LINE__, cublasLtGetStatusString(status_), #call); \
  } while (0)

// After a kernel launch: configuration errors show up here, not at the next call.
#define OCTET_CUDA_LAUNCH_CHECK() OCTET_CUDA_CHECK(cudaGetLastError())
