// The HTTP server in this process on loopback with the real SmolLM2 (CPU): response and chunk
// shapes, 32 concurrent streams against each request alone, disconnects, every bad-input case,
// authentication, and a bounded load test. One model, one scheduler, two listeners (with and
// without an API key) for the whole suite.
#include "engine/model_loader.h"
#include "engine/scheduler.h"
#include "runtime/metrics.h"
#include "server/api_server.h"
#include "server/load_generator.h"
#include "server_test_support.h"
#include "support/model_files.h"

#include <signal.h>

#include <atomic>
#include <memory>
#include <mutex>

namespace octet::server {
namespace {

using nlohmann::json;
using testing::http_call;
using testing::HttpReply;

constexpr int64_t kContext = 1024;
constexpr int kSlots = 16;
constexpr int64_t kMaxBodyBytes = 64 * 1024;
const char* kApiKey = "sk-octet-test-4b1d";

struct Served {
  engine::LoadedModel model;
  runtime::MetricsRegistry metrics;
  std::unique_ptr<engine::Scheduler> scheduler;
  std::unique_ptr<ApiServer> open_server, keyed_server;
  std::thread open_thread, keyed_thread;
  int open_port = 0, keyed_port = 0;
};

class ApiServerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto path = testing::smollm2_gguf();
    if (!path) return;
    signal(SIGPIPE, SIG_IGN);
    served_ = new Served;
    EngineOptions options;
    options.model_path = *path;
    options.device = Device::cpu;
    options.max_context = kContext;
    engine::KvPoolRequest kv;
    kv.slots = kSlots;
    kv.paged = true;
    served_->model = engine::load_model(options, kv);
    served_->scheduler = std::make_unique<engine::Scheduler>(*served_->model.model, *served_->model.tokenizer,
                                                             served_->metrics, engine::SchedulerOptions{});
    served_->scheduler->start();
    ServerOptions server_options;
    server_options.port = 0;
    server_options.max_body_bytes = kMaxBodyBytes;
    server_options.model_id = "smollm2-test";
    server_options.defaults.max_tokens = 16;
    served_->open_server = std::make_unique<ApiServer>(served_->model, *served_->scheduler, served_->metrics, server_options);
    server_options.api_key = kApiKey;
    served_->keyed_server = std::make_unique<ApiServer>(served_->model, *served_->scheduler, served_->metrics, server_options);
    served_->open_port = served_->open_server->bind();
    served_->keyed_port = served_->keyed_server->bind();
    served_->open_thread = std::thread([] { served_->open_server->serve(); });
    served_->keyed_thread = std::thread([] { served_->keyed_server->serve(); });
  }
  static void TearDownTestSuite() {
    if (!served_) return;
    served_->keyed_server->shutdown();
    served_->open_server->shutdown();
    served_->open_thread.join();
    served_->keyed_thread.join();
    delete served_;
    served_ = nullptr;
  }
  void SetUp() override {
    if (!served_) GTEST_SKIP() << "SmolLM2 GGUF not found in " << testing::models_dir() << " (run scripts/setup.sh)";
  }
  static int port() { return served_->open_port; }
  static HttpReply post(const std::string& path, const json& body) { return http_call(port(), "POST", path, body.dump()); }
  static json chat_body(const std::string& question, int max_tokens, bool stream = false) {
    json body{{"model", "smollm2-test"},
              {"messages", {{{"role", "user"}, {"content", question}}}},
              {"max_tokens", max_tokens},
              {"temperature", 0}};
    if (stream) body["stream"] = true;
    return body;
  }
  static Served* served_;
};

Served* ApiServerTest::served_ = nullptr;

TEST_F(ApiServerTest, HealthModelsAndMetrics) {
  const HttpReply health = http_call(port(), "GET", "/health");
  EXPECT_EQ(health.status, 200);
  EXPECT_EQ(health.json()["status"], "ok");
  const json models = http_call(port(), "GET", "/v1/models").json();
  EXPECT_EQ(models["object"], "list");
  ASSERT_EQ(models["data"].size(), 1u);
  EXPECT_EQ(models["data"][0]["id"], "smollm2-test");
  EXPECT_EQ(models["data"][0]["max_model_len"], kContext);
  const HttpReply metrics = http_call(port(), "GET", "/metrics");
  EXPECT_EQ(metrics.status, 200);
  for (const char* name : {"octet_requests_running", "octet_requests_waiting", "octet_kv_cache_blocks_used",
                           "octet_kv_cache_blocks_total", "octet_host_memory_resident_bytes", "octet_prompt_tokens_total",
                           "octet_generation_tokens_total", "octet_time_to_first_token_seconds_count",
                           "octet_inter_token_latency_seconds_count"})
    EXPECT_GE(testing::metric_value(metrics.body, name), 0) << name;
  EXPECT_EQ(testing::metric_value(metrics.body, "octet_kv_cache_blocks_total"), kSlots * kContext / 16);
  EXPECT_NE(metrics.body.find("# TYPE octet_time_to_first_token_seconds histogram"), std::string::npos);
  EXPECT_NE(metrics.body.find("octet_time_to_first_token_seconds_bucket{le=\"+Inf\"}"), std::string::npos);
}

TEST_F(ApiServerTest, ChatAndCompletionResponsesHaveTheOpenAiShape) {
  const std::string story = "Write a long story about a dragon.";
  const HttpReply chat = post("/v1/chat/completions", chat_body(story, 8));
  ASSERT_EQ(chat.status, 200) << chat.body;
  const json c = chat.json();
  EXPECT_EQ(c["object"], "chat.completion");
  EXPECT_EQ(c["model"], "smollm2-test");
  EXPECT_TRUE(c["id"].get<std::string>().starts_with("chatcmpl-"));
  EXPECT_EQ(c["choices"][0]["message"]["role"], "assistant");
  EXPECT_EQ(c["choices"][0]["finish_reason"], "length");
  const auto prompt_ids = engine::chat_prompt_ids(*served_->model.tokenizer, {{"user", story}});
  EXPECT_EQ(c["usage"]["prompt_tokens"], prompt_ids.size());
  EXPECT_EQ(c["usage"]["completion_tokens"], 8);
  EXPECT_EQ(c["usage"]["total_tokens"], prompt_ids.size() + 8);
  // A short answer ends at the end-of-turn token: finish_reason stop, fewer tokens than allowed.
  const json france = post("/v1/chat/completions", chat_body("What is the capital of France?", 48)).json();
  EXPECT_EQ(france["choices"][0]["finish_reason"], "stop") << france.dump();
  EXPECT_LT(france["usage"]["completion_tokens"].get<int>(), 48);
  EXPECT_NE(france["choices"][0]["message"]["content"].get<std::string>().find("Paris"), std::string::npos);

  const HttpReply completion = post("/v1/completions", {{"prompt", "Once upon a time"}, {"max_tokens", 6}, {"temperature", 0}});
  ASSERT_EQ(completion.status, 200) << completion.body;
  const json k = completion.json();
  EXPECT_EQ(k["object"], "text_completion");
  EXPECT_TRUE(k["choices"][0]["text"].is_string());
  EXPECT_EQ(k["usage"]["completion_tokens"], 6);
  // The same prompt as token ids gives the same text.
  const auto ids = engine::completion_prompt_ids(*served_->model.tokenizer, "Once upon a time");
  const HttpReply by_ids = post("/v1/completions", {{"prompt", ids}, {"max_tokens", 6}, {"temperature", 0}});
  EXPECT_EQ(by_ids.json()["choices"][0]["text"], k["choices"][0]["text"]);

  // A stop string ends the text before it with finish_reason stop.
  const std::string full = k["choices"][0]["text"];
  ASSERT_GE(full.size(), 4u);
  const std::string stop = full.substr(full.size() / 2, 2);
  const HttpReply stopped =
      post("/v1/completions", {{"prompt", "Once upon a time"}, {"max_tokens", 6}, {"temperature", 0}, {"stop", stop}});
  const json s = stopped.json();
  EXPECT_EQ(s["choices"][0]["finish_reason"], "stop");
  EXPECT_EQ(s["choices"][0]["text"], full.substr(0, full.find(stop)));
}

TEST_F(ApiServerTest, StreamsChunksUsageAndDone) {
  json body = chat_body("Name three primary colours.", 10, true);
  body["stream_options"] = {{"include_usage", true}};
  const HttpReply reply = post("/v1/chat/completions", body);
  ASSERT_EQ(reply.status, 200);
  const auto events = testing::sse_events(reply.body);
  ASSERT_GE(events.size(), 4u);
  EXPECT_EQ(events.back(), "[DONE]");
  EXPECT_EQ(events.front()["object"], "chat.completion.chunk");
  EXPECT_EQ(events.front()["choices"][0]["delta"]["role"], "assistant");
  const json& usage_chunk = events[events.size() - 2];
  EXPECT_TRUE(usage_chunk["choices"].empty());
  EXPECT_EQ(usage_chunk["usage"]["completion_tokens"], 10);
  const json& last_choice = events[events.size() - 3];
  EXPECT_EQ(last_choice["choices"][0]["finish_reason"], "length");
  for (size_t i = 0; i + 2 < events.size(); ++i) EXPECT_TRUE(events[i]["usage"].is_null()) << i;
  const HttpReply whole = post("/v1/chat/completions", chat_body("Name three primary colours.", 10));
  EXPECT_EQ(testing::streamed_text(events), whole.json()["choices"][0]["message"]["content"].get<std::string>());

  const HttpReply completion =
      post("/v1/completions", {{"prompt", "The sun is"}, {"max_tokens", 5}, {"temperature", 0}, {"stream", true}});
  const auto completion_events = testing::sse_events(completion.body);
  EXPECT_EQ(completion_events.back(), "[DONE]");
  EXPECT_EQ(completion_events.front()["object"], "text_completion");
  EXPECT_FALSE(completion_events.front().contains("usage"));  // no include_usage: no usage key
  const HttpReply whole_completion = post("/v1/completions", {{"prompt", "The sun is"}, {"max_tokens", 5}, {"temperature", 0}});
  EXPECT_EQ(testing::streamed_text(completion_events), whole_completion.json()["choices"][0]["text"].get<std::string>());
}

// Completions with short prompts keep the test's prefill (a CPU shared with other jobs) small; the
// chat path through the scheduler is covered the same way in SchedulerTest.
TEST_F(ApiServerTest, ThirtyTwoConcurrentGreedyStreamsGiveTheTextEachGivesAlone) {
  const std::vector<std::string> starts = {"The sea is", "Bread is made", "My favourite song", "In the forest",
                                           "The moon", "A good teacher", "Rain falls", "Paris is"};
  const std::vector<std::string> endings = {"", " very", " often", " always"};
  std::vector<std::string> prompts;
  for (const auto& ending : endings)
    for (const auto& start : starts) prompts.push_back(start + ending);
  ASSERT_EQ(prompts.size(), 32u);
  const int max_tokens = 12;
  auto body = [&](size_t i, bool stream) {
    json b{{"prompt", prompts[i]}, {"max_tokens", max_tokens}, {"temperature", 0}};
    if (stream) b["stream"] = true;
    return b;
  };
  std::vector<std::string> alone;
  for (size_t i = 0; i < prompts.size(); ++i) {
    const HttpReply r = post("/v1/completions", body(i, false));
    ASSERT_EQ(r.status, 200) << r.body;
    alone.push_back(r.json()["choices"][0]["text"]);
  }
  std::vector<std::string> together(prompts.size());
  std::vector<int> statuses(prompts.size());
  std::vector<std::thread> clients;
  for (size_t i = 0; i < prompts.size(); ++i)
    clients.emplace_back([&, i] {
      const HttpReply r = post("/v1/completions", body(i, true));
      statuses[i] = r.status;
      const auto events = testing::sse_events(r.body);
      together[i] = !events.empty() && events.back() == "[DONE]" ? testing::streamed_text(events)
                                                                 : "<no [DONE]: " + r.error + " " + r.body + ">";
    });
  for (auto& c : clients) c.join();
  for (size_t i = 0; i < prompts.size(); ++i) {
    EXPECT_EQ(statuses[i], 200);
    EXPECT_EQ(together[i], alone[i]) << prompts[i];
  }
  EXPECT_TRUE(testing::wait_until_idle(port())) << "running requests or KV blocks left after the streams ended";
}

TEST_F(ApiServerTest, DisconnectMidStreamAbortsAndFreesBlocks) {
  const double aborted_before = testing::metric_value(http_call(port(), "GET", "/metrics").body,
                                                      "octet_requests_finished_total{finish_reason=\"abort\"}");
  std::atomic<bool> saw_blocks{false};
  const HttpReply r = http_call(port(), "POST", "/v1/completions",
                                json{{"prompt", "1, 2, 3, 4, 5, 6,"}, {"max_tokens", 900}, {"temperature", 0}, {"stream", true}}.dump(),
                                {}, [&](const std::string& so_far) {
                                  // Leave after a few chunks, once the request holds KV blocks.
                                  if (testing::sse_events(so_far).size() < 5) return true;
                                  const auto page = http_call(port(), "GET", "/metrics").body;
                                  saw_blocks = testing::metric_value(page, "octet_kv_cache_blocks_used") > 0;
                                  return false;
                                });
  EXPECT_TRUE(saw_blocks);
  EXPECT_TRUE(testing::wait_until_idle(port())) << "the abandoned request kept its blocks";
  const double aborted_after = testing::metric_value(http_call(port(), "GET", "/metrics").body,
                                                     "octet_requests_finished_total{finish_reason=\"abort\"}");
  EXPECT_EQ(aborted_after, std::max(aborted_before, 0.0) + 1);
}

// A non-streaming client that gives up (read timeout) while its request runs: the server finds the
// closed socket, aborts the request and frees its blocks, long before its 900 tokens would end.
TEST_F(ApiServerTest, NonStreamingClientThatLeavesIsAbortedAndFreesBlocks) {
  const double aborted_before = testing::metric_value(http_call(port(), "GET", "/metrics").body,
                                                      "octet_requests_finished_total{finish_reason=\"abort\"}");
  std::atomic<bool> client_done{false};
  std::thread client([&] {
    httplib::Client c("127.0.0.1", port());
    c.set_read_timeout(3);
    const auto body = json{{"prompt", "1, 2, 3, 4, 5, 6,"}, {"max_tokens", 900}, {"temperature", 0}, {"ignore_eos", true}}.dump();
    const auto result = c.Post("/v1/completions", body, "application/json");
    EXPECT_FALSE(result) << "the request should have outlived the client's 3 s patience";
    client_done = true;
  });
  bool saw_blocks = false;
  for (int i = 0; i < 250 && !saw_blocks && !client_done; ++i) {
    saw_blocks = testing::metric_value(http_call(port(), "GET", "/metrics").body, "octet_kv_cache_blocks_used") > 0;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  client.join();
  EXPECT_TRUE(saw_blocks);
  EXPECT_TRUE(testing::wait_until_idle(port())) << "the abandoned request kept its blocks";
  const double aborted_after = testing::metric_value(http_call(port(), "GET", "/metrics").body,
                                                     "octet_requests_finished_total{finish_reason=\"abort\"}");
  EXPECT_EQ(aborted_after, std::max(aborted_before, 0.0) + 1);
}

struct BadCase {
  std::string name, method, path, body;
  int status;
  std::string param_or_code;  // expected in error.param or error.code ("" : not checked)
};

TEST_F(ApiServerTest, BadInputGetsOpenAiErrorsWithTheRightStatus) {
  const std::string chat = "/v1/chat/completions", completions = "/v1/completions";
  const std::string msgs = R"("messages":[{"role":"user","content":"Hi"}])";
  std::string long_prompt;
  for (int i = 0; i < 1100; ++i) long_prompt += "word ";
  std::vector<BadCase> cases = {
      {"malformed JSON", "POST", chat, "{\"messages\": [", 400, ""},
      {"body not an object", "POST", chat, "[1, 2]", 400, ""},
      {"empty body", "POST", chat, "", 400, ""},
      {"messages missing", "POST", chat, "{}", 400, "messages"},
      {"messages not an array", "POST", chat, R"({"messages":"Hi"})", 400, "messages"},
      {"messages empty", "POST", chat, R"({"messages":[]})", 400, "messages"},
      {"message not an object", "POST", chat, R"({"messages":["Hi"]})", 400, "messages[0]"},
      {"role missing", "POST", chat, R"({"messages":[{"content":"Hi"}]})", 400, "messages[0].role"},
      {"role unknown", "POST", chat, R"({"messages":[{"role":"wizard","content":"Hi"}]})", 400, "messages[0].role"},
      {"content a number", "POST", chat, R"({"messages":[{"role":"user","content":5}]})", 400, "messages[0].content"},
      {"model not a string", "POST", chat, "{" + msgs + R"(,"model":7})", 400, "model"},
      {"unknown model", "POST", chat, "{" + msgs + R"(,"model":"gpt-9"})", 404, "model_not_found"},
      {"temperature a string", "POST", chat, "{" + msgs + R"(,"temperature":"hot"})", 400, "temperature"},
      {"temperature out of range", "POST", chat, "{" + msgs + R"(,"temperature":7})", 400, "temperature"},
      {"top_p zero", "POST", chat, "{" + msgs + R"(,"top_p":0})", 400, "top_p"},
      {"top_k fractional", "POST", chat, "{" + msgs + R"(,"top_k":2.5})", 400, "top_k"},
      {"min_p above one", "POST", chat, "{" + msgs + R"(,"min_p":1.5})", 400, "min_p"},
      {"seed a string", "POST", chat, "{" + msgs + R"(,"seed":"x"})", 400, "seed"},
      {"max_tokens negative", "POST", chat, "{" + msgs + R"(,"max_tokens":-1})", 400, "max_tokens"},
      {"max_tokens a string", "POST", chat, "{" + msgs + R"(,"max_tokens":"10"})", 400, "max_tokens"},
      {"max_completion_tokens zero", "POST", chat, "{" + msgs + R"(,"max_completion_tokens":0})", 400, "max_completion_tokens"},
      {"max_tokens beyond the context", "POST", chat, "{" + msgs + R"(,"max_tokens":5000})", 400, "context_length_exceeded"},
      {"stop a number", "POST", chat, "{" + msgs + R"(,"stop":5})", 400, "stop"},
      {"stop list with a number", "POST", chat, "{" + msgs + R"(,"stop":["a",1]})", 400, "stop"},
      {"stream a string", "POST", chat, "{" + msgs + R"(,"stream":"yes"})", 400, "stream"},
      {"stream_options without stream", "POST", chat, "{" + msgs + R"(,"stream_options":{"include_usage":true}})", 400, "stream_options"},
      {"n of two", "POST", chat, "{" + msgs + R"(,"n":2})", 400, "n"},
      {"prompt missing", "POST", completions, R"({"max_tokens":3})", 400, "prompt"},
      {"prompt a number", "POST", completions, R"({"prompt":3})", 400, "prompt"},
      {"prompt empty", "POST", completions, R"({"prompt":""})", 400, "prompt"},
      {"prompt token id past the vocabulary", "POST", completions, R"({"prompt":[1, 99999999]})", 400, "prompt"},
      {"prompt longer than the context", "POST", completions, json{{"prompt", long_prompt}}.dump(), 400, "context_length_exceeded"},
      {"messages longer than the context", "POST", chat,
       json{{"messages", {{{"role", "user"}, {"content", long_prompt}}}}}.dump(), 400, "context_length_exceeded"},
      {"deeply nested JSON", "POST", chat, std::string(20000, '[') + std::string(20000, ']'), 400, ""},
      {"body over the size limit", "POST", chat, "{" + msgs + R"(,"user":")" + std::string(kMaxBodyBytes, 'x') + "\"}", 413, "request_too_large"},
      {"unknown route", "GET", "/v1/nothing", "", 404, "unknown_url"},
      {"wrong method", "GET", chat, "", 404, "unknown_url"},
  };
  for (const auto& c : cases) {
    const HttpReply r = http_call(port(), c.method, c.path, c.body);
    EXPECT_EQ(r.status, c.status) << c.name << ": " << r.body;
    const json error = r.json();
    ASSERT_TRUE(error.is_object() && error.contains("error")) << c.name << ": " << r.body;
    EXPECT_TRUE(error["error"]["message"].is_string()) << c.name;
    EXPECT_TRUE(error["error"]["type"].is_string()) << c.name;
    if (!c.param_or_code.empty()) {
      EXPECT_TRUE(error["error"]["param"] == c.param_or_code || error["error"]["code"] == c.param_or_code)
          << c.name << ": " << r.body;
    }
  }
  // Nothing broke: the server answers and holds no blocks.
  EXPECT_EQ(post("/v1/chat/completions", chat_body("Hi", 2)).status, 200);
  EXPECT_TRUE(testing::wait_until_idle(port()));
}

TEST_F(ApiServerTest, ApiKeyIsRequiredOnlyWhenSet) {
  const int keyed = served_->keyed_port;
  const std::string body = chat_body("Hi", 2).dump();
  const HttpReply missing = http_call(keyed, "POST", "/v1/chat/completions", body);
  EXPECT_EQ(missing.status, 401);
  EXPECT_EQ(missing.json()["error"]["code"], "invalid_api_key");
  EXPECT_EQ(http_call(keyed, "POST", "/v1/chat/completions", body, {{"Authorization", "Bearer sk-wrong"}}).status, 401);
  EXPECT_EQ(http_call(keyed, "POST", "/v1/chat/completions", body, {{"Authorization", std::string("Bearer ") + kApiKey + "x"}}).status, 401);
  EXPECT_EQ(http_call(keyed, "POST", "/v1/chat/completions", body, {{"Authorization", kApiKey}}).status, 401);  // no "Bearer "
  EXPECT_EQ(http_call(keyed, "GET", "/v1/models").status, 401);
  EXPECT_EQ(http_call(keyed, "POST", "/v1/chat/completions", body, {{"Authorization", std::string("Bearer ") + kApiKey}}).status, 200);
  EXPECT_EQ(http_call(keyed, "GET", "/v1/models", "", {{"Authorization", std::string("Bearer ") + kApiKey}}).status, 200);
  EXPECT_EQ(http_call(keyed, "GET", "/health").status, 200);  // probes need no key
  // Without a key configured, any or no Authorization header is accepted.
  EXPECT_EQ(http_call(port(), "POST", "/v1/chat/completions", body, {{"Authorization", "Bearer anything"}}).status, 200);
  EXPECT_EQ(http_call(port(), "POST", "/v1/chat/completions", body).status, 200);
}

// `octet bench serve`'s load generator: exact token counts (ignore_eos, prompts as ids) and timings.
TEST_F(ApiServerTest, LoadGeneratorGetsExactlyTheTokensItAsksFor) {
  LoadOptions load;
  load.port = port();
  load.model = "smollm2-test";
  load.clients = 4;
  load.requests = 8;
  load.input_tokens = 16;
  load.output_tokens = 8;
  load.vocab = served_->model.config.vocab;
  const LoadReport r = run_load(load);
  EXPECT_EQ(r.failed, 0) << r.first_error;
  EXPECT_EQ(r.requests, 8);
  EXPECT_EQ(r.output_tokens, 8 * 8);
  EXPECT_EQ(r.input_tokens, 8 * 16);
  EXPECT_GT(r.ttft_p50_ms, 0);
  EXPECT_GE(r.ttft_p99_ms, r.ttft_p50_ms);
  EXPECT_GT(r.itl_p50_ms, 0);
  EXPECT_NEAR(r.output_tokens_per_s, static_cast<double>(r.output_tokens) / r.seconds, 1e-6);
  EXPECT_TRUE(testing::wait_until_idle(port()));
  load.api_key = "sk-wrong";
  load.port = served_->keyed_port;
  load.requests = 2;
  const LoadReport refused = run_load(load);
  EXPECT_EQ(refused.failed, 2);
  EXPECT_NE(refused.first_error.find("401"), std::string::npos) << refused.first_error;
}

TEST(ConstantTimeEquals, ComparesWholeStrings) {
  EXPECT_TRUE(constant_time_equals("abc", "abc"));
  EXPECT_TRUE(constant_time_equals("", ""));
  EXPECT_FALSE(constant_time_equals("abc", "abd"));
  EXPECT_FALSE(constant_time_equals("abc", "ab"));
  EXPECT_FALSE(constant_time_equals("ab", "abc"));
  EXPECT_FALSE(constant_time_equals("", "a"));
  EXPECT_FALSE(constant_time_equals(std::string("a\0b", 3), std::string("a\0c", 3)));
}

// 500 short requests, 16 at a time: every one answered 200, nothing left running, and the server's
// resident memory after them within 64 MiB of what it was after a warm-up round.
TEST_F(ApiServerTest, LoadTestOfFiveHundredRequestsSixteenAtATime) {
  constexpr int kRequests = 500, kClients = 16;
  constexpr double kGrowthBoundBytes = 64.0 * 1024 * 1024;
  // Mostly short completions (a few prompt tokens each); every eighth a chat, every fourth streamed.
  auto one_request = [](int i) {
    const bool chat = i % 8 == 7;
    json body = chat ? json{{"messages", {{{"role", "system"}, {"content", "Be brief."}}, {{"role", "user"}, {"content", fmt::format("Say {}", i)}}}}}
                     : json{{"prompt", fmt::format("Item {}:", i)}, {"temperature", 0.5}, {"seed", i}};
    body["max_tokens"] = 2;
    body["stream"] = i % 4 == 1;
    return post(chat ? "/v1/chat/completions" : "/v1/completions", body).status;
  };
  auto round = [&](int count) {
    std::atomic<int> next{0}, failures{0};
    std::vector<std::thread> clients;
    for (int c = 0; c < kClients; ++c)
      clients.emplace_back([&] {
        for (int i = next++; i < count; i = next++)
          if (one_request(i) != 200) ++failures;
      });
    for (auto& c : clients) c.join();
    return failures.load();
  };
  ASSERT_EQ(round(64), 0);  // warm-up: thread pool, buffers, allocator arenas
  ASSERT_TRUE(testing::wait_until_idle(port()));
  const double before = testing::metric_value(http_call(port(), "GET", "/metrics").body, "octet_host_memory_resident_bytes");
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(round(kRequests), 0);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ASSERT_TRUE(testing::wait_until_idle(port()));
  const double after = testing::metric_value(http_call(port(), "GET", "/metrics").body, "octet_host_memory_resident_bytes");
  std::cout << fmt::format("[load] {} requests in {:.1f} s; RSS {:.1f} → {:.1f} MiB\n", kRequests, seconds,
                           before / (1 << 20), after / (1 << 20));
  EXPECT_LT(after - before, kGrowthBoundBytes);
}

}  // namespace
}  // namespace octet::server
