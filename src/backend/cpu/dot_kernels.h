#pragma once
// Inner loops of the CPU linear layers: widening one weight row to float32, and dot products of
// several activation rows against a weight row (float32, or widened as it is read). AVX-512 or AVX2
// (the same bits: sixteen lanes either way) where the compiler targets them, plain loops otherwise.
#include <cstdint>

namespace octet::backend::cpu {

// dst[i] = decode(codes[i]) / 256 for E4M3 codes (the E4M3 → FP16 bit move leaves a 2^-8 factor that
// callers fold into the channel scale). NaN codes are never produced by our encoder and are not
// special-cased here.
void widen_e4m3_row(const uint8_t* codes, int64_t count, float* dst);
inline constexpr float kE4M3WidenFactor = 256.0f;
// dst[i] = bf16 → float32 (exact)
void widen_bf16_row(const uint16_t* values, int64_t count, float* dst);

// out[t * out_stride] = dot(x + t * x_stride, w) for t in [0, tokens)
void dot_rows(const float* x, int64_t x_stride, int64_t tokens, const float* w, int64_t count, float* out,
              int64_t out_stride);
// The same with the weight row stored as E4M3 codes or BF16 values, widened in registers: the same
// bits as widening the row first (widen_e4m3_row / widen_bf16_row) and calling dot_rows, without
// writing and re-reading the widened row.
void dot_rows_e4m3(const float* x, int64_t x_stride, int64_t tokens, const uint8_t* codes, int64_t count, float* out,
                   int64_t out_stride);
void dot_rows_bf16(const float* x, int64_t x_stride, int64_t tokens, const uint16_t* values, int64_t count, float* out,
                   int64_t out_stride);

float dot(const float* a, const float* b, int64_t count);

// The vector unit these loops were compiled for: "avx512" or "avx2", the same bits on both (sixteen
// lane sums of fused multiply-adds, element i in lane i mod 16, the tail zero-padded; then lane l
// plus lane l + 8, those l plus l + 4, and last (s0 + s2) + (s1 + s3)), or "scalar" (one fused
// multiply-add a term, in order).
const char* dot_kernels_vector_unit();

}  // namespace octet::backend::cpu
