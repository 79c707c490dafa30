#include "backend/cpu/dot_kernels.h"

#include "fp8/fp8.h"

#include <cmath>
#include <cstring>

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__) && defined(__AVX512DQ__)
#include <immintrin.h>
#define OCTET_AVX512 1
#define OCTET_SIMD16 1
#elif defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
#include <immintrin.h>
#define OCTET_AVX2 1
#define OCTET_SIMD16 1
#endif

namespace octet::backend::cpu {

namespace {

#ifdef OCTET_SIMD16
// Sixteen float32 lanes: one AVX-512 register, or two AVX2 registers (lanes 0–7, 8–15). Every
// operation is lane by lane and the reduction is spelled out, so both give the same bits: a model
// answers the same on an AVX2-only host as on an AVX-512 one.
#ifdef OCTET_AVX512
struct Lanes16 {
  __m512 v;
  static Lanes16 zero() { return {_mm512_setzero_ps()}; }
  static Lanes16 load(const float* p) { return {_mm512_loadu_ps(p)}; }
  Lanes16 fma(Lanes16 x, Lanes16 w) const { return {_mm512_fmadd_ps(x.v, w.v, v)}; }
  void store(float* p) const { _mm512_storeu_ps(p, v); }
  __m256 low() const { return _mm512_castps512_ps256(v); }
  __m256 high() const { return _mm512_extractf32x8_ps(v, 1); }
};
#else
struct Lanes16 {
  __m256 lo, hi;
  static Lanes16 zero() { return {_mm256_setzero_ps(), _mm256_setzero_ps()}; }
  static Lanes16 load(const float* p) { return {_mm256_loadu_ps(p), _mm256_loadu_ps(p + 8)}; }
  Lanes16 fma(Lanes16 x, Lanes16 w) const { return {_mm256_fmadd_ps(x.lo, w.lo, lo), _mm256_fmadd_ps(x.hi, w.hi, hi)}; }
  void store(float* p) const {
    _mm256_storeu_ps(p, lo);
    _mm256_storeu_ps(p + 8, hi);
  }
  __m256 low() const { return lo; }
  __m256 high() const { return hi; }
};
#endif

// Halves, then quarters, then pairs: ((s0 + s2) + (s1 + s3)) of the four-lane sums s.
float reduce_add(const Lanes16& a) {
  const __m256 eight = _mm256_add_ps(a.low(), a.high());
  const __m128 four = _mm_add_ps(_mm256_castps256_ps128(eight), _mm256_extractf128_ps(eight, 1));
  const __m128 two = _mm_add_ps(four, _mm_shuffle_ps(four, four, _MM_SHUFFLE(1, 0, 3, 2)));
  return _mm_cvtss_f32(_mm_add_ss(two, _mm_shuffle_ps(two, two, _MM_SHUFFLE(2, 3, 0, 1))));
}

// The first `count` (< 16) elements of p followed by zeros, in a buffer the full-width load can read.
template <class T>
struct PaddedTail {
  alignas(64) T values[16] = {};
  PaddedTail(const T* p, int64_t count) { std::memcpy(values, p, static_cast<size_t>(count) * sizeof(T)); }
};

#ifdef OCTET_AVX2
// s eeee mmm → FP16 s 0eeee mmm0000000: the same value times 2^-8 (also for subnormals), so one
// hardware FP16 → FP32 conversion decodes eight codes at once.
__m256 widen_e4m3x8(__m128i codes8) {
  const __m128i bytes = _mm_cvtepu8_epi16(codes8);
  const __m128i half = _mm_and_si128(_mm_srai_epi16(_mm_slli_epi16(bytes, 8), 1), _mm_set1_epi16(static_cast<short>(0xBFFF)));
  return _mm256_cvtph_ps(half);
}

__m256 widen_bf16x8(__m128i values8) {
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(values8), 16));
}
#endif
#endif

// A weight row as dot_rows_over and the widening functions read it: 16 float32 lanes from element i
// (load), the first `count` of them with zeros after (load_tail), one element (at). The stored formats
// widen in registers to exactly what widen_e4m3_row / widen_bf16_row write (they store these loads),
// so every format sums the same products in the same order as a widened float32 row would.
struct Float32Row {
  const float* w;
#ifdef OCTET_SIMD16
  Lanes16 load(int64_t i) const { return Lanes16::load(w + i); }
  Lanes16 load_tail(int64_t i, int64_t count) const { return Lanes16::load(PaddedTail<float>(w + i, count).values); }
#endif
  float at(int64_t i) const { return w[i]; }
};

struct E4m3Row {
  const uint8_t* codes;
#ifdef OCTET_SIMD16
  static Lanes16 widen(const uint8_t* p) {
    const __m128i codes16 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
#ifdef OCTET_AVX512
    // All sixteen at once: the same bit move as widen_e4m3x8, one FP16 → FP32 conversion.
    const __m256i bytes = _mm256_cvtepu8_epi16(codes16);
    const __m256i keep = _mm256_set1_epi16(static_cast<short>(0xBFFF));
    return {_mm512_cvtph_ps(_mm256_and_si256(_mm256_srai_epi16(_mm256_slli_epi16(bytes, 8), 1), keep))};
#else
    return {widen_e4m3x8(codes16), widen_e4m3x8(_mm_srli_si128(codes16, 8))};
#endif
  }
  Lanes16 load(int64_t i) const { return widen(codes + i); }
  Lanes16 load_tail(int64_t i, int64_t count) const { return widen(PaddedTail<uint8_t>(codes + i, count).values); }  // code 0 is +0
#endif
  float at(int64_t i) const { return fp8::decode_e4m3(codes[i]) / kE4M3WidenFactor; }
};

struct Bf16Row {
  const uint16_t* values;
#ifdef OCTET_SIMD16
  static Lanes16 widen(const uint16_t* p) {
#ifdef OCTET_AVX512
    const __m256i values16 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
    return {_mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(values16), 16))};
#else
    return {widen_bf16x8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))),
            widen_bf16x8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 8)))};
#endif
  }
  Lanes16 load(int64_t i) const { return widen(values + i); }
  Lanes16 load_tail(int64_t i, int64_t count) const { return widen(PaddedTail<uint16_t>(values + i, count).values); }
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
#ifdef OCTET_SIMD16
  for (; i + 16 <= count; i += 16) row.load(i).store(dst + i);
#endif
  for (; i < count; ++i) dst[i] = row.at(i);
}

}  // namespace

void widen_e4m3_row(const uint8_t* codes, int64_t count, float* dst) { widen(E4m3Row{codes}, count, dst); }

void widen_bf16_row(const uint16_t* values, int64_t count, float* dst) { widen(Bf16Row{values}, count, dst); }

const char* dot_kernels_vector_unit() {
#if defined(OCTET_AVX512)
  return "avx512";
#elif defined(OCTET_AVX2)
  return "avx2";
#else
  return "scalar";
#endif
}

float dot(const float* a, const float* b, int64_t count) {
  float result;
  dot_rows(a, count, 1, b, count, &result, 1);
  return result;
}

namespace {

#ifdef OCTET_SIMD16
// Rows activation rows (from x, x_stride apart) against one weight row, sharing each weight load (and
// its widening): every row sums its products in one 16-lane accumulator, the zero-padded tail last.
template <int Rows, class Row>
void dot_group(const float* x, int64_t x_stride, const Row& w, int64_t count, float* out, int64_t out_stride) {
  const int64_t tail = count % 16;
  Lanes16 a[Rows];
  for (int r = 0; r < Rows; ++r) a[r] = Lanes16::zero();
  int64_t i = 0;
  for (; i + 16 <= count; i += 16) {
    const Lanes16 wv = w.load(i);
    for (int r = 0; r < Rows; ++r) a[r] = a[r].fma(Lanes16::load(x + r * x_stride + i), wv);
  }
  if (tail) {
    const Lanes16 wv = w.load_tail(i, tail);
    for (int r = 0; r < Rows; ++r) a[r] = a[r].fma(Lanes16::load(PaddedTail<float>(x + r * x_stride + i, tail).values), wv);
  }
  for (int r = 0; r < Rows; ++r) out[r * out_stride] = reduce_add(a[r]);
}

// Rows sharing one weight load: as many as the registers hold (AVX2 has 16 of 8 lanes, two a row).
#ifdef OCTET_AVX512
constexpr int kWideGroup = 8;
#else
constexpr int kWideGroup = 4;
#endif
#endif

// Wide groups, then fours, then single rows: each row in the same order whatever group it falls in,
// so a row's result does not depend on how many rows share its batch (the continuous-batching server
// gives a request the same tokens whoever else is running).
template <class Row>
void dot_rows_over(const float* x, int64_t x_stride, int64_t tokens, const Row& w, int64_t count, float* out,
                   int64_t out_stride) {
  int64_t t = 0;
#ifdef OCTET_SIMD16
  for (; t + kWideGroup <= tokens; t += kWideGroup)
    dot_group<kWideGroup>(x + t * x_stride, x_stride, w, count, out + t * out_stride, out_stride);
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
