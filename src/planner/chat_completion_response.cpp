#include "planner/chat_completion_response.h"

#include "common/error.h"

#include <nlohmann/json.hpp>

#include <cstdint>

namespace octet::planner {
namespace {

// The first bytes of a body for an error message: printable ASCII as is, anything else as \xHH (the
// body may be any bytes; fmt's escaping {:?} aborts on some invalid UTF-8).
std::string excerpt(const std::string& body, size_t bytes) {
  std::string out = "\"";
  for (const char c : body.substr(0, bytes)) {
    const auto b = static_cast<unsigned char>(c);
    if (b >= 0x20 && b < 0x7F && c != '"' && c != '\\') out += c;
    else out += fmt::format("\\x{:02x}", b);
  }
  return out + (body.size() > bytes ? "\"…" : "\"");
}

int64_t usage_count(const nlohmann::json& usage, const char* name, const std::string& url) {
  const auto it = usage.find(name);
  if (it == usage.end() || it->is_null()) return 0;
  if (it->is_number_unsigned()) {
    // Unsigned JSON integers above int64's range are not token counts.
    if (it->get<uint64_t>() <= static_cast<uint64_t>(INT64_MAX)) return static_cast<int64_t>(it->get<uint64_t>());
  } else if (it->is_number_integer() && it->get<int64_t>() >= 0) {
    return it->get<int64_t>();
  }
  fail("{}: usage.{} must be a non-negative integer, found {}", url, name, it->dump().substr(0, 40));
}

}  // namespace

ChatCompletion parse_chat_completion(const std::string& body, const std::string& url) {
  const nlohmann::json j = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) fail("{}: the answer is not JSON (it starts {})", url, excerpt(body, 60));
  if (!j.is_object()) fail("{}: the answer is not a JSON object (expected one with choices[])", url);
  const auto choices = j.find("choices");
  if (choices == j.end() || !choices->is_array() || choices->empty()) fail("{}: the answer has no choices[]", url);
  const nlohmann::json& choice = (*choices)[0];
  const nlohmann::json* content = nullptr;
  if (choice.is_object())
    if (const auto message = choice.find("message"); message != choice.end() && message->is_object())
      if (const auto found = message->find("content"); found != message->end() && found->is_string()) content = &*found;
  if (content == nullptr) fail("{}: choices[0].message.content is missing or not a string", url);
  ChatCompletion c;
  c.text = content->get<std::string>();
  if (const auto usage = j.find("usage"); usage != j.end() && !usage->is_null()) {
    if (!usage->is_object()) fail("{}: usage must be an object", url);
    c.prompt_tokens = usage_count(*usage, "prompt_tokens", url);
    c.completion_tokens = usage_count(*usage, "completion_tokens", url);
  }
  return c;
}

std::string error_message_of(const std::string& body) {
  const nlohmann::json j = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_object())
    if (const auto error = j.find("error"); error != j.end() && error->is_object())
      if (const auto message = error->find("message"); message != error->end() && message->is_string())
        return message->get<std::string>();
  return body.substr(0, 200);
}

}  // namespace octet::planner
