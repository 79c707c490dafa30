#include "fp8/fp8.h"

#include "common/error.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <iostream>
#include <limits>
#include <ostream>
#include <random>
#include <vector>

namespace octet::fp8 {
namespace {

// The formats as the OCP FP8 spec describes them, from their bit fields alone.
struct FormatSpec {
  Format format;
  int exponent_bits;
  int mantissa_bits;
  int bias;
  bool has_infinity;  // E5M2: IEEE-like specials; E4M3 ("fn"): only S.1111.111 is NaN
};

void PrintTo(const FormatSpec& spec, std::ostream* out) { *out << format_name(spec.format); }

constexpr FormatSpec kE4M3Spec{Format::e4m3, 4, 3, 7, false};
constexpr FormatSpec kE5M2Spec{Format::e5m2, 5, 2, 15, true};

float reference_decode(const FormatSpec& spec, uint8_t code) {
  const bool negative = (code & 0x80) != 0;
  const int exponent = (code >> spec.mantissa_bits) & ((1 << spec.exponent_bits) - 1);
  const int mantissa = code & ((1 << spec.mantissa_bits) - 1);
  const int all_ones_exponent = (1 << spec.exponent_bits) - 1;
  const int all_ones_mantissa = (1 << spec.mantissa_bits) - 1;
  double magnitude;
  if (spec.has_infinity && exponent == all_ones_exponent) {
    magnitude = mantissa == 0 ? std::numeric_limits<double>::infinity() : std::numeric_limits<double>::quiet_NaN();
  } else if (!spec.has_infinity && exponent == all_ones_exponent && mantissa == all_ones_mantissa) {
    magnitude = std::numeric_limits<double>::quiet_NaN();
  } else if (exponent == 0) {
    magnitude = std::ldexp(static_cast<double>(mantissa), 1 - spec.bias - spec.mantissa_bits);
  } else {
    magnitude = std::ldexp(1.0 + mantissa / static_cast<double>(1 << spec.mantissa_bits), exponent - spec.bias);
  }
  return static_cast<float>(negative ? -magnitude : magnitude);
}

// Positive finite codes in increasing order of value: for both formats that is increasing code.
std::vector<uint8_t> positive_finite_codes(const FormatSpec& spec) {
  std::vector<uint8_t> codes;
  for (int code = 0; code < 128; ++code)
    if (std::isfinite(reference_decode(spec, static_cast<uint8_t>(code)))) codes.push_back(static_cast<uint8_t>(code));
  return codes;
}

// Nearest representable value with ties to the even code, saturating at ±max; found by search over
// the reference-decoded values rather than by bit manipulation.
uint8_t reference_encode(const FormatSpec& spec, const std::vector<uint8_t>& codes, const std::vector<double>& values,
                         float input) {
  const uint8_t sign = std::signbit(input) ? 0x80 : 0x00;
  if (std::isnan(input)) return sign | (spec.has_infinity ? 0x7E : 0x7F);
  const double magnitude = std::fabs(static_cast<double>(input));
  if (magnitude >= values.back()) return sign | codes.back();
  const size_t upper = std::lower_bound(values.begin(), values.end(), magnitude) - values.begin();
  if (values[upper] == magnitude || upper == 0) return sign | codes[upper];
  const double below = magnitude - values[upper - 1];
  const double above = values[upper] - magnitude;
  if (below < above) return sign | codes[upper - 1];
  if (above < below) return sign | codes[upper];
  return sign | ((codes[upper] & 1) == 0 ? codes[upper] : codes[upper - 1]);
}

class Fp8Format : public ::testing::TestWithParam<FormatSpec> {};

TEST_P(Fp8Format, EveryCodeDecodesToTheSpecValue) {
  const FormatSpec spec = GetParam();
  for (int code = 0; code < 256; ++code) {
    const float expected = reference_decode(spec, static_cast<uint8_t>(code));
    const float decoded = decode(spec.format, static_cast<uint8_t>(code));
    if (std::isnan(expected)) {
      EXPECT_TRUE(std::isnan(decoded)) << "code " << code;
    } else {
      EXPECT_EQ(std::bit_cast<uint32_t>(decoded), std::bit_cast<uint32_t>(expected))
          << "code " << code << " decoded " << decoded << " expected " << expected;
    }
  }
}

TEST_P(Fp8Format, FormatConstants) {
  const FormatSpec spec = GetParam();
  const std::vector<uint8_t> codes = positive_finite_codes(spec);
  EXPECT_EQ(max_value(spec.format), reference_decode(spec, codes.back()));
  EXPECT_EQ(max_value(spec.format), spec.format == Format::e4m3 ? 448.0f : 57344.0f);
  EXPECT_EQ(parse_format(format_name(spec.format)), spec.format);
}

TEST_P(Fp8Format, EveryFiniteValueRoundTrips) {
  const FormatSpec spec = GetParam();
  for (int code = 0; code < 256; ++code) {
    const float value = reference_decode(spec, static_cast<uint8_t>(code));
    if (!std::isfinite(value)) continue;
    EXPECT_EQ(encode(spec.format, value), code) << "value " << value;
  }
}

TEST_P(Fp8Format, MidpointsTieToEvenAndNeighboursGoToTheNearer) {
  const FormatSpec spec = GetParam();
  const std::vector<uint8_t> codes = positive_finite_codes(spec);
  for (size_t i = 0; i + 1 < codes.size(); ++i) {
    const uint8_t low = codes[i];
    const uint8_t high = codes[i + 1];
    // Exact in float: FP8 values carry few significant bits.
    const float midpoint = (reference_decode(spec, low) + reference_decode(spec, high)) / 2.0f;
    const uint8_t even = (low & 1) == 0 ? low : high;
    for (uint8_t sign : {uint8_t{0x00}, uint8_t{0x80}}) {
      const float s = sign ? -1.0f : 1.0f;
      EXPECT_EQ(encode(spec.format, s * midpoint), sign | even) << "midpoint " << s * midpoint;
      EXPECT_EQ(encode(spec.format, s * std::nextafter(midpoint, 0.0f)), sign | low) << "below " << s * midpoint;
      EXPECT_EQ(encode(spec.format, s * std::nextafter(midpoint, 1e30f)), sign | high) << "above " << s * midpoint;
    }
  }
}

TEST_P(Fp8Format, SaturatesOverflowAndInfinityToMax) {
  const FormatSpec spec = GetParam();
  const float max = max_value(spec.format);
  const uint8_t max_code = positive_finite_codes(spec).back();
  // Half an ulp above max would round past it without saturation.
  const float half_ulp_above = max + std::ldexp(1.0f, static_cast<int>(std::log2(max)) - spec.mantissa_bits - 1);
  for (float value : {std::nextafter(max, 1e30f), half_ulp_above, max * 1.01f, max * 2.0f, 1e30f,
                      std::numeric_limits<float>::max(), std::numeric_limits<float>::infinity()}) {
    EXPECT_EQ(encode(spec.format, value), max_code) << value;
    EXPECT_EQ(encode(spec.format, -value), 0x80 | max_code) << -value;
  }
}

TEST_P(Fp8Format, NanStaysNanWithItsSign) {
  const FormatSpec spec = GetParam();
  const uint8_t nan_code = spec.format == Format::e4m3 ? 0x7F : 0x7E;
  const float quiet = std::numeric_limits<float>::quiet_NaN();
  const float signalling_payload = std::bit_cast<float>(0x7F800001u);
  for (float nan : {quiet, signalling_payload, std::bit_cast<float>(0x7FFFFFFFu)}) {
    EXPECT_EQ(encode(spec.format, nan), nan_code);
    EXPECT_EQ(encode(spec.format, -nan), 0x80 | nan_code);
    EXPECT_TRUE(std::isnan(decode(spec.format, encode(spec.format, nan))));
  }
}

TEST_P(Fp8Format, SignedZeroAndSubnormalBoundary) {
  const FormatSpec spec = GetParam();
  EXPECT_EQ(encode(spec.format, 0.0f), 0x00);
  EXPECT_EQ(encode(spec.format, -0.0f), 0x80);
  EXPECT_TRUE(std::signbit(decode(spec.format, 0x80)));

  const float smallest = reference_decode(spec, 0x01);
  EXPECT_EQ(smallest, std::ldexp(1.0f, 1 - spec.bias - spec.mantissa_bits));
  EXPECT_EQ(encode(spec.format, smallest / 2), 0x00) << "a tie between 0 and the smallest subnormal goes to 0 (even)";
  EXPECT_EQ(encode(spec.format, -smallest / 2), 0x80);
  EXPECT_EQ(encode(spec.format, std::nextafter(smallest / 2, 1.0f)), 0x01);
  EXPECT_EQ(encode(spec.format, smallest * 1.5f), 0x02) << "tie between codes 1 and 2 goes to 2";
  EXPECT_EQ(encode(spec.format, std::numeric_limits<float>::denorm_min()), 0x00);
  EXPECT_EQ(encode(spec.format, std::numeric_limits<float>::min()), 0x00);

  // The largest subnormal rounds up into the smallest normal across the boundary.
  const uint8_t largest_subnormal = static_cast<uint8_t>((1 << spec.mantissa_bits) - 1);
  const float boundary_midpoint =
      (reference_decode(spec, largest_subnormal) + reference_decode(spec, largest_subnormal + 1)) / 2;
  EXPECT_EQ(encode(spec.format, boundary_midpoint), largest_subnormal + 1);
}

// Random float32 bit patterns cover NaN payloads, infinities and float subnormals; a second stream
// concentrated on the format's own exponent range exercises rounding where it matters.
TEST_P(Fp8Format, AgreesWithSlowReferenceOnRandomFloats) {
  const FormatSpec spec = GetParam();
  const std::vector<uint8_t> codes = positive_finite_codes(spec);
  std::vector<double> values;
  for (uint8_t code : codes) values.push_back(reference_decode(spec, code));

  const uint64_t seed = (static_cast<uint64_t>(std::random_device{}()) << 32) | std::random_device{}();
  std::cout << "[ seed     ] " << format_name(spec.format) << " random-float seed " << seed << "\n";
  SCOPED_TRACE(::testing::Message() << "seed " << seed);
  std::mt19937_64 rng(seed);

  constexpr size_t kSamples = 2'000'000;
  const int min_exponent = 1 - spec.bias - spec.mantissa_bits - 2;
  const int max_exponent = static_cast<int>(std::log2(max_value(spec.format))) + 2;
  std::uniform_int_distribution<int> exponent_in_range(min_exponent + 127, max_exponent + 127);
  size_t mismatches = 0;
  for (size_t i = 0; i < 2 * kSamples; ++i) {
    uint32_t bits = static_cast<uint32_t>(rng());
    if (i >= kSamples) bits = (bits & 0x807FFFFFu) | (static_cast<uint32_t>(exponent_in_range(rng)) << 23);
    const float input = std::bit_cast<float>(bits);
    const uint8_t expected = reference_encode(spec, codes, values, input);
    const uint8_t found = encode(spec.format, input);
    if (found != expected && ++mismatches <= 10)
      ADD_FAILURE() << std::hexfloat << "input " << input << " (bits 0x" << std::hex << bits << ") encoded 0x"
                    << int{found} << ", reference 0x" << int{expected};
  }
  EXPECT_EQ(mismatches, 0u);
}

TEST_P(Fp8Format, BulkHelpersMatchScalarCalls) {
  const FormatSpec spec = GetParam();
  const uint64_t seed = std::random_device{}();
  std::cout << "[ seed     ] " << format_name(spec.format) << " bulk seed " << seed << "\n";
  SCOPED_TRACE(::testing::Message() << "seed " << seed);
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, 3.0f);
  // An odd length leaves a tail after any vector width.
  std::vector<float> input(1037);
  for (float& x : input) x = normal(rng);
  input[5] = std::numeric_limits<float>::quiet_NaN();
  input[6] = -std::numeric_limits<float>::infinity();
  const float inv_scale = 37.5f;
  const float scale = 1.0f / inv_scale;

  std::vector<uint8_t> codes(input.size());
  encode_scaled(spec.format, input.data(), inv_scale, codes.data(), input.size());
  std::vector<float> decoded(input.size());
  decode_scaled(spec.format, codes.data(), scale, decoded.data(), codes.size());
  for (size_t i = 0; i < input.size(); ++i) {
    ASSERT_EQ(codes[i], encode(spec.format, input[i] * inv_scale)) << "index " << i;
    const float expected = decode(spec.format, codes[i]) * scale;
    if (std::isnan(expected))
      EXPECT_TRUE(std::isnan(decoded[i]));
    else
      EXPECT_EQ(decoded[i], expected) << "index " << i;
  }
}

INSTANTIATE_TEST_SUITE_P(Formats, Fp8Format, ::testing::Values(kE4M3Spec, kE5M2Spec),
                         [](const ::testing::TestParamInfo<FormatSpec>& info) {
                           return info.param.format == Format::e4m3 ? std::string("E4M3") : std::string("E5M2");
                         });

TEST(Fp8, PerFormatFunctionsMatchDispatch) {
  for (int code = 0; code < 256; ++code) {
    const float e4m3 = decode_e4m3(static_cast<uint8_t>(code));
    const float e5m2 = decode_e5m2(static_cast<uint8_t>(code));
    EXPECT_EQ(std::bit_cast<uint32_t>(e4m3), std::bit_cast<uint32_t>(decode(Format::e4m3, static_cast<uint8_t>(code))));
    EXPECT_EQ(std::bit_cast<uint32_t>(e5m2), std::bit_cast<uint32_t>(decode(Format::e5m2, static_cast<uint8_t>(code))));
  }
  for (float value : {0.3f, -17.0f, 1e-3f, 500.0f}) {
    EXPECT_EQ(encode_e4m3(value), encode(Format::e4m3, value));
    EXPECT_EQ(encode_e5m2(value), encode(Format::e5m2, value));
  }
}

TEST(Fp8, ParseFormatNames) {
  EXPECT_EQ(parse_format("float8_e4m3fn"), Format::e4m3);
  EXPECT_EQ(parse_format("e4m3"), Format::e4m3);
  EXPECT_EQ(parse_format("float8_e5m2"), Format::e5m2);
  EXPECT_EQ(parse_format("e5m2"), Format::e5m2);
  EXPECT_EQ(format_name(Format::e4m3), "float8_e4m3fn");
  EXPECT_EQ(format_name(Format::e5m2), "float8_e5m2");
  EXPECT_THROW(parse_format("float8_e4m3fnuz"), Error);
  EXPECT_THROW(parse_format(""), Error);
}

TEST(Fp8, KnownCodes) {
  EXPECT_EQ(encode_e4m3(1.0f), 0x38);
  EXPECT_EQ(encode_e4m3(-2.0f), 0xC0);
  EXPECT_EQ(encode_e4m3(448.0f), 0x7E);
  EXPECT_EQ(encode_e5m2(1.0f), 0x3C);
  EXPECT_EQ(encode_e5m2(57344.0f), 0x7B);
  EXPECT_TRUE(std::isinf(decode_e5m2(0x7C)));
  EXPECT_EQ(decode_e4m3(0x01), std::ldexp(1.0f, -9));
  EXPECT_EQ(decode_e5m2(0x01), std::ldexp(1.0f, -16));
}

}  // namespace
}  // namespace octet::fp8
