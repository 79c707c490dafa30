#pragma once
// The E4M3 encoding of activation rows shared by the quantizing kernels (quantize.cu, elementwise.cu,
// row_kernels.cu, persistent_decode.cu), so every path gives the same codes: a row's scale from its
// amax, and four values to four codes.
#include <cuda_fp8.h>

#include <cstdint>

namespace octet::backend::cuda {

// amax / 448; 1 for an all-zero or non-finite row (its codes are then the values, saturated).
__device__ __forceinline__ float e4m3_row_scale(float amax) {
  return amax > 0.0f && isfinite(amax) ? amax / 448.0f : 1.0f;
}

// The codes of v · inverse, packed low byte first. __NV_SATFINITE: overflow saturates to ±448 like the
// CPU encoder; rounding is to nearest even.
__device__ __forceinline__ uint32_t encode4_e4m3(const float4& v, float inverse) {
  const auto code = [](float x) { return static_cast<uint32_t>(__nv_cvt_float_to_fp8(x, __NV_SATFINITE, __NV_E4M3)); };
  return code(v.x * inverse) | code(v.y * inverse) << 8 | code(v.z * inverse) << 16 | code(v.w * inverse) << 24;
}

}  // namespace octet::backend::cuda
