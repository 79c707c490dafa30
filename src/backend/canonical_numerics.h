#pragma once
// The arithmetic of `numerics: reproducible`, written once for the host and the GPU so that the CPU
// and CUDA backends give the same bits (docs/ACCURACY.md, "Reproducible numerics"). Three rules make
// that hold whatever each compiler does:
//  1. Every sum adds terms that are computed exactly, in double: FP8 × FP8, bf16 × bf16, float × float
//     and float × (FP8 code × float scale) products all fit in 53 bits. Contraction into fused
//     multiply-adds cannot change such a sum, so neither compiler's -ffp-contract matters.
//  2. Every sum runs in one order, the canonical lane order: term i goes to partial i mod 32 (in
//     increasing i), and the 32 partials are combined by halving (p[l] += p[l + 16], then + 8, + 4,
//     + 2, + 1). A CUDA warp does exactly this with one lane per partial and __shfl_down_sync; the
//     host emulates it (lane_sum below).
//  3. Functions whose library versions differ between the host and the GPU (exp, sin, cos) are the
//     polynomials below, evaluated with explicit fma; every other float operation is a single IEEE
//     operation (the CUDA kernels spell them __fmul_rn, __fdiv_rn, … so no fast-math flag reaches them).
// FP8 × FP8 sums are then exact outright (every term a multiple of 2^-18 and |sum| < 2^35 for up to
// 2^17 terms), so only the order of the other sums had to be fixed.
#include <cmath>
#include <cstdint>

#if defined(__CUDACC__)
#define OCTET_CANONICAL __host__ __device__ __forceinline__
#else
#define OCTET_CANONICAL inline
#endif

namespace octet::backend::canonical {

inline constexpr int kLanes = 32;
// The longest FP8 × FP8 dot product whose double sum is exact (see above).
inline constexpr int64_t kMaxExactFp8Terms = int64_t{1} << 17;

// The halving combination of rule 2 (p is clobbered).
OCTET_CANONICAL double combine_lanes(double* p) {
  for (int offset = kLanes / 2; offset > 0; offset /= 2)
    for (int l = 0; l < offset; ++l) p[l] = p[l] + p[l + offset];
  return p[0];
}

// Σ term(i) for i in [0, count) in the canonical lane order (host side; kernels use a warp).
template <typename Term>
inline double lane_sum(int64_t count, Term term) {
  double p[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= count; i += kLanes)
    for (int l = 0; l < kLanes; ++l) p[l] += term(i + l);
  for (int l = 0; i + l < count; ++l) p[l] += term(i + l);
  return combine_lanes(p);
}

// e^x for float x: x = k·ln2 + r (|r| ≤ ln2/2), e^r by its Taylor series to r^13 (error < 2^-60), then
// scaled by 2^k; rounded once to float. exp(x) below -110 is 0 in float, above 89 infinite.
OCTET_CANONICAL float exp(float x) {
  if (x != x) return x;
  if (x < -110.0f) return 0.0f;
  if (x > 89.0f) return INFINITY;
  const double xd = x;
  const double k = rint(xd * 1.4426950408889634074);
  double r = fma(-k, 6.93147180559945286227e-01, xd);
  r = fma(-k, 2.31904681384629955842e-17, r);
  double p = 1.0 / 6227020800.0;  // 1/13!
  p = fma(p, r, 1.0 / 479001600.0);
  p = fma(p, r, 1.0 / 39916800.0);
  p = fma(p, r, 1.0 / 3628800.0);
  p = fma(p, r, 1.0 / 362880.0);
  p = fma(p, r, 1.0 / 40320.0);
  p = fma(p, r, 1.0 / 5040.0);
  p = fma(p, r, 1.0 / 720.0);
  p = fma(p, r, 1.0 / 120.0);
  p = fma(p, r, 1.0 / 24.0);
  p = fma(p, r, 1.0 / 6.0);
  p = fma(p, r, 0.5);
  p = fma(p, r, 1.0);
  p = fma(p, r, 1.0);
  return static_cast<float>(ldexp(p, static_cast<int>(k)));
}

// sin and cos of a float angle (RoPE: |angle| up to a few 10^5): angle = k·π/2 + r by a three-part
// Cody–Waite reduction with fma (|r| ≤ π/4), Taylor series to r^15 / r^16 (error < 2^-54), the
// quadrant from k; each rounded once to float.
OCTET_CANONICAL void sincos(float angle, float* sin_out, float* cos_out) {
  const double x = angle;
  const double k = rint(x * 6.36619772367581382433e-01);  // 2/π
  double r = fma(-k, 1.57079632679489655800e+00, x);
  r = fma(-k, 6.12323399573676603587e-17, r);
  r = fma(-k, -1.49738490485916983e-33, r);
  const double r2 = r * r;
  double s = -1.0 / 1307674368000.0;  // -1/15!
  s = fma(s, r2, 1.0 / 6227020800.0);
  s = fma(s, r2, -1.0 / 39916800.0);
  s = fma(s, r2, 1.0 / 362880.0);
  s = fma(s, r2, -1.0 / 5040.0);
  s = fma(s, r2, 1.0 / 120.0);
  s = fma(s, r2, -1.0 / 6.0);
  s = fma(s * r2, r, r);  // r + r³·S(r²)
  double c = 1.0 / 20922789888000.0;  // 1/16!
  c = fma(c, r2, -1.0 / 87178291200.0);
  c = fma(c, r2, 1.0 / 479001600.0);
  c = fma(c, r2, -1.0 / 3628800.0);
  c = fma(c, r2, 1.0 / 40320.0);
  c = fma(c, r2, -1.0 / 720.0);
  c = fma(c, r2, 1.0 / 24.0);
  c = fma(c, r2, -0.5);
  c = fma(c, r2, 1.0);
  const int quadrant = static_cast<int>(static_cast<int64_t>(k) & 3);
  const double sin_value = quadrant == 0 ? s : quadrant == 1 ? c : quadrant == 2 ? -s : -c;
  const double cos_value = quadrant == 0 ? c : quadrant == 1 ? -s : quadrant == 2 ? -c : s;
  *sin_out = static_cast<float>(sin_value);
  *cos_out = static_cast<float>(cos_value);
}

// The scale of a dynamically quantized row (activations per token, KV vectors per (token, head)):
// amax over the format's largest value, at least FLT_MIN; 1 for an all-zero or non-finite row.
OCTET_CANONICAL float fp8_scale_from_amax(float amax, float format_max) {
  if (!(amax > 0.0f) || amax == INFINITY) return 1.0f;
  const float scale = amax / format_max;
  return scale > 1.17549435e-38f ? scale : 1.17549435e-38f;
}

// RoPE's pair (a, b) → (a·cos − b·sin, b·cos + a·sin): the products are exact in double.
OCTET_CANONICAL float rotate_first(float a, float b, float c, float s) {
  return static_cast<float>(static_cast<double>(a) * c - static_cast<double>(b) * s);
}
OCTET_CANONICAL float rotate_second(float a, float b, float c, float s) {
  return static_cast<float>(static_cast<double>(b) * c + static_cast<double>(a) * s);
}

// silu(g) · u with the exp above: (g / (1 + e^-g)) · u, three IEEE float operations.
OCTET_CANONICAL float swiglu(float g, float u, float e_minus_g) {
  const float denominator = 1.0f + e_minus_g;
  const float silu = g / denominator;
  return silu * u;
}

// An FP8 linear's output from its exact code-product sum: one double product by the two scales
// (themselves multiplied exactly in double), rounded once.
OCTET_CANONICAL float fp8_linear_output(double code_sum, float activation_scale, float weight_scale) {
  const double scales = static_cast<double>(activation_scale) * static_cast<double>(weight_scale);
  return static_cast<float>(code_sum * scales);
}

}  // namespace octet::backend::canonical
