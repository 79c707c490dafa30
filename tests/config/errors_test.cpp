// Every way a config can be wrong names where (file:line, variable or override), what was expected,
// and a likely fix.
#include "config_fixture.h"

#include <gtest/gtest.h>

namespace octet {
namespace {

using testing::ConfigDir;
using testing::error_of;

// The error from loading `yaml` as run.yaml; checks it names the file and `line`.
std::string file_error(const std::string& yaml, int line) {
  ConfigDir dir;
  dir.write("run.yaml", yaml);
  const std::string message = error_of([&] { load_config(dir.request("run")); });
  EXPECT_NE(message.find(dir.path() + "/run.yaml:" + std::to_string(line)), std::string::npos) << message;
  return message;
}

void expect_contains(const std::string& message, const std::vector<std::string>& parts) {
  for (const auto& part : parts) EXPECT_NE(message.find(part), std::string::npos) << "'" << part << "' in: " << message;
}

TEST(ConfigErrors, UnknownKeySuggestsTheClosestKey) {
  expect_contains(file_error("llm:\n  seed: 1\n  temprature: 0.5\n", 3),
                  {"unknown key 'llm.temprature'", "did you mean 'llm.temperature'?"});
  expect_contains(file_error("engin:\n  max_context_length: 5\n", 1),
                  {"unknown key 'engin'", "did you mean 'engine'?"});
  // The right name in the wrong section, and an unfinished name.
  expect_contains(file_error("llm:\n  max_context_length: 5\n", 2), {"did you mean 'engine.max_context_length'?"});
  expect_contains(file_error("engine:\n  max_context: 5\n", 2), {"did you mean 'engine.max_context_length'?"});
  expect_contains(file_error("colour: blue\n", 1), {"unknown key 'colour'", "docs/CONFIG.md"});
}

TEST(ConfigErrors, WrongTypeNamesTheExpectedType) {
  expect_contains(file_error("engine:\n  max_context_length: lots\n", 2),
                  {"engine.max_context_length", "expected an integer", "'lots'"});
  expect_contains(file_error("llm:\n  temperature: 1.2.3\n", 2), {"expected a number"});
  expect_contains(file_error("llm:\n  use_fp8: maybe\n", 2), {"expected a boolean (true or false)"});
  expect_contains(file_error("server:\n  port: \"8000\"\n", 2), {"remove the quotes"});
  expect_contains(file_error("llm:\n  seed: [1, 2]\n", 2), {"found a list"});
  expect_contains(file_error("llm:\n  model:\n    path: x\n", 2), {"expected a string, found a mapping"});
  expect_contains(file_error("llm:\n  top_k:\n", 2), {"found no value"});
  expect_contains(file_error("llm: 5\n", 1), {"'llm' is a section", "llm.model"});
}

TEST(ConfigErrors, InvalidChoiceListsTheAllowedValues) {
  expect_contains(file_error("llm:\n  precision: fp9\n", 2),
                  {"llm.precision: invalid value 'fp9'", "allowed: fp8, bf16, f32", "did you mean 'fp8'?"});
  expect_contains(file_error("eval:\n  tasks: [mmlu, gsm8kk]\n", 2), {"'gsm8kk'", "did you mean 'gsm8k'?"});
  expect_contains(file_error("quantization:\n  data_type: int8\n", 2), {"allowed: float8_e4m3fn, float8_e5m2"});
}

TEST(ConfigErrors, OutOfRangeNamesTheRange) {
  expect_contains(file_error("llm:\n  top_p: 2\n", 2),
                  {"llm.top_p: 2.0 is out of range (allowed: at least 0 and at most 1)"});
  expect_contains(file_error("engine:\n  gpu_memory_utilization: 0\n", 2), {"greater than 0 and at most 1"});
  expect_contains(file_error("server:\n  port: 70000\n", 2), {"at most 65535"});
}

TEST(ConfigErrors, YamlSyntaxErrorNamesLineAndColumn) {
  expect_contains(file_error("llm:\n  seed: 1\n  model: [unclosed\n", 4), {"YAML syntax error"});
  expect_contains(file_error("llm:\n  seed: 1\n bad indent: 2\n", 3), {"YAML syntax error"});
}

TEST(ConfigErrors, DuplicateKeysAreErrors) {
  expect_contains(file_error("llm:\n  seed: 1\n  seed: 2\n", 3), {"duplicate key 'llm.seed'"});
}

TEST(ConfigErrors, ApiKeysAreRefusedInFiles) {
  expect_contains(file_error("api:\n  api_key: sk-123\n", 2), {"never read from files", "OCTET_API_KEY"});
}

TEST(ConfigErrors, ContradictoryAliasesInOneFile) {
  expect_contains(file_error("llm:\n  precision: fp8\n  use_fp8: false\n", 2),
                  {"llm.precision = fp8 contradicts llm.use_fp8 = false", "run.yaml:3"});
}

TEST(ConfigErrors, UnknownConfigNameListsTheConfigs) {
  ConfigDir dir;
  dir.write("fp8_model.yaml", "");
  dir.write("benchmark.yaml", "");
  const std::string message = error_of([&] { load_config(dir.request("fp8_modle")); });
  expect_contains(message, {"--config-name", "config 'fp8_modle' not found in " + dir.path(),
                            "available: benchmark, fp8_model", "did you mean 'fp8_model'?"});
  expect_contains(error_of([&] {
                    ConfigRequest request;
                    request.config_path = dir.path() + "/nowhere";
                    request.environment = {};
                    load_config(request);
                  }),
                  {"--config-path", "not a directory"});
}

TEST(ConfigErrors, BadOverrideSyntax) {
  ConfigDir dir;
  auto override_error = [&](const std::string& text) {
    return error_of([&] { load_config(dir.request("", {text})); });
  };
  expect_contains(override_error("llm.model"), {"command line override 'llm.model'", "expected key=value"});
  expect_contains(override_error("9lives=1"), {"expected key=value"});
  expect_contains(override_error("+llm.seed=1"), {"not needed", "write llm.seed=1"});
  // A lone '+' was a std::out_of_range from substr (a fuzz finding).
  expect_contains(override_error("+"), {"command line override '+'", "not needed", "write key=value"});
  expect_contains(override_error("+++"), {"not needed", "write key=value"});
  expect_contains(override_error("~llm.seed"), {"cannot be deleted"});
  expect_contains(override_error("llm=3"), {"'llm' is a section"});
  expect_contains(override_error("llm.temprature=0.1"), {"did you mean 'llm.temperature'?"});
  expect_contains(override_error("llm.seed=abc"), {"command line override 'llm.seed=abc'", "expected an integer"});
  expect_contains(override_error("llm.seed=-1"), {"out of range"});
  expect_contains(override_error("eval.tasks=[mmlu"), {"cannot read '[mmlu' as a YAML value"});
}

TEST(ConfigErrors, BadEnvironmentValueNamesTheVariable) {
  ConfigDir dir;
  auto env_error = [&](const std::string& name, const std::string& value) {
    return error_of([&] { load_config(dir.request("", {}, {{name, value}})); });
  };
  expect_contains(env_error("USE_FP8", "maybe"), {"environment variable USE_FP8", "llm.use_fp8", "expected a boolean"});
  expect_contains(env_error("FP8_QUANTIZATION_TYPE", "float8_e3m4"),
                  {"environment variable FP8_QUANTIZATION_TYPE", "allowed: float8_e4m3fn, float8_e5m2"});
  expect_contains(env_error("TENSOR_PARALLEL_SIZE", "two"), {"environment variable TENSOR_PARALLEL_SIZE", "integer"});
  expect_contains(
      env_error("OCTET_LLM_TEMPRATURE", "0.1"),
      {"environment variable OCTET_LLM_TEMPRATURE: no such setting", "did you mean OCTET_LLM_TEMPERATURE?"});
  ConfigRequest located_by_environment;
  located_by_environment.environment = {{"OCTET_CONFIG_PATH", "/nowhere"}};
  expect_contains(error_of([&] { load_config(located_by_environment); }),
                  {"environment variable OCTET_CONFIG_PATH: /nowhere is not a directory"});
}

}  // namespace
}  // namespace octet
