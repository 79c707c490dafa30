// CPU backend kernels against slow double-precision references written here, on fresh random
// inputs of odd sizes.
#include "backend/backend.h"
#include "backend/cpu/cpu_tensors.h"
#include "common/bf16.h"
#include "fp8/fp8.h"
#include "support/random.h"

#include <gtest/gtest.h>

#include <cmath>

namespace octet::backend {
namespace {

using testing::random_normal;
using testing::relative_error;

std::vector<float>& data(Activations& a) { return static_cast<cpu::CpuActivations&>(a).data; }

std::unique_ptr<Activations> activations(Backend& b, int64_t rows, int64_t cols, const std::vector<float>& values) {
  auto a = b.make_activations(rows, cols);
  data(*a) = values;
  return a;
}

// Per-row E4M3 quantization as the format defines it: scale = amax / 448, codes = encode(x / scale).
std::vector<double> e4m3_round_rows(const std::vector<float>& m, int64_t rows, int64_t cols) {
  std::vector<double> out(m.size());
  for (int64_t r = 0; r < rows; ++r) {
    float amax = 0;
    for (int64_t c = 0; c < cols; ++c) amax = std::max(amax, std::fabs(m[r * cols + c]));
    const float scale = amax > 0 ? amax / 448.0f : 1.0f;
    // Both backends quantize by multiplying with the reciprocal of the scale (not dividing): the two
    // differ in the last bit now and then, which can flip an E4M3 rounding.
    const float inverse = 1.0f / scale;
    for (int64_t c = 0; c < cols; ++c)
      out[r * cols + c] = static_cast<double>(fp8::decode_e4m3(fp8::encode_e4m3(m[r * cols + c] * inverse))) * scale;
  }
  return out;
}

std::vector<double> matmul_reference(const std::vector<double>& x, const std::vector<double>& w, int64_t rows,
                                     int64_t in, int64_t out) {
  std::vector<double> y(static_cast<size_t>(rows * out));
  for (int64_t t = 0; t < rows; ++t)
    for (int64_t o = 0; o < out; ++o) {
      double sum = 0;
      for (int64_t i = 0; i < in; ++i) sum += x[t * in + i] * w[o * in + i];
      y[t * out + o] = sum;
    }
  return y;
}

class CpuLinearTest : public ::testing::TestWithParam<LinearFormat> {};

TEST_P(CpuLinearTest, MatchesReferenceOnOddShapes) {
  const LinearFormat format = GetParam();
  std::mt19937_64 rng(testing::test_seed("CpuLinear"));
  auto backend = make_cpu_backend(2);
  struct Shape { int64_t rows, in, out; };
  for (Shape s : {Shape{1, 576, 192}, Shape{3, 37, 13}, Shape{5, 1000, 257}, Shape{17, 64, 33}}) {
    auto x = random_normal(rng, static_cast<size_t>(s.rows * s.in));
    auto w = random_normal(rng, static_cast<size_t>(s.out * s.in), 0.05f);
    auto weight = backend->make_linear(w.data(), s.out, s.in, LinearSpec{format, 0.0f});
    auto input = activations(*backend, s.rows, s.in, x);
    auto output = backend->make_activations(s.rows, s.out);
    std::fill(data(*output).begin(), data(*output).end(), NAN);  // poison: every element must be written
    backend->linear(*input, *weight, *output);

    std::vector<double> xr(x.begin(), x.end()), wr(w.begin(), w.end());
    if (format == LinearFormat::bf16) {
      for (auto& v : xr) v = round_to_bf16(static_cast<float>(v));
      for (auto& v : wr) v = round_to_bf16(static_cast<float>(v));
    } else if (format == LinearFormat::fp8) {
      xr = e4m3_round_rows(x, s.rows, s.in);  // per-token activation scales
      wr = e4m3_round_rows(w, s.out, s.in);   // per-output-channel weight scales
    }
    // The kernels see exactly the rounded operands; only float32 accumulation order differs.
    double error = relative_error(data(*output), matmul_reference(xr, wr, s.rows, s.in, s.out));
    EXPECT_LT(error, 1e-5) << "rows " << s.rows << " in " << s.in << " out " << s.out;
  }
}

INSTANTIATE_TEST_SUITE_P(Formats, CpuLinearTest,
                         ::testing::Values(LinearFormat::f32, LinearFormat::bf16, LinearFormat::fp8));

TEST(CpuBackend, RmsnormSwigluAddMatchFormulas) {
  std::mt19937_64 rng(testing::test_seed("CpuBackend.Elementwise"));
  auto backend = make_cpu_backend(2);
  const int64_t rows = 3, cols = 77;
  auto x = random_normal(rng, rows * cols), y = random_normal(rng, rows * cols), w = random_normal(rng, cols);
  auto xa = activations(*backend, rows, cols, x), ya = activations(*backend, rows, cols, y);
  auto out = backend->make_activations(rows, cols);
  auto weight = backend->make_vector(w.data(), cols);
  backend->rmsnorm(*xa, *weight, 1e-5f, *out);
  std::vector<double> expected(rows * cols);
  for (int64_t r = 0; r < rows; ++r) {
    double ss = 0;
    for (int64_t c = 0; c < cols; ++c) ss += double(x[r * cols + c]) * x[r * cols + c];
    double inv = 1.0 / std::sqrt(ss / cols + 1e-5);
    for (int64_t c = 0; c < cols; ++c) expected[r * cols + c] = x[r * cols + c] * inv * w[c];
  }
  EXPECT_LT(relative_error(data(*out), expected), 1e-6);

  backend->swiglu(*xa, *ya, *out);
  for (size_t i = 0; i < expected.size(); ++i) expected[i] = x[i] / (1 + std::exp(-double(x[i]))) * y[i];
  EXPECT_LT(relative_error(data(*out), expected), 1e-6);

  backend->add(*xa, *ya);
  for (size_t i = 0; i < expected.size(); ++i) expected[i] = double(x[i]) + y[i];
  EXPECT_LT(relative_error(data(*xa), expected), 1e-7);
}

TEST(CpuBackend, RopeRotatesHalvesByPositionTimesFrequency) {
  std::mt19937_64 rng(testing::test_seed("CpuBackend.Rope"));
  auto backend = make_cpu_backend(2);
  const int64_t head_dim = 8, heads = 3, tokens = 4;
  auto x = random_normal(rng, tokens * heads * head_dim);
  std::vector<float> freqs = {1.0f, 0.1f, 0.01f, 0.001f};
  std::vector<int64_t> positions = {0, 1, 7, 1000};
  auto xa = activations(*backend, tokens, heads * head_dim, x);
  backend->rope(*xa, head_dim, positions, freqs);
  std::vector<double> expected(x.size());
  for (int64_t t = 0; t < tokens; ++t)
    for (int64_t h = 0; h < heads; ++h)
      for (int64_t i = 0; i < head_dim / 2; ++i) {
        const size_t a = t * heads * head_dim + h * head_dim + i, b = a + head_dim / 2;
        const double angle = double(positions[t]) * freqs[i];
        expected[a] = x[a] * std::cos(angle) - x[b] * std::sin(angle);
        expected[b] = x[b] * std::cos(angle) + x[a] * std::sin(angle);
      }
  EXPECT_LT(relative_error(data(*xa), expected), 1e-5);
}

// Causal GQA attention over the cache for two interleaved sequences, against a direct softmax.
TEST(CpuBackend, AttentionMatchesDirectSoftmaxPerSlot) {
  std::mt19937_64 rng(testing::test_seed("CpuBackend.Attention"));
  auto backend = make_cpu_backend(2);
  const int64_t heads = 4, kv_heads = 2, head_dim = 16, tokens = 9;
  KvCacheSpec spec{1, kv_heads, head_dim, 64, 2, KvCacheSpec::Storage::f32};
  auto cache = backend->make_kv_cache(spec);
  TokenBatch batch;
  for (int64_t i = 0; i < tokens; ++i) {
    batch.tokens.push_back(0);
    batch.slots.push_back(i % 2);
    batch.positions.push_back(i / 2);
  }
  auto q = random_normal(rng, tokens * heads * head_dim), k = random_normal(rng, tokens * kv_heads * head_dim),
       v = random_normal(rng, tokens * kv_heads * head_dim);
  auto qa = activations(*backend, tokens, heads * head_dim, q);
  auto ka = activations(*backend, tokens, kv_heads * head_dim, k), va = activations(*backend, tokens, kv_heads * head_dim, v);
  auto out = backend->make_activations(tokens, heads * head_dim);
  backend->kv_write(*cache, 0, batch, *ka, *va);
  backend->attention(*cache, 0, batch, *qa, *out);

  std::vector<double> expected(q.size());
  for (int64_t t = 0; t < tokens; ++t)
    for (int64_t h = 0; h < heads; ++h) {
      const int64_t g = h / (heads / kv_heads);
      std::vector<int64_t> visible;  // batch rows of the same slot at positions <= this one
      for (int64_t u = 0; u < tokens; ++u)
        if (batch.slots[u] == batch.slots[t] && batch.positions[u] <= batch.positions[t]) visible.push_back(u);
      std::vector<double> scores;
      double mx = -1e300;
      for (int64_t u : visible) {
        double s = 0;
        for (int64_t d = 0; d < head_dim; ++d) s += double(q[(t * heads + h) * head_dim + d]) * k[(u * kv_heads + g) * head_dim + d];
        scores.push_back(s / std::sqrt(double(head_dim)));
        mx = std::max(mx, scores.back());
      }
      double total = 0;
      for (auto& s : scores) total += (s = std::exp(s - mx));
      for (int64_t d = 0; d < head_dim; ++d) {
        double acc = 0;
        for (size_t j = 0; j < visible.size(); ++j) acc += scores[j] * v[(visible[j] * kv_heads + g) * head_dim + d];
        expected[(t * heads + h) * head_dim + d] = acc / total;
      }
    }
  EXPECT_LT(relative_error(data(*out), expected), 1e-5);
}

TEST(CpuBackend, Fp8KvCacheRoundTripsWithinE4M3Precision) {
  std::mt19937_64 rng(testing::test_seed("CpuBackend.Fp8Kv"));
  auto backend = make_cpu_backend(1);
  const int64_t kv_heads = 2, head_dim = 32;
  KvCacheSpec spec{1, kv_heads, head_dim, 8, 1, KvCacheSpec::Storage::fp8};
  auto cache = backend->make_kv_cache(spec);
  TokenBatch batch{{0, 0, 0}, {0, 1, 2}, {0, 0, 0}};
  auto k = random_normal(rng, 3 * kv_heads * head_dim, 3.0f), v = random_normal(rng, 3 * kv_heads * head_dim);
  auto ka = activations(*backend, 3, kv_heads * head_dim, k), va = activations(*backend, 3, kv_heads * head_dim, v);
  backend->kv_write(*cache, 0, batch, *ka, *va);
  const auto& cpu_cache = static_cast<const cpu::CpuKvCache&>(*cache);
  std::vector<float> row(head_dim);
  for (int64_t p = 0; p < 3; ++p)
    for (int64_t h = 0; h < kv_heads; ++h) {
      cpu_cache.read_k(0, 0, p, h, row.data());
      float amax = 0;
      for (int64_t d = 0; d < head_dim; ++d) amax = std::max(amax, std::fabs(k[(p * kv_heads + h) * head_dim + d]));
      for (int64_t d = 0; d < head_dim; ++d) {
        const float exact = k[(p * kv_heads + h) * head_dim + d];
        // E4M3 keeps 3 mantissa bits: relative error ≤ 2^-4 for normals, absolute ≤ amax·2^-9·… for the rest.
        EXPECT_NEAR(row[d], exact, std::max(std::fabs(exact) / 16.0f, amax / 448.0f * 0.002f)) << p << "," << h << "," << d;
      }
    }
  EXPECT_EQ(cache->bytes_per_position(), 2u * (kv_heads * head_dim + kv_heads * 4));
}

// Backend::linear_qkv_rope_kv_write's default is linear_group then rope_kv_write: the same q, k, v and the
// same cached K/V as the two ops called one after the other (FP8 linears, FP8 cache, two slots).
TEST(CpuBackend, LinearQkvRopeKvWriteIsTheGroupThenRopeKvWrite) {
  std::mt19937_64 rng(testing::test_seed("CpuBackend.LinearQkvRopeKvWrite"));
  auto backend = make_cpu_backend(2);
  const int64_t hidden = 48, heads = 4, kv_heads = 2, head_dim = 8, tokens = 5;
  std::vector<std::unique_ptr<LinearWeight>> weights;
  for (int64_t out : {heads * head_dim, kv_heads * head_dim, kv_heads * head_dim}) {
    const auto w = random_normal(rng, static_cast<size_t>(out * hidden), 0.2f);
    weights.push_back(backend->make_linear(w.data(), out, hidden, LinearSpec{LinearFormat::fp8, 0.0f}));
  }
  const LinearWeight* qkv[] = {weights[0].get(), weights[1].get(), weights[2].get()};
  const std::vector<float> frequencies = {1.0f, 0.3f, 0.05f, 0.001f};
  TokenBatch batch{{0, 0, 0, 0, 0}, {0, 0, 1, 1, 2}, {0, 1, 0, 1, 0}};  // positions, slots
  const auto x = activations(*backend, tokens, hidden, random_normal(rng, static_cast<size_t>(tokens * hidden)));
  KvCacheSpec spec{1, kv_heads, head_dim, 8, 2, KvCacheSpec::Storage::fp8};
  struct Run {
    std::unique_ptr<KvCache> cache;
    std::unique_ptr<Activations> q, k, v;
  };
  auto run = [&](bool one_op) {
    Run r{backend->make_kv_cache(spec), backend->make_activations(tokens, heads * head_dim),
          backend->make_activations(tokens, kv_heads * head_dim), backend->make_activations(tokens, kv_heads * head_dim)};
    if (one_op) {
      backend->linear_qkv_rope_kv_write(*x, qkv, *r.q, *r.k, *r.v, *r.cache, 0, batch, frequencies);
    } else {
      Activations* outs[] = {r.q.get(), r.k.get(), r.v.get()};
      backend->linear_group(*x, qkv, outs);
      backend->rope_kv_write(*r.cache, 0, batch, *r.q, *r.k, *r.v, frequencies);
    }
    return r;
  };
  Run fused = run(true), apart = run(false);
  EXPECT_EQ(data(*fused.q), data(*apart.q));
  EXPECT_EQ(data(*fused.k), data(*apart.k));
  EXPECT_EQ(data(*fused.v), data(*apart.v));
  std::vector<float> a(head_dim), b(head_dim);
  for (int64_t t = 0; t < tokens; ++t)
    for (int64_t h = 0; h < kv_heads; ++h) {
      const auto& one = static_cast<const cpu::CpuKvCache&>(*fused.cache);
      const auto& two = static_cast<const cpu::CpuKvCache&>(*apart.cache);
      one.read_k(0, batch.slots[t], batch.positions[t], h, a.data());
      two.read_k(0, batch.slots[t], batch.positions[t], h, b.data());
      EXPECT_EQ(a, b) << "K of token " << t << " head " << h;
      one.read_v(0, batch.slots[t], batch.positions[t], h, a.data());
      two.read_v(0, batch.slots[t], batch.positions[t], h, b.data());
      EXPECT_EQ(a, b) << "V of token " << t << " head " << h;
    }
  // And the op did rotate: q differs from the plain product.
  auto plain = backend->make_activations(tokens, heads * head_dim);
  backend->linear(*x, *weights[0], *plain);
  EXPECT_NE(data(*plain), data(*fused.q));
}

// Positions never written (a benchmark's context) read as zeros, not as whatever the heap held: the
// cache is made right where a freed buffer of ones of its size was, which an uninitialised pool would reuse.
TEST(CpuBackend, KvCachePositionsNeverWrittenReadAsZero) {
  auto backend = make_cpu_backend(1);
  const int64_t kv_heads = 2, head_dim = 16, positions = 8;
  for (auto storage : {KvCacheSpec::Storage::f32, KvCacheSpec::Storage::bf16, KvCacheSpec::Storage::fp8}) {
    KvCacheSpec spec{1, kv_heads, head_dim, positions, 1, storage};
    { std::vector<float> ones(static_cast<size_t>(positions * kv_heads * head_dim), 1.0f); }
    auto cache = backend->make_kv_cache(spec);
    const auto& cpu_cache = static_cast<const cpu::CpuKvCache&>(*cache);
    std::vector<float> row(head_dim, -1.0f);
    for (int64_t p = 0; p < positions; ++p)
      for (int64_t h = 0; h < kv_heads; ++h) {
        cpu_cache.read_k(0, 0, p, h, row.data());
        EXPECT_EQ(row, std::vector<float>(head_dim, 0.0f)) << "K at " << p << ", storage " << int(storage);
        cpu_cache.read_v(0, 0, p, h, row.data());
        EXPECT_EQ(row, std::vector<float>(head_dim, 0.0f)) << "V at " << p << ", storage " << int(storage);
      }
  }
}

}  // namespace
}  // namespace octet::backend
