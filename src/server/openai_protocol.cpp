#include "server/openai_protocol.h"

#include <fmt/format.h>

#include <cmath>
#include <limits>

namespace octet::server {

using nlohmann::json;

json error_body(const std::string& message, const std::string& type, const std::string& param, const std::string& code) {
  return json{{"error",
               {{"message", message},
                {"type", type},
                {"param", param.empty() ? json(nullptr) : json(param)},
                {"code", code.empty() ? json(nullptr) : json(code)}}}};
}

json ApiError::body() const { return error_body(what(), type, param, code); }

namespace {

[[noreturn]] void bad(const std::string& param, const std::string& message) {
  throw ApiError(400, message, "invalid_request_error", param);
}

std::string type_name(const json& value) {
  if (value.is_null()) return "null";
  if (value.is_boolean()) return "a boolean";
  if (value.is_number()) return "a number";
  if (value.is_string()) return "a string";
  if (value.is_array()) return "an array";
  return "an object";
}

// A field present and not null; absent and null both mean "use the default", as in OpenAI's API.
const json* field(const json& body, const char* name) {
  auto it = body.find(name);
  if (it == body.end() || it->is_null()) return nullptr;
  return &*it;
}

double number_in(const json& body, const char* name, double low, double high, double fallback) {
  const json* v = field(body, name);
  if (!v) return fallback;
  if (!v->is_number()) bad(name, fmt::format("'{}' must be a number, got {}", name, type_name(*v)));
  const double x = v->get<double>();
  if (!std::isfinite(x) || x < low || x > high)
    bad(name, fmt::format("'{}' must be in [{}, {}], got {}", name, low, high, x));
  return x;
}

std::optional<int64_t> integer(const json& body, const char* name, int64_t low, int64_t high) {
  const json* v = field(body, name);
  if (!v) return std::nullopt;
  const auto out_of_range = [&] { bad(name, fmt::format("'{}' must be in [{}, {}], got {}", name, low, high, v->dump())); };
  if (v->is_number_unsigned()) {  // nlohmann keeps non-negative integers as uint64: compare without a cast
    const uint64_t x = v->get<uint64_t>();
    if (high < 0 || x > static_cast<uint64_t>(high) || (low > 0 && x < static_cast<uint64_t>(low))) out_of_range();
    return static_cast<int64_t>(x);
  }
  if (v->is_number_integer()) {
    const int64_t x = v->get<int64_t>();
    if (x < low || x > high) out_of_range();
    return x;
  }
  if (!v->is_number_float() || std::floor(v->get<double>()) != v->get<double>())
    bad(name, fmt::format("'{}' must be an integer, got {}", name, type_name(*v)));
  // An integral float (7.0, 1e3): in range before the conversion, which is undefined at 2^63 and above
  // (static_cast<double>(INT64_MAX) rounds up to 2^63, so that bound is checked apart).
  const double x = v->get<double>();
  if (x < static_cast<double>(low) || x > static_cast<double>(high) || x >= 9223372036854775808.0) out_of_range();
  return static_cast<int64_t>(x);
}

bool boolean(const json& body, const char* name, bool fallback) {
  const json* v = field(body, name);
  if (!v) return fallback;
  if (!v->is_boolean()) bad(name, fmt::format("'{}' must be a boolean, got {}", name, type_name(*v)));
  return v->get<bool>();
}

std::string message_content(const json& content, size_t index) {
  const std::string param = fmt::format("messages[{}].content", index);
  if (content.is_string()) return content.get<std::string>();
  if (!content.is_array()) bad(param, fmt::format("'{}' must be a string or an array of text parts, got {}", param, type_name(content)));
  std::string text;
  for (const auto& part : content) {
    const auto type = part.is_object() ? part.find("type") : part.end();
    if (!part.is_object() || type == part.end() || *type != "text" || !part.contains("text") || !part["text"].is_string())
      bad(param, fmt::format("'{}' parts must be {{\"type\": \"text\", \"text\": string}} (only text is supported)", param));
    text += part["text"].get<std::string>();
  }
  return text;
}

std::vector<Message> parse_messages(const json& body) {
  const json* v = field(body, "messages");
  if (!v) bad("messages", "'messages' is required");
  if (!v->is_array()) bad("messages", fmt::format("'messages' must be an array, got {}", type_name(*v)));
  if (v->empty()) bad("messages", "'messages' must hold at least one message");
  std::vector<Message> messages;
  for (size_t i = 0; i < v->size(); ++i) {
    const json& m = (*v)[i];
    const std::string param = fmt::format("messages[{}]", i);
    if (!m.is_object()) bad(param, fmt::format("'{}' must be an object, got {}", param, type_name(m)));
    if (!m.contains("role") || !m["role"].is_string()) bad(param + ".role", fmt::format("'{}.role' must be a string", param));
    std::string role = m["role"].get<std::string>();
    if (role == "developer") role = "system";  // OpenAI's newer name for the system role
    if (role != "system" && role != "user" && role != "assistant")
      bad(param + ".role", fmt::format("'{}.role' must be system, developer, user or assistant, got '{}'", param, role));
    std::string content;
    if (m.contains("content") && !m["content"].is_null()) content = message_content(m["content"], i);
    else if (role != "assistant") bad(param + ".content", fmt::format("'{}.content' is required", param));
    messages.push_back({role, content});
  }
  return messages;
}

void parse_prompt(const json& body, ApiRequest& request) {
  const json* v = field(body, "prompt");
  if (!v) bad("prompt", "'prompt' is required");
  if (v->is_string()) {
    request.prompt = v->get<std::string>();
    return;
  }
  if (v->is_array() && v->size() == 1 && (*v)[0].is_string()) {  // a batch of one prompt
    request.prompt = (*v)[0].get<std::string>();
    return;
  }
  if (v->is_array() && !v->empty() && (*v)[0].is_number_integer()) {
    for (const auto& id : *v) {
      if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() > std::numeric_limits<int32_t>::max())
        bad("prompt", "'prompt' as token ids must be non-negative integers");
      request.prompt_ids.push_back(static_cast<int32_t>(id.get<int64_t>()));
    }
    request.prompt_is_ids = true;
    return;
  }
  bad("prompt", "'prompt' must be a string, an array of one string, or an array of token ids (one prompt per request)");
}

std::vector<std::string> parse_stop(const json& body) {
  const json* v = field(body, "stop");
  if (!v) return {};
  if (v->is_string()) return v->get<std::string>().empty() ? std::vector<std::string>{} : std::vector<std::string>{v->get<std::string>()};
  if (!v->is_array()) bad("stop", fmt::format("'stop' must be a string or an array of strings, got {}", type_name(*v)));
  std::vector<std::string> stops;
  for (const auto& s : *v) {
    if (!s.is_string()) bad("stop", "'stop' must be a string or an array of strings");
    if (!s.get<std::string>().empty()) stops.push_back(s.get<std::string>());
  }
  if (stops.size() > 16) bad("stop", fmt::format("'stop' may hold at most 16 strings, got {}", stops.size()));
  return stops;
}

}  // namespace

ApiRequest parse_request(Endpoint endpoint, const std::string& text, const GenerationParams& defaults) {
  json body = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (body.is_discarded())
    throw ApiError(400, "We could not parse the JSON body of your request: it is not valid JSON.");
  if (!body.is_object()) bad("", fmt::format("the request body must be a JSON object, got {}", type_name(body)));

  ApiRequest r;
  r.endpoint = endpoint;
  if (const json* m = field(body, "model")) {
    if (!m->is_string()) bad("model", fmt::format("'model' must be a string, got {}", type_name(*m)));
    r.model = m->get<std::string>();
  }
  if (endpoint == Endpoint::chat) r.messages = parse_messages(body);
  else parse_prompt(body, r);

  r.params = defaults;
  const char* max_name = field(body, "max_completion_tokens") ? "max_completion_tokens" : "max_tokens";
  if (auto n = integer(body, max_name, 1, std::numeric_limits<int32_t>::max())) r.max_tokens = static_cast<int>(*n);
  r.params.temperature = static_cast<float>(number_in(body, "temperature", 0, 2, defaults.temperature));
  r.params.top_p = static_cast<float>(number_in(body, "top_p", 0, 1, defaults.top_p));
  if (field(body, "top_p") && r.params.top_p <= 0) bad("top_p", "'top_p' must be greater than 0");
  if (auto k = integer(body, "top_k", -1, std::numeric_limits<int32_t>::max()))
    r.params.top_k = *k < 0 ? 0 : static_cast<int>(*k);  // -1: off (vLLM's convention)
  r.params.min_p = static_cast<float>(number_in(body, "min_p", 0, 1, defaults.min_p));
  r.params.repetition_penalty = static_cast<float>(number_in(body, "repetition_penalty", 0, 10, defaults.repetition_penalty));
  if (field(body, "repetition_penalty") && r.params.repetition_penalty <= 0)
    bad("repetition_penalty", "'repetition_penalty' must be greater than 0");
  if (auto seed = integer(body, "seed", std::numeric_limits<int64_t>::min(), std::numeric_limits<int64_t>::max()))
    r.params.seed = static_cast<uint64_t>(*seed);
  r.params.stop = parse_stop(body);
  r.params.ignore_eos = boolean(body, "ignore_eos", false);  // vLLM's extension: benchmarks run to max_tokens
  if (auto n = integer(body, "n", 1, 1000); n && *n != 1) bad("n", "'n' must be 1: one choice per request is supported");
  r.stream = boolean(body, "stream", false);
  if (const json* options = field(body, "stream_options")) {
    if (!options->is_object()) bad("stream_options", "'stream_options' must be an object");
    if (!r.stream) bad("stream_options", "'stream_options' is only allowed when 'stream' is true");
    r.include_usage = boolean(*options, "include_usage", false);
  }
  return r;
}

json Usage::to_json() const {
  return json{{"prompt_tokens", prompt_tokens},
              {"completion_tokens", completion_tokens},
              {"total_tokens", prompt_tokens + completion_tokens}};
}

namespace {
json finish_value(const std::string& reason) { return reason.empty() ? json(nullptr) : json(reason); }
}  // namespace

json chat_response(const std::string& id, int64_t created, const std::string& model, const std::string& text,
                   const std::string& finish_reason, const Usage& usage) {
  return json{{"id", id},
              {"object", "chat.completion"},
              {"created", created},
              {"model", model},
              {"choices",
               json::array({{{"index", 0},
                             {"message", {{"role", "assistant"}, {"content", text}}},
                             {"logprobs", nullptr},
                             {"finish_reason", finish_value(finish_reason)}}})},
              {"usage", usage.to_json()}};
}

json completion_response(const std::string& id, int64_t created, const std::string& model, const std::string& text,
                         const std::string& finish_reason, const Usage& usage) {
  return json{{"id", id},
              {"object", "text_completion"},
              {"created", created},
              {"model", model},
              {"choices",
               json::array({{{"index", 0}, {"text", text}, {"logprobs", nullptr}, {"finish_reason", finish_value(finish_reason)}}})},
              {"usage", usage.to_json()}};
}

json chat_chunk(const std::string& id, int64_t created, const std::string& model, const std::string& text,
                const std::string& finish_reason, bool role_only, bool with_usage_null) {
  json delta = json::object();
  if (role_only) delta = {{"role", "assistant"}, {"content", ""}};
  else if (!text.empty()) delta = {{"content", text}};
  json chunk{{"id", id},
             {"object", "chat.completion.chunk"},
             {"created", created},
             {"model", model},
             {"choices", json::array({{{"index", 0}, {"delta", delta}, {"logprobs", nullptr},
                                       {"finish_reason", finish_value(finish_reason)}}})}};
  if (with_usage_null) chunk["usage"] = nullptr;
  return chunk;
}

json completion_chunk(const std::string& id, int64_t created, const std::string& model, const std::string& text,
                      const std::string& finish_reason, bool with_usage_null) {
  json chunk{{"id", id},
             {"object", "text_completion"},
             {"created", created},
             {"model", model},
             {"choices", json::array({{{"index", 0}, {"text", text}, {"logprobs", nullptr},
                                       {"finish_reason", finish_value(finish_reason)}}})}};
  if (with_usage_null) chunk["usage"] = nullptr;
  return chunk;
}

json usage_chunk(Endpoint endpoint, const std::string& id, int64_t created, const std::string& model, const Usage& usage) {
  return json{{"id", id},
              {"object", endpoint == Endpoint::chat ? "chat.completion.chunk" : "text_completion"},
              {"created", created},
              {"model", model},
              {"choices", json::array()},
              {"usage", usage.to_json()}};
}

std::string sse_event(const json& payload) {
  // Invalid UTF-8 cannot come from the engine (the streamer releases whole characters), but replace
  // rather than throw if it ever does.
  return "data: " + payload.dump(-1, ' ', false, json::error_handler_t::replace) + "\n\n";
}

}  // namespace octet::server
