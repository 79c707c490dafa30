#include "backend/cpu/dot_kernels.h"

#include "fp8/fp8.h"

#include <cmath>
#include <cstring>

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)
#include <immintrin.h>
#define OCTET_AVX512 1
#endif

namespace octet::backend::cpu {

namespace {

// A weight row as dot_rows_over and the widening functions read it: 16 float32 lanes from element i
// (load), the first lanes of them under a mask with zeros elsewhere (load_tail), one element (at).
// The stored formats widen in registers to exactly what widen_e4m3_row / widen_bf16_row write (they
// store these loads), so every format sums the same products in the same order as a widened float32
// row would.
struct Float32Row {
  const float* w;
#ifdef OCTET_AVX512
  __m512 load(int64_t i) const { return _mm512_loadu_ps(w + i); }
  __m512 load_tail(int64_t i, __mmask16 mask) const { return _mm512_maskz_loadu_ps(mask, w + i); }
#endif
  float at(int64_t i) const { return w[i]; }
};

struct E4m3Row {
  const uint8_t* codes;
#ifdef OCTET_AVX512
  // s eeee mmm → FP16 s 0eeee mmm0000000: the same value times 2^-8 (also for subnormals), so one
  // hardware FP16 → FP32 conversion decodes 16 codes at once.
  static __m512 widen(__m128i codes16) {
    const __m256i keep = _mm256_set1_epi16(static_cast<short>(0xBFFF));
    const __m256i bytes = _mm256_cvtepu8_epi16(codes16);
    return _mm512_cvtph_ps(_mm256_and_si256(_mm256_srai_epi16(_mm256_slli_epi16(bytes, 8), 1), keep));
  }
  __m512 load(int64_t i) const { return widen(_mm_loadu_si128(reinterpret_cast<const __m128i*>(codes + i))); }
  __m512 load_tail(int64_t i, __mmask16 mask) const { return widen(_mm_maskz_loadu_epi8(mask, codes + i)); }  // code 0 is +0
#endif
  float at(int64_t i) const { return fp8::decode_e4m3(codes[i]) / kE4M3WidenFactor; }
};

struct Bf16Row {
  const uint16_t* values;
#ifdef OCTET_AVX512
  static __m512 widen(__m256i values16) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(values16), 16));
  }
  __m512 load(int64_t i) const { return widen(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(values + i))); }
  __m512 load_tail(int64_t i, __mmask16 mask) const { return widen(_mm256_maskz_loadu_epi16(mask, values + i)); }
#endif
  float at(int64_t i) const {
    const uint32_t bits = static_cast<uint32_t>(values[i]) << 16;
    float value;
    std::memcpy(&value, &bits, sizeof value);
    return value;
  }
};

template <class Row>
void widen(const Row& row, int64_t count, float* dst) {
  int64_t i = 0;
#ifdef OCTET_AVX512
  for (; i + 16 <= count; i += 16) _mm512_storeu_ps(dst + i, row.load(i));
#endif
  for (; i < count; ++i) dst[i] = row.at(i);
}

}  // namespace

void widen_e4m3_row(const uint8_t* codes, int64_t count, float* dst) { widen(E4m3Row{codes}, count, dst); }

void widen_bf16_row(const uint16_t* values, int64_t count, float* dst) { widen(Bf16Row{values}, count, dst); }

float dot(const float* a, const float* b, int64_t count) {
  float result;
  dot_rows(a, count, 1, b, count, &result, 1);
  return result;
}

namespace {

#ifdef OCTET_AVX512
// Rows activation rows (from x, x_stride apart) against one weight row, sharing each weight load (and
// its widening): every row sums its products in one 16-lane accumulator, the masked tail last.
template <int Rows, class Row>
void dot_group(const float* x, int64_t x_stride, const Row& w, int64_t count, float* out, int64_t out_stride) {
  const int64_t tail = count % 16;
  const __mmask16 tail_mask = static_cast<__mmask16>((1u << tail) - 1);
  __m512 a[Rows];
  for (int r = 0; r < Rows; ++r) a[r] = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= count; i += 16) {
    const __m512 wv = w.load(i);
    for (int r = 0; r < Rows; ++r) a[r] = _mm512_fmadd_ps(_mm512_loadu_ps(x + r * x_stride + i), wv, a[r]);
  }
  if (tail) {
    const __m512 wv = w.load_tail(i, tail_mask);
    for (int r = 0; r < Rows; ++r) a[r] = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(tail_mask, x + r * x_stride + i), wv, a[r]);
  }
  for (int r = 0; r < Rows; ++r) out[r * out_stride] = _mm512_reduce_add_ps(a[r]);
}
#endif

// Groups of eight, then four, then single rows: each row in the same order whatever group it falls
// in, so a row's result does not depend on how many rows share its batch (the continuous-batching
// server gives a request the same tokens whoever else is running).
template <class Row>
void dot_rows_over(const float* x, int64_t x_stride, int64_t tokens, const Row& w, int64_t count, float* out,
                   int64_t out_stride) {
  int64_t t = 0;
#ifdef OCTET_AVX512
  for (; t + 8 <= tokens; t += 8) dot_group<8>(x + t * x_stride, x_stride, w, count, out + t * out_stride, out_stride);
  for (; t + 4 <= tokens; t += 4) dot_group<4>(x + t * x_stride, x_stride, w, count, out + t * out_stride, out_stride);
  for (; t < tokens; ++t) dot_group<1>(x + t * x_stride, x_stride, w, count, out + t * out_stride, out_stride);
#else
  // One fused multiply-add a term, spelled out: left to the compiler, whether a product is contracted
  // into the sum depends on how it inlined the row's widening, and the formats' bits would differ.
  for (; t < tokens; ++t) {
    const float* xr = x + t * x_stride;
    float sum = 0.0f;
    for (int64_t i = 0; i < count; ++i) sum = std::fma(xr[i], w.at(i), sum);
    out[t * out_stride] = sum;
  }
#endif
}

}  // namespace

void dot_rows(const float* x, int64_t x_stride, int64_t tokens, const float* w, int64_t count, float* out,
              int64_t out_stride) {
  dot_rows_over(x, x_stride, tokens, Float32Row{w}, count, out, out_stride);
}

void dot_rows_e4m3(const float* x, int64_t x_stride, int64_t tokens, const uint8_t* codes, int64_t count, float* out,
                   int64_t out_stride) {
  dot_rows_over(x, x_stride, tokens, E4m3Row{codes}, count, out, out_stride);
}

void dot_rows_bf16(const float* x, int64_t x_stride, int64_t tokens, const uint16_t* values, int64_t count, float* out,
                   int64_t out_stride) {
  dot_rows_over(x, x_stride, tokens, Bf16Row{values}, count, out, out_stride);
}

}  // namespace octet::backend::cpu
