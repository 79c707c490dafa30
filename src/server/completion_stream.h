#pragma once
// Reading a streamed /v1/completions answer (server-sent events) as its bytes arrive, from this
// server or any OpenAI-compatible one (`octet bench serve` measures both): events end at a blank
// line (LF or CRLF), their `data:` lines are joined, `data: [DONE]` ends the stream, comments (`:`)
// and other fields are skipped. Each payload is read as a completion chunk. Never throws: whatever a
// server sends becomes an event, with an error where it is not a chunk.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace octet::server {

struct StreamEvent {
  bool done = false;                         // data: [DONE]
  bool text = false;                         // choices[0].text is a non-empty string
  std::optional<int64_t> completion_tokens;  // usage.completion_tokens, where the chunk has it
  std::string error;                         // an error event's message, or why the payload is not a chunk
};

class CompletionStream {
 public:
  // The events the bytes complete (an event cut between two pushes comes with the second).
  std::vector<StreamEvent> push(std::string_view bytes);

 private:
  void finish_event(std::vector<StreamEvent>& out);
  std::string buffer_;  // bytes after the last whole line
  std::string data_;    // data lines of the event being read, joined by '\n'
  bool has_data_ = false;
};

// One chunk's payload (a JSON object), as above.
StreamEvent read_completion_chunk(std::string_view payload);

}  // namespace octet::server
