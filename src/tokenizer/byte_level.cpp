#include "tokenizer/byte_level.h"

#include <array>
#include <cstdint>
#include <unordered_map>

namespace octet::tokenizer {
namespace {

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

struct Alphabet {
  std::array<std::string, 256> byte_to_text;
  std::unordered_map<uint32_t, uint8_t> codepoint_to_byte;
};

// Printable Latin-1 bytes map to themselves; the rest (controls, space, …) to 256, 257, … in order.
const Alphabet& alphabet() {
  static const Alphabet a = [] {
    Alphabet result;
    uint32_t next = 256;
    for (uint32_t b = 0; b < 256; ++b) {
      const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
      const uint32_t cp = printable ? b : next++;
      append_utf8(result.byte_to_text[b], cp);
      result.codepoint_to_byte[cp] = static_cast<uint8_t>(b);
    }
    return result;
  }();
  return a;
}

}  // namespace

std::string bytes_to_byte_level(std::string_view bytes) {
  const auto& a = alphabet();
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) out += a.byte_to_text[c];
  return out;
}

std::optional<std::string> byte_level_to_bytes(std::string_view text) {
  const auto& a = alphabet();
  std::string out;
  size_t i = 0;
  while (i < text.size()) {
    const auto c = static_cast<unsigned char>(text[i]);
    uint32_t cp;
    size_t length;
    if (c < 0x80) {
      cp = c;
      length = 1;
    } else if ((c & 0xE0) == 0xC0 && i + 1 < text.size()) {
      cp = ((c & 0x1Fu) << 6) | (static_cast<unsigned char>(text[i + 1]) & 0x3Fu);
      length = 2;
    } else if ((c & 0xF0) == 0xE0 && i + 2 < text.size()) {
      cp = ((c & 0x0Fu) << 12) | ((static_cast<unsigned char>(text[i + 1]) & 0x3Fu) << 6) |
           (static_cast<unsigned char>(text[i + 2]) & 0x3Fu);
      length = 3;
    } else {
      return std::nullopt;
    }
    auto it = a.codepoint_to_byte.find(cp);
    if (it == a.codepoint_to_byte.end()) return std::nullopt;
    out += static_cast<char>(it->second);
    i += length;
  }
  return out;
}

}  // namespace octet::tokenizer
