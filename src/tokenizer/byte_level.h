#pragma once
// The GPT-2 byte-level alphabet: every byte maps to one printable code point, so a BPE vocabulary
// of strings can hold arbitrary bytes. Printable Latin-1 bytes map to themselves; the rest
// (controls, space, 0x7F-0xA0, 0xAD) map in order to U+0100 onwards (space becomes U+0120 'Ġ').
#include <cstdint>
#include <string>
#include <string_view>

namespace octet::tokenizer {

// The UTF-8 text of the code point that stands for byte.
const std::string& byte_to_unicode(uint8_t byte);

// Byte-level text for raw bytes.
std::string bytes_to_byte_level(std::string_view bytes);

// Raw bytes for byte-level text. Code points outside the alphabet (and invalid UTF-8) are copied
// through unchanged, as Hugging Face's ByteLevel decoder does.
std::string byte_level_to_bytes(std::string_view text);

}  // namespace octet::tokenizer
