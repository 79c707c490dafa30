#include "tokenizer/byte_level.h"

#include <array>

#include "tokenizer/utf8.h"

namespace octet::tokenizer {
namespace {

bool maps_to_itself(int byte) {
  return (byte >= '!' && byte <= '~') || (byte >= 0xA1 && byte <= 0xAC) || (byte >= 0xAE && byte <= 0xFF);
}

std::string encode_code_point(uint32_t code_point) {
  std::string out;
  if (code_point < 0x80) {
    out.push_back(static_cast<char>(code_point));
  } else {  // the alphabet stays below U+0800, so two bytes suffice
    out.push_back(static_cast<char>(0xC0 | (code_point >> 6)));
    out.push_back(static_cast<char>(0x80 | (code_point & 0x3F)));
  }
  return out;
}

struct Alphabet {
  std::array<std::string, 256> byte_text;
  std::array<int16_t, 0x200> byte_of_code_point;  // -1 outside the alphabet

  Alphabet() {
    byte_of_code_point.fill(-1);
    uint32_t next_code_point = 0x100;
    for (int byte = 0; byte < 256; ++byte) {
      const uint32_t code_point = maps_to_itself(byte) ? byte : next_code_point++;
      byte_text[byte] = encode_code_point(code_point);
      byte_of_code_point[code_point] = static_cast<int16_t>(byte);
    }
  }
};

const Alphabet& alphabet() {
  static const Alphabet instance;
  return instance;
}

}  // namespace

const std::string& byte_to_unicode(uint8_t byte) { return alphabet().byte_text[byte]; }

std::string bytes_to_byte_level(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char byte : bytes) out.append(byte_to_unicode(static_cast<uint8_t>(byte)));
  return out;
}

std::string byte_level_to_bytes(std::string_view text) {
  const Alphabet& table = alphabet();
  std::string out;
  out.reserve(text.size());
  size_t position = 0;
  while (position < text.size()) {
    const Utf8Scan scan = scan_utf8(text.substr(position));
    if (scan.kind != Utf8Scan::valid) {
      out.append(text.substr(position, scan.length));
      position += scan.length;
      continue;
    }
    const auto* p = reinterpret_cast<const uint8_t*>(text.data() + position);
    uint32_t code_point = p[0];
    if (scan.length == 2) code_point = ((p[0] & 0x1Fu) << 6) | (p[1] & 0x3Fu);
    if (scan.length <= 2 && code_point < table.byte_of_code_point.size() &&
        table.byte_of_code_point[code_point] >= 0) {
      out.push_back(static_cast<char>(table.byte_of_code_point[code_point]));
    } else {
      out.append(text.substr(position, scan.length));
    }
    position += scan.length;
  }
  return out;
}

}  // namespace octet::tokenizer
