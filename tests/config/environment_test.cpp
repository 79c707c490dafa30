// Environment variables: each seed variable, OCTET_<SECTION>_<KEY>, and the variables left alone.
#include "config/schema.h"
#include "config/value.h"
#include "config_fixture.h"

#include <gtest/gtest.h>

namespace octet {
namespace {

using testing::shipped_request;

Config with_env(std::map<std::string, std::string> environment) {
  return load_config(shipped_request("", {}, std::move(environment)));
}

TEST(Environment, UseFp8DrivesThePrecision) {
  const Config off = with_env({{"USE_FP8", "false"}});
  EXPECT_EQ(off.llm.precision, Precision::bf16);
  EXPECT_EQ(off.resolved.at("llm.use_fp8").provenance.describe(), "env USE_FP8");
  EXPECT_EQ(off.resolved.at("llm.precision").provenance.describe(), "from llm.use_fp8 = false (env USE_FP8)");
  EXPECT_EQ(std::get<bool>(off.resolved.at("quantization.enabled").value), false);
  EXPECT_EQ(with_env({{"USE_FP8", "1"}}).llm.precision, Precision::fp8);
  EXPECT_EQ(with_env({{"USE_FP8", "True"}}).llm.precision, Precision::fp8);
}

TEST(Environment, LlmModelSetsTheModelAndItsSeedAlias) {
  const Config c = with_env({{"LLM_MODEL", "/models/llama.gguf"}});
  EXPECT_EQ(c.llm.model, "/models/llama.gguf");
  EXPECT_EQ(std::get<std::string>(c.resolved.at("model_name").value), "/models/llama.gguf");
  EXPECT_EQ(c.resolved.at("model_name").provenance.describe(), "from llm.model = /models/llama.gguf (env LLM_MODEL)");
}

TEST(Environment, EngineDirTensorParallelAndDataType) {
  const Config c = with_env({{"TENSORRT_LLM_ENGINE_DIR", "/engines/70b"},
                             {"TENSOR_PARALLEL_SIZE", "4"},
                             {"FP8_QUANTIZATION_TYPE", "float8_e5m2"}});
  EXPECT_EQ(c.engine.engine_dir, "/engines/70b");
  EXPECT_EQ(c.engine.tensor_parallel_size, 4);
  EXPECT_EQ(c.quantization.data_type, "float8_e5m2");
  EXPECT_EQ(c.engine.kv_cache_dtype, "float8_e5m2");  // kv_cache_dtype auto follows the data type
  EXPECT_EQ(c.resolved.at("engine.engine_dir").provenance.describe(), "env TENSORRT_LLM_ENGINE_DIR");
}

TEST(Environment, Fp8DebugLowersTheLogLevel) {
  const Config debug = with_env({{"FP8_DEBUG", "true"}});
  EXPECT_TRUE(debug.logging.debug);
  EXPECT_EQ(debug.logging.level, "debug");
  EXPECT_EQ(with_env({{"FP8_DEBUG", "1"}, {"OCTET_LOGGING_LEVEL", "trace"}}).logging.level, "trace");
  EXPECT_EQ(with_env({{"FP8_DEBUG", "0"}}).logging.level, "warn");
}

TEST(Environment, OctetSectionKeyVariables) {
  const Config c = with_env({{"OCTET_ENGINE_MAX_CONTEXT_LENGTH", "4096"},
                             {"OCTET_LLM_QUANTIZATION_FP8_KV_CACHE", "false"},
                             {"OCTET_EVAL_TASKS", "mmlu, gsm8k"},
                             {"OCTET_PLANNER_SYSTEM_PROMPT", "Plan: briefly # no comment"}});
  EXPECT_EQ(c.engine.max_context_length, 4096);
  EXPECT_FALSE(c.quantization.quantize_kv_cache);
  EXPECT_EQ(c.eval.tasks, (std::vector<std::string>{"mmlu", "gsm8k"}));
  EXPECT_EQ(c.planner.system_prompt, "Plan: briefly # no comment");  // verbatim, not YAML
  EXPECT_EQ(with_env({{"OCTET_EVAL_TASKS", "[humaneval]"}}).eval.tasks, std::vector<std::string>{"humaneval"});
}

TEST(Environment, EveryKeyHasAWorkingOctetVariable) {
  for (const auto& key : config::schema()) {
    // A value other than the default, of the right type, so the variable must be what set it.
    std::string text;
    switch (key.type) {
      case config::ValueType::string: text = "/changed"; break;
      case config::ValueType::boolean: text = std::get<bool>(config::default_value(key)) ? "false" : "true"; break;
      case config::ValueType::integer: text = std::to_string(std::get<int64_t>(config::default_value(key)) + 1); break;
      case config::ValueType::number: text = "0.5"; break;
      case config::ValueType::choice:
      case config::ValueType::choice_list: text = std::string(key.allowed.back()); break;
    }
    const std::string variable = config::environment_name(key.name);
    const Config c = with_env({{variable, text}});
    EXPECT_EQ(c.resolved.at(key.name).provenance.describe(), "env " + variable) << key.name;
  }
}

TEST(Environment, UnrelatedAndEmptyVariablesAreIgnored) {
  const Config c = with_env({{"PATH", "/bin"},
                             {"OCTET_MODELS", "/models"},
                             {"OCTET_BUILD_DIR", "/build"},
                             {"OCTET_TEST_SEED", "7"},
                             {"USE_FP8", ""},
                             {"OCTET_API_KEY", "sk-test"}});
  EXPECT_EQ(c.llm.precision, Precision::fp8);
  EXPECT_EQ(c.resolved.at("llm.use_fp8").provenance.describe().rfind("default", 0), 0u);
}

TEST(Environment, ApiKeyComesOnlyFromTheEnvironment) {
  EXPECT_EQ(with_env({{"OCTET_API_KEY", "sk-octet"}, {"OPENAI_API_KEY", "sk-openai"}}).api.api_key, "sk-octet");
  EXPECT_EQ(with_env({{"OPENAI_API_KEY", "sk-openai"}}).api.api_key, "sk-openai");
  EXPECT_EQ(with_env({}).api.api_key, "");
  const Config c = with_env({{"OPENAI_API_KEY", "sk-secret"}});
  EXPECT_EQ(render_config(c.resolved, true).find("sk-secret"), std::string::npos);
}

}  // namespace
}  // namespace octet
