// key=value overrides: splitting them off a command line, and reading their values.
#include "config_fixture.h"

#include <gtest/gtest.h>

namespace octet {
namespace {

using testing::ConfigDir;

TEST(Overrides, ExtractedFromAnyCommandLine) {
  std::vector<std::string> args = {"query", "llm.use_fp8=true", "--max-tokens", "5", "llm.model=/m.gguf", "hello",
                                   "--system=a=b", "=x", "1a=2", "Plan a trip", "_x.y=", "--", "a=b", "llm.seed=1"};
  const std::vector<std::string> overrides = extract_overrides(args);
  EXPECT_EQ(overrides, (std::vector<std::string>{"llm.use_fp8=true", "llm.model=/m.gguf", "_x.y="}));
  EXPECT_EQ(args, (std::vector<std::string>{"query", "--max-tokens", "5", "hello", "--system=a=b", "=x", "1a=2",
                                            "Plan a trip", "--", "a=b", "llm.seed=1"}));
}

TEST(Overrides, ValuesAreYamlScalarsExceptUnquotedStrings) {
  ConfigDir dir;
  const Config c = load_config(dir.request(
      "", {"eval.tasks=[mmlu, gsm8k]", "llm.temperature=0", "llm.use_fp8=no",
           "planner.system_prompt=Plan: step #1, then 'two'", "api.model='quoted name'", "llm.model=", "llm.seed=42"}));
  EXPECT_EQ(c.eval.tasks, (std::vector<std::string>{"mmlu", "gsm8k"}));
  EXPECT_EQ(c.llm.temperature, 0.0f);
  EXPECT_EQ(c.llm.precision, Precision::bf16);
  EXPECT_EQ(c.planner.system_prompt, "Plan: step #1, then 'two'");
  EXPECT_EQ(c.api.model, "quoted name");
  EXPECT_EQ(c.llm.model, "");
  EXPECT_EQ(c.llm.seed, 42u);
  EXPECT_EQ(c.resolved.at("llm.seed").provenance.describe(), "command line llm.seed=42");
}

TEST(Overrides, MapOntoEngineOptionsAndGenerationParams) {
  ConfigDir dir;
  const Config c = load_config(
      dir.request("", {"llm.model=/m.gguf", "llm.device=cpu", "llm.threads=3", "engine.max_context_length=2048",
                       "llm.top_k=40", "llm.top_p=0.9", "llm.max_tokens=17", "llm.repetition_penalty=1.1"}));
  const EngineOptions options = engine_options(c);
  EXPECT_EQ(options.model_path, "/m.gguf");
  EXPECT_EQ(options.precision, Precision::fp8);
  EXPECT_EQ(options.device, Device::cpu);
  EXPECT_EQ(options.threads, 3);
  EXPECT_EQ(options.max_context, 2048);
  EXPECT_EQ(options.kv_cache_dtype, "float8_e4m3fn");
  const GenerationParams params = generation_params(c);
  EXPECT_EQ(params.top_k, 40);
  EXPECT_FLOAT_EQ(params.top_p, 0.9f);
  EXPECT_EQ(params.max_tokens, 17);
  EXPECT_FLOAT_EQ(params.repetition_penalty, 1.1f);
  EXPECT_EQ(engine_options(load_config(dir.request(""))).model_path, default_model_path());
}

}  // namespace
}  // namespace octet
