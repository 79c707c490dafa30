// Kernels converting stored weights (see stored_weights.h). Quantization: one block per row, an amax
// reduction, then the encode; conversions: one thread per element.
#include "backend/cuda/block_reduce.cuh"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/stored_weights.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>

#include <cfloat>

namespace octet::backend::cuda {
namespace {

constexpr int kThreads = 256;

// Exact widenings: bf16 is the top half of a float32, f16 through the hardware conversion (exact).
__device__ __forceinline__ float widen(const float* p, int64_t i) { return p[i]; }
__device__ __forceinline__ float widen(const __half* p, int64_t i) { return __half2float(p[i]); }
__device__ __forceinline__ float widen(const uint16_t* p, int64_t i) { return __uint_as_float(static_cast<uint32_t>(p[i]) << 16); }

template <typename T>
__global__ void quantize_stored_rows_kernel(const T* stored, int64_t cols, uint8_t* codes, float* row_scales) {
  const T* row = stored + blockIdx.x * cols;
  // fmaxf skips NaN like fp8::amax; infinities propagate.
  float amax = 0.0f;
  for (int64_t i = threadIdx.x; i < cols; i += blockDim.x) amax = fmaxf(amax, fabsf(widen(row, i)));
  __shared__ float reduce_scratch[32];
  amax = block_max(amax, reduce_scratch);
  // fp8::scale_from_amax, written out (IEEE division: the build does not use fast math).
  const float scale = !isfinite(amax) ? amax : amax == 0.0f ? 1.0f : fmaxf(amax / 448.0f, FLT_MIN);
  if (threadIdx.x == 0) row_scales[blockIdx.x] = scale;
  const float inverse = 1.0f / scale;
  // __NV_SATFINITE: overflow saturates to ±448 like the CPU encoder; rounding is to nearest even.
  for (int64_t i = threadIdx.x; i < cols; i += blockDim.x)
    codes[blockIdx.x * cols + i] = __nv_cvt_float_to_fp8(__fmul_rn(widen(row, i), inverse), __NV_SATFINITE, __NV_E4M3);
}

template <typename T>
__global__ void stored_to_bf16_kernel(const T* stored, int64_t count, __nv_bfloat16* out) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i < count) out[i] = __float2bfloat16_rn(widen(stored, i));
}

template <typename T>
__global__ void stored_to_f32_kernel(const T* stored, int64_t count, float* out) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i < count) out[i] = widen(stored, i);
}

unsigned blocks_for(int64_t count) { return static_cast<unsigned>((count + kThreads - 1) / kThreads); }

// Calls launch(typed pointer) for the stored dtype.
template <typename Launch>
void dispatch(const void* stored, StoredDtype dtype, Launch launch) {
  switch (dtype) {
    case StoredDtype::f32: launch(static_cast<const float*>(stored)); break;
    case StoredDtype::f16: launch(static_cast<const __half*>(stored)); break;
    case StoredDtype::bf16: launch(static_cast<const uint16_t*>(stored)); break;
    case StoredDtype::e4m3: fail("cuda backend: stored E4M3 codes are uploaded as they are, not converted");
  }
}

}  // namespace

void launch_quantize_stored_e4m3(const void* stored, StoredDtype dtype, int64_t rows, int64_t cols, uint8_t* codes,
                                 float* row_scales, cudaStream_t stream) {
  if (rows == 0) return;
  dispatch(stored, dtype, [&](auto* typed) {
    quantize_stored_rows_kernel<<<static_cast<unsigned>(rows), kThreads, 0, stream>>>(typed, cols, codes, row_scales);
  });
  OCTET_CUDA_LAUNCH_CHECK();
}

void launch_convert_stored(const void* stored, StoredDtype dtype, int64_t count, uint16_t* out, cudaStream_t stream) {
  if (count == 0) return;
  dispatch(stored, dtype, [&](auto* typed) {
    stored_to_bf16_kernel<<<blocks_for(count), kThreads, 0, stream>>>(typed, count, reinterpret_cast<__nv_bfloat16*>(out));
  });
  OCTET_CUDA_LAUNCH_CHECK();
}

void launch_convert_stored(const void* stored, StoredDtype dtype, int64_t count, float* out, cudaStream_t stream) {
  if (count == 0) return;
  dispatch(stored, dtype, [&](auto* typed) {
    stored_to_f32_kernel<<<blocks_for(count), kThreads, 0, stream>>>(typed, count, out);
  });
  OCTET_CUDA_LAUNCH_CHECK();
}

}  // namespace octet::backend::cuda
