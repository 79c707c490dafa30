// Backend::make_linear_from_stored / make_embedding_from_stored on the CPU backend: the stored bytes
// (BF16, F16, F32, E4M3 codes) give exactly the weights that the float32 interface gives for their
// widening (codes, scales, bf16 bits, float values compared field by field), with a tensor large
// enough that the row-parallel conversion splits it over the pool's threads.
#include "backend/backend.h"
#include "backend/cpu/cpu_tensors.h"
#include "backend/stored_tensor.h"
#include "common/error.h"
#include "support/random.h"
#include "support/safetensors_writer.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>

namespace octet::backend {
namespace {

namespace tw = octet::testing;

// Random values with a zero row (scale 1) and a row of one large value (its own scale).
std::vector<float> weight_values(std::mt19937_64& rng, int64_t rows, int64_t cols) {
  std::vector<float> values = tw::random_normal(rng, static_cast<size_t>(rows * cols), 0.05f);
  for (int64_t c = 0; c < cols; ++c) values[static_cast<size_t>(cols + c)] = 0.0f;
  values[static_cast<size_t>(2 * cols + 3)] = 3.0e4f;
  return values;
}

struct Stored {
  std::vector<uint8_t> bytes;
  StoredTensor tensor;
  std::vector<float> widened;  // what the float32 path is given
};

Stored store(const std::vector<float>& values, StoredDtype dtype, int64_t rows, int64_t cols) {
  Stored s;
  s.bytes = dtype == StoredDtype::bf16 ? tw::bf16_bytes(values) : dtype == StoredDtype::f16 ? tw::f16_bytes(values)
                                                                                             : tw::f32_bytes(values);
  s.tensor = StoredTensor{s.bytes.data(), dtype, rows, cols};
  s.widened.resize(values.size());
  for (size_t i = 0; i < values.size(); ++i)
    s.widened[i] = dtype == StoredDtype::bf16 ? tw::bf16_value(tw::bf16_bits(values[i]))
                   : dtype == StoredDtype::f16 ? tw::f16_value(tw::f16_bits(values[i]))
                                               : values[i];
  return s;
}

void expect_same(const LinearWeight& a, const LinearWeight& b, const std::string& what) {
  const auto& x = static_cast<const cpu::CpuLinear&>(a);
  const auto& y = static_cast<const cpu::CpuLinear&>(b);
  EXPECT_EQ(x.out_features, y.out_features) << what;
  EXPECT_EQ(x.in_features, y.in_features) << what;
  EXPECT_EQ(x.format, y.format) << what;
  EXPECT_EQ(x.static_input_scale, y.static_input_scale) << what;
  EXPECT_EQ(x.codes, y.codes) << what;
  EXPECT_EQ(x.scales, y.scales) << what;
  EXPECT_EQ(x.bf16, y.bf16) << what;
  EXPECT_EQ(x.f32, y.f32) << what;
}

const char* dtype_name(StoredDtype d) {
  return d == StoredDtype::bf16 ? "bf16" : d == StoredDtype::f16 ? "f16" : d == StoredDtype::f32 ? "f32" : "e4m3";
}

TEST(StoredTensorCpu, FloatDtypesGiveTheWeightsOfTheFloat32Interface) {
  std::mt19937_64 rng(tw::test_seed("StoredTensorCpu.FloatDtypesGiveTheWeightsOfTheFloat32Interface"));
  auto backend = make_cpu_backend(3);
  // 600 × 1000: three chunks of 200 rows on three threads; 3 × 5: one chunk.
  for (auto [rows, cols] : {std::pair<int64_t, int64_t>{600, 1000}, {3, 5}}) {
    const std::vector<float> values = weight_values(rng, rows, cols);
    for (StoredDtype dtype : {StoredDtype::bf16, StoredDtype::f16, StoredDtype::f32}) {
      const Stored s = store(values, dtype, rows, cols);
      for (LinearFormat format : {LinearFormat::fp8, LinearFormat::bf16, LinearFormat::f32}) {
        const LinearSpec spec{format, format == LinearFormat::fp8 ? 0.25f : 0.0f};
        const std::string what = fmt::format("{} → format {}, {}×{}", dtype_name(dtype), int(format), rows, cols);
        expect_same(*backend->make_linear_from_stored(s.tensor, spec), *backend->make_linear(s.widened.data(), rows, cols, spec),
                    what);
      }
      for (EmbeddingFormat format : {EmbeddingFormat::fp8, EmbeddingFormat::bf16, EmbeddingFormat::f32}) {
        const auto a = backend->make_embedding_from_stored(s.tensor, format);
        const auto b = backend->make_embedding(s.widened.data(), rows, cols, format);
        const auto& x = static_cast<const cpu::CpuEmbedding&>(*a);
        const auto& y = static_cast<const cpu::CpuEmbedding&>(*b);
        const std::string what = fmt::format("{} → embedding format {}, {}×{}", dtype_name(dtype), int(format), rows, cols);
        EXPECT_EQ(x.vocab, rows) << what;
        EXPECT_EQ(x.hidden, cols) << what;
        EXPECT_EQ(x.format, format) << what;
        EXPECT_EQ(x.bf16, y.bf16) << what;
        EXPECT_EQ(x.f32, y.f32) << what;
        EXPECT_EQ(x.codes, y.codes) << what;
        EXPECT_EQ(x.scales, y.scales) << what;
        if (format == EmbeddingFormat::fp8) {  // the gather reads the table's own codes and scales
          EXPECT_EQ(x.fp8_codes, x.codes.data()) << what;
          EXPECT_EQ(x.fp8_scales, x.scales.data()) << what;
        }
      }
    }
  }
}

TEST(StoredTensorCpu, E4m3CodesAreKeptOrDequantizedWithTheirScales) {
  std::mt19937_64 rng(tw::test_seed("StoredTensorCpu.E4m3CodesAreKeptOrDequantizedWithTheirScales"));
  auto backend = make_cpu_backend(2);
  const int64_t rows = 40, cols = 24;
  std::vector<uint8_t> codes(static_cast<size_t>(rows * cols));
  std::uniform_int_distribution<int> code(0, 255);
  for (auto& c : codes) {
    do c = static_cast<uint8_t>(code(rng));
    while ((c & 0x7F) == 0x7F);  // no NaN codes
  }
  std::vector<float> scales(static_cast<size_t>(rows));
  std::uniform_real_distribution<float> scale(1e-4f, 1e-2f);
  for (auto& s : scales) s = scale(rng);
  const StoredTensor stored{codes.data(), StoredDtype::e4m3, rows, cols};

  LinearSpec fp8{LinearFormat::fp8, 0.0f, scales};
  expect_same(*backend->make_linear_from_stored(stored, fp8),
              *backend->make_fp8_linear(codes.data(), scales.data(), rows, cols, fp8), "e4m3 kept");
  std::vector<float> dequantized(codes.size());
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c)
      dequantized[r * cols + c] = tw::e4m3_value(codes[r * cols + c]) * scales[r];
  LinearSpec bf16{LinearFormat::bf16, 0.0f, scales};
  expect_same(*backend->make_linear_from_stored(stored, bf16),
              *backend->make_linear(dequantized.data(), rows, cols, LinearSpec{LinearFormat::bf16}), "e4m3 → bf16");
  EXPECT_THROW(backend->make_linear_from_stored(stored, LinearSpec{LinearFormat::fp8}), Error);  // no scales
  EXPECT_THROW(backend->make_embedding_from_stored(stored, EmbeddingFormat::bf16), Error);
}

TEST(StoredTensorCpu, AnInfiniteRowIsAnErrorFromAnyThread) {
  auto backend = make_cpu_backend(3);
  const int64_t rows = 600, cols = 1000;
  std::vector<float> values(static_cast<size_t>(rows * cols), 0.5f);
  values[static_cast<size_t>(550 * cols + 7)] = std::numeric_limits<float>::infinity();  // in the last thread's chunk
  const Stored s = store(values, StoredDtype::bf16, rows, cols);
  try {
    backend->make_linear_from_stored(s.tensor, LinearSpec{LinearFormat::fp8});
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("amax is inf"), std::string::npos) << e.what();
  }
  try {
    backend->make_embedding_from_stored(s.tensor, EmbeddingFormat::fp8);
    ADD_FAILURE() << "no error for the fp8 embedding table";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("amax is inf"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace octet::backend
