#pragma once
// Helpers for the server tests: HTTP calls on loopback, SSE parsing, /metrics reading.
#include <gtest/gtest.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <functional>
#include <string>
#include <thread>
#include <vector>

namespace octet::testing {

struct HttpReply {
  int status = 0;  // 0: no answer (connection failed or cancelled)
  std::string body;
  std::string error;  // httplib's reason when status is 0
  nlohmann::json json() const { return nlohmann::json::parse(body, nullptr, false); }
};

inline HttpReply http_call(int port, const std::string& method, const std::string& path, const std::string& body = {},
                           const httplib::Headers& headers = {},
                           std::function<bool(const std::string& so_far)> keep_reading = {}) {
  httplib::Client client("127.0.0.1", port);
  client.set_read_timeout(120);
  client.set_write_timeout(30);
  httplib::Request request;
  request.method = method;
  request.path = path;
  request.headers = headers;
  if (!body.empty() || method == "POST") {
    request.body = body;
    request.set_header("Content-Type", "application/json");
  }
  HttpReply reply;
  if (keep_reading)
    request.content_receiver = [&](const char* data, size_t length, uint64_t, uint64_t) {
      reply.body.append(data, length);
      return keep_reading(reply.body);
    };
  httplib::Response response;
  httplib::Error error = httplib::Error::Success;
  if (client.send(request, response, error)) {
    reply.status = response.status;
    if (!keep_reading) reply.body = response.body;
  } else {
    reply.error = httplib::to_string(error);
  }
  return reply;
}

// The JSON payloads of an SSE body, in order; "[DONE]" appears as the string "[DONE]".
inline std::vector<nlohmann::json> sse_events(const std::string& body) {
  std::vector<nlohmann::json> events;
  size_t start = 0;
  while (start < body.size()) {
    size_t end = body.find("\n\n", start);
    if (end == std::string::npos) end = body.size();
    const std::string event = body.substr(start, end - start);
    if (event.rfind("data: ", 0) == 0) {
      const std::string data = event.substr(6);
      events.push_back(data == "[DONE]" ? nlohmann::json("[DONE]") : nlohmann::json::parse(data, nullptr, false));
    }
    start = end + 2;
  }
  return events;
}

// Concatenated delta text of a chat or completion stream.
inline std::string streamed_text(const std::vector<nlohmann::json>& events) {
  std::string text;
  for (const auto& e : events) {
    if (!e.is_object() || !e.contains("choices") || e["choices"].empty()) continue;
    const auto& choice = e["choices"][0];
    if (choice.contains("delta") && choice["delta"].contains("content")) text += choice["delta"]["content"].get<std::string>();
    if (choice.contains("text")) text += choice["text"].get<std::string>();
  }
  return text;
}

// The value of an unlabelled (or exactly labelled) sample in a Prometheus text page; -1 when absent.
inline double metric_value(const std::string& page, const std::string& sample) {
  size_t at = 0;
  while ((at = page.find(sample + " ", at)) != std::string::npos) {
    if (at == 0 || page[at - 1] == '\n') return std::stod(page.substr(at + sample.size() + 1));
    at += sample.size();
  }
  return -1;
}

// Polls /metrics until running requests and used KV blocks are both zero (or the time is up).
inline bool wait_until_idle(int port, std::chrono::milliseconds limit = std::chrono::milliseconds(5000)) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    const HttpReply m = http_call(port, "GET", "/metrics");
    if (metric_value(m.body, "octet_requests_running") == 0 && metric_value(m.body, "octet_kv_cache_blocks_used") == 0 &&
        metric_value(m.body, "octet_requests_waiting") == 0)
      return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

}  // namespace octet::testing
