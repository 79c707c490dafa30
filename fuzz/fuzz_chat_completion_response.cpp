// libFuzzer target: the planner's reading of an OpenAI-compatible server's answers (a completion, or
// an error body) on arbitrary bytes. octet::Error naming the URL is the accepted failure of the
// first; the second must never throw.
#include <cstddef>
#include <cstdint>
#include <string>

#include "common/error.h"
#include "planner/chat_completion_response.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string body(reinterpret_cast<const char*>(data), size);
  try {
    const auto completion = octet::planner::parse_chat_completion(body, "http://fuzz/v1/chat/completions");
    if (completion.prompt_tokens < 0 || completion.completion_tokens < 0) __builtin_trap();
  } catch (const octet::Error& e) {
    if (std::string(e.what()).find("http://fuzz/v1/chat/completions") == std::string::npos) __builtin_trap();
  }
  (void)octet::planner::error_message_of(body);
  return 0;
}
