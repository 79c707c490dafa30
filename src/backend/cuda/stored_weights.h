#pragma once
// Conversion of a checkpoint's stored weights on the GPU, after StagedUpload has copied their bytes:
// the same float32 widening, bf16 rounding and per-output-channel E4M3 quantization as the CPU
// backend (fp8::quantize_row: scale = max(amax / 448, FLT_MIN), 1 for amax 0; code = RNE-saturated
// encode(x · (1 / scale))), so both backends load the same codes.
#include "backend/stored_tensor.h"

#include <cuda_runtime.h>

#include <cstdint>

namespace octet::backend::cuda {

// stored: [rows, cols] in dtype (f32, f16 or bf16) → codes [rows, cols], row_scales [rows]. A row
// whose amax is not finite gets that amax as its scale (the caller reports it).
void launch_quantize_stored_e4m3(const void* stored, StoredDtype dtype, int64_t rows, int64_t cols, uint8_t* codes,
                                 float* row_scales, cudaStream_t stream);
// count elements widened to float32, or rounded to bf16 (out as uint16_t bits, round to nearest even).
void launch_convert_stored(const void* stored, StoredDtype dtype, int64_t count, uint16_t* out, cudaStream_t stream);
void launch_convert_stored(const void* stored, StoredDtype dtype, int64_t count, float* out, cudaStream_t stream);

}  // namespace octet::backend::cuda
