// Hydra-style defaults lists: order, nesting, _self_, subfolders, cycles.
#include "config_fixture.h"

#include <gtest/gtest.h>

namespace octet {
namespace {

using testing::ConfigDir;
using testing::error_of;

TEST(Composition, DefaultsListAppliesInOrderThenTheFileItself) {
  ConfigDir dir;
  dir.copy_shipped_defaults();
  dir.write("base.yaml", "llm:\n  top_k: 1\n  seed: 1\n  threads: 1\n");
  dir.write("tuned.yaml", "llm:\n  top_k: 2\n  seed: 2\n");
  dir.write("run.yaml", "defaults: [base, tuned]\nllm:\n  seed: 3\n");
  const Config c = load_config(dir.request("run"));
  EXPECT_EQ(c.llm.threads, 1);  // only base sets it
  EXPECT_EQ(c.llm.top_k, 2);    // tuned comes after base
  EXPECT_EQ(c.llm.seed, 3u);    // the file itself comes last
  EXPECT_EQ(c.resolved.files, (std::vector<std::string>{"defaults.yaml", "base.yaml", "tuned.yaml", "run.yaml"}));
  EXPECT_EQ(c.resolved.at("llm.top_k").provenance.describe(), "tuned.yaml:2");
  EXPECT_EQ(c.resolved.at("llm.seed").provenance.describe(), "run.yaml:3");
  EXPECT_EQ(c.resolved.at("llm.threads").provenance.describe(), "base.yaml:4");
}

TEST(Composition, NestedListsApplyDepthFirst) {
  ConfigDir dir;
  dir.copy_shipped_defaults();
  dir.write("grand.yaml", "llm:\n  top_k: 7\n  seed: 7\n  threads: 7\n");
  dir.write("parent.yaml", "defaults:\n  - grand\nllm:\n  seed: 8\n");
  dir.write("sibling.yaml", "llm:\n  threads: 9\n");
  dir.write("child.yaml", "defaults:\n  - parent\n  - sibling\n");
  const Config c = load_config(dir.request("child"));
  EXPECT_EQ(c.llm.top_k, 7);
  EXPECT_EQ(c.llm.seed, 8u);
  EXPECT_EQ(c.llm.threads, 9);
  EXPECT_EQ(c.resolved.files,
            (std::vector<std::string>{"defaults.yaml", "grand.yaml", "parent.yaml", "sibling.yaml", "child.yaml"}));
}

TEST(Composition, SelfMayComeBeforeItsDefaults) {
  ConfigDir dir;
  dir.write("base.yaml", "llm:\n  top_k: 1\n");
  dir.write("run.yaml", "defaults: [_self_, base]\nllm:\n  top_k: 5\n  seed: 5\n");
  const Config c = load_config(dir.request("run"));
  EXPECT_EQ(c.llm.top_k, 1);
  EXPECT_EQ(c.llm.seed, 5u);
  EXPECT_EQ(c.resolved.files, (std::vector<std::string>{"run.yaml", "base.yaml"}));
}

TEST(Composition, NamesMayCarryTheSuffixAndLiveInSubfolders) {
  ConfigDir dir;
  dir.write("models/tiny.yaml", "llm:\n  model: /models/tiny.gguf\n");
  dir.write("run.yml", "defaults: [models/tiny.yaml]\n");
  EXPECT_EQ(load_config(dir.request("run.yml")).llm.model, "/models/tiny.gguf");
  EXPECT_EQ(load_config(dir.request("models/tiny")).resolved.at("llm.model").provenance.describe(),
            "models/tiny.yaml:2");
}

TEST(Composition, CyclesAreErrorsShowingTheChain) {
  ConfigDir dir;
  dir.write("a.yaml", "defaults: [b]\n");
  dir.write("b.yaml", "defaults: [a]\n");
  const std::string message = error_of([&] { load_config(dir.request("a")); });
  EXPECT_NE(message.find("cycle: a.yaml -> b.yaml -> a.yaml"), std::string::npos) << message;
  EXPECT_NE(message.find("b.yaml:1"), std::string::npos) << message;
}

TEST(Composition, MissingEntryNamesTheListingLine) {
  ConfigDir dir;
  dir.write("base.yaml", "llm:\n  seed: 1\n");
  dir.write("run.yaml", "llm:\n  seed: 2\ndefaults:\n  - bsae\n");
  const std::string message = error_of([&] { load_config(dir.request("run")); });
  EXPECT_NE(message.find("run.yaml:4"), std::string::npos) << message;
  EXPECT_NE(message.find("config 'bsae' not found"), std::string::npos) << message;
  EXPECT_NE(message.find("did you mean 'base'?"), std::string::npos) << message;
}

TEST(Composition, DefaultsMustBeAListOfNames) {
  ConfigDir dir;
  dir.write("groups.yaml", "defaults:\n  - db: mysql\n");
  dir.write("scalar.yaml", "defaults: base\n");
  EXPECT_NE(error_of([&] { load_config(dir.request("groups")); }).find("config groups"), std::string::npos);
  EXPECT_NE(error_of([&] { load_config(dir.request("scalar")); }).find("expected a list of config names"),
            std::string::npos);
}

TEST(Composition, WithoutAConfigNameOnlyDefaultsApply) {
  ConfigDir dir;
  dir.copy_shipped_defaults();
  dir.write("other.yaml", "llm:\n  seed: 9\n");
  const Config c = load_config(dir.request(""));
  EXPECT_EQ(c.llm.seed, 0u);
  EXPECT_EQ(c.resolved.files, std::vector<std::string>{"defaults.yaml"});
  // Naming defaults itself does not apply it twice.
  EXPECT_EQ(load_config(dir.request("defaults")).resolved.files, std::vector<std::string>{"defaults.yaml"});
}

}  // namespace
}  // namespace octet
