#include "fp8/fp8.h"

#include "common/error.h"

#if defined(__AVX512F__) && defined(__AVX512BW__)
#include <immintrin.h>
#define OCTET_FP8_AVX512 1
#endif

#include <array>
#include <bit>
#include <cmath>
#include <limits>

namespace octet::fp8 {
namespace {

// Parameters of a 1-sign, E-exponent, M-mantissa format with bias B.
struct Layout {
  int mantissa_bits;
  int bias;
  float max_value;
  uint8_t max_code;  // magnitude bits of the largest finite value
  uint8_t nan_code;  // magnitude bits of the canonical NaN
};
constexpr Layout kE4M3{3, 7, kE4M3Max, 0x7E, 0x7F};
constexpr Layout kE5M2{2, 15, kE5M2Max, 0x7B, 0x7E};

// Round-to-nearest-even on the float32 bit pattern. Normal results: adding half an ulp of the target
// (minus one, plus the kept LSB for ties-to-even) to the magnitude bits and truncating rounds the
// mantissa, and a carry moves into the exponent field as it should. Subnormal results have a fixed
// quantum, so scaling by its inverse and rounding to an integer (ties to even) gives the code.
uint8_t encode_with(const Layout& f, float value) {
  const uint32_t bits = std::bit_cast<uint32_t>(value);
  const uint8_t sign = static_cast<uint8_t>((bits >> 24) & 0x80);
  const uint32_t magnitude_bits = bits & 0x7FFFFFFFu;
  if (magnitude_bits > 0x7F800000u) return sign | f.nan_code;
  const float magnitude = std::bit_cast<float>(magnitude_bits);
  if (magnitude >= f.max_value) return sign | f.max_code;  // finite overflow and ±inf saturate

  const float min_normal = std::ldexp(1.0f, 1 - f.bias);
  if (magnitude < min_normal) {
    const float inverse_quantum = std::ldexp(1.0f, f.bias - 1 + f.mantissa_bits);
    return sign | static_cast<uint8_t>(std::lrint(magnitude * inverse_quantum));  // may round up to min normal
  }
  const int dropped = 23 - f.mantissa_bits;
  const uint32_t rounded = magnitude_bits + ((1u << (dropped - 1)) - 1) + ((magnitude_bits >> dropped) & 1u);
  uint32_t code = (rounded >> dropped) - (static_cast<uint32_t>(127 - f.bias) << f.mantissa_bits);
  if (code > f.max_code) code = f.max_code;
  return static_cast<uint8_t>(sign | code);
}

float decode_with(const Layout& f, uint8_t code) {
  const bool negative = code & 0x80;
  const uint8_t magnitude = code & 0x7F;
  const int exponent_field = magnitude >> f.mantissa_bits;
  const int mantissa = magnitude & ((1 << f.mantissa_bits) - 1);
  float value;
  if (&f == &kE4M3) {
    if (magnitude == 0x7F) return std::numeric_limits<float>::quiet_NaN();
  } else if (exponent_field == 0x1F) {
    if (mantissa == 0) return negative ? -INFINITY : INFINITY;
    return std::numeric_limits<float>::quiet_NaN();
  }
  if (exponent_field == 0) {
    value = std::ldexp(static_cast<float>(mantissa), 1 - f.bias - f.mantissa_bits);
  } else {
    value = std::ldexp(1.0f + static_cast<float>(mantissa) / static_cast<float>(1 << f.mantissa_bits),
                       exponent_field - f.bias);
  }
  return negative ? -value : value;
}

std::array<float, 256> make_table(const Layout& f) {
  std::array<float, 256> table{};
  for (int code = 0; code < 256; ++code) table[code] = decode_with(f, static_cast<uint8_t>(code));
  return table;
}

const std::array<float, 256>& table(Format format) {
  static const std::array<float, 256> e4m3 = make_table(kE4M3);
  static const std::array<float, 256> e5m2 = make_table(kE5M2);
  return format == Format::e4m3 ? e4m3 : e5m2;
}

}  // namespace

uint8_t encode_e4m3(float value) { return encode_with(kE4M3, value); }
float decode_e4m3(uint8_t code) { return table(Format::e4m3)[code]; }
uint8_t encode_e5m2(float value) { return encode_with(kE5M2, value); }
float decode_e5m2(uint8_t code) { return table(Format::e5m2)[code]; }

uint8_t encode(Format format, float value) {
  return format == Format::e4m3 ? encode_e4m3(value) : encode_e5m2(value);
}
float decode(Format format, uint8_t code) { return table(format)[code]; }
float max_value(Format format) { return format == Format::e4m3 ? kE4M3Max : kE5M2Max; }

Format parse_format(std::string_view name) {
  if (name == "float8_e4m3fn" || name == "e4m3" || name == "fp8_e4m3") return Format::e4m3;
  if (name == "float8_e5m2" || name == "e5m2" || name == "fp8_e5m2") return Format::e5m2;
  fail("unknown FP8 data type '{}': expected float8_e4m3fn or float8_e5m2", name);
}

std::string_view format_name(Format format) { return format == Format::e4m3 ? "float8_e4m3fn" : "float8_e5m2"; }

#ifdef OCTET_FP8_AVX512
// encode_with for E4M3, sixteen lanes at a time (activation quantization sits on the hot path).
size_t encode_e4m3_avx512(const float* in, float inv_scale, uint8_t* out, size_t count) {
  const __m512 scale = _mm512_set1_ps(inv_scale);
  const __m512 min_normal = _mm512_set1_ps(0x1p-6f), max_value = _mm512_set1_ps(kE4M3Max);
  const __m512i one = _mm512_set1_epi32(1), half_ulp = _mm512_set1_epi32(0x7FFFF);
  const __m512i rebias = _mm512_set1_epi32((127 - 7) << 3);
  const __m512i max_code = _mm512_set1_epi32(0x7E), nan_code = _mm512_set1_epi32(0x7F);
  const __m512i infinity_bits = _mm512_set1_epi32(0x7F800000);
  size_t i = 0;
  for (; i + 16 <= count; i += 16) {
    const __m512i bits = _mm512_castps_si512(_mm512_mul_ps(_mm512_loadu_ps(in + i), scale));
    const __m512i sign = _mm512_and_si512(_mm512_srli_epi32(bits, 24), _mm512_set1_epi32(0x80));
    const __m512i magnitude_bits = _mm512_and_si512(bits, _mm512_set1_epi32(0x7FFFFFFF));
    const __m512 magnitude = _mm512_castsi512_ps(magnitude_bits);
    const __m512i rounded = _mm512_add_epi32(
        magnitude_bits, _mm512_add_epi32(half_ulp, _mm512_and_si512(_mm512_srli_epi32(magnitude_bits, 20), one)));
    __m512i code = _mm512_sub_epi32(_mm512_srli_epi32(rounded, 20), rebias);
    const __m512i subnormal = _mm512_cvtps_epi32(_mm512_mul_ps(magnitude, _mm512_set1_ps(512.0f)));  // ties to even
    code = _mm512_mask_blend_epi32(_mm512_cmp_ps_mask(magnitude, min_normal, _CMP_LT_OQ), code, subnormal);
    code = _mm512_mask_mov_epi32(code, _mm512_cmp_ps_mask(magnitude, max_value, _CMP_GE_OQ), max_code);
    code = _mm512_min_epi32(code, max_code);
    code = _mm512_mask_mov_epi32(code, _mm512_cmpgt_epi32_mask(magnitude_bits, infinity_bits), nan_code);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i), _mm512_cvtepi32_epi8(_mm512_or_si512(code, sign)));
  }
  return i;
}
#endif

void encode_scaled(Format format, const float* in, float inv_scale, uint8_t* out, size_t count) {
  const Layout& f = format == Format::e4m3 ? kE4M3 : kE5M2;
  size_t i = 0;
#ifdef OCTET_FP8_AVX512
  if (format == Format::e4m3) i = encode_e4m3_avx512(in, inv_scale, out, count);
#endif
  for (; i < count; ++i) out[i] = encode_with(f, in[i] * inv_scale);
}

void decode_scaled(Format format, const uint8_t* in, float scale, float* out, size_t count) {
  const auto& t = table(format);
  for (size_t i = 0; i < count; ++i) out[i] = t[in[i]] * scale;
}

}  // namespace octet::fp8
