// Stored weights through the CUDA backend's pinned staging buffers and on-GPU conversion, against
// the float32 interface (whose FP8 codes and bf16 rounding are made on the host by the CPU's
// quantizer): equal outputs bit for bit, so equal codes and scales. Staging buffers of 4 KiB make
// every weight larger than one buffer and straddle buffers. Skips, saying so, without a GPU.
#include "backend/backend.h"
#include "backend/device.h"
#include "common/error.h"
#if defined(OCTET_HAVE_CUDA)
#include "backend/cuda/staged_upload.h"
#endif
#include "support/backend_rows.h"
#include "support/random.h"
#include "support/safetensors_writer.h"
#include "support/scoped_environment.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <limits>
#include <random>

namespace octet::backend {
namespace {

namespace tw = octet::testing;

#define OCTET_REQUIRE_GPU()                                               \
  do {                                                                    \
    const CudaStatus status_ = probe_cuda();                              \
    if (!status_.available) GTEST_SKIP() << "no GPU: " << status_.reason; \
  } while (0)

#if defined(OCTET_HAVE_CUDA)
constexpr size_t kStagingBytes = 4096;

TEST(CudaStoredUpload, StagingCopiesEverySizeAroundTheBufferSize) {
  OCTET_REQUIRE_GPU();
  std::mt19937_64 rng(tw::test_seed("CudaStoredUpload.StagingCopiesEverySizeAroundTheBufferSize"));
  cuda::StagedUpload staging(kStagingBytes);
  EXPECT_EQ(staging.buffer_bytes(), kStagingBytes);
  cudaStream_t stream;
  ASSERT_EQ(cudaStreamCreate(&stream), cudaSuccess);
  std::uniform_int_distribution<int> byte(0, 255);
  for (size_t bytes : {size_t{1}, kStagingBytes - 1, kStagingBytes, kStagingBytes + 1, 3 * kStagingBytes + 5, size_t{100003}}) {
    std::vector<uint8_t> host(bytes + 1);
    for (auto& b : host) b = static_cast<uint8_t>(byte(rng));
    void* device = nullptr;
    ASSERT_EQ(cudaMalloc(&device, bytes), cudaSuccess);
    staging.copy(host.data() + 1, bytes, device, stream);  // an unaligned source, as in a mmap'd shard
    // A second copy of other bytes right after: the first must not be overwritten by it.
    std::vector<uint8_t> other(bytes, 0xA5);
    void* device2 = nullptr;
    ASSERT_EQ(cudaMalloc(&device2, bytes), cudaSuccess);
    staging.copy(other.data(), bytes, device2, stream);
    std::vector<uint8_t> back(bytes), back2(bytes);
    ASSERT_EQ(cudaMemcpyAsync(back.data(), device, bytes, cudaMemcpyDeviceToHost, stream), cudaSuccess);
    ASSERT_EQ(cudaMemcpyAsync(back2.data(), device2, bytes, cudaMemcpyDeviceToHost, stream), cudaSuccess);
    ASSERT_EQ(cudaStreamSynchronize(stream), cudaSuccess);
    EXPECT_EQ(0, std::memcmp(back.data(), host.data() + 1, bytes)) << bytes << " bytes";
    EXPECT_EQ(back2, other) << bytes << " bytes";
    cudaFree(device);
    cudaFree(device2);
  }
  cudaStreamDestroy(stream);
}
#endif

class CudaStoredUploadBackend : public ::testing::Test {
 protected:
  void SetUp() override {
    OCTET_REQUIRE_GPU();
    {
      const tw::ScopedEnvironment small_staging("OCTET_CUDA_STAGING_BYTES", "4096");
      gpu_ = make_cuda_backend(0);
    }
    rng_.seed(tw::test_seed(::testing::UnitTest::GetInstance()->current_test_info()->name()));
  }

  // x · Wᵀ for rows of x, on the GPU, back on the host.
  std::vector<float> apply(const LinearWeight& w, const std::vector<float>& x, int64_t rows) {
    auto input = activations(x, rows, w.in_features);
    auto out = gpu_->make_activations(rows, w.out_features);
    gpu_->linear(*input, w, *out);
    return download(*out);
  }
  // Uploads values as the rows of a float32 table, gathered in order.
  std::unique_ptr<Activations> activations(const std::vector<float>& values, int64_t rows, int64_t cols) {
    auto table = gpu_->make_embedding(values.data(), rows, cols, EmbeddingFormat::f32);
    auto out = gpu_->make_activations(rows, cols);
    embed_all(*table, rows, *out);
    return out;
  }
  void embed_all(const EmbeddingTable& table, int64_t rows, Activations& out) {
    EXPECT_EQ(rows, out.rows);
    testing::embed_rows_in_order(*gpu_, table, out);
  }
  std::vector<float> download(const Activations& a) { return testing::download_rows(*gpu_, a); }

  std::unique_ptr<Backend> gpu_;
  std::mt19937_64 rng_;
};

std::vector<uint8_t> encode(const std::vector<float>& values, StoredDtype dtype, std::vector<float>& widened) {
  widened.resize(values.size());
  for (size_t i = 0; i < values.size(); ++i)
    widened[i] = dtype == StoredDtype::bf16 ? tw::bf16_value(tw::bf16_bits(values[i]))
                 : dtype == StoredDtype::f16 ? tw::f16_value(tw::f16_bits(values[i]))
                                             : values[i];
  return dtype == StoredDtype::bf16 ? tw::bf16_bytes(values) : dtype == StoredDtype::f16 ? tw::f16_bytes(values)
                                                                                         : tw::f32_bytes(values);
}

TEST_F(CudaStoredUploadBackend, FloatDtypesGiveTheCodesAndValuesOfTheHostPath) {
  // 300 × 520 (312 KB in bf16: 77 staging buffers, rows straddling them) and 3 × 40 (one buffer).
  for (auto [out, in] : {std::pair<int64_t, int64_t>{300, 520}, {3, 40}}) {
    std::vector<float> values = tw::random_normal(rng_, static_cast<size_t>(out * in), 0.05f);
    for (int64_t c = 0; c < in; ++c) values[static_cast<size_t>(in + c)] = 0.0f;  // a zero row: scale 1
    values[static_cast<size_t>(2 * in + 1)] = 2.5e4f;                                 // a row of its own scale
    const std::vector<float> x = tw::random_normal(rng_, static_cast<size_t>(5 * in));
    for (StoredDtype dtype : {StoredDtype::bf16, StoredDtype::f16, StoredDtype::f32}) {
      std::vector<float> widened;
      const std::vector<uint8_t> bytes = encode(values, dtype, widened);
      const StoredTensor stored{bytes.data(), dtype, out, in};
      for (LinearFormat format : {LinearFormat::fp8, LinearFormat::bf16, LinearFormat::f32}) {
        const LinearSpec spec{format};
        const auto from_stored = gpu_->make_linear_from_stored(stored, spec);
        const auto from_floats = gpu_->make_linear(widened.data(), out, in, spec);
        EXPECT_EQ(from_stored->bytes(), from_floats->bytes());
        EXPECT_EQ(apply(*from_stored, x, 5), apply(*from_floats, x, 5))
            << "dtype " << int(dtype) << " format " << int(format) << " " << out << "×" << in;
      }
      for (EmbeddingFormat format : {EmbeddingFormat::fp8, EmbeddingFormat::bf16, EmbeddingFormat::f32}) {
        const auto a = gpu_->make_embedding_from_stored(stored, format);
        const auto b = gpu_->make_embedding(widened.data(), out, in, format);
        EXPECT_EQ(a->bytes(), b->bytes()) << "embedding dtype " << int(dtype) << " format " << int(format);
        auto ra = gpu_->make_activations(out, in), rb = gpu_->make_activations(out, in);
        embed_all(*a, out, *ra);
        embed_all(*b, out, *rb);
        EXPECT_EQ(download(*ra), download(*rb)) << "embedding dtype " << int(dtype) << " format " << int(format);
      }
    }
  }
}

TEST_F(CudaStoredUploadBackend, E4m3CodesUploadAsTheyAreAndInfiniteRowsAreRefused) {
  const int64_t out = 64, in = 200;
  std::vector<uint8_t> codes(static_cast<size_t>(out * in));
  std::uniform_int_distribution<int> code(0, 255);
  for (auto& c : codes) {
    do c = static_cast<uint8_t>(code(rng_));
    while ((c & 0x7F) == 0x7F);
  }
  std::vector<float> scales(static_cast<size_t>(out));
  std::uniform_real_distribution<float> scale(1e-4f, 1e-2f);
  for (auto& s : scales) s = scale(rng_);
  const StoredTensor stored{codes.data(), StoredDtype::e4m3, out, in};
  const LinearSpec spec{LinearFormat::fp8, 0.0f, scales};
  const std::vector<float> x = tw::random_normal(rng_, static_cast<size_t>(3 * in));
  EXPECT_EQ(apply(*gpu_->make_linear_from_stored(stored, spec), x, 3),
            apply(*gpu_->make_fp8_linear(codes.data(), scales.data(), out, in, spec), x, 3));

  std::vector<float> values(static_cast<size_t>(out * in), 0.25f);
  values[static_cast<size_t>(17 * in + 5)] = std::numeric_limits<float>::infinity();
  std::vector<float> widened;
  const auto bytes = encode(values, StoredDtype::bf16, widened);
  try {
    gpu_->make_linear_from_stored(StoredTensor{bytes.data(), StoredDtype::bf16, out, in}, LinearSpec{LinearFormat::fp8});
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("amax is inf"), std::string::npos) << e.what();
  }
  try {
    gpu_->make_embedding_from_stored(StoredTensor{bytes.data(), StoredDtype::bf16, out, in}, EmbeddingFormat::fp8);
    ADD_FAILURE() << "no error for the fp8 embedding table";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("amax is inf"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace octet::backend
