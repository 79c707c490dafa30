// The files in configs/ and docs/CONFIG.md agree with the schema, and the shipped configs load.
#include "config/schema.h"
#include "config/value.h"
#include "config_fixture.h"

#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <cstdlib>
#include <set>
#include <sstream>

namespace octet {
namespace {

using testing::shipped_request;

// Leaf paths of a YAML mapping, read with yaml-cpp alone (not the loader under test).
void collect_leaves(const YAML::Node& node, const std::string& prefix, std::map<std::string, YAML::Node>& leaves) {
  for (const auto& item : node) {
    const std::string name = prefix.empty() ? item.first.Scalar() : prefix + "." + item.first.Scalar();
    if (item.second.IsMap())
      collect_leaves(item.second, name, leaves);
    else
      leaves[name] = item.second;
  }
}

TEST(ShippedConfigs, DefaultsYamlHoldsEverySchemaKeyWithItsDefault) {
  const std::string path = testing::shipped_configs() + "/defaults.yaml";
  std::map<std::string, YAML::Node> leaves;
  collect_leaves(YAML::LoadFile(path), "", leaves);
  std::set<std::string> schema_keys;
  for (const auto& key : config::schema()) {
    schema_keys.insert(std::string(key.name));
    const auto found = leaves.find(std::string(key.name));
    ASSERT_NE(found, leaves.end()) << key.name << " is missing from defaults.yaml";
    EXPECT_EQ(config::format_value(config::parse_node(key, found->second, path)),
              config::format_value(config::default_value(key)))
        << key.name;
  }
  for (const auto& [name, node] : leaves) EXPECT_TRUE(schema_keys.count(name)) << name << " is not in the schema";
}

TEST(ShippedConfigs, EverySettingInDefaultsYamlHasAComment) {
  std::ifstream file(testing::shipped_configs() + "/defaults.yaml");
  std::string previous, line;
  while (std::getline(file, line)) {
    const bool setting = line.find(':') != std::string::npos && line.find_first_not_of(' ') != line.find('#');
    const bool section = !line.empty() && line.back() == ':';
    if (setting && !section) {
      EXPECT_TRUE(line.find(" # ") != std::string::npos || previous.find_first_not_of(' ') == previous.find('#'))
          << line;
    }
    previous = line;
  }
}

TEST(ShippedConfigs, EveryValueOfDefaultsComesFromDefaultsYaml) {
  const ResolvedConfig r = resolve_config(shipped_request());
  for (const auto& value : r.values) EXPECT_EQ(value.provenance.source, Provenance::Source::defaults_file) << value.key;
}

TEST(ShippedConfigs, Fp8ModelIsTheFlagship) {
  const Config c = load_config(shipped_request("fp8_model"));
  EXPECT_EQ(c.llm.model, "nvidia/Llama-3.3-70B-Instruct-FP8");
  EXPECT_EQ(c.llm.precision, Precision::fp8);
  EXPECT_EQ(c.quantization.data_type, "float8_e4m3fn");
  EXPECT_TRUE(c.quantization.quantize_kv_cache);
  EXPECT_EQ(c.engine.max_context_length, 131072);
  EXPECT_EQ(c.engine.tensor_parallel_size, 2);
  EXPECT_EQ(c.engine.kv_cache_dtype, "float8_e4m3fn");
}

TEST(ShippedConfigs, BenchmarkCarriesTheSeedSwitchesAndTheEvaluator) {
  const Config c = load_config(shipped_request("benchmark.yaml"));
  EXPECT_EQ(c.llm.precision, Precision::fp8);
  EXPECT_TRUE(c.quantization.quantize_kv_cache);
  EXPECT_EQ(c.llm.temperature, 0.0f);
  EXPECT_EQ(c.eval.tasks, (std::vector<std::string>{"perplexity", "mmlu", "gsm8k"}));
  EXPECT_EQ(c.eval.baseline_precision, Precision::bf16);
  EXPECT_EQ(c.eval.num_samples, 200);
  // A BF16 baseline run of the same config: one override, no contradiction with the file's switches.
  EXPECT_EQ(load_config(shipped_request("benchmark", {"llm.precision=bf16"})).llm.precision, Precision::bf16);
}

TEST(ShippedConfigs, BuiltInDefaultsAgreeAcrossAliases) {
  testing::ConfigDir empty;
  const Config c = load_config(empty.request());
  EXPECT_EQ(c.llm.precision, Precision::fp8);
  EXPECT_TRUE(std::get<bool>(c.resolved.at("llm.use_fp8").value));
}

// docs/CONFIG.md embeds the generated key table; OCTET_UPDATE_DOCS=1 rewrites it.
TEST(ShippedConfigs, ConfigDocListsEveryKey) {
  const std::string path = std::string(OCTET_SOURCE_DIR) + "/docs/CONFIG.md";
  std::ifstream file(path);
  ASSERT_TRUE(file) << path;
  std::stringstream buffer;
  buffer << file.rdbuf();
  std::string doc = buffer.str();
  const std::string begin = "<!-- keys:begin (generated from src/config/schema.cpp) -->\n", end = "<!-- keys:end -->";
  const size_t from = doc.find(begin), to = doc.find(end);
  ASSERT_TRUE(from != std::string::npos && to != std::string::npos) << "markers missing in " << path;
  const std::string table = config_keys_markdown();
  if (doc.substr(from + begin.size(), to - from - begin.size()) == table) return;
  const char* update = std::getenv("OCTET_UPDATE_DOCS");
  if (update && std::string(update) == "1") {
    doc.replace(from + begin.size(), to - from - begin.size(), table);
    std::ofstream(path) << doc;
    return;
  }
  ADD_FAILURE() << path << " is out of date with the schema; run with OCTET_UPDATE_DOCS=1. Expected table:\n" << table;
}

}  // namespace
}  // namespace octet
