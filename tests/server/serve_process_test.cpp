// `octet serve` as a process: SIGTERM/SIGINT stop it gracefully (in-flight requests finish within
// server.shutdown_timeout_s or are aborted with an error event, then exit 0); a port in use is a
// one-line error. Real SmolLM2 on the CPU.
#include "server/serve_process.h"
#include "server/server_test_support.h"
#include "support/model_files.h"

#include <atomic>

namespace octet::testing {
namespace {

using nlohmann::json;

std::string counting_stream(int max_tokens) {
  return json{{"prompt", "1, 2, 3, 4, 5, 6,"}, {"max_tokens", max_tokens}, {"temperature", 0}, {"stream", true}}.dump();
}

TEST(ServeProcess, SigtermAbortsALongStreamAfterTheTimeoutAndExitsZero) {
  OCTET_REQUIRE_SMOLLM2(path);
  ServeProcess server({"--max-context", "1024", "server.shutdown_timeout_s=0.5"});
  ASSERT_GT(server.port(), 0) << server.output();
  std::atomic<bool> streaming{false};
  HttpReply stream;
  std::thread client([&] {
    stream = http_call(server.port(), "POST", "/v1/completions", counting_stream(900), {}, [&](const std::string& so_far) {
      if (sse_events(so_far).size() >= 3) streaming = true;
      return true;
    });
  });
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (!streaming && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  ASSERT_TRUE(streaming);
  const auto signalled = std::chrono::steady_clock::now();
  server.signal(SIGTERM);
  const auto status = server.wait_exit(std::chrono::seconds(15));
  client.join();
  ASSERT_TRUE(status.has_value()) << "still running 15 s after SIGTERM";
  EXPECT_EQ(*status, 0);
  EXPECT_LT(std::chrono::steady_clock::now() - signalled, std::chrono::seconds(6));
  const auto events = sse_events(stream.body);
  ASSERT_GE(events.size(), 2u);
  EXPECT_EQ(events.back(), "[DONE]");
  EXPECT_TRUE(events[events.size() - 2].contains("error")) << "the aborted stream ends with an error event";
  EXPECT_EQ(http_call(server.port(), "GET", "/health").status, 0) << "nothing listens after exit";
}

TEST(ServeProcess, SigintRefusesNewRequestsLetsShortOnesFinishThenExitsZero) {
  OCTET_REQUIRE_SMOLLM2(path);
  ServeProcess server({"--max-context", "1024", "server.shutdown_timeout_s=30"});
  ASSERT_GT(server.port(), 0) << server.output();
  std::atomic<bool> streaming{false};
  HttpReply stream;
  std::thread client([&] {
    stream = http_call(server.port(), "POST", "/v1/completions", counting_stream(64), {}, [&](const std::string& so_far) {
      if (!sse_events(so_far).empty()) streaming = true;
      return true;
    });
  });
  while (!streaming) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  server.signal(SIGINT);
  std::this_thread::sleep_for(std::chrono::milliseconds(150));
  // Draining: the stream above still runs (64 tokens take seconds here); new work is refused.
  const HttpReply refused = http_call(server.port(), "POST", "/v1/completions", counting_stream(4));
  EXPECT_EQ(refused.status, 503) << refused.body;
  EXPECT_TRUE(refused.json().contains("error")) << refused.body;
  EXPECT_EQ(http_call(server.port(), "GET", "/health").status, 503);
  const auto status = server.wait_exit(std::chrono::seconds(30));
  client.join();
  ASSERT_TRUE(status.has_value());
  EXPECT_EQ(*status, 0);
  const auto events = sse_events(stream.body);
  ASSERT_GE(events.size(), 2u);
  EXPECT_EQ(events.back(), "[DONE]");
  EXPECT_EQ(events[events.size() - 2]["choices"][0]["finish_reason"], "length") << "the request in flight finished";
}

// `octet serve --dummy-weights CONFIG`: random weights of a shipped config's shape behind the same
// endpoints (load tests of big shapes without their weights); needs no model file.
TEST(ServeProcess, DummyWeightsServeTheConfigsShape) {
  const std::string config = std::string(OCTET_SOURCE_DIR) + "/configs/models/SmolLM2-135M-Instruct.json";
  ServeProcess server({"--dummy-weights", config, "--max-context", "256", "--max-concurrency", "2"});
  ASSERT_GT(server.port(), 0) << server.output();
  EXPECT_NE(server.output().find("model SmolLM2-135M-Instruct"), std::string::npos) << server.output();
  const HttpReply models = http_call(server.port(), "GET", "/v1/models");
  ASSERT_EQ(models.status, 200) << models.body;
  EXPECT_EQ(json::parse(models.body)["data"][0]["id"], json("SmolLM2-135M-Instruct")) << models.body;
  const HttpReply reply = http_call(server.port(), "POST", "/v1/completions",
                                    json{{"prompt", "hello"}, {"max_tokens", 6}, {"temperature", 0}, {"ignore_eos", true}}.dump());
  ASSERT_EQ(reply.status, 200) << reply.body;
  const json body = json::parse(reply.body);
  EXPECT_EQ(body["usage"]["completion_tokens"], json(6)) << reply.body;
  EXPECT_EQ(body["choices"][0]["finish_reason"], json("length")) << reply.body;
  server.signal(SIGTERM);
  const auto status = server.wait_exit(std::chrono::seconds(15));
  ASSERT_TRUE(status.has_value()) << "still running 15 s after SIGTERM";
  EXPECT_EQ(*status, 0);
}

TEST(ServeProcess, PortInUseIsAnErrorWithStatusOne) {
  OCTET_REQUIRE_SMOLLM2(path);
  ServeProcess first({"--max-context", "256"});
  ASSERT_GT(first.port(), 0) << first.output();
  ServeProcess second({"--max-context", "256"}, std::chrono::seconds(30), first.port());
  EXPECT_EQ(second.port(), 0);
  EXPECT_EQ(second.wait_exit(std::chrono::seconds(30)).value_or(-100), 1);
  first.signal(SIGTERM);
  EXPECT_EQ(first.wait_exit(std::chrono::seconds(10)).value_or(-100), 0);
}

}  // namespace
}  // namespace octet::testing
