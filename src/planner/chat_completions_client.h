#pragma once
// A client of OpenAI-compatible POST {base_url}/chat/completions (libcurl): timeout, retries with
// exponential backoff on connection errors, timeouts, 429 and 5xx; other 4xx fail at once.
#include "octet/config.h"

#include <string>
#include <vector>

namespace octet::planner {

struct ChatCompletion {
  std::string text;
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;
  int attempts = 0;
};

struct ChatRequest {
  std::vector<Message> messages;
  int max_tokens = 256;
  float temperature = 0.7f;
};

// Throws octet::Error naming the URL, the status and the server's message after the last attempt.
ChatCompletion request_chat_completion(const ApiSettings& api, const ChatRequest& request);

}  // namespace octet::planner
