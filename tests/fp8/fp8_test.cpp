// FP8 formats against slow references written from the format definitions (OCP FP8 / CUDA
// __nv_fp8_e4m3, __nv_fp8_e5m2 with __NV_SATFINITE).
#include "fp8/fp8.h"
#include "support/random.h"

#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <limits>
#include <vector>

namespace octet::fp8 {
namespace {

struct Spec {
  Format format;
  int exponent_bits, mantissa_bits, bias;
  float max;
};
constexpr Spec kE4M3{Format::e4m3, 4, 3, 7, 448.0f};
constexpr Spec kE5M2{Format::e5m2, 5, 2, 15, 57344.0f};

// The value a code stands for, straight from its bit fields.
double reference_decode(const Spec& s, uint8_t code) {
  const int sign = code >> 7;
  const int exponent = (code >> s.mantissa_bits) & ((1 << s.exponent_bits) - 1);
  const int mantissa = code & ((1 << s.mantissa_bits) - 1);
  const double sign_factor = sign ? -1.0 : 1.0;
  const int all_ones = (1 << s.exponent_bits) - 1;
  if (s.format == Format::e4m3 && exponent == all_ones && mantissa == (1 << s.mantissa_bits) - 1) return NAN;
  if (s.format == Format::e5m2 && exponent == all_ones) return mantissa == 0 ? sign_factor * INFINITY : NAN;
  if (exponent == 0) return sign_factor * std::ldexp(mantissa, 1 - s.bias - s.mantissa_bits);
  return sign_factor * std::ldexp(1.0 + mantissa / double(1 << s.mantissa_bits), exponent - s.bias);
}

// Nearest finite code by searching all of them: ties go to the code with an even mantissa LSB;
// magnitudes at or beyond max saturate; NaN stays NaN.
uint8_t reference_encode(const Spec& s, float x) {
  static std::vector<double> table[2];
  auto& values = table[s.format == Format::e4m3 ? 0 : 1];
  if (values.empty())
    for (int c = 0; c < 0x80; ++c) values.push_back(reference_decode(s, uint8_t(c)));
  const uint8_t sign = std::signbit(x) ? 0x80 : 0x00;
  const double magnitude = std::fabs(double(x));
  if (magnitude >= s.max) {
    for (int c = 0x7F; c >= 0; --c)
      if (values[c] == s.max) return sign | uint8_t(c);
  }
  int best = 0;
  double best_distance = INFINITY;
  for (int c = 0; c < 0x80; ++c) {
    const double v = values[c];
    if (!std::isfinite(v)) continue;
    const double d = std::fabs(v - magnitude);
    if (d < best_distance || (d == best_distance && (c & 1) == 0)) {
      best = c;
      best_distance = d;
    }
  }
  return sign | uint8_t(best);
}

class Fp8Format : public ::testing::TestWithParam<Spec> {};

TEST_P(Fp8Format, EveryCodeDecodesToItsDefinedValue) {
  const Spec s = GetParam();
  for (int code = 0; code < 256; ++code) {
    const double expected = reference_decode(s, uint8_t(code));
    const float got = decode(s.format, uint8_t(code));
    if (std::isnan(expected)) {
      EXPECT_TRUE(std::isnan(got)) << "code " << code;
    } else {
      EXPECT_EQ(double(got), expected) << "code " << code;
      if (expected == 0) EXPECT_EQ(std::signbit(got), code >= 0x80) << "code " << code;
    }
  }
}

TEST_P(Fp8Format, EveryFiniteValueRoundTrips) {
  const Spec s = GetParam();
  for (int code = 0; code < 256; ++code) {
    const float v = decode(s.format, uint8_t(code));
    if (!std::isfinite(v)) continue;
    EXPECT_EQ(encode(s.format, v), uint8_t(code)) << "value " << v;
  }
}

TEST_P(Fp8Format, MidpointsRoundToEvenAndNeighboursToTheNearer) {
  const Spec s = GetParam();
  for (int code = 0; code < 0x7F; ++code) {
    const double a = reference_decode(s, uint8_t(code)), b = reference_decode(s, uint8_t(code + 1));
    if (!std::isfinite(a) || !std::isfinite(b)) continue;
    const float mid = float((a + b) / 2);  // exact in float: few significant bits
    ASSERT_EQ(double(mid), (a + b) / 2);
    const uint8_t even = (code & 1) == 0 ? uint8_t(code) : uint8_t(code + 1);
    EXPECT_EQ(encode(s.format, mid), even) << "midpoint of codes " << code << " and " << code + 1;
    EXPECT_EQ(encode(s.format, -mid), uint8_t(0x80 | even));
    EXPECT_EQ(encode(s.format, std::nextafter(mid, 0.0f)), uint8_t(code)) << "just below midpoint " << mid;
    EXPECT_EQ(encode(s.format, std::nextafter(mid, INFINITY)), uint8_t(code + 1)) << "just above midpoint " << mid;
  }
}

TEST_P(Fp8Format, SaturatesInfinitiesAndOverflowAndKeepsNan) {
  const Spec s = GetParam();
  const uint8_t max_code = encode(s.format, s.max);
  EXPECT_EQ(decode(s.format, max_code), s.max);
  for (float big : {s.max * 1.01f, s.max * 2.0f, 1e30f, std::numeric_limits<float>::max(), INFINITY}) {
    EXPECT_EQ(encode(s.format, big), max_code) << big;
    EXPECT_EQ(encode(s.format, -big), uint8_t(0x80 | max_code)) << -big;
  }
  EXPECT_TRUE(std::isnan(decode(s.format, encode(s.format, NAN))));
  EXPECT_TRUE(std::isnan(decode(s.format, encode(s.format, -NAN))));
  EXPECT_EQ(encode(s.format, 0.0f), 0x00);
  EXPECT_EQ(encode(s.format, -0.0f), 0x80);
  // Half the smallest subnormal is a tie between 0 and code 1: ties to even gives 0.
  const float smallest = decode(s.format, 1);
  EXPECT_EQ(encode(s.format, smallest / 2), 0x00);
  EXPECT_EQ(encode(s.format, std::nextafter(smallest / 2, 1.0f)), 0x01);
  EXPECT_EQ(encode(s.format, std::numeric_limits<float>::denorm_min()), 0x00);
}

TEST_P(Fp8Format, EncodeAgreesWithExhaustiveSearchOnRandomBitPatterns) {
  const Spec s = GetParam();
  std::mt19937_64 rng(testing::test_seed("Fp8.RandomBitPatterns"));
  // Bit patterns cover every float class; a second set concentrates on the format's own range.
  std::uniform_int_distribution<uint32_t> bits;
  std::uniform_real_distribution<float> exponent(-20.0f, std::log2(s.max) + 2.0f);
  const int count = 2'000'000;
  std::vector<float> inputs;
  inputs.reserve(count);
  for (int i = 0; i < count / 2; ++i) inputs.push_back(std::bit_cast<float>(bits(rng)));
  for (int i = 0; i < count / 2; ++i) inputs.push_back((bits(rng) & 1 ? -1.0f : 1.0f) * std::exp2(exponent(rng)));
  std::vector<uint8_t> fast(inputs.size());
  encode_scaled(s.format, inputs.data(), 1.0f, fast.data(), inputs.size());
  int checked = 0, mismatches = 0;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const float x = inputs[i];
    const uint8_t single = encode(s.format, x);
    ASSERT_EQ(single, fast[i]) << "bulk and scalar encoders differ for " << x;
    ++checked;
    if (std::isnan(x)) {
      if (!std::isnan(decode(s.format, single))) ++mismatches;
      continue;
    }
    if (single != reference_encode(s, x)) {
      if (++mismatches < 10) ADD_FAILURE() << "x = " << x << " encoded " << int(single) << ", reference " << int(reference_encode(s, x));
    }
  }
  EXPECT_EQ(mismatches, 0) << "of " << checked;
  EXPECT_EQ(checked, count);
}

INSTANTIATE_TEST_SUITE_P(Formats, Fp8Format, ::testing::Values(kE4M3, kE5M2),
                         [](const auto& info) { return info.param.format == Format::e4m3 ? "E4M3" : "E5M2"; });

TEST(Fp8Names, ParseAndPrintTheTorchNames) {
  EXPECT_EQ(parse_format("float8_e4m3fn"), Format::e4m3);
  EXPECT_EQ(parse_format("float8_e5m2"), Format::e5m2);
  EXPECT_EQ(format_name(Format::e4m3), "float8_e4m3fn");
  EXPECT_THROW(parse_format("float8_e4m3fnuz"), std::exception);
}

}  // namespace
}  // namespace octet::fp8
