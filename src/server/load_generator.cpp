#include "server/load_generator.h"

#include "runtime/metrics.h"
#include "server/completion_stream.h"

#include <httplib.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

namespace octet::server {

namespace {

using Clock = std::chrono::steady_clock;

double ms_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

struct RequestTiming {
  bool ok = false;
  std::string error;
  double ttft_ms = 0;
  std::vector<double> gaps_ms;
  int64_t output_tokens = 0;
};

// Streams one completion; counts text chunks as they arrive and takes the token count from usage.
RequestTiming stream_one(const LoadOptions& o, const std::vector<int32_t>& prompt) {
  RequestTiming t;
  httplib::Client client(o.host, o.port);
  client.set_read_timeout(600);
  nlohmann::json body{{"prompt", prompt},      {"max_tokens", o.output_tokens}, {"temperature", 0},
                      {"ignore_eos", true},    {"stream", true},               {"stream_options", {{"include_usage", true}}}};
  if (!o.model.empty()) body["model"] = o.model;
  httplib::Request request;
  request.method = "POST";
  request.path = "/v1/completions";
  request.body = body.dump();
  request.set_header("Content-Type", "application/json");
  if (!o.api_key.empty()) request.set_header("Authorization", "Bearer " + o.api_key);
  CompletionStream stream;
  std::string body_start;  // what a refused request's body said
  bool done = false;
  const auto sent = Clock::now();
  auto last = sent;
  request.content_receiver = [&](const char* data, size_t length, uint64_t, uint64_t) {
    if (body_start.size() < 300) body_start.append(data, std::min(length, 300 - body_start.size()));
    for (const StreamEvent& event : stream.push(std::string_view(data, length))) {
      if (event.done) done = true;
      if (!event.error.empty()) t.error = event.error;
      if (event.completion_tokens) t.output_tokens = *event.completion_tokens;
      if (!event.text) continue;
      const auto now = Clock::now();
      if (t.ttft_ms == 0) t.ttft_ms = ms_between(sent, now);
      else t.gaps_ms.push_back(ms_between(last, now));
      last = now;
    }
    return true;
  };
  httplib::Response response;
  httplib::Error error = httplib::Error::Success;
  if (!client.send(request, response, error)) {
    t.error = "HTTP: " + httplib::to_string(error);
    return t;
  }
  if (response.status != 200) {
    t.error = "HTTP " + std::to_string(response.status) + ": " + body_start;
    return t;
  }
  t.ok = done && t.error.empty();
  if (!done && t.error.empty()) t.error = "stream ended without [DONE]";
  return t;
}

}  // namespace

LoadReport run_load(const LoadOptions& o) {
  std::mt19937_64 rng(o.seed);
  std::uniform_int_distribution<int32_t> ordinary(256, static_cast<int32_t>(std::max<int64_t>(o.vocab, 257) - 1));
  std::vector<std::vector<int32_t>> prompts(static_cast<size_t>(o.requests));
  for (auto& p : prompts)
    for (int i = 0; i < o.input_tokens; ++i) p.push_back(ordinary(rng));

  std::vector<RequestTiming> timings(prompts.size());
  std::atomic<size_t> next{0};
  const auto start = Clock::now();
  std::vector<std::thread> clients;
  for (int c = 0; c < o.clients; ++c)
    clients.emplace_back([&] {
      for (size_t i = next++; i < prompts.size(); i = next++) timings[i] = stream_one(o, prompts[i]);
    });
  for (auto& c : clients) c.join();
  LoadReport r;
  r.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  std::deque<double> ttft, itl;
  for (const auto& t : timings) {
    ++r.requests;
    if (!t.ok) {
      ++r.failed;
      if (r.first_error.empty()) r.first_error = t.error;
      continue;
    }
    r.output_tokens += t.output_tokens;
    r.input_tokens += o.input_tokens;
    ttft.push_back(t.ttft_ms);
    itl.insert(itl.end(), t.gaps_ms.begin(), t.gaps_ms.end());
  }
  const int succeeded = r.requests - r.failed;
  r.requests_per_s = r.seconds > 0 ? succeeded / r.seconds : 0;
  r.output_tokens_per_s = r.seconds > 0 ? static_cast<double>(r.output_tokens) / r.seconds : 0;
  const auto t = runtime::summarize(ttft), g = runtime::summarize(itl);
  r.ttft_p50_ms = t.p50_ms;
  r.ttft_p99_ms = t.p99_ms;
  r.itl_p50_ms = g.p50_ms;
  r.itl_p99_ms = g.p99_ms;
  return r;
}

}  // namespace octet::server
