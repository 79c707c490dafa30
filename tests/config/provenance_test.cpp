// Where each value came from, and the rendered YAML: its comments, its masking of secrets, and that
// it loads back to the same values.
#include "config/value.h"
#include "config_fixture.h"

#include <gtest/gtest.h>

#include <sstream>

namespace octet {
namespace {

using testing::ConfigDir;

// The rendered line of a key ("  precision: fp8   # …").
std::string line_of(const std::string& rendered, const std::string& leaf_with_indent) {
  std::istringstream lines(rendered);
  for (std::string line; std::getline(lines, line);)
    if (line.rfind(leaf_with_indent + ":", 0) == 0) return line;
  return "";
}

TEST(Provenance, DescribesEachSource) {
  EXPECT_EQ((Provenance{Provenance::Source::built_in, "schema"}.describe()), "default (built in)");
  EXPECT_EQ((Provenance{Provenance::Source::defaults_file, "defaults.yaml:7"}.describe()), "default (defaults.yaml:7)");
  EXPECT_EQ((Provenance{Provenance::Source::file, "fp8_model.yaml:2"}.describe()), "fp8_model.yaml:2");
  EXPECT_EQ((Provenance{Provenance::Source::environment, "USE_FP8"}.describe()), "env USE_FP8");
  EXPECT_EQ((Provenance{Provenance::Source::command_line, "llm.seed=1"}.describe()), "command line llm.seed=1");
}

TEST(Provenance, DefaultsNameTheirLineInDefaultsYaml) {
  const ResolvedConfig r = resolve_config(testing::shipped_request());
  // The line must hold the key: read it back from the file.
  const std::string where = r.at("engine.gpu_memory_utilization").provenance.where;
  ASSERT_EQ(where.rfind("defaults.yaml:", 0), 0u) << where;
  std::ifstream file(testing::shipped_configs() + "/defaults.yaml");
  std::string line;
  for (int n = std::stoi(where.substr(where.find(':') + 1)); n > 0; --n) std::getline(file, line);
  EXPECT_NE(line.find("gpu_memory_utilization: 0.90"), std::string::npos) << line;
}

TEST(Provenance, WithoutDefaultsYamlValuesAreBuiltIn) {
  ConfigDir empty;
  const ResolvedConfig r = resolve_config(empty.request());
  EXPECT_EQ(r.at("server.port").provenance.describe(), "default (built in)");
  EXPECT_EQ(std::get<int64_t>(r.at("server.port").value), 8000);
}

TEST(Provenance, RenderCommentsNameTheSource) {
  const ResolvedConfig r =
      resolve_config(testing::shipped_request("fp8_model", {"llm.precision=bf16"}, {{"FP8_DEBUG", "1"}}));
  const std::string text = render_config(r, true);
  EXPECT_NE(text.find("# config path: " + testing::shipped_configs()), std::string::npos) << text;
  EXPECT_NE(text.find("# files: defaults.yaml, fp8_model.yaml"), std::string::npos) << text;
  EXPECT_NE(line_of(text, "  precision").find("bf16"), std::string::npos) << text;
  EXPECT_NE(line_of(text, "  precision").find("# command line llm.precision=bf16"), std::string::npos) << text;
  EXPECT_NE(line_of(text, "  max_context_length").find("131072"), std::string::npos);
  EXPECT_NE(line_of(text, "  max_context_length").find("# fp8_model.yaml:"), std::string::npos);
  EXPECT_NE(line_of(text, "  debug").find("# env FP8_DEBUG"), std::string::npos);
  EXPECT_NE(line_of(text, "  top_k").find("# default (defaults.yaml:"), std::string::npos);
  EXPECT_NE(line_of(text, "  use_fp8").find("# from llm.precision = bf16 (command line llm.precision=bf16)"),
            std::string::npos)
      << text;
  EXPECT_EQ(render_config(r, false).find('#'), std::string::npos);
}

TEST(Provenance, SecretsAreMasked) {
  const ResolvedConfig r = resolve_config(testing::shipped_request("", {"server.api_key=hunter2"}));
  const std::string text = render_config(r, true);
  EXPECT_EQ(text.find("hunter2"), std::string::npos) << text;
  EXPECT_NE(line_of(text, "  api_key").find("\"***\""), std::string::npos) << text;
  EXPECT_NE(text.find("command line server.api_key=***"), std::string::npos) << text;
}

TEST(Provenance, RenderedYamlLoadsBackToTheSameValues) {
  const ResolvedConfig original = resolve_config(testing::shipped_request(
      "benchmark",
      {"planner.system_prompt=Plan: step #1, then 'two' & \"three\"", "llm.model= /spaced path ",
       "api.base_url=http://localhost:8080/v1", "llm.temperature=0.25", "eval.tasks=[]", "server.host=true",
       "api.model=null", "eval.text_path=~"}));
  for (bool with_provenance : {false, true}) {
    ConfigDir dir;
    dir.write("rendered.yaml", render_config(original, with_provenance));
    const ResolvedConfig reloaded = resolve_config(dir.request("rendered"));
    ASSERT_EQ(reloaded.values.size(), original.values.size());
    for (size_t i = 0; i < original.values.size(); ++i)
      EXPECT_EQ(config::format_value(reloaded.values[i].value), config::format_value(original.values[i].value))
          << original.values[i].key;
  }
}

}  // namespace
}  // namespace octet
