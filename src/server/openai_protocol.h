#pragma once
// The OpenAI wire format: request bodies of /v1/chat/completions and /v1/completions checked and
// turned into engine requests, and the response, chunk and error objects built from results.
// Every check names the field and what was expected, as OpenAI's own 400s do.
#include "octet/engine.h"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace octet::server {

// An error answered to the client: HTTP status plus OpenAI's {"error": {message, type, param, code}}.
class ApiError : public std::runtime_error {
 public:
  ApiError(int status, std::string message, std::string type = "invalid_request_error", std::string param = {},
           std::string code = {})
      : std::runtime_error(message), status(status), type(std::move(type)), param(std::move(param)),
        code(std::move(code)) {}
  int status;
  std::string type, param, code;
  nlohmann::json body() const;
};

nlohmann::json error_body(const std::string& message, const std::string& type, const std::string& param = {},
                          const std::string& code = {});

enum class Endpoint { chat, completion };

struct ApiRequest {
  Endpoint endpoint = Endpoint::chat;
  std::string model;                  // as sent; empty when absent
  std::vector<Message> messages;      // chat
  std::string prompt;                 // completion (text)
  std::vector<int32_t> prompt_ids;    // completion given as token ids
  bool prompt_is_ids = false;
  GenerationParams params;
  std::optional<int> max_tokens;      // absent: the server's default, capped by the context
  bool stream = false;
  bool include_usage = false;         // stream_options.include_usage
};

// Throws ApiError(400) for malformed JSON, wrong types and out-of-range values. defaults supplies
// the sampling values a request leaves out.
ApiRequest parse_request(Endpoint endpoint, const std::string& body, const GenerationParams& defaults);

struct Usage {
  int64_t prompt_tokens = 0, completion_tokens = 0;
  nlohmann::json to_json() const;
};

// Whole responses (stream: false).
nlohmann::json chat_response(const std::string& id, int64_t created, const std::string& model, const std::string& text,
                             const std::string& finish_reason, const Usage& usage);
nlohmann::json completion_response(const std::string& id, int64_t created, const std::string& model,
                                   const std::string& text, const std::string& finish_reason, const Usage& usage);

// Stream chunks. text: the delta; finish_reason empty: null. role_only: the chat's first chunk.
nlohmann::json chat_chunk(const std::string& id, int64_t created, const std::string& model, const std::string& text,
                          const std::string& finish_reason, bool role_only, bool with_usage_null);
nlohmann::json completion_chunk(const std::string& id, int64_t created, const std::string& model,
                                const std::string& text, const std::string& finish_reason, bool with_usage_null);
// The last chunk when stream_options.include_usage: no choices, the usage.
nlohmann::json usage_chunk(Endpoint endpoint, const std::string& id, int64_t created, const std::string& model,
                           const Usage& usage);

// "data: <json>\n\n"
std::string sse_event(const nlohmann::json& payload);
inline constexpr const char* kSseDone = "data: [DONE]\n\n";

}  // namespace octet::server
