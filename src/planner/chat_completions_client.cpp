#include "planner/chat_completions_client.h"

#include "common/error.h"
#include "planner/chat_completion_response.h"

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <chrono>
#include <cmath>
#include <thread>

#ifdef OCTET_HAVE_CURL
#include <curl/curl.h>
#endif

namespace octet::planner {
namespace {

struct HttpReply {
  long status = 0;
  std::string body;
  std::string transport_error;  // set when no HTTP answer came (timeout, refused, …)
};

#ifdef OCTET_HAVE_CURL
size_t collect(char* data, size_t size, size_t count, void* out) {
  static_cast<std::string*>(out)->append(data, size * count);
  return size * count;
}

HttpReply post_json(const std::string& url, const std::string& body, const std::string& api_key, double timeout_s) {
  static const bool initialised = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK;
  if (!initialised) fail("libcurl could not be initialised");
  HttpReply reply;
  CURL* curl = curl_easy_init();
  if (!curl) fail("libcurl: cannot create a handle");
  curl_slist* headers = curl_slist_append(nullptr, "Content-Type: application/json");
  if (!api_key.empty()) headers = curl_slist_append(headers, ("Authorization: Bearer " + api_key).c_str());
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body.c_str());
  curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, static_cast<long>(timeout_s * 1000));
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, collect);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &reply.body);
  const CURLcode code = curl_easy_perform(curl);
  if (code != CURLE_OK) reply.transport_error = curl_easy_strerror(code);
  else curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &reply.status);
  curl_slist_free_all(headers);
  curl_easy_cleanup(curl);
  return reply;
}
#else
HttpReply post_json(const std::string&, const std::string&, const std::string&, double) {
  fail("this build of octet has no HTTP client (libcurl was not found when it was built)");
}
#endif

}  // namespace

ChatCompletion request_chat_completion(const ApiSettings& api, const ChatRequest& request) {
  if (api.base_url.empty()) fail("api.base_url is not set: the planner has no API to fall back to");
  std::string url = api.base_url;
  while (!url.empty() && url.back() == '/') url.pop_back();
  url += "/chat/completions";
  nlohmann::json messages = nlohmann::json::array();
  for (const auto& m : request.messages) messages.push_back({{"role", m.role}, {"content", m.content}});
  const std::string body = nlohmann::json{{"model", api.model},
                                          {"messages", messages},
                                          {"max_tokens", request.max_tokens},
                                          {"temperature", request.temperature}}
                               .dump();
  std::string last_error;
  for (int attempt = 0; attempt <= api.max_retries; ++attempt) {
    if (attempt > 0) {
      const double wait_s = api.backoff_s * std::pow(2.0, attempt - 1);
      spdlog::info("{}: retry {} of {} in {:.2f} s after: {}", url, attempt, api.max_retries, wait_s, last_error);
      std::this_thread::sleep_for(std::chrono::duration<double>(wait_s));
    }
    const HttpReply reply = post_json(url, body, api.api_key, api.timeout_s);
    if (!reply.transport_error.empty()) {
      last_error = reply.transport_error;
      continue;
    }
    if (reply.status == 200) {
      ChatCompletion c = parse_chat_completion(reply.body, url);
      c.attempts = attempt + 1;
      return c;
    }
    last_error = fmt::format("HTTP {}: {}", reply.status, error_message_of(reply.body));
    const bool retryable = reply.status == 429 || reply.status >= 500;
    if (!retryable) fail("{}: {}", url, last_error);
  }
  fail("{}: no answer after {} attempt(s): {}", url, api.max_retries + 1, last_error);
}

}  // namespace octet::planner
