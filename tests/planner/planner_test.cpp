// The planner's API fallback against a real OpenAI-compatible HTTP server on loopback (cpp-httplib,
// started by the test): answers, retries, 4xx/5xx, garbage bodies, timeouts, and the auto route.
#include "octet/config.h"
#include "octet/planner.h"
#include "support/config_overrides.h"
#include "support/model_files.h"

#include <gtest/gtest.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include <atomic>
#include <map>
#include <thread>

namespace octet {
namespace {

class FakeOpenAiServer {
 public:
  using Handler = std::function<void(const httplib::Request&, httplib::Response&, int call)>;
  explicit FakeOpenAiServer(Handler handler) : handler_(std::move(handler)) {
    server_.Post("/v1/chat/completions", [this](const httplib::Request& request, httplib::Response& response) {
      last_authorization_ = request.get_header_value("Authorization");
      last_body_ = request.body;
      handler_(request, response, calls_++);
    });
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    while (!server_.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ~FakeOpenAiServer() {
    server_.stop();
    thread_.join();
  }
  std::string base_url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/v1"; }
  int calls() const { return calls_; }
  std::string last_authorization() const { return last_authorization_; }
  std::string last_body() const { return last_body_; }

 private:
  Handler handler_;
  httplib::Server server_;
  std::thread thread_;
  int port_ = 0;
  std::atomic<int> calls_{0};
  std::string last_authorization_, last_body_;
};

void answer(httplib::Response& response, const std::string& text) {
  response.set_content(nlohmann::json{{"id", "chatcmpl-1"},
                                      {"object", "chat.completion"},
                                      {"choices", {{{"index", 0}, {"message", {{"role", "assistant"}, {"content", text}}}, {"finish_reason", "stop"}}}},
                                      {"usage", {{"prompt_tokens", 11}, {"completion_tokens", 7}, {"total_tokens", 18}}}}
                           .dump(),
                       "application/json");
}

Config api_config(const std::string& base_url, std::vector<std::string> extra = {}, std::map<std::string, std::string> env = {}) {
  return testing::config_from_settings({{"planner.mode", "api"}, {"api.base_url", base_url}, {"api.model", "test-model"},
                                        {"api.max_retries", "2"}, {"api.backoff_s", "0.01"}, {"api.timeout_s", "2"}},
                                       extra, std::move(env));
}

TEST(PlannerApi, AnswersWithTextUsageRouteAndBearerKey) {
  FakeOpenAiServer server([](const httplib::Request&, httplib::Response& r, int) { answer(r, "1. Mine iron ore."); });
  Planner planner(api_config(server.base_url(), {}, {{"OCTET_API_KEY", "sk-test-123"}}));
  const PlanResult r = planner.query_llm("How to craft iron tools in Minecraft?");
  EXPECT_EQ(r.text, "1. Mine iron ore.");
  EXPECT_EQ(r.route, "api");
  EXPECT_EQ(r.prompt_tokens, 11);
  EXPECT_EQ(r.completion_tokens, 7);
  EXPECT_GT(r.latency_ms, 0.0);
  EXPECT_EQ(server.last_authorization(), "Bearer sk-test-123");
  auto body = nlohmann::json::parse(server.last_body());
  EXPECT_EQ(body["model"], "test-model");
  EXPECT_EQ(body["messages"].back()["content"], "How to craft iron tools in Minecraft?");
  EXPECT_EQ(body["messages"].front()["role"], "system");
}

TEST(PlannerApi, RetriesServerErrorsThenSucceeds) {
  FakeOpenAiServer server([](const httplib::Request&, httplib::Response& r, int call) {
    if (call < 2) {
      r.status = call == 0 ? 503 : 429;
      r.set_content(R"({"error":{"message":"busy"}})", "application/json");
    } else {
      answer(r, "ok");
    }
  });
  Planner planner(api_config(server.base_url()));
  EXPECT_EQ(planner.query_llm("plan").text, "ok");
  EXPECT_EQ(server.calls(), 3);
}

TEST(PlannerApi, ClientErrorsFailAtOnceWithTheServersMessage) {
  FakeOpenAiServer server([](const httplib::Request&, httplib::Response& r, int) {
    r.status = 401;
    r.set_content(R"({"error":{"message":"invalid api key"}})", "application/json");
  });
  Planner planner(api_config(server.base_url()));
  try {
    planner.query_llm("plan");
    FAIL() << "expected an error";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("401"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("invalid api key"), std::string::npos) << e.what();
  }
  EXPECT_EQ(server.calls(), 1);
}

TEST(PlannerApi, PersistentServerErrorsGiveUpAfterTheRetries) {
  FakeOpenAiServer server([](const httplib::Request&, httplib::Response& r, int) { r.status = 500; });
  Planner planner(api_config(server.base_url()));
  EXPECT_THROW(planner.query_llm("plan"), std::exception);
  EXPECT_EQ(server.calls(), 3);  // the first try and 2 retries
}

TEST(PlannerApi, GarbageBodiesAreClearErrors) {
  for (std::string body : {"not json at all", R"({"choices": []})", R"({"choices": [{"message": {"content": 42}}]})", R"([1,2,3])"}) {
    FakeOpenAiServer server([body](const httplib::Request&, httplib::Response& r, int) { r.set_content(body, "application/json"); });
    Planner planner(api_config(server.base_url()));
    try {
      planner.query_llm("plan");
      FAIL() << "expected an error for " << body;
    } catch (const std::exception& e) {
      const std::string message = e.what();
      EXPECT_TRUE(message.find("not JSON") != std::string::npos || message.find("choices") != std::string::npos) << message;
    }
  }
}

TEST(PlannerApi, TimeoutsAreRetriedAndReported) {
  FakeOpenAiServer server([](const httplib::Request&, httplib::Response& r, int) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));
    answer(r, "too late");
  });
  Planner planner(api_config(server.base_url(), {"api.timeout_s=0.2", "api.max_retries=1"}));
  try {
    planner.query_llm("plan");
    FAIL() << "expected a timeout";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("2 attempt"), std::string::npos) << e.what();
  }
}

TEST(PlannerApi, ConnectionRefusedIsAnError) {
  int port;
  {
    httplib::Server probe;
    port = probe.bind_to_any_port("127.0.0.1");
  }  // closed again: nothing listens there now
  Planner planner(api_config("http://127.0.0.1:" + std::to_string(port) + "/v1", {"api.max_retries=0"}));
  EXPECT_THROW(planner.query_llm("plan"), std::exception);
}

TEST(PlannerAuto, FallsBackToTheApiWhenTheLocalModelIsMissing) {
  FakeOpenAiServer server([](const httplib::Request&, httplib::Response& r, int) { answer(r, "from the api"); });
  Planner planner(api_config(server.base_url(), {"planner.mode=auto", "llm.model=/nonexistent/model.gguf"}));
  const PlanResult r = planner.query_llm("plan");
  EXPECT_EQ(r.route, "api");
  EXPECT_EQ(r.text, "from the api");
  EXPECT_NE(r.fallback_reason.find("/nonexistent/model.gguf"), std::string::npos) << r.fallback_reason;
}

TEST(PlannerAuto, UsesTheLocalFp8EngineWhenItCanAndCountsItInTheStats) {
  OCTET_REQUIRE_SMOLLM2(path);
  FakeOpenAiServer server([](const httplib::Request&, httplib::Response& r, int) { answer(r, "from the api"); });
  Planner planner(api_config(server.base_url(), {"planner.mode=auto", "llm.model=" + path, "llm.device=cpu",
                                                 "planner.max_tokens=16", "planner.temperature=0"}));
  const PlanResult r = planner.query_llm("How to craft iron tools in Minecraft?");
  EXPECT_EQ(r.route, "local-fp8");
  EXPECT_FALSE(r.text.empty());
  EXPECT_EQ(server.calls(), 0);
  EXPECT_EQ(planner.manager()->performance_stats().requests, 1u);
}

// The local engine loads but cannot answer (the prompt overflows a 16-token context): auto mode
// answers from the API and says why.
TEST(PlannerAuto, FallsBackToTheApiWhenTheLocalEngineFails) {
  OCTET_REQUIRE_SMOLLM2(path);
  FakeOpenAiServer server([](const httplib::Request&, httplib::Response& r, int) { answer(r, "from the api"); });
  Planner planner(api_config(server.base_url(), {"planner.mode=auto", "llm.model=" + path, "llm.device=cpu",
                                                 "engine.max_context_length=16", "planner.max_tokens=4"}));
  ASSERT_TRUE(planner.manager()->loaded());
  const PlanResult r = planner.query_llm("How to craft iron tools in Minecraft?");
  EXPECT_EQ(r.route, "api");
  EXPECT_EQ(r.text, "from the api");
  EXPECT_EQ(server.calls(), 1);
  EXPECT_NE(r.fallback_reason.find("the local engine failed"), std::string::npos) << r.fallback_reason;
  EXPECT_NE(r.fallback_reason.find("context"), std::string::npos) << r.fallback_reason;
}

TEST(PlannerLocal, LocalModeWithoutAModelIsAnError) {
  Planner planner(api_config("http://127.0.0.1:9/v1", {"planner.mode=local", "llm.model=/nonexistent/model.gguf"}));
  EXPECT_THROW(planner.query_llm("plan"), std::exception);
}

}  // namespace
}  // namespace octet
