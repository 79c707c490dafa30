// `octet config show`, run as a user would. Skips while the CLI's main does not register the command.
#include "support/run_octet.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <string>
#include <sys/wait.h>

namespace {

using octet::testing::CommandResult;
// The command line with stderr merged into the output.
CommandResult run_shell(const std::string& command_line) { return octet::testing::run_shell(command_line + " 2>&1"); }

const std::string kOctet = std::string(OCTET_BINARY_DIR) + "/octet";

class ConfigCommand : public ::testing::Test {
 protected:
  void SetUp() override {
    if (run_shell(kOctet + " --help").output.find("config") == std::string::npos)
      GTEST_SKIP() << "octet has no `config` command yet (register_config_command is not wired into main)";
  }
};

TEST_F(ConfigCommand, ShowsValuesWithTheirSources) {
  const CommandResult r = run_shell("USE_FP8=false " + kOctet + " config show --config-name fp8_model llm.top_k=40");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("precision: bf16"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("# from llm.use_fp8 = false (env USE_FP8)"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("# command line llm.top_k=40"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("max_context_length: 131072"), std::string::npos) << r.output;
}

TEST_F(ConfigCommand, OverridesMayStandAnywhereOnTheCommandLine) {
  const CommandResult r = run_shell(kOctet + " llm.seed=5 config show --no-provenance");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("  seed: 5\n"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find('#'), std::string::npos) << r.output;
}

TEST_F(ConfigCommand, ErrorsAreOneLineWithASuggestion) {
  const CommandResult r = run_shell(kOctet + " config show llm.temprature=1");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("did you mean 'llm.temperature'?"), std::string::npos) << r.output;
  EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << r.output;
}

}  // namespace
