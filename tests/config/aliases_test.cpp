// The seed's aliases are one setting with their canonical key: the last source decides, and within
// one source they must agree.
#include "config_fixture.h"

#include <gtest/gtest.h>

namespace octet {
namespace {

using testing::ConfigDir;
using testing::error_of;

bool flag(const Config& c, const std::string& key) { return std::get<bool>(c.resolved.at(key).value); }

TEST(Aliases, AnyFp8SwitchTurnsThePrecisionOff) {
  for (const std::string yaml :
       {"quantization:\n  enabled: false\n", "llm:\n  use_fp8: false\n",
        "llm:\n  quantization:\n    enable_fp8: false\n", "quantization:\n  precision: bf16\n"}) {
    ConfigDir dir;
    dir.copy_shipped_defaults();
    dir.write("run.yaml", yaml);
    const Config c = load_config(dir.request("run"));
    EXPECT_EQ(c.llm.precision, Precision::bf16) << yaml;
    for (const char* alias : {"llm.use_fp8", "llm.quantization.enable_fp8", "quantization.enabled"})
      EXPECT_FALSE(flag(c, alias)) << yaml << alias;
    EXPECT_EQ(std::get<std::string>(c.resolved.at("quantization.precision").value), "bf16") << yaml;
  }
}

TEST(Aliases, ALaterSourceWinsOverAnEarlierOne) {
  ConfigDir dir;
  dir.copy_shipped_defaults();
  dir.write("run.yaml", "llm:\n  use_fp8: true\n  precision: fp8\n");
  EXPECT_EQ(load_config(dir.request("run", {}, {{"OCTET_LLM_PRECISION", "bf16"}})).llm.precision, Precision::bf16);
  EXPECT_EQ(load_config(dir.request("run", {"quantization.enabled=false"})).llm.precision, Precision::bf16);
  EXPECT_EQ(load_config(dir.request("run", {"llm.precision=f32"}, {{"USE_FP8", "false"}})).llm.precision,
            Precision::f32);
}

TEST(Aliases, FalseLeavesANonFp8PrecisionAlone) {
  ConfigDir dir;
  dir.write("f32.yaml", "llm:\n  precision: f32\n");
  EXPECT_EQ(load_config(dir.request("f32", {"llm.use_fp8=false"})).llm.precision, Precision::f32);
  EXPECT_EQ(load_config(dir.request("f32", {"llm.use_fp8=true"})).llm.precision, Precision::fp8);
  // Within one source false agrees with f32, in either order.
  EXPECT_EQ(load_config(dir.request("", {"llm.use_fp8=false", "llm.precision=f32"})).llm.precision, Precision::f32);
  EXPECT_EQ(load_config(dir.request("", {"llm.precision=f32", "llm.use_fp8=false"})).llm.precision, Precision::f32);
}

TEST(Aliases, ContradictionsWithinOneSourceAreErrors) {
  ConfigDir dir;
  const std::string cli = error_of([&] { load_config(dir.request("", {"llm.use_fp8=false", "llm.precision=fp8"})); });
  EXPECT_NE(cli.find("command line override 'llm.use_fp8=false': llm.use_fp8 = false contradicts llm.precision = fp8"),
            std::string::npos)
      << cli;
  const std::string env = error_of([&] {
    load_config(dir.request("", {}, {{"LLM_MODEL", "/a.gguf"}, {"OCTET_LLM_MODEL", "/b.gguf"}}));
  });
  EXPECT_NE(env.find("environment variable LLM_MODEL"), std::string::npos) << env;
  EXPECT_NE(env.find("environment variable OCTET_LLM_MODEL"), std::string::npos) << env;
  const std::string same_key = error_of([&] { load_config(dir.request("", {"llm.seed=1", "llm.seed=2"})); });
  EXPECT_NE(same_key.find("contradicts"), std::string::npos) << same_key;
  // Agreeing settings are fine.
  EXPECT_EQ(load_config(dir.request("", {"llm.seed=3", "llm.seed=3"})).llm.seed, 3u);
}

TEST(Aliases, KvCacheAliasAndItsEngineMapping) {
  ConfigDir dir;
  const Config off = load_config(dir.request("", {"llm.quantization.fp8_kv_cache=false"}));
  EXPECT_FALSE(off.quantization.quantize_kv_cache);
  EXPECT_EQ(off.engine.kv_cache_dtype, "bf16");
  EXPECT_NE(error_of([&] { engine_options(off); }).find("quantize_kv_cache"), std::string::npos);
  const Config bf16 = load_config(dir.request("", {"llm.precision=bf16", "quantization.quantize_kv_cache=false"}));
  EXPECT_EQ(engine_options(bf16).precision, Precision::bf16);
  const Config explicit_kv = load_config(dir.request("", {"engine.kv_cache_dtype=float8_e5m2"}));
  EXPECT_EQ(engine_options(explicit_kv).kv_cache_dtype, "float8_e5m2");
}

TEST(Aliases, ModelNameIsLlmModel) {
  const Config c = load_config(testing::shipped_request("fp8_model"));
  EXPECT_EQ(c.llm.model, "nvidia/Llama-3.3-70B-Instruct-FP8");
  EXPECT_EQ(c.resolved.at("llm.model").provenance.describe(),
            "from model_name = nvidia/Llama-3.3-70B-Instruct-FP8 (fp8_model.yaml:2)");
  EXPECT_EQ(load_config(testing::shipped_request("fp8_model", {"llm.model=/m.gguf"})).llm.model, "/m.gguf");
}

}  // namespace
}  // namespace octet
