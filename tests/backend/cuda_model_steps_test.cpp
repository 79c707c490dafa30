// Whole model steps on the CUDA backend against the CPU backend and against themselves: a tiny random
// Llama in every precision and on every linear path, the persistent decode kernel, and steps recorded as
// CUDA graphs against eager ones. Skips, saying so, where no GPU can be used.
#include "model/llama_config.h"
#include "model/llama_model.h"
#include "model/weight_source.h"
#include "support/cuda_vs_cpu.h"
#include "support/random.h"
#include "support/scoped_environment.h"
#include "support/tiny_llama.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <random>
#include <span>
#include <string>
#include <vector>

namespace octet::backend {
namespace {

// The tiny Llama's logits on the GPU against the CPU in every precision. f32 and bf16 must agree
// within f32_tolerance / bf16_tolerance. FP8 re-rounds every activation, so a 1e-4 difference
// upstream flips some codes downstream: there the GPU must be as close to the float32 result as the
// CPU's FP8 path is, plus fp8_slack (a wrong scale or layout would be off by the logits' own size).
void expect_tiny_llama_matches(Backend& cpu, Backend& gpu, std::mt19937_64& rng, int64_t context,
                               const std::vector<int64_t>& prompt_lengths, double f32_tolerance, double bf16_tolerance,
                               double fp8_slack) {
  model::LlamaConfig config = tiny_config();
  config.context_length = context;
  RandomWeights weights(rng());
  model::ModelOptions options;
  options.max_context = context;
  auto error = [](const std::vector<float>& a, const std::vector<float>& b) {
    return testing::relative_error(a, std::vector<double>(b.begin(), b.end()));
  };
  options.precision = Precision::f32;
  const auto reference = tiny_llama_logits(cpu, config, weights, options, prompt_lengths);
  for (Precision precision : {Precision::f32, Precision::bf16, Precision::fp8}) {
    options.precision = precision;
    const auto on_cpu = tiny_llama_logits(cpu, config, weights, options, prompt_lengths);
    const auto on_gpu = tiny_llama_logits(gpu, config, weights, options, prompt_lengths);
    for (size_t step = 0; step < on_cpu.size(); ++step) {
      if (precision == Precision::fp8) {
        const double cpu_error = error(on_cpu[step], reference[step]), gpu_error = error(on_gpu[step], reference[step]);
        EXPECT_LT(gpu_error, 1.5 * cpu_error + fp8_slack) << "step " << step << ": GPU fp8 error " << gpu_error << ", CPU fp8 error " << cpu_error;
      } else {
        EXPECT_LT(error(on_gpu[step], on_cpu[step]), precision == Precision::f32 ? f32_tolerance : bf16_tolerance)
            << "step " << step << ", precision " << precision_name(precision);
      }
    }
  }
}

// Prefill of two sequences (37 and 20 tokens: a step that may be recorded, so the CUDA-core
// attention), then 5 decode steps of both.
TEST_F(CudaVsCpu, TinyLlamaLogitsMatchInEveryPrecision) {
  expect_tiny_llama_matches(*cpu_, *gpu_, rng_, 64, {37, 20}, 1e-4, 1e-2, 1e-3);
}

// numerics reproducible: the GPU's logits are the CPU's to the bit in every precision, for a prefill
// of two sequences and their decode steps, a 450-token prefill (the fast path's tensor-core attention
// would take it), and 24 sequences whose decode steps are recorded and replayed as CUDA graphs.
TEST_F(CudaVsCpu, TinyLlamaLogitsAreTheCpuBitsUnderReproducibleNumerics) {
  auto cpu = make_cpu_backend(2, Numerics::reproducible);
  auto gpu = make_cuda_backend(0, Numerics::reproducible);
  std::vector<int64_t> many;
  for (int64_t slot = 0; slot < 24; ++slot) many.push_back(1 + slot % 5);
  struct Case {
    int64_t context;
    std::vector<int64_t> prompt_lengths;
  };
  for (const Case& c : {Case{64, {37, 20}}, Case{512, {300, 150}}, Case{64, many}}) {
    model::LlamaConfig config = tiny_config();
    config.context_length = c.context;
    RandomWeights weights(rng_());
    model::ModelOptions options;
    options.max_context = c.context;
    for (Precision precision : {Precision::fp8, Precision::bf16, Precision::f32}) {
      options.precision = precision;
      const auto replayed_before = gpu->replayed_steps();
      EXPECT_TRUE(same_steps(tiny_llama_logits(*gpu, config, weights, options, c.prompt_lengths),
                             tiny_llama_logits(*cpu, config, weights, options, c.prompt_lengths)))
          << precision_name(precision) << ", " << c.prompt_lengths.size() << " sequences, context " << c.context;
      if (c.prompt_lengths.size() == 24) EXPECT_GT(gpu->replayed_steps(), replayed_before) << "no step was replayed";
    }
  }
}

// A 450-token prefill step (300 + 150 tokens, never recorded: the tensor-core attention), then
// decode over the caches it filled. BF16 q and probabilities in the prefill's attention (~2e-3
// relative at its output) widen the f32 bound to 1e-2.
TEST_F(CudaVsCpu, TinyLlamaLongPrefillMatchesInEveryPrecision) {
  expect_tiny_llama_matches(*cpu_, *gpu_, rng_, 512, {300, 150}, 1e-2, 2e-2, 1e-2);
}

// The same model with OCTET_CUDA_SKINNY_GEMM=1: the 57-token prefill step's linears (single and
// grouped) on the skinny GEMM; then 24 sequences, whose 24-token decode steps are recorded and
// replayed as CUDA graphs with the skinny GEMM (and its split-k scratch) inside.
TEST_F(CudaVsCpu, TinyLlamaLogitsMatchOnTheSkinnyGemm) {
  use_skinny_gemm();
  expect_tiny_llama_matches(*cpu_, *gpu_, rng_, 64, {37, 20}, 1e-4, 1e-2, 1e-3);
  std::vector<int64_t> prompt_lengths;
  for (int64_t slot = 0; slot < 24; ++slot) prompt_lengths.push_back(1 + slot % 5);
  expect_tiny_llama_matches(*cpu_, *gpu_, rng_, 64, prompt_lengths, 1e-4, 1e-2, 1e-3);
}

// The same with OCTET_CUDA_WGMMA_GEMM_ROWS=1 (on sm_90; elsewhere the default paths): the prefill's
// linears and the decode steps' of 1–24 tokens (single and grouped, recorded and replayed with the
// wgmma GEMM's scratch and counters inside) on skinny_gemm_wgmma.cu.
TEST_F(CudaVsCpu, TinyLlamaLogitsMatchOnTheWgmmaGemm) {
  use_backend_with("OCTET_CUDA_WGMMA_GEMM_ROWS", "1");
  expect_tiny_llama_matches(*cpu_, *gpu_, rng_, 64, {37, 20}, 1e-4, 1e-2, 1e-3);
  std::vector<int64_t> prompt_lengths;
  for (int64_t slot = 0; slot < 24; ++slot) prompt_lengths.push_back(1 + slot % 5);
  expect_tiny_llama_matches(*cpu_, *gpu_, rng_, 64, prompt_lengths, 1e-4, 1e-2, 1e-3);
}

// q/k/v and gate/up, fused by the model on load, as one GEMM per group above the GEMV's rows: 24
// sequences, whose 24-token decode steps are recorded and replayed with the group's GEMM and its
// scale-and-split pass inside; with OCTET_CUDA_GROUPED_GEMM=all also the 450-token prefill's groups.
TEST_F(CudaVsCpu, TinyLlamaLogitsMatchWithGroupedGemms) {
  std::vector<int64_t> prompt_lengths;
  for (int64_t slot = 0; slot < 24; ++slot) prompt_lengths.push_back(1 + slot % 5);
  expect_tiny_llama_matches(*cpu_, *gpu_, rng_, 64, prompt_lengths, 1e-4, 1e-2, 1e-3);
  use_backend_with("OCTET_CUDA_GROUPED_GEMM", "all");
  expect_tiny_llama_matches(*cpu_, *gpu_, rng_, 512, {300, 150}, 1e-2, 2e-2, 1e-2);
}

// Weights large enough for cuBLASLt at every row count (gemv_e4m3_preferred; here every weight, with
// OCTET_CUDA_GEMV_LARGE=64,64): one- and two-token decode steps (recorded and replayed) through the
// unscaled GEMM into the fused norm / SwiGLU, and q/k/v through the grouped GEMM, match the CPU as the
// GEMV's do; and OCTET_CUDA_GEMV_MAX_ROWS=0 (no GEMV at all) likewise.
TEST_F(CudaVsCpu, TinyLlamaLogitsMatchWithLargeWeightsOnCublasLt) {
  {
    const testing::ScopedEnvironment large("OCTET_CUDA_GEMV_LARGE", "64,64");
    expect_tiny_llama_matches(*cpu_, *gpu_, rng_, 64, {37}, 1e-4, 1e-2, 1e-3);
    expect_tiny_llama_matches(*cpu_, *gpu_, rng_, 64, {9, 20}, 1e-4, 1e-2, 1e-3);
  }
  const testing::ScopedEnvironment no_gemv("OCTET_CUDA_GEMV_MAX_ROWS", "0");
  expect_tiny_llama_matches(*cpu_, *gpu_, rng_, 64, {5, 3, 11}, 1e-4, 1e-2, 1e-3);
}

// The persistent decode kernel (every layer of a one-token step in one launch, persistent_decode.cu)
// against the layer-by-layer ops (OCTET_CUDA_PERSISTENT_DECODE=0) and the CPU: head_dim 64 (GQA group
// 2) and 128 (group 4), a short context and one whose attention splits span several 64-position chunks
// (4,400 positions over the kernel's splits): the FP8 bound of expect_tiny_llama_matches against the
// float32 CPU result, and no further from the layer-by-layer FP8 logits than twice FP8's own error
// (two FP8 paths that sum in different orders round some activations differently).
TEST_F(CudaVsCpu, PersistentDecodeMatchesTheLayerByLayerOps) {
  model::LlamaConfig wide = tiny_config();
  wide.heads = 8;
  wide.head_dim = 128;
  struct Case {
    model::LlamaConfig config;
    int64_t context, prompt;
  };
  for (const Case& c : {Case{tiny_config(), 64, 37}, Case{wide, 64, 21}, Case{tiny_config(), 4608, 4400}}) {
    model::LlamaConfig config = c.config;
    config.context_length = c.context;
    RandomWeights weights(rng_());
    model::ModelOptions options;
    options.max_context = c.context;
    options.precision = Precision::f32;
    const auto reference = tiny_llama_logits(*cpu_, config, weights, options, {c.prompt});
    options.precision = Precision::fp8;
    const auto on_cpu = tiny_llama_logits(*cpu_, config, weights, options, {c.prompt});
    const auto op_by_op = [&] {
      const testing::ScopedEnvironment off("OCTET_CUDA_PERSISTENT_DECODE", "0");
      return tiny_llama_logits(*gpu_, config, weights, options, {c.prompt});
    }();
    const testing::ScopedEnvironment required("OCTET_CUDA_PERSISTENT_DECODE", "require");
    const auto persistent = tiny_llama_logits(*gpu_, config, weights, options, {c.prompt});
    const std::string what = "head_dim " + std::to_string(config.head_dim) + ", prompt " + std::to_string(c.prompt);
    for (size_t step = 1; step < persistent.size(); ++step) {
      const auto error = [&](const std::vector<float>& a) {
        return testing::relative_error(a, std::vector<double>(reference[step].begin(), reference[step].end()));
      };
      EXPECT_LT(error(persistent[step]), 1.5 * error(on_cpu[step]) + 1e-3) << "step " << step << ", " << what;
      EXPECT_LT(testing::relative_error(persistent[step], std::vector<double>(op_by_op[step].begin(), op_by_op[step].end())),
                2.0 * error(on_cpu[step]) + 1e-3)
          << "step " << step << ", " << what;
    }
  }
}

// The kernel's sums run in a fixed order (grid barriers, per-tile partial sums added in tile order):
// the same one-token steps (from position 0, so every step is the kernel's) twice give the same
// logits to the bit, and so do eager steps (OCTET_CUDA_GRAPHS=0) and recorded, replayed ones.
TEST_F(CudaVsCpu, PersistentDecodeIsDeterministicAndReplaysExactly) {
  const testing::ScopedEnvironment required("OCTET_CUDA_PERSISTENT_DECODE", "require");
  auto eager = [] {
    const testing::ScopedEnvironment graphs_off("OCTET_CUDA_GRAPHS", "0");
    return make_cuda_backend(0);
  }();
  RandomWeights weights(rng_());
  model::ModelOptions options;
  options.max_context = 64;
  options.precision = Precision::fp8;
  const model::LlamaConfig config = tiny_config();
  auto run = [&](Backend& backend) {
    model::LlamaModel model(config, &weights, backend, options);
    std::vector<std::vector<float>> steps;
    std::vector<float> logits(config.vocab);
    for (int64_t step = 0; step < 8; ++step) {
      const TokenBatch batch{{static_cast<int32_t>(11 * step + 2)}, {step}, {0}};
      const int64_t row = 0;
      model.forward(batch, std::span<const int64_t>(&row, 1), logits.data());
      steps.push_back(logits);
    }
    return steps;
  };
  const int64_t replayed_before = gpu_->replayed_steps();
  const auto recorded = run(*gpu_), recorded_again = run(*gpu_), unrecorded = run(*eager), unrecorded_again = run(*eager);
  EXPECT_GE(gpu_->replayed_steps() - replayed_before, 8);
  for (size_t step = 0; step < recorded.size(); ++step) {
    EXPECT_TRUE(same_bits(recorded[step], recorded_again[step])) << "step " << step << ", recorded";
    EXPECT_TRUE(same_bits(unrecorded[step], unrecorded_again[step])) << "step " << step << ", eager";
    EXPECT_TRUE(same_bits(recorded[step], unrecorded[step])) << "step " << step << ": replayed against eager";
  }
}

// A shape the kernel cannot take runs layer by layer, and with OCTET_CUDA_PERSISTENT_DECODE=require
// the step fails naming why (head_dim 32); a bad value of the switch is refused by name.
TEST_F(CudaVsCpu, PersistentDecodeRefusesShapesItCannotTakeByName) {
  model::LlamaConfig narrow = tiny_config();
  narrow.head_dim = 32;
  narrow.heads = 8;
  narrow.kv_heads = 4;
  RandomWeights weights(rng_());
  model::ModelOptions options;
  options.max_context = 64;
  options.precision = Precision::fp8;
  EXPECT_NO_THROW(tiny_llama_logits(*gpu_, narrow, weights, options, {5}));
  {
    const testing::ScopedEnvironment required("OCTET_CUDA_PERSISTENT_DECODE", "require");
    try {
      tiny_llama_logits(*gpu_, narrow, weights, options, {5});
      ADD_FAILURE() << "head_dim 32 was taken";
    } catch (const std::exception& e) {
      EXPECT_NE(std::string(e.what()).find("head_dim"), std::string::npos) << e.what();
    }
  }
  const testing::ScopedEnvironment bad("OCTET_CUDA_PERSISTENT_DECODE", "yes");
  EXPECT_THROW(tiny_llama_logits(*gpu_, tiny_config(), weights, options, {5}), std::exception);
}

// q/k/v's one cuBLASLt GEMM read by the RoPE + KV write with its scales (linear_qkv_rope_kv_write) against
// the split pass then rope_kv_write (OCTET_CUDA_FUSED_QKV_ROPE=0): the same logits to the bit, over 24
// sequences (24-row steps, recorded and replayed, and the 57-token prefill) and, with every weight on
// cuBLASLt (OCTET_CUDA_GEMV_LARGE=64,64), at one and two rows; and the same as the CPU within the usual bounds.
TEST_F(CudaVsCpu, QkvProductReadByTheRopeGivesTheSameLogits) {
  auto separate = [] {
    const testing::ScopedEnvironment off("OCTET_CUDA_FUSED_QKV_ROPE", "0");
    return make_cuda_backend(0);
  }();
  model::ModelOptions options;
  options.max_context = 64;
  options.precision = Precision::fp8;
  std::vector<int64_t> many;
  for (int64_t slot = 0; slot < 24; ++slot) many.push_back(1 + slot % 5);
  for (const char* large : {static_cast<const char*>(nullptr), "64,64"}) {
    const testing::ScopedEnvironment where("OCTET_CUDA_GEMV_LARGE", large);
    const std::vector<std::vector<int64_t>> prompts = large ? std::vector<std::vector<int64_t>>{{37}, {9, 20}}
                                                            : std::vector<std::vector<int64_t>>{many, {37, 20}};
    for (const auto& prompt_lengths : prompts) {
      RandomWeights weights(rng_());
      const auto fused = tiny_llama_logits(*gpu_, tiny_config(), weights, options, prompt_lengths);
      const auto plain = tiny_llama_logits(*separate, tiny_config(), weights, options, prompt_lengths);
      EXPECT_TRUE(same_steps(fused, plain)) << prompt_lengths.size() << " sequences, OCTET_CUDA_GEMV_LARGE "
                                            << (large ? large : "unset") << ": the fused q/k/v product differs";
    }
    expect_tiny_llama_matches(*cpu_, *gpu_, rng_, 64, large ? std::vector<int64_t>{37} : many, 1e-4, 1e-2, 1e-3);
  }
}

// The weight prefetch into L2 (OCTET_CUDA_L2_PREFETCH_MB: a side stream forked after each linear op's
// weight stream; 1 MiB covers the tiny model's weights) changes no bit: the same logits as with it
// off (0), in eager, recorded and replayed steps, on the GEMV and on cuBLASLt
// (OCTET_CUDA_GEMV_LARGE=64,64), in fp8 (and bf16, whose weights it leaves alone), with both
// eviction priorities. A bad setting is refused by name.
TEST_F(CudaVsCpu, WeightPrefetchChangesNoLogit) {
  std::vector<int64_t> many;
  for (int64_t slot = 0; slot < 24; ++slot) many.push_back(1 + slot % 5);
  auto plain = [] {
    const testing::ScopedEnvironment off("OCTET_CUDA_L2_PREFETCH_MB", "0");
    return make_cuda_backend(0);
  }();
  for (const char* evict : {"last", "normal"}) {
    auto prefetching = [&] {
      const testing::ScopedEnvironment bytes("OCTET_CUDA_L2_PREFETCH_MB", "1");
      const testing::ScopedEnvironment priority("OCTET_CUDA_L2_PREFETCH_EVICT", evict);
      return make_cuda_backend(0);
    }();
    for (Precision precision : {Precision::fp8, Precision::bf16}) {
      model::ModelOptions options;
      options.max_context = 64;
      options.precision = precision;
      for (const char* large : {static_cast<const char*>(nullptr), "64,64"}) {
        const testing::ScopedEnvironment where("OCTET_CUDA_GEMV_LARGE", large);
        for (const auto& prompt_lengths : std::vector<std::vector<int64_t>>{{37}, {9, 20}, many}) {
          RandomWeights weights(rng_());
          const auto with = tiny_llama_logits(*prefetching, tiny_config(), weights, options, prompt_lengths);
          const auto without = tiny_llama_logits(*plain, tiny_config(), weights, options, prompt_lengths);
          EXPECT_TRUE(same_steps(with, without))
              << prompt_lengths.size() << " sequences, eviction " << evict << ", "
              << (precision == Precision::fp8 ? "fp8" : "bf16") << ", OCTET_CUDA_GEMV_LARGE " << (large ? large : "unset");
        }
      }
    }
  }
  for (const auto& [variable, value] : {std::pair{"OCTET_CUDA_L2_PREFETCH_MB", "lots"}, std::pair{"OCTET_CUDA_L2_PREFETCH_EVICT", "first"}}) {
    const testing::ScopedEnvironment bad(variable, value);
    try {
      make_cuda_backend(0);
      ADD_FAILURE() << variable << "=" << value << " was accepted";
    } catch (const std::exception& e) {
      EXPECT_NE(std::string(e.what()).find(variable), std::string::npos) << e.what();
    }
  }
}

// Decode steps replayed from CUDA graphs give bit-identical logits to the same steps run op by op
// (same kernels, same inputs), across batch shapes that change between steps; a replay still
// checks the batch (a position past the context is refused).
TEST_F(CudaVsCpu, RecordedStepsMatchEagerSteps) {
  model::LlamaConfig config = tiny_config();
  RandomWeights weights(rng_());
  model::ModelOptions options;
  options.max_context = 64;
  options.slots = 3;
  options.precision = Precision::fp8;
  auto eager_backend = [] {
    const testing::ScopedEnvironment graphs_off("OCTET_CUDA_GRAPHS", "0");
    return make_cuda_backend(0);
  }();
  auto run = [&](Backend& backend) {
    model::LlamaModel model(config, &weights, backend, options);
    std::vector<std::vector<float>> steps;
    TokenBatch prefill;
    for (int64_t i = 0; i < 9; ++i) prefill.tokens.push_back(static_cast<int32_t>(i * 13 % config.vocab)), prefill.positions.push_back(i), prefill.slots.push_back(0);
    std::vector<float> logits(3 * config.vocab);
    const int64_t last = 8;
    model.forward(prefill, std::span<const int64_t>(&last, 1), logits.data());
    for (int64_t step = 0; step < 12; ++step) {
      // Three sequences for 8 steps, then one (a second shape, recorded in its turn).
      const bool three = step < 8;
      TokenBatch decode = three ? TokenBatch{{int32_t(step + 1), 5, 77}, {9 + step, step, step}, {0, 1, 2}}
                                : TokenBatch{{int32_t(step)}, {9 + step}, {0}};
      std::vector<int64_t> rows = three ? std::vector<int64_t>{0, 1, 2} : std::vector<int64_t>{0};
      const auto start = std::chrono::steady_clock::now();
      model.forward(decode, rows, logits.data());  // copies the logits out: the step has ended
      const double wall_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
      // Eager, recorded and replayed steps are all timed on the device, inside the host's wall time.
      const double device_ms = backend.last_step_device_ms();
      EXPECT_GT(device_ms, 0.0) << "step " << step;
      EXPECT_LE(device_ms, wall_ms) << "step " << step;
      steps.emplace_back(logits.begin(), logits.begin() + static_cast<int64_t>(rows.size()) * config.vocab);
    }
    TokenBatch past_context{{1}, {options.max_context}, {0}};
    const int64_t row = 0;
    EXPECT_THROW(model.forward(past_context, std::span<const int64_t>(&row, 1), logits.data()), std::exception);
    return steps;
  };
  const auto eager = run(*eager_backend);
  const auto recorded = run(*gpu_);
  EXPECT_EQ(eager_backend->replayed_steps(), 0);
  // 3-sequence steps: 1 eager, 1 recorded, 6 replayed; 1-sequence steps: 1 + 1 + 2.
  EXPECT_EQ(gpu_->replayed_steps(), 8);
  EXPECT_TRUE(same_steps(eager, recorded)) << "eager against replayed";
}

// Two models on one backend, stepping in turn with the same batch shape (a draft and a target
// model, say): each replays its own recordings, never the other's.
TEST_F(CudaVsCpu, RecordedStepsAreKeptPerModel) {
  model::LlamaConfig config = tiny_config();
  model::ModelOptions options;
  options.max_context = 32;
  options.precision = Precision::fp8;
  RandomWeights weights_a(rng_()), weights_b(rng_());
  auto decode = [&](model::LlamaModel& model, int64_t step, std::vector<float>& logits) {
    TokenBatch batch{{int32_t(3 + step)}, {step}, {0}};
    const int64_t row = 0;
    model.forward(batch, std::span<const int64_t>(&row, 1), logits.data());
  };
  auto eager_backend = [] {
    const testing::ScopedEnvironment graphs_off("OCTET_CUDA_GRAPHS", "0");
    return make_cuda_backend(0);
  }();
  std::vector<std::vector<float>> expected_a, expected_b;
  {
    model::LlamaModel a(config, &weights_a, *eager_backend, options), b(config, &weights_b, *eager_backend, options);
    std::vector<float> logits(config.vocab);
    for (int64_t step = 0; step < 6; ++step) {
      decode(a, step, logits);
      expected_a.push_back(logits);
      decode(b, step, logits);
      expected_b.push_back(logits);
    }
  }
  model::LlamaModel a(config, &weights_a, *gpu_, options), b(config, &weights_b, *gpu_, options);
  std::vector<float> logits(config.vocab);
  const int64_t replayed_before = gpu_->replayed_steps();
  for (int64_t step = 0; step < 6; ++step) {
    decode(a, step, logits);
    EXPECT_TRUE(same_bits(logits, expected_a[step])) << "model a, step " << step;
    decode(b, step, logits);
    EXPECT_TRUE(same_bits(logits, expected_b[step])) << "model b, step " << step;
  }
  // Per model: step 0 eager (and sizes buffers), 1 eager (b's buffers were new), then recorded, then replayed.
  EXPECT_GE(gpu_->replayed_steps() - replayed_before, 6);
}

// More batch shapes than recordings are kept (64): a shape unused for 256 launches gives its place
// to a new one, and while every held one is live a new shape runs eagerly (no re-recording churn).
TEST_F(CudaVsCpu, StaleRecordingsMakeRoomForNewShapes) {
  model::LlamaConfig config = tiny_config();
  RandomWeights weights(rng_());
  model::ModelOptions options;
  options.max_context = 80;
  options.precision = Precision::fp8;
  auto backend = make_cuda_backend(0);
  model::LlamaModel model(config, &weights, *backend, options);
  std::vector<float> logits(config.vocab);
  auto step = [&](int64_t tokens) {  // one slot's positions 0 .. tokens-1: shape (tokens, 1 logit row)
    TokenBatch batch;
    for (int64_t i = 0; i < tokens; ++i)
      batch.tokens.push_back(static_cast<int32_t>((i * 7 + tokens) % config.vocab)), batch.positions.push_back(i), batch.slots.push_back(0);
    const int64_t last = tokens - 1;
    model.forward(batch, std::span<const int64_t>(&last, 1), logits.data());
  };
  auto replays_of = [&](int64_t tokens) {
    const int64_t before = backend->replayed_steps();
    step(tokens);
    return backend->replayed_steps() - before;
  };
  // Any device allocation drops every recording, so the first round (and a 65-token pass first)
  // sizes all buffers; in the second, each shape runs eagerly, is recorded, then replays.
  step(65);
  for (int round = 0; round < 2; ++round)
    for (int64_t tokens = 1; tokens <= 64; ++tokens)
      for (int pass = 0; pass < 3; ++pass) step(tokens);
  for (int64_t tokens = 1; tokens <= 64; ++tokens) ASSERT_EQ(replays_of(tokens), 1) << "shape " << tokens << " is not held";
  // All 64 places are held and live: a 65th shape runs eagerly, pass after pass (the third pass
  // uses the GEMM algorithms that cuBLASLt tuning settled on, as a recording would).
  for (int pass = 0; pass < 3; ++pass) EXPECT_EQ(replays_of(65), 0);
  const std::vector<float> eager_logits = logits;
  // Shapes 2..64 replayed 5 times each (315 launches): shape 1 goes stale and gives way to 65.
  for (int round = 0; round < 5; ++round)
    for (int64_t tokens = 2; tokens <= 64; ++tokens) ASSERT_EQ(replays_of(tokens), 1) << "shape " << tokens;
  EXPECT_EQ(replays_of(65), 0);  // recorded now (and launched: not a replay)
  EXPECT_EQ(replays_of(65), 1);
  EXPECT_TRUE(same_bits(logits, eager_logits))
      << "the replayed 65-token step differs from its eager pass";
  EXPECT_EQ(replays_of(1), 0) << "shape 1 should have been evicted, and none is stale now";
}

}  // namespace
}  // namespace octet::backend
