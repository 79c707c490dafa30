#include "tokenizer/utf8.h"

#include <cstdint>

#include "tokenizer/tokenizer.h"

namespace octet::tokenizer {

Utf8Scan scan_utf8(std::string_view text) {
  const auto lead = static_cast<uint8_t>(text[0]);
  if (lead < 0x80) return {Utf8Scan::valid, 1};
  // The allowed range of the second byte is what rules out overlongs, surrogates and > U+10FFFF
  // (Unicode table 3-7); later bytes are always 80..BF.
  size_t need = 0;
  uint8_t second_low = 0x80, second_high = 0xBF;
  if (lead >= 0xC2 && lead <= 0xDF) {
    need = 2;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    need = 3;
    if (lead == 0xE0) second_low = 0xA0;
    if (lead == 0xED) second_high = 0x9F;
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    need = 4;
    if (lead == 0xF0) second_low = 0x90;
    if (lead == 0xF4) second_high = 0x8F;
  } else {
    return {Utf8Scan::invalid, 1};
  }
  for (size_t i = 1; i < need; ++i) {
    if (i >= text.size()) return {Utf8Scan::truncated, text.size()};
    const auto byte = static_cast<uint8_t>(text[i]);
    const uint8_t low = i == 1 ? second_low : 0x80;
    const uint8_t high = i == 1 ? second_high : 0xBF;
    if (byte < low || byte > high) return {Utf8Scan::invalid, i};
  }
  return {Utf8Scan::valid, need};
}

size_t valid_utf8_prefix(std::string_view text) {
  size_t position = 0;
  while (position < text.size()) {
    const Utf8Scan scan = scan_utf8(text.substr(position));
    if (scan.kind != Utf8Scan::valid) break;
    position += scan.length;
  }
  return position;
}

namespace {
constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD
}

std::string Utf8Streamer::push(std::string_view bytes) {
  pending_.append(bytes);
  std::string out;
  size_t position = 0;
  while (position < pending_.size()) {
    const Utf8Scan scan = scan_utf8(std::string_view(pending_).substr(position));
    if (scan.kind == Utf8Scan::truncated) break;  // may still be completed by the next piece
    if (scan.kind == Utf8Scan::valid) out.append(pending_, position, scan.length);
    else out.append(kReplacement);
    position += scan.length;
  }
  pending_.erase(0, position);
  return out;
}

std::string Utf8Streamer::flush() {
  std::string out = push("");
  if (!pending_.empty()) out.append(kReplacement);  // a truncated sequence is one maximal subpart
  pending_.clear();
  return out;
}

}  // namespace octet::tokenizer
