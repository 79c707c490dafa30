// The planner's API route against `octet serve` (a child process on loopback, real SmolLM2 on the
// CPU) instead of a fake server: answers with usage, the Bearer key, the server's 4xx messages
// passed on without retries, and auto mode falling back to it when the local model is missing.
#include "octet/config.h"
#include "octet/planner.h"
#include "server/serve_process.h"
#include "support/config_overrides.h"
#include "support/model_files.h"

#include <gtest/gtest.h>

namespace octet {
namespace {

const char* kKey = "sk-planner-over-serve";

Config planner_config(int port, std::vector<std::string> extra, std::map<std::string, std::string> env) {
  return testing::config_from_settings(
      {{"planner.mode", "api"}, {"api.base_url", "http://127.0.0.1:" + std::to_string(port) + "/v1"},
       {"api.model", "planner-test"}, {"api.max_retries", "1"}, {"api.backoff_s", "0.01"}, {"api.timeout_s", "120"},
       {"planner.max_tokens", "24"}},
      extra, std::move(env));
}

class PlannerOverServe : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!testing::smollm2_gguf()) return;
    server_ = new testing::ServeProcess({"--max-context", "1024", "--api-key", kKey, "--served-model-name", "planner-test"});
  }
  static void TearDownTestSuite() {
    if (!server_) return;
    server_->signal(SIGTERM);
    EXPECT_EQ(server_->wait_exit(std::chrono::seconds(15)).value_or(-100), 0);
    delete server_;
    server_ = nullptr;
  }
  void SetUp() override {
    if (!server_) GTEST_SKIP() << "SmolLM2 GGUF not found in " << testing::models_dir() << " (run scripts/setup.sh)";
    ASSERT_GT(server_->port(), 0) << server_->output();
  }
  static testing::ServeProcess* server_;
};

testing::ServeProcess* PlannerOverServe::server_ = nullptr;

TEST_F(PlannerOverServe, ApiRouteAnswersWithUsage) {
  Planner planner(planner_config(server_->port(), {}, {{"OCTET_API_KEY", kKey}}));
  const PlanResult r = planner.query_llm("How to craft iron tools in Minecraft?");
  EXPECT_EQ(r.route, "api");
  EXPECT_FALSE(r.text.empty());
  EXPECT_GT(r.prompt_tokens, 20);  // system prompt + question through the chat template
  EXPECT_GT(r.completion_tokens, 0);
  EXPECT_LE(r.completion_tokens, 24);
}

TEST_F(PlannerOverServe, WrongKeyAndUnknownModelFailWithTheServersMessage) {
  Planner wrong_key(planner_config(server_->port(), {}, {{"OCTET_API_KEY", "sk-wrong"}}));
  try {
    wrong_key.query_llm("Plan a trip");
    ADD_FAILURE() << "a wrong key must fail";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("401"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("Incorrect API key"), std::string::npos) << e.what();
  }
  Planner unknown_model(planner_config(server_->port(), {"api.model=gpt-9"}, {{"OCTET_API_KEY", kKey}}));
  try {
    unknown_model.query_llm("Plan a trip");
    ADD_FAILURE() << "an unknown model must fail";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("404"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("gpt-9"), std::string::npos) << e.what();
  }
}

TEST_F(PlannerOverServe, AutoModeFallsBackToTheServerWhenTheLocalModelIsMissing) {
  Planner planner(planner_config(server_->port(), {"planner.mode=auto", "llm.model=/nonexistent/model.gguf"},
                                 {{"OCTET_API_KEY", kKey}}));
  const PlanResult r = planner.query_llm("How to bake bread?");
  EXPECT_EQ(r.route, "api");
  EXPECT_FALSE(r.text.empty());
  EXPECT_FALSE(r.fallback_reason.empty());
}

}  // namespace
}  // namespace octet
