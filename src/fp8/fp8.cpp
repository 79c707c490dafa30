#include "fp8/fp8.h"

#include "common/error.h"

#include <array>
#include <bit>

namespace octet::fp8 {
namespace {

// The two formats differ only in these constants, so one template holds the rounding logic.
// NaN codes: E4M3 has a single NaN pattern (0x7F / 0xFF). E5M2 always encodes NaN as 0x7E / 0xFE, the
// quiet NaN that torch and CUDA produce for the canonical float NaN (CUDA copies the top payload bits,
// so some other NaN payloads give 0x7F there; both decode to NaN). The sign of the input is kept.
struct E4M3Spec {
  static constexpr int kMantissaBits = 3;
  static constexpr int kExponentBits = 4;
  static constexpr int kBias = 7;
  static constexpr bool kHasInfinity = false;
  static constexpr uint32_t kMaxCode = 0x7E;
  static constexpr uint32_t kNanCode = 0x7F;
  static constexpr float kMax = kE4M3Max;
};

struct E5M2Spec {
  static constexpr int kMantissaBits = 2;
  static constexpr int kExponentBits = 5;
  static constexpr int kBias = 15;
  static constexpr bool kHasInfinity = true;
  static constexpr uint32_t kMaxCode = 0x7B;
  static constexpr uint32_t kNanCode = 0x7E;
  static constexpr float kMax = kE5M2Max;
};

// Written without branches so that the bulk loops below vectorise: every path is computed and the
// right one selected.
template <typename Spec>
inline uint8_t encode_one(float value) {
  constexpr int kShift = 23 - Spec::kMantissaBits;
  constexpr uint32_t kRebias = static_cast<uint32_t>(127 - Spec::kBias) << Spec::kMantissaBits;
  constexpr uint32_t kMaxBits = std::bit_cast<uint32_t>(Spec::kMax);
  constexpr uint32_t kMinNormalBits = static_cast<uint32_t>(127 + 1 - Spec::kBias) << 23;
  // A float of 2^(24 - bias - mantissa_bits) has an ulp equal to the FP8 subnormal step; adding it
  // to a subnormal-range magnitude lets the FPU's own round-to-nearest-even place the FP8 mantissa
  // in the float's low bits.
  constexpr uint32_t kSubnormalMagicBits =
      static_cast<uint32_t>(127 + 24 - Spec::kBias - Spec::kMantissaBits) << 23;
  constexpr float kSubnormalMagic = std::bit_cast<float>(kSubnormalMagicBits);
  constexpr uint32_t kHalfUlpMinusOne = (1u << (kShift - 1)) - 1u;

  const uint32_t bits = std::bit_cast<uint32_t>(value);
  const uint32_t sign = (bits >> 24) & 0x80u;
  const uint32_t magnitude = bits & 0x7FFFFFFFu;

  const uint32_t subnormal =
      std::bit_cast<uint32_t>(std::bit_cast<float>(magnitude) + kSubnormalMagic) - kSubnormalMagicBits;
  // Round-to-nearest-even on the integer bits: adding half an ulp minus one, plus the kept LSB,
  // carries exactly when the dropped part is above half, or equal to half with an odd LSB.
  // A carry out of the mantissa correctly bumps the exponent.
  const uint32_t kept_lsb = (magnitude >> kShift) & 1u;
  const uint32_t normal = ((magnitude + kHalfUlpMinusOne + kept_lsb) >> kShift) - kRebias;

  uint32_t code = magnitude < kMinNormalBits ? subnormal : normal;
  // Everything at or beyond max (finite overflow and infinity) saturates, as __NV_SATFINITE does.
  code = magnitude >= kMaxBits ? Spec::kMaxCode : code;
  code = magnitude > 0x7F800000u ? Spec::kNanCode : code;
  return static_cast<uint8_t>(code | sign);
}

template <typename Spec>
constexpr uint32_t decode_bits(uint32_t code) {
  constexpr uint32_t kMantissaMask = (1u << Spec::kMantissaBits) - 1u;
  constexpr uint32_t kExponentMask = (1u << Spec::kExponentBits) - 1u;
  constexpr uint32_t kQuietNan = 0x7FC00000u;
  constexpr uint32_t kInfinity = 0x7F800000u;
  const uint32_t sign = (code & 0x80u) << 24;
  const uint32_t exponent = (code >> Spec::kMantissaBits) & kExponentMask;
  const uint32_t mantissa = code & kMantissaMask;
  if (exponent == kExponentMask) {
    if constexpr (Spec::kHasInfinity) return sign | (mantissa == 0 ? kInfinity : kQuietNan);
    if (mantissa == kMantissaMask) return sign | kQuietNan;
  }
  if (exponent == 0) {
    // mantissa * 2^(1 - bias - mantissa_bits) is exact in float.
    constexpr float kSubnormalStep =
        std::bit_cast<float>(static_cast<uint32_t>(127 + 1 - Spec::kBias - Spec::kMantissaBits) << 23);
    return sign | std::bit_cast<uint32_t>(static_cast<float>(mantissa) * kSubnormalStep);
  }
  return sign | ((exponent - Spec::kBias + 127) << 23) | (mantissa << (23 - Spec::kMantissaBits));
}

// Float bit patterns rather than floats so the table is a constant expression with NaNs in it and
// never depends on static initialisation order.
template <typename Spec>
constexpr std::array<uint32_t, 256> make_decode_table() {
  std::array<uint32_t, 256> table{};
  for (uint32_t code = 0; code < 256; ++code) table[code] = decode_bits<Spec>(code);
  return table;
}

alignas(64) constexpr std::array<uint32_t, 256> kE4M3Table = make_decode_table<E4M3Spec>();
alignas(64) constexpr std::array<uint32_t, 256> kE5M2Table = make_decode_table<E5M2Spec>();

template <typename Spec>
void encode_scaled_impl(const float* in, float inv_scale, uint8_t* out, size_t count) {
  for (size_t i = 0; i < count; ++i) out[i] = encode_one<Spec>(in[i] * inv_scale);
}

void decode_scaled_impl(const std::array<uint32_t, 256>& table, const uint8_t* in, float scale, float* out,
                        size_t count) {
  for (size_t i = 0; i < count; ++i) out[i] = std::bit_cast<float>(table[in[i]]) * scale;
}

}  // namespace

uint8_t encode_e4m3(float value) { return encode_one<E4M3Spec>(value); }
float decode_e4m3(uint8_t code) { return std::bit_cast<float>(kE4M3Table[code]); }
uint8_t encode_e5m2(float value) { return encode_one<E5M2Spec>(value); }
float decode_e5m2(uint8_t code) { return std::bit_cast<float>(kE5M2Table[code]); }

uint8_t encode(Format format, float value) {
  return format == Format::e4m3 ? encode_e4m3(value) : encode_e5m2(value);
}

float decode(Format format, uint8_t code) {
  return format == Format::e4m3 ? decode_e4m3(code) : decode_e5m2(code);
}

float max_value(Format format) { return format == Format::e4m3 ? kE4M3Max : kE5M2Max; }

Format parse_format(std::string_view name) {
  if (name == "float8_e4m3fn" || name == "e4m3") return Format::e4m3;
  if (name == "float8_e5m2" || name == "e5m2") return Format::e5m2;
  fail("unknown FP8 format '{}' (expected float8_e4m3fn, e4m3, float8_e5m2 or e5m2)", name);
}

std::string_view format_name(Format format) {
  return format == Format::e4m3 ? "float8_e4m3fn" : "float8_e5m2";
}

void encode_scaled(Format format, const float* in, float inv_scale, uint8_t* out, size_t count) {
  if (format == Format::e4m3)
    encode_scaled_impl<E4M3Spec>(in, inv_scale, out, count);
  else
    encode_scaled_impl<E5M2Spec>(in, inv_scale, out, count);
}

void decode_scaled(Format format, const uint8_t* in, float scale, float* out, size_t count) {
  decode_scaled_impl(format == Format::e4m3 ? kE4M3Table : kE5M2Table, in, scale, out, count);
}

}  // namespace octet::fp8
