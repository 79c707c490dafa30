// libFuzzer target: the server's request parser (/v1/chat/completions and /v1/completions bodies) on
// arbitrary bytes, then the response and stream objects built from what it accepted. ApiError (a 400
// naming the field) is the accepted failure; any other exception, a crash or a sanitizer report is a
// finding, and so is an accepted request whose values break the parser's own bounds.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>

#include "server/openai_protocol.h"

namespace {

using octet::server::Endpoint;

void check_bounds(const octet::server::ApiRequest& r) {
  const auto& p = r.params;
  const bool ok = std::isfinite(p.temperature) && p.temperature >= 0 && p.temperature <= 2 && p.top_p > 0 &&
                  p.top_p <= 1 && p.top_k >= 0 && p.min_p >= 0 && p.min_p <= 1 && p.repetition_penalty > 0 &&
                  p.repetition_penalty <= 10 && p.stop.size() <= 16 && (!r.max_tokens || *r.max_tokens >= 1) &&
                  (r.endpoint != Endpoint::chat || !r.messages.empty()) && (!r.include_usage || r.stream);
  if (!ok) __builtin_trap();
  for (const auto& stop : p.stop)
    if (stop.empty()) __builtin_trap();
}

// What the server does with an accepted request's text: echo it in responses and chunks.
void build_answers(const octet::server::ApiRequest& r) {
  std::string text = r.prompt;
  for (const auto& m : r.messages) text += m.content;
  const octet::server::Usage usage{static_cast<int64_t>(r.prompt_ids.size()), 1};
  (void)octet::server::sse_event(octet::server::chat_chunk("id", 0, r.model, text, "stop", false, r.include_usage));
  (void)octet::server::sse_event(octet::server::completion_chunk("id", 0, r.model, text, "", true));
  (void)octet::server::sse_event(octet::server::usage_chunk(r.endpoint, "id", 0, r.model, usage));
  (void)octet::server::chat_response("id", 0, r.model, text, "length", usage).dump();
  (void)octet::server::completion_response("id", 0, r.model, text, "stop", usage).dump();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string body(reinterpret_cast<const char*>(data), size);
  const octet::GenerationParams defaults;
  for (const Endpoint endpoint : {Endpoint::chat, Endpoint::completion}) {
    try {
      const auto request = octet::server::parse_request(endpoint, body, defaults);
      check_bounds(request);
      build_answers(request);
    } catch (const octet::server::ApiError& e) {
      if (e.status != 400) __builtin_trap();
      (void)e.body().dump();
    }
  }
  return 0;
}
