// libFuzzer target: `octet bench serve`'s reader of streamed completions on arbitrary bytes, pushed in
// reads whose sizes come from the input. It must never throw, and the events must not depend on
// where the reads cut the stream.
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "fuzz_input.h"
#include "server/completion_stream.h"

namespace {

bool same(const std::vector<octet::server::StreamEvent>& a, const std::vector<octet::server::StreamEvent>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (a[i].done != b[i].done || a[i].text != b[i].text || a[i].completion_tokens != b[i].completion_tokens ||
        a[i].error != b[i].error)
      return false;
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view stream(reinterpret_cast<const char*>(data), size);
  octet::server::CompletionStream whole, pieces;
  const auto expected = whole.push(stream);
  std::vector<octet::server::StreamEvent> got;
  octet::fuzz::for_each_read(stream, 13, [&](std::string_view piece) {
    for (auto& e : pieces.push(piece)) got.push_back(e);
  });
  if (!same(expected, got)) __builtin_trap();
  return 0;
}
