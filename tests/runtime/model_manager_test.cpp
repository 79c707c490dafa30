#include "formats/gguf_test_writer.h"
#include "octet/config.h"
#include "octet/doctor.h"
#include "octet/manager.h"
#include "support/model_files.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace octet {
namespace {

Config config_with(std::vector<std::string> overrides, std::string config_name = "") {
  ConfigRequest request;
  request.config_name = std::move(config_name);
  request.overrides = std::move(overrides);
  request.environment = {};  // the tests do not depend on the caller's environment
  return load_config(request);
}

// Llama-3.3-70B at its full 131072-token context, by hand:
//   linear weights per layer: q 8192·8192 + k,v 2·8192·1024 + o 8192·8192 + gate,up,down 3·8192·28672
//                             = 67,108,864 + 16,777,216 + 67,108,864 + 704,643,072 = 855,638,016; × 80 layers
//                             = 68,451,041,280 (1 byte each in FP8)
//   channel scales: (8192 + 2·1024 + 8192 + 2·28672 + 8192) · 80 = 6,717,440 floats = 26,869,760 bytes
//   everything else (embeddings and untied head 2·128256·8192, norms 80·2·8192 + 8192) = 2,102,665,216
//     parameters, 2 bytes each in both formats = 4,205,330,432 bytes
//   FP8 weights = 68,451,041,280 + 26,869,760 + 4,205,330,432 = 72,683,241,472
//   BF16 weights = 2 · 70,553,706,496 = 141,107,412,992
//   KV per token: 2 (K, V) · 80 layers · 8 heads · 128 dims = 163,840 values (BF16: 327,680 bytes);
//     FP8 adds a float scale per (token, kv head): 2 · 80 · 8 · 4 = 5,120 bytes → 168,960 bytes; · 131072 tokens
TEST(ModelManager, MemorySavingsOfLlama33_70BByHand) {
  auto manager = create_fp8_manager(config_with({}, "fp8_model"));
  EXPECT_FALSE(manager->loaded());  // no weights here: estimates come from the shape alone
  const MemorySavings m = manager->estimate_memory_savings();
  EXPECT_EQ(m.context_tokens, 131072);
  EXPECT_EQ(m.weights_fp8_bytes, 72'683'241'472ull);
  EXPECT_EQ(m.weights_bf16_bytes, 141'107'412'992ull);
  EXPECT_EQ(m.kv_cache_bf16_bytes, 163'840ull * 2 * 131072);
  EXPECT_EQ(m.kv_cache_fp8_bytes, 168'960ull * 131072);
  EXPECT_EQ(m.total_fp8_bytes, m.weights_fp8_bytes + m.kv_cache_fp8_bytes);
  EXPECT_NEAR(m.weights_savings_percentage, 100.0 * (1 - 72'683'241'472.0 / 141'107'412'992.0), 1e-9);  // 48.49%
  EXPECT_NEAR(m.kv_cache_savings_percentage, 100.0 * (1 - 168'960.0 / 327'680.0), 1e-9);  // 48.44%
  EXPECT_GT(m.total_savings_percentage, 48.0);
  const ManagedModelInfo info = manager->model_info();
  EXPECT_EQ(info.parameters, 70'553'706'496);
  EXPECT_EQ(info.tensor_parallel_size, 2);
  EXPECT_EQ(info.fp8_dtype, "float8_e4m3fn");
  EXPECT_FALSE(info.not_loaded_reason.empty());
}

// Llama-3.1-8B at the default context (the model's 131072 capped to 8192), by hand:
//   linear per layer: 4096·4096 + 2·4096·1024 + 4096·4096 + 3·4096·14336 = 218,103,808; × 32 = 6,979,321,856
//   scales: (4096 + 2048 + 4096 + 2·14336 + 4096) · 32 = 1,376,256 floats = 5,505,024 bytes
//   the rest: 8,030,261,248 − 6,979,321,856 = 1,050,939,392 parameters · 2 bytes = 2,101,878,784
//   FP8 = 6,979,321,856 + 5,505,024 + 2,101,878,784 = 9,086,705,664; BF16 = 2 · 8,030,261,248 = 16,060,522,496
//   KV per token: 2 · 32 · 8 · 128 = 65,536 values; FP8 + scales 2 · 32 · 8 · 4 = 2,048 → 67,584 bytes; · 8192 tokens
TEST(ModelManager, MemorySavingsOfLlama31_8BByHand) {
  auto manager = create_fp8_manager(config_with({"llm.model=meta-llama/Llama-3.1-8B-Instruct"}));
  const MemorySavings m = manager->estimate_memory_savings();
  EXPECT_EQ(m.context_tokens, 8192);
  EXPECT_EQ(m.weights_fp8_bytes, 9'086'705'664ull);
  EXPECT_EQ(m.weights_bf16_bytes, 16'060'522'496ull);
  EXPECT_EQ(m.kv_cache_fp8_bytes, 67'584ull * 8192);
  EXPECT_EQ(m.kv_cache_bf16_bytes, 65'536ull * 2 * 8192);
}

// The same with llm.lm_head_precision=fp8 and llm.embedding_precision=fp8: each of the two
// vocabulary tensors (128256 · 4096 = 525,336,576 values) drops from 2 bytes a value to 1 plus a float
// per row: 2 · (1,050,673,152 − 525,849,600) = 1,049,647,104 bytes fewer → 8,037,058,560 (50.04% of BF16).
TEST(ModelManager, MemorySavingsOfLlama31_8BWithFp8HeadAndTable) {
  auto manager = create_fp8_manager(config_with(
      {"llm.model=meta-llama/Llama-3.1-8B-Instruct", "llm.lm_head_precision=fp8", "llm.embedding_precision=fp8"}));
  const MemorySavings m = manager->estimate_memory_savings();
  EXPECT_EQ(m.weights_fp8_bytes, 8'037'058'560ull);
  EXPECT_EQ(m.weights_bf16_bytes, 16'060'522'496ull);
  EXPECT_LE(static_cast<double>(m.weights_fp8_bytes) / static_cast<double>(m.weights_bf16_bytes), 0.52);
  // A published FP8 export excludes lm_head: auto keeps both BF16 there.
  auto published = create_fp8_manager(config_with({"llm.model=nvidia/Llama-3.1-8B-Instruct-FP8"}));
  EXPECT_EQ(published->estimate_memory_savings().weights_fp8_bytes, 9'086'705'664ull);
}

// A GGUF whose metadata describes a model far larger than this machine (two thousand layers of
// hidden size 16384: ~6.4 T parameters) is not loaded at all: the environment check says it cannot fit.
TEST(ModelManager, ModelTheEnvironmentCheckRejectsIsNotLoaded) {
  gguf::testing::GgufWriter writer;
  writer.add("general.architecture", gguf::testing::str("llama"));
  writer.add("llama.block_count", gguf::testing::u32(2000));
  writer.add("llama.embedding_length", gguf::testing::u32(16384));
  writer.add("llama.feed_forward_length", gguf::testing::u32(53248));
  writer.add("llama.attention.head_count", gguf::testing::u32(128));
  writer.add("llama.attention.head_count_kv", gguf::testing::u32(8));
  writer.add("llama.context_length", gguf::testing::u32(8192));
  writer.add("llama.attention.layer_norm_rms_epsilon", gguf::testing::f32(1e-5f));
  writer.add("llama.vocab_size", gguf::testing::u32(128256));
  const std::string path = ::testing::TempDir() + "/huge_model.gguf";
  writer.save(path);
  auto manager = create_fp8_manager(config_with({"llm.model=" + path, "llm.device=cpu"}));
  EXPECT_FALSE(manager->loaded());
  const std::string reason = manager->model_info().not_loaded_reason;
  EXPECT_NE(reason.find("environment check says unavailable"), std::string::npos) << reason;
  EXPECT_NE(reason.find("needs"), std::string::npos) << reason;
}

TEST(ModelManager, UnknownModelIsReportedNotThrown) {
  auto manager = create_fp8_manager(config_with({"llm.model=/nonexistent/model.gguf"}));
  EXPECT_FALSE(manager->loaded());
  EXPECT_NE(manager->model_info().not_loaded_reason.find("/nonexistent/model.gguf"), std::string::npos);
  EXPECT_THROW(manager->estimate_memory_savings(), std::exception);
  EXPECT_THROW(manager->generate({{"user", "hi"}}, {}), std::exception);
}

TEST(ModelManager, PerformanceStatsFollowTheQueries) {
  OCTET_REQUIRE_SMOLLM2(path);
  auto manager = create_fp8_manager(config_with({"llm.model=" + path, "llm.device=cpu"}));
  ASSERT_TRUE(manager->loaded()) << manager->model_info().not_loaded_reason;
  const PerformanceStats before = manager->performance_stats();
  EXPECT_EQ(before.requests, 0u);
  EXPECT_EQ(before.completion_tokens, 0u);
  GenerationParams params;
  params.temperature = 0;
  params.max_tokens = 12;
  params.ignore_eos = true;
  manager->generate({{"user", "Count to ten."}}, params);
  manager->generate({{"user", "Name a color."}}, params);
  const PerformanceStats after = manager->performance_stats();
  EXPECT_EQ(after.requests, 2u);
  EXPECT_EQ(after.completion_tokens, 24u);
  EXPECT_GT(after.prompt_tokens, 10u);
  EXPECT_GT(after.throughput_tok_s, 0.0);
  EXPECT_GT(after.time_to_first_token.mean_ms, 0.0);
  EXPECT_GT(after.inter_token_latency.p50_ms, 0.0);
  EXPECT_GE(after.inter_token_latency.p99_ms, after.inter_token_latency.p50_ms);
  EXPECT_GT(after.host_memory_bytes, 0u);
  EXPECT_GT(after.kv_cache_bytes_per_token, 0u);
  EXPECT_EQ(after.kv_cache_bytes_in_use % after.kv_cache_bytes_per_token, 0u);
  EXPECT_EQ(manager->model_info().devices, std::vector<std::string>{"cpu"});
}

TEST(Doctor, ThisGpuLessMachineIsDegradedWithReasons) {
  const auto model = testing::smollm2_gguf();
  const EnvironmentReport r = validate_fp8_environment(config_with(model ? std::vector<std::string>{"llm.model=" + *model}
                                                                         : std::vector<std::string>{}));
  if (!r.gpus.empty()) GTEST_SKIP() << "a GPU is present";
  EXPECT_NE(r.status, "ready");
  ASSERT_FALSE(r.reasons.empty());
  EXPECT_EQ(r.reasons.size(), r.fixes.size());
  const bool mentions_cpu_or_cuda = r.reasons.front().find("CUDA") != std::string::npos ||
                                    r.reasons.front().find("CPU") != std::string::npos;
  EXPECT_TRUE(mentions_cpu_or_cuda) << r.reasons.front();
  if (model) {
    EXPECT_EQ(r.status, "degraded");  // the default model runs, on the CPU
    EXPECT_TRUE(r.model_fits);
    EXPECT_EQ(r.device, "cpu");
  }
  auto json = nlohmann::json::parse(report_to_json(r));
  EXPECT_EQ(json["status"], r.status);
  EXPECT_EQ(json["reasons"].size(), r.reasons.size());
  EXPECT_EQ(json["cpu_vector_unit"], r.cpu_vector_unit);
  EXPECT_TRUE(r.cpu_vector_unit == "avx512" || r.cpu_vector_unit == "avx2" || r.cpu_vector_unit == "scalar") << r.cpu_vector_unit;
  bool names_scalar_loops = false;
  for (const auto& reason : r.reasons) names_scalar_loops = names_scalar_loops || reason.find("AVX2") != std::string::npos;
  EXPECT_EQ(names_scalar_loops, r.cpu_vector_unit == "scalar" && r.device == "cpu");
}

TEST(Doctor, MissingModelIsUnavailableWithAFix) {
  const EnvironmentReport r = validate_fp8_environment(config_with({"llm.model=/nonexistent/model.gguf"}));
  EXPECT_EQ(r.status, "unavailable");
  EXPECT_FALSE(r.model_found);
  bool named = false;
  for (const auto& reason : r.reasons) named = named || reason.find("/nonexistent/model.gguf") != std::string::npos;
  EXPECT_TRUE(named);
}

TEST(Doctor, SeventyBAtFullContextDoesNotFitOnThisMachineAndSaysTheLargestContext) {
  const EnvironmentReport r = validate_fp8_environment(config_with({"engine.tensor_parallel_size=1"}, "fp8_model"));
  EXPECT_EQ(r.status, "unavailable");
  EXPECT_FALSE(r.model_fits);
  EXPECT_EQ(r.model_bytes_needed, 72'683'241'472ull + 168'960ull * 131072);
}

}  // namespace
}  // namespace octet
