// Programmatic dependent launches (launch.cuh): a kernel launched while the one before it still runs
// must wait for it before touching its outputs. Long chains of dependent launches on a programmatic
// stream, from poisoned buffers, must see every producer's writes (a kernel missing its wait would
// read stale or NaN values), and the backend with PDL gives bit-identical logits and sampled tokens
// to the backend with OCTET_CUDA_PDL=0, eager and replayed from recorded graphs. Skips, saying so,
// where no GPU can be used (the kernel chains also where the GPU has no PDL: below sm_90).
#include "backend/backend.h"
#include "backend/device.h"
#include "model/llama_config.h"
#include "model/llama_model.h"
#include "support/random.h"
#include "support/require_gpu.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

#if OCTET_HAVE_CUDA
#include "backend/cuda/kernels.h"
#include "backend/cuda/programmatic_launch.h"
#include "support/device_vector.h"

namespace octet::backend {
namespace {

using testing::DeviceVector;

// A stream of its own, programmatic or plain, for kernel-level chains.
class TestStream {
 public:
  explicit TestStream(bool programmatic) {
    testing::expect_cuda(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreate");
    cuda::set_programmatic_launches(stream_, programmatic);
  }
  ~TestStream() {
    cudaStreamSynchronize(stream_);
    cuda::forget_programmatic_launches(stream_);
    cudaStreamDestroy(stream_);
  }
  TestStream(const TestStream&) = delete;
  TestStream& operator=(const TestStream&) = delete;
  cudaStream_t get() const { return stream_; }

 private:
  cudaStream_t stream_ = nullptr;
};

class CudaProgrammaticLaunch : public ::testing::Test {
 protected:
  void SetUp() override {
    OCTET_REQUIRE_GPU();
    int device = 0;
    testing::expect_cuda(cudaGetDevice(&device), "cudaGetDevice");
    if (!cuda::device_has_programmatic_launches(device))
      GTEST_SKIP() << "compute capability below 9.0: no programmatic launches to test";
    rng_.seed(testing::test_seed(::testing::UnitTest::GetInstance()->current_test_info()->name()));
  }
  std::mt19937_64 rng_;
};

TEST_F(CudaProgrammaticLaunch, StreamSettingIsKeptPerStreamAndForgotten) {
  TestStream on(true), off(false);
  EXPECT_TRUE(cuda::programmatic_launches(on.get()));
  EXPECT_FALSE(cuda::programmatic_launches(off.get()));
  cuda::set_programmatic_launches(on.get(), false);
  EXPECT_FALSE(cuda::programmatic_launches(on.get()));
  cuda::set_programmatic_launches(on.get(), true);
  cuda::forget_programmatic_launches(on.get());
  EXPECT_FALSE(cuda::programmatic_launches(on.get())) << "a stream never set (or forgotten) launches plainly";
}

// 100 rounds of a += 1; b = a; b += 1; a = b over 256 × 4096 floats: every kernel reads what the one
// before it wrote, and each copy overwrites the buffer the kernel two launches earlier read. Starting
// from integers (exact in float) with b poisoned (NaN), a and b must end at a0 + 200 exactly.
TEST_F(CudaProgrammaticLaunch, DependentChainSeesEveryProducersWrites) {
  constexpr int64_t kRows = 256, kCols = 4096, kCount = kRows * kCols, kRounds = 100;
  std::uniform_int_distribution<int> integer(-1000, 1000);
  std::vector<float> start(kCount);
  for (auto& v : start) v = static_cast<float>(integer(rng_));
  const std::vector<float> ones(kCount, 1.0f);
  std::vector<int64_t> identity(kRows);
  for (int64_t r = 0; r < kRows; ++r) identity[r] = r;
  DeviceVector<float> a(kCount, &start), b(kCount), one(kCount, &ones);
  DeviceVector<int64_t> rows(kRows, &identity);
  TestStream stream(true);
  const cudaStream_t s = stream.get();
  for (int64_t round = 0; round < kRounds; ++round) {
    cuda::launch_add(a.data, one.data, kCount, s);
    cuda::launch_gather_rows(a.data, rows.data, kRows, kCols, b.data, s);
    cuda::launch_add(b.data, one.data, kCount, s);
    cuda::launch_gather_rows(b.data, rows.data, kRows, kCols, a.data, s);
  }
  testing::expect_cuda(cudaStreamSynchronize(s), "chain");
  const auto final_a = a.host(), final_b = b.host();
  int64_t wrong = 0;
  for (int64_t i = 0; i < kCount; ++i) {
    const float expected = start[i] + 2.0f * kRounds;
    if (final_a[i] != expected || final_b[i] != expected) {
      if (wrong++ < 5)
        ADD_FAILURE() << "element " << i << ": a " << final_a[i] << ", b " << final_b[i] << ", expected " << expected;
    }
  }
  EXPECT_EQ(wrong, 0) << "elements that missed a producer's write";
}

// The FP8 linear chain of decode: quantize the rows (row kernels, clusters), then the GEMV of their
// codes (the kernels that load weights before their wait), 24 times, each step's input the step
// before's output, from poisoned buffers; 1 row (CUDA-core GEMV) and 4 rows (tensor cores). With PDL
// the outputs of every step must be bit-identical to plain launches (stream order).
TEST_F(CudaProgrammaticLaunch, QuantizeGemvChainMatchesPlainLaunches) {
  constexpr int64_t kK = 2048, kSteps = 24;
  const auto codes = testing::random_e4m3_codes(rng_, static_cast<size_t>(kK * kK));
  auto scales = testing::random_fp8_scales(rng_, static_cast<size_t>(kK));
  for (auto& scale : scales) scale /= 10.0f;  // the chain's values then stay near their size (×~10 a step otherwise)
  DeviceVector<uint8_t> w(codes.size(), &codes);
  DeviceVector<float> col_scales(scales.size(), &scales);
  for (int64_t rows : {1, 4}) {
    const auto x0 = testing::random_normal(rng_, static_cast<size_t>(rows * kK));
    auto run = [&](bool programmatic) {
      TestStream stream(programmatic);
      DeviceVector<float> x(x0.size(), &x0), y(x0.size()), row_scales(static_cast<size_t>(rows));
      DeviceVector<uint8_t> x_codes(x0.size());
      std::vector<std::vector<float>> outputs;
      float* in = x.data;
      float* out = y.data;
      for (int64_t step = 0; step < kSteps; ++step) {
        cuda::launch_quantize_rows_e4m3(in, rows, kK, 0.0f, x_codes.data, row_scales.data, stream.get());
        cuda::launch_gemv_e4m3(x_codes.data, row_scales.data, rows, w.data, col_scales.data, kK, kK, out, stream.get());
        std::swap(in, out);
        if (step % 8 == 7) {  // a look now and then; the launches between run back to back
          std::vector<float> host(x0.size());
          testing::expect_cuda(cudaMemcpyAsync(host.data(), in, host.size() * sizeof(float), cudaMemcpyDeviceToHost,
                                               stream.get()),
                               "download");
          testing::expect_cuda(cudaStreamSynchronize(stream.get()), "chain");
          outputs.push_back(std::move(host));
        }
      }
      return outputs;
    };
    const auto plain = run(false), programmatic = run(true);
    ASSERT_EQ(plain.size(), programmatic.size());
    for (size_t i = 0; i < plain.size(); ++i) {
      for (float v : plain[i]) ASSERT_TRUE(std::isfinite(v)) << rows << " rows: the chain left the float range";
      EXPECT_EQ(std::memcmp(plain[i].data(), programmatic[i].data(), plain[i].size() * sizeof(float)), 0)
          << rows << " rows, look " << i
          << ": programmatic launches differ from plain ones";
    }
  }
}

// A backend made with the environment variables set (restored afterwards).
std::unique_ptr<Backend> backend_with(const std::vector<std::pair<const char*, const char*>>& variables) {
  std::vector<std::pair<const char*, std::string>> saved;
  std::vector<const char*> unset;
  for (const auto& [name, value] : variables) {
    if (const char* previous = std::getenv(name)) saved.emplace_back(name, previous);
    else unset.push_back(name);
    setenv(name, value, 1);
  }
  auto backend = make_cuda_backend(0);
  for (const auto& [name, value] : saved) setenv(name, value.c_str(), 1);
  for (const char* name : unset) unsetenv(name);
  return backend;
}

struct StepResults {
  std::vector<std::vector<float>> logits;
  std::vector<std::vector<int32_t>> tokens;
};

// A 4-layer random FP8 Llama (the backend's random weights: the same on every backend): one prefill
// step of three prompts (154 tokens: never recorded, so the 140-token prompt goes to the tensor-core
// prefill attention), 10 decode steps of the three (tensor-core GEMV), 6 of the first alone
// (CUDA-core GEMV), each step's logits sampled on the device (temperature, top-k, top-p).
StepResults decode_and_sample(Backend& backend) {
  const model::LlamaConfig config{.layers = 4, .hidden = 512, .heads = 8, .kv_heads = 2, .head_dim = 64, .ffn = 1408,
                                  .vocab = 2048, .context_length = 256, .rope_theta = 500000};
  model::ModelOptions options;
  options.precision = Precision::fp8;
  options.max_context = 256;
  options.slots = 3;
  model::LlamaModel model(config, nullptr, backend, options);
  StepResults results;
  auto step = [&](const TokenBatch& batch, const std::vector<int64_t>& rows, uint64_t index) {
    std::vector<float> logits(rows.size() * static_cast<size_t>(config.vocab));
    model.forward(batch, rows, logits.data());
    results.logits.push_back(std::move(logits));
    std::vector<RowSampling> sampling(rows.size());
    for (size_t r = 0; r < rows.size(); ++r) sampling[r] = RowSampling{0.9f, 50, 0.95f, 0.0f, 11 + r, index};
    std::vector<int64_t> logit_rows(rows.size());
    for (size_t r = 0; r < rows.size(); ++r) logit_rows[r] = static_cast<int64_t>(r);
    std::vector<int32_t> tokens(rows.size(), -1);
    backend.sample_rows(model.logits(), logit_rows, sampling, tokens);
    results.tokens.push_back(tokens);
  };
  const int64_t prompt_lengths[3] = {9, 5, 140};
  TokenBatch prefill;
  std::vector<int64_t> last;
  for (int64_t slot = 0; slot < 3; ++slot) {
    for (int64_t i = 0; i < prompt_lengths[slot]; ++i) {
      prefill.tokens.push_back(static_cast<int32_t>((i * 37 + slot * 101) % config.vocab));
      prefill.positions.push_back(i);
      prefill.slots.push_back(slot);
    }
    last.push_back(static_cast<int64_t>(prefill.size()) - 1);
  }
  step(prefill, last, 0);
  for (uint64_t index = 1; index <= 16; ++index) {
    const int64_t slots = index <= 10 ? 3 : 1;
    TokenBatch decode;
    std::vector<int64_t> rows;
    for (int64_t slot = 0; slot < slots; ++slot) {
      decode.tokens.push_back(results.tokens.back()[static_cast<size_t>(slot)]);
      decode.positions.push_back(prompt_lengths[slot] + static_cast<int64_t>(index) - 1);
      decode.slots.push_back(slot);
      rows.push_back(slot);
    }
    step(decode, rows, index);
  }
  return results;
}

TEST(CudaProgrammaticLaunchModel, DecodeAndSamplingMatchPlainLaunchesEagerAndRecorded) {
  OCTET_REQUIRE_GPU();
  struct Variant {
    const char* name;
    const char* pdl;
    const char* graphs;
  };
  const Variant variants[] = {{"plain, eager", "0", "0"}, {"PDL, eager", "1", "0"},
                              {"plain, recorded", "0", "1"}, {"PDL, recorded", "1", "1"}};
  std::vector<StepResults> results;
  for (const Variant& variant : variants) {
    auto backend = backend_with({{"OCTET_CUDA_PDL", variant.pdl}, {"OCTET_CUDA_GRAPHS", variant.graphs}});
    results.push_back(decode_and_sample(*backend));
    if (std::strcmp(variant.graphs, "1") == 0) {
      EXPECT_GE(backend->replayed_steps(), 10) << variant.name << ": the decode steps were not replayed from graphs";
    }
    for (const auto& tokens : results.back().tokens)
      for (int32_t token : tokens) ASSERT_GE(token, 0) << variant.name << ": a row was not sampled";
  }
  for (size_t v = 1; v < results.size(); ++v) {
    ASSERT_EQ(results[v].logits.size(), results[0].logits.size());
    for (size_t step = 0; step < results[0].logits.size(); ++step) {
      const auto& expected = results[0].logits[step];
      const auto& got = results[v].logits[step];
      ASSERT_EQ(got.size(), expected.size());
      for (float value : expected) ASSERT_FALSE(std::isnan(value)) << "step " << step << ": NaN logits";
      EXPECT_EQ(std::memcmp(got.data(), expected.data(), got.size() * sizeof(float)), 0)
          << variants[v].name << ", step " << step << ": logits differ from " << variants[0].name;
      EXPECT_EQ(results[v].tokens[step], results[0].tokens[step])
          << variants[v].name << ", step " << step << ": sampled tokens differ from " << variants[0].name;
    }
  }
}

}  // namespace
}  // namespace octet::backend
#endif
