// The functions of backend/canonical_numerics.h (numerics: reproducible) against the C library and
// against their stated definitions: exp, sin and cos within one float ulp of the double-precision
// value, the lane order exactly as documented, the scale rule as fp8::scale_from_amax.
#include "backend/canonical_numerics.h"
#include "fp8/fp8.h"
#include "fp8/scaling.h"
#include "support/random.h"

#include <gtest/gtest.h>

#include <cfloat>
#include <cmath>
#include <limits>
#include <random>
#include <vector>

namespace octet::backend {
namespace {

// |got − want| in units of the float ulp at want (want rounded to float).
double ulps(float got, double want) {
  const float nearest = static_cast<float>(want);
  const float next = std::nextafter(std::fabs(nearest), INFINITY);
  const double ulp = static_cast<double>(next) - std::fabs(nearest);
  return std::fabs(static_cast<double>(got) - want) / ulp;
}

TEST(CanonicalNumerics, ExpIsWithinOneUlpOfTheDoubleResult) {
  std::mt19937_64 rng(testing::test_seed("CanonicalNumerics.ExpIsWithinOneUlpOfTheDoubleResult"));
  std::uniform_real_distribution<float> wide(-87.0f, 88.0f), narrow(-1.0f, 1.0f);
  double worst = 0;
  for (int i = 0; i < 200000; ++i) {
    const float x = i % 2 ? wide(rng) : narrow(rng);
    worst = std::max(worst, ulps(canonical::exp(x), std::exp(static_cast<double>(x))));
  }
  EXPECT_LE(worst, 1.0);
  EXPECT_EQ(canonical::exp(0.0f), 1.0f);
  EXPECT_EQ(canonical::exp(-200.0f), 0.0f);
  EXPECT_EQ(canonical::exp(-110.5f), 0.0f);
  EXPECT_EQ(canonical::exp(100.0f), INFINITY);
  EXPECT_EQ(canonical::exp(-INFINITY), 0.0f);
  EXPECT_TRUE(std::isnan(canonical::exp(std::numeric_limits<float>::quiet_NaN())));
  // Subnormal results: e^-100 ≈ 3.7e-44 is a float subnormal, rounded once.
  EXPECT_EQ(canonical::exp(-100.0f), static_cast<float>(std::exp(-100.0)));
}

TEST(CanonicalNumerics, SinAndCosAreWithinOneUlpOverRopeAngles) {
  std::mt19937_64 rng(testing::test_seed("CanonicalNumerics.SinAndCosAreWithinOneUlpOverRopeAngles"));
  std::uniform_real_distribution<float> angle(-140000.0f, 140000.0f), small(-4.0f, 4.0f);
  double worst = 0;
  for (int i = 0; i < 200000; ++i) {
    const float a = i % 2 ? angle(rng) : small(rng);
    float s, c;
    canonical::sincos(a, &s, &c);
    const double want_s = std::sin(static_cast<double>(a)), want_c = std::cos(static_cast<double>(a));
    // Near a zero the ulp shrinks without bound; there the absolute error is what matters.
    worst = std::max(worst, std::fabs(want_s) < 1e-3 ? std::fabs(s - want_s) / 1e-10 : ulps(s, want_s));
    worst = std::max(worst, std::fabs(want_c) < 1e-3 ? std::fabs(c - want_c) / 1e-10 : ulps(c, want_c));
  }
  EXPECT_LE(worst, 1.0);
  float s, c;
  canonical::sincos(0.0f, &s, &c);
  EXPECT_EQ(s, 0.0f);
  EXPECT_EQ(c, 1.0f);
}

// Terms whose double sum depends on the order: the result must be the documented halving of the
// 32 interleaved partials, not a sequential sum.
TEST(CanonicalNumerics, LaneSumAddsInTheDocumentedOrder) {
  std::mt19937_64 rng(testing::test_seed("CanonicalNumerics.LaneSumAddsInTheDocumentedOrder"));
  std::uniform_real_distribution<double> exponent(-30.0, 30.0);
  bool some_order_mattered = false;
  for (int64_t count : {1, 5, 31, 32, 33, 64, 100, 577}) {
    std::vector<double> terms(static_cast<size_t>(count));
    for (auto& t : terms) t = std::ldexp(1.0, static_cast<int>(exponent(rng))) * (rng() % 2 ? 1 : -1) * 1.000000123;
    double partial[32] = {};
    for (int64_t i = 0; i < count; ++i) partial[i % 32] += terms[static_cast<size_t>(i)];
    for (int offset : {16, 8, 4, 2, 1})
      for (int l = 0; l < offset; ++l) partial[l] = partial[l] + partial[l + offset];
    const double got = canonical::lane_sum(count, [&](int64_t i) { return terms[static_cast<size_t>(i)]; });
    EXPECT_EQ(got, partial[0]) << "count " << count;
    double sequential = 0;
    for (double t : terms) sequential += t;
    some_order_mattered |= sequential != got;
  }
  EXPECT_TRUE(some_order_mattered) << "the terms should make the order visible";
}

TEST(CanonicalNumerics, DynamicScaleIsTheCpuScaleAndOneForUnusableRows) {
  for (float amax : {1e-30f, 0.5f, 448.0f, 3.0e38f, FLT_MIN, 1e-44f}) {
    EXPECT_EQ(canonical::fp8_scale_from_amax(amax, fp8::kE4M3Max), fp8::scale_from_amax(amax, fp8::Format::e4m3)) << amax;
    EXPECT_EQ(canonical::fp8_scale_from_amax(amax, fp8::kE5M2Max), fp8::scale_from_amax(amax, fp8::Format::e5m2)) << amax;
  }
  EXPECT_EQ(canonical::fp8_scale_from_amax(0.0f, fp8::kE4M3Max), 1.0f);
  EXPECT_EQ(canonical::fp8_scale_from_amax(INFINITY, fp8::kE4M3Max), 1.0f);
  EXPECT_EQ(canonical::fp8_scale_from_amax(std::numeric_limits<float>::quiet_NaN(), fp8::kE4M3Max), 1.0f);
}

// The exactness the FP8 linear relies on: every E4M3 × E4M3 product, summed 2^17 times at the
// largest magnitude, stays an exact double.
TEST(CanonicalNumerics, Fp8CodeProductSumsAreExactInDouble) {
  const double largest = static_cast<double>(fp8::kE4M3Max) * fp8::kE4M3Max;
  const double smallest = std::ldexp(1.0, -18);  // the smallest subnormal squared
  const double bound = largest * static_cast<double>(canonical::kMaxExactFp8Terms);
  EXPECT_LT(bound / smallest, std::ldexp(1.0, 53));
  for (int a = 0; a < 256; ++a)
    for (int b = 0; b < 256; ++b) {
      const double product = static_cast<double>(fp8::decode_e4m3(static_cast<uint8_t>(a))) * fp8::decode_e4m3(static_cast<uint8_t>(b));
      if (std::isnan(product)) continue;
      ASSERT_EQ(std::fmod(product, smallest), 0.0) << a << " × " << b;
    }
}

}  // namespace
}  // namespace octet::backend
