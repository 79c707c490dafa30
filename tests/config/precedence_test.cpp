// defaults.yaml < config files < environment < command line, for keys of several types and sections.
#include "config_fixture.h"
#include "config/schema.h"
#include "config/value.h"

#include <gtest/gtest.h>

namespace octet {
namespace {

using testing::ConfigDir;

struct Layered {
  std::string key, file_yaml, file_value, env_name, env_value, override_value;
};

class Precedence : public ::testing::TestWithParam<Layered> {};

TEST_P(Precedence, EachLayerBeatsTheOneBelow) {
  const Layered& p = GetParam();
  ConfigDir dir;
  dir.copy_shipped_defaults();
  dir.write("run.yaml", p.file_yaml);
  const std::map<std::string, std::string> env = {{p.env_name, p.env_value}};
  const std::vector<std::string> overrides = {p.key + "=" + p.override_value};
  auto expect = [&](const ResolvedConfig& r, const std::string& value, const std::string& provenance) {
    EXPECT_EQ(config::format_value(r.at(p.key).value), value) << p.key;
    EXPECT_EQ(r.at(p.key).provenance.describe().rfind(provenance, 0), 0u) << r.at(p.key).provenance.describe();
  };
  const std::string default_text = config::format_value(config::default_value(*config::find_key(p.key)));

  expect(resolve_config(dir.request("")), default_text, "default (defaults.yaml:");
  expect(resolve_config(dir.request("run")), p.file_value, "run.yaml:");
  expect(resolve_config(dir.request("run", {}, env)), p.env_value, "env " + p.env_name);
  expect(resolve_config(dir.request("run", overrides, env)), p.override_value, "command line " + overrides[0]);
  expect(resolve_config(dir.request("", overrides)), p.override_value, "command line " + overrides[0]);
}

INSTANTIATE_TEST_SUITE_P(
    Keys, Precedence,
    ::testing::Values(Layered{"llm.max_tokens", "llm:\n  max_tokens: 100\n", "100", "OCTET_LLM_MAX_TOKENS", "200",
                              "300"},
                      Layered{"llm.model", "llm:\n  model: /a.gguf\n", "/a.gguf", "LLM_MODEL", "/b.gguf", "/c.gguf"},
                      Layered{"engine.tensor_parallel_size", "engine:\n  tensor_parallel_size: 2\n", "2",
                              "TENSOR_PARALLEL_SIZE", "4", "8"},
                      Layered{"engine.gpu_memory_utilization", "engine:\n  gpu_memory_utilization: 0.5\n", "0.5",
                              "OCTET_ENGINE_GPU_MEMORY_UTILIZATION", "0.6", "0.7"},
                      Layered{"quantization.data_type", "quantization:\n  data_type: float8_e5m2\n", "float8_e5m2",
                              "FP8_QUANTIZATION_TYPE", "float8_e4m3fn", "float8_e5m2"},
                      Layered{"server.port", "server:\n  port: 9000\n", "9000", "OCTET_SERVER_PORT", "9001", "9002"}));

}  // namespace
}  // namespace octet
