// The CPU forward pass against Hugging Face transformers on the real SmolLM2 model: golden outputs
// from tools/make_reference_logits.py (tests/fixtures/smollm2_reference.json).
#include "backend/backend.h"
#include "backend/device.h"
#include "formats/gguf.h"
#include "model/llama_config.h"
#include "model/llama_model.h"
#include "model/weight_source.h"
#include "support/model_files.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstring>
#include <fstream>

namespace octet::model {
namespace {

nlohmann::json load_reference() {
  std::ifstream in(testing::fixture_path("smollm2_reference.json"));
  return nlohmann::json::parse(in);
}

struct LoadedModel {
  std::unique_ptr<backend::Backend> backend;
  std::unique_ptr<LlamaModel> model;
};

LoadedModel load(const std::string& path, Precision precision, bool on_gpu = false, Numerics numerics = Numerics::fast) {
  auto file = std::make_shared<gguf::File>(gguf::File::open(path));
  LlamaConfig config = config_from_gguf(*file);
  LoadedModel loaded;
  loaded.backend = on_gpu ? backend::make_cuda_backend(0, numerics) : backend::make_cpu_backend(0, numerics);
  auto weights = make_gguf_weight_source(file, config);
  ModelOptions options;
  options.precision = precision;
  options.max_context = 1024;
  loaded.model = std::make_unique<LlamaModel>(config, weights.get(), *loaded.backend, options);
  return loaded;
}

int32_t argmax(const float* values, int64_t count) {
  return static_cast<int32_t>(std::max_element(values, values + count) - values);
}

std::vector<int32_t> greedy(LlamaModel& model, const std::vector<int32_t>& prompt, int tokens) {
  const int64_t vocab = model.config().vocab;
  std::vector<float> logits(static_cast<size_t>(vocab));
  model.clear_slot(0);
  backend::TokenBatch batch;
  for (size_t i = 0; i < prompt.size(); ++i) {
    batch.tokens.push_back(prompt[i]);
    batch.positions.push_back(static_cast<int64_t>(i));
    batch.slots.push_back(0);
  }
  int64_t last = static_cast<int64_t>(prompt.size()) - 1;
  model.forward(batch, std::span<const int64_t>(&last, 1), logits.data());
  std::vector<int32_t> out;
  int64_t position = static_cast<int64_t>(prompt.size());
  for (int i = 0; i < tokens; ++i) {
    out.push_back(argmax(logits.data(), vocab));
    backend::TokenBatch step{{out.back()}, {position++}, {0}};
    int64_t row = 0;
    model.forward(step, std::span<const int64_t>(&row, 1), logits.data());
  }
  return out;
}

struct Agreement {
  int64_t positions = 0;
  int64_t agree = 0;
  int64_t disagree_with_clear_margin = 0;  // reference top-2 gap > 0.5 logits, i.e. not a near tie
};

Agreement text_agreement(LlamaModel& model, const nlohmann::json& windows) {
  const int64_t vocab = model.config().vocab;
  Agreement result;
  for (const auto& window : windows) {
    auto ids = window["ids"].get<std::vector<int32_t>>();
    auto top1 = window["top1"].get<std::vector<int32_t>>();
    auto margin = window["margin"].get<std::vector<double>>();
    backend::TokenBatch batch;
    std::vector<int64_t> rows;
    for (size_t i = 0; i < ids.size(); ++i) {
      batch.tokens.push_back(ids[i]);
      batch.positions.push_back(static_cast<int64_t>(i));
      batch.slots.push_back(0);
      rows.push_back(static_cast<int64_t>(i));
    }
    std::vector<float> logits(ids.size() * static_cast<size_t>(vocab));
    model.clear_slot(0);
    model.forward(batch, rows, logits.data());
    for (size_t i = 0; i < ids.size(); ++i) {
      ++result.positions;
      if (argmax(logits.data() + i * vocab, vocab) == top1[i]) {
        ++result.agree;
      } else if (margin[i] > 0.5) {
        ++result.disagree_with_clear_margin;
      }
    }
  }
  return result;
}

TEST(LlamaReference, F32GreedyContinuationsMatchTransformers) {
  OCTET_REQUIRE_SMOLLM2(path);
  auto reference = load_reference();
  auto loaded = load(path, Precision::f32);
  for (const auto& case_ : reference["greedy"]) {
    auto prompt = case_["prompt_ids"].get<std::vector<int32_t>>();
    auto expected = case_["continuation_ids"].get<std::vector<int32_t>>();
    EXPECT_EQ(greedy(*loaded.model, prompt, static_cast<int>(expected.size())), expected)
        << "prompt: " << case_["prompt"].get<std::string>();
  }
}

TEST(LlamaReference, F32NextTokenAgreementOnEnglishText) {
  OCTET_REQUIRE_SMOLLM2(path);
  auto reference = load_reference();
  auto loaded = load(path, Precision::f32);
  Agreement a = text_agreement(*loaded.model, reference["text_windows"]);
  const double rate = static_cast<double>(a.agree) / static_cast<double>(a.positions);
  std::cout << "f32 top-1 agreement with transformers: " << a.agree << "/" << a.positions << " = " << rate * 100
            << "%\n";
  EXPECT_GE(a.positions, 2000);
  EXPECT_GE(rate, 0.99);
  EXPECT_EQ(a.disagree_with_clear_margin, 0);
}

// FP8 W8A8 is not expected to match float32 everywhere; it must stay close (ACCURACY.md has the
// full comparison). The bound is loose enough for quantization noise and tight enough to catch a
// broken scale or layout, which drops agreement far below 50%.
TEST(LlamaReference, Fp8NextTokenAgreementOnEnglishText) {
  OCTET_REQUIRE_SMOLLM2(path);
  auto reference = load_reference();
  auto loaded = load(path, Precision::fp8);
  Agreement a = text_agreement(*loaded.model, reference["text_windows"]);
  const double rate = static_cast<double>(a.agree) / static_cast<double>(a.positions);
  std::cout << "fp8 top-1 agreement with transformers f32: " << rate * 100 << "%\n";
  EXPECT_GE(rate, 0.85);
}

}  // namespace
}  // namespace octet::model

namespace octet::model {
namespace {

// Two loaded models scored on the reference windows: positions, those whose top-1 tokens agree, those
// whose logits are the same bits.
struct WindowAgreement {
  int64_t positions = 0, top1 = 0, same_logits = 0;
};

WindowAgreement compare_on_windows(const nlohmann::json& reference, LlamaModel& a_model, LlamaModel& b_model) {
  const int64_t vocab = a_model.config().vocab;
  WindowAgreement result;
  for (const auto& window : reference["text_windows"]) {
    auto ids = window["ids"].get<std::vector<int32_t>>();
    backend::TokenBatch batch;
    std::vector<int64_t> rows;
    for (size_t i = 0; i < ids.size(); ++i) {
      batch.tokens.push_back(ids[i]);
      batch.positions.push_back(static_cast<int64_t>(i));
      batch.slots.push_back(0);
      rows.push_back(static_cast<int64_t>(i));
    }
    std::vector<float> a(ids.size() * vocab), b(ids.size() * vocab);
    a_model.clear_slot(0);
    b_model.clear_slot(0);
    a_model.forward(batch, rows, a.data());
    b_model.forward(batch, rows, b.data());
    for (size_t i = 0; i < ids.size(); ++i, ++result.positions) {
      result.top1 += argmax(a.data() + i * vocab, vocab) == argmax(b.data() + i * vocab, vocab);
      result.same_logits += std::memcmp(a.data() + i * vocab, b.data() + i * vocab, vocab * sizeof(float)) == 0;
    }
  }
  return result;
}

// The CUDA FP8 fast path against the CPU FP8 fast path on the real model. Their sums run in other
// orders, and FP8 re-rounding turns those ulps into independent FP8 noise (docs/ACCURACY.md, "FP8
// against itself with another summation order": 89.8–90.9% top-1 between two CPU orders), so the
// fast paths are held to that: the same first greedy token of every prompt and ≥ 88% top-1. The
// identical continuations and ≥ 99% are numerics reproducible's (the next test).
TEST(LlamaReference, CudaFp8FastPathAgreesWithCpuAsFp8NoiseAllows) {
  OCTET_REQUIRE_SMOLLM2(path);
  const backend::CudaStatus cuda = backend::probe_cuda();
  if (!cuda.available) GTEST_SKIP() << "no GPU: " << cuda.reason;
  auto reference = load_reference();
  auto cpu = load(path, Precision::fp8);
  auto gpu = load(path, Precision::fp8, /*on_gpu=*/true);
  for (const auto& case_ : reference["greedy"]) {
    auto prompt = case_["prompt_ids"].get<std::vector<int32_t>>();
    EXPECT_EQ(greedy(*gpu.model, prompt, 1), greedy(*cpu.model, prompt, 1)) << case_["prompt"].get<std::string>();
  }
  const WindowAgreement r = compare_on_windows(reference, *cpu.model, *gpu.model);
  const double rate = static_cast<double>(r.top1) / static_cast<double>(r.positions);
  std::cout << "CUDA fp8 vs CPU fp8 top-1 agreement: " << r.top1 << "/" << r.positions << " = " << rate * 100 << "%\n";
  EXPECT_GE(r.positions, 2000);
  EXPECT_GE(rate, 0.88);
}

// numerics reproducible on both backends: the same greedy continuations and the same logits to the
// bit at every one of the reference windows' positions.
TEST(LlamaReference, CudaFp8ReproducibleNumericsGiveTheCpuBits) {
  OCTET_REQUIRE_SMOLLM2(path);
  const backend::CudaStatus cuda = backend::probe_cuda();
  if (!cuda.available) GTEST_SKIP() << "no GPU: " << cuda.reason;
  auto reference = load_reference();
  auto cpu = load(path, Precision::fp8, false, Numerics::reproducible);
  auto gpu = load(path, Precision::fp8, true, Numerics::reproducible);
  for (const auto& case_ : reference["greedy"]) {
    auto prompt = case_["prompt_ids"].get<std::vector<int32_t>>();
    EXPECT_EQ(greedy(*gpu.model, prompt, 32), greedy(*cpu.model, prompt, 32)) << case_["prompt"].get<std::string>();
  }
  const WindowAgreement r = compare_on_windows(reference, *cpu.model, *gpu.model);
  std::cout << "reproducible numerics, CUDA fp8 vs CPU fp8: top-1 agreement " << r.top1 << "/" << r.positions
            << ", positions with identical logits " << r.same_logits << "/" << r.positions << "\n";
  EXPECT_GE(r.positions, 2000);
  EXPECT_EQ(r.top1, r.positions);
  EXPECT_EQ(r.same_logits, r.positions);
}

}  // namespace
}  // namespace octet::model
