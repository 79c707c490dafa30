#include "backend/cpu/dot_kernels.h"

#include "fp8/fp8.h"

#include <cstring>

#if defined(__AVX512F__) && defined(__AVX512BW__)
#include <immintrin.h>
#define OCTET_AVX512 1
#endif

namespace octet::backend::cpu {

void widen_e4m3_row(const uint8_t* codes, int64_t count, float* dst) {
  int64_t i = 0;
#ifdef OCTET_AVX512
  // s eeee mmm → FP16 s 0eeee mmm0000000: the same value times 2^-8 (also for subnormals), so one
  // hardware FP16 → FP32 conversion decodes 16 codes at once.
  const __m256i keep = _mm256_set1_epi16(static_cast<short>(0xBFFF));
  for (; i + 16 <= count; i += 16) {
    __m256i bytes = _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(codes + i)));
    __m256i half = _mm256_and_si256(_mm256_srai_epi16(_mm256_slli_epi16(bytes, 8), 1), keep);
    _mm512_storeu_ps(dst + i, _mm512_cvtph_ps(half));
  }
#endif
  for (; i < count; ++i) dst[i] = fp8::decode_e4m3(codes[i]) / kE4M3WidenFactor;
}

void widen_bf16_row(const uint16_t* values, int64_t count, float* dst) {
  int64_t i = 0;
#ifdef OCTET_AVX512
  for (; i + 16 <= count; i += 16) {
    __m512i wide = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(values + i)));
    _mm512_storeu_ps(dst + i, _mm512_castsi512_ps(_mm512_slli_epi32(wide, 16)));
  }
#endif
  for (; i < count; ++i) {
    uint32_t bits = static_cast<uint32_t>(values[i]) << 16;
    std::memcpy(dst + i, &bits, sizeof bits);
  }
}

float dot(const float* a, const float* b, int64_t count) {
  float result;
  dot_rows(a, count, 1, b, count, &result, 1);
  return result;
}

void dot_rows(const float* x, int64_t x_stride, int64_t tokens, const float* w, int64_t count, float* out,
              int64_t out_stride) {
  int64_t t = 0;
#ifdef OCTET_AVX512
  const int64_t tail = count % 16;
  const __mmask16 tail_mask = static_cast<__mmask16>((1u << tail) - 1);
  // Four activation rows share each weight load. Every row, in this path and in the single-row path
  // below, sums its products in the same order (one 16-lane accumulator, the masked tail last), so a
  // row's result does not depend on how many rows share its batch: the continuous-batching server
  // gives a request the same tokens whoever else is running.
  for (; t + 4 <= tokens; t += 4) {
    const float* x0 = x + t * x_stride;
    const float* x1 = x0 + x_stride;
    const float* x2 = x1 + x_stride;
    const float* x3 = x2 + x_stride;
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps(), a2 = _mm512_setzero_ps(), a3 = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= count; i += 16) {
      __m512 wv = _mm512_loadu_ps(w + i);
      a0 = _mm512_fmadd_ps(_mm512_loadu_ps(x0 + i), wv, a0);
      a1 = _mm512_fmadd_ps(_mm512_loadu_ps(x1 + i), wv, a1);
      a2 = _mm512_fmadd_ps(_mm512_loadu_ps(x2 + i), wv, a2);
      a3 = _mm512_fmadd_ps(_mm512_loadu_ps(x3 + i), wv, a3);
    }
    if (tail) {
      __m512 wv = _mm512_maskz_loadu_ps(tail_mask, w + i);
      a0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(tail_mask, x0 + i), wv, a0);
      a1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(tail_mask, x1 + i), wv, a1);
      a2 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(tail_mask, x2 + i), wv, a2);
      a3 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(tail_mask, x3 + i), wv, a3);
    }
    out[(t + 0) * out_stride] = _mm512_reduce_add_ps(a0);
    out[(t + 1) * out_stride] = _mm512_reduce_add_ps(a1);
    out[(t + 2) * out_stride] = _mm512_reduce_add_ps(a2);
    out[(t + 3) * out_stride] = _mm512_reduce_add_ps(a3);
  }
  for (; t < tokens; ++t) {
    const float* xr = x + t * x_stride;
    __m512 a0 = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= count; i += 16) a0 = _mm512_fmadd_ps(_mm512_loadu_ps(xr + i), _mm512_loadu_ps(w + i), a0);
    if (tail) a0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(tail_mask, xr + i), _mm512_maskz_loadu_ps(tail_mask, w + i), a0);
    out[t * out_stride] = _mm512_reduce_add_ps(a0);
  }
#else
  for (; t < tokens; ++t) {
    const float* xr = x + t * x_stride;
    float sum = 0.0f;
    for (int64_t i = 0; i < count; ++i) sum += xr[i] * w[i];
    out[t * out_stride] = sum;
  }
#endif
}

}  // namespace octet::backend::cpu
