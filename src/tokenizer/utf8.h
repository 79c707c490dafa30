#pragma once
// Strict UTF-8 scanning (no overlongs, surrogates or code points past U+10FFFF), the same notion
// of validity PCRE2 enforces, so the pre-tokenizer can hand it only text it accepts.
#include <cstddef>
#include <string_view>

namespace octet::tokenizer {

struct Utf8Scan {
  enum Kind { valid, truncated, invalid };
  Kind kind;
  // valid: bytes in the sequence; truncated: all of text (a proper prefix of some sequence);
  // invalid: bytes in the maximal subpart that cannot be completed (at least 1).
  size_t length;
};

// Classifies the sequence at the start of text (text must not be empty).
Utf8Scan scan_utf8(std::string_view text);

// Length of the longest valid UTF-8 prefix of text.
size_t valid_utf8_prefix(std::string_view text);

}  // namespace octet::tokenizer
