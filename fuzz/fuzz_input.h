#pragma once
// Shapes the fuzz targets give their input: parts separated by a marker (the files of a folder, the
// lines of overrides), and reads of varying sizes (bytes arriving from a socket or a model).
#include <algorithm>
#include <cstddef>
#include <string_view>
#include <vector>

namespace octet::fuzz {

// The text cut at every separator (n separators: n + 1 parts, some possibly empty).
inline std::vector<std::string_view> split_parts(std::string_view text, std::string_view separator) {
  std::vector<std::string_view> parts;
  for (;;) {
    const size_t end = text.find(separator);
    parts.push_back(text.substr(0, end));
    if (end == std::string_view::npos) return parts;
    text.remove_prefix(end + separator.size());
  }
}

// Calls read(piece) on consecutive pieces covering the text: the first one byte, each next 1 to
// `most` bytes, sized by the previous piece's last byte (so the fuzzer steers where reads cut).
template <typename Read>
void for_each_read(std::string_view text, size_t most, Read read) {
  size_t at = 0, step = 1;
  while (at < text.size()) {
    const size_t n = std::min(step, text.size() - at);
    read(text.substr(at, n));
    at += n;
    step = 1 + static_cast<unsigned char>(text[at - 1]) % most;
  }
}

}  // namespace octet::fuzz
