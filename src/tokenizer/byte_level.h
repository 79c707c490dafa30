#pragma once
// GPT-2's byte-level alphabet: each of the 256 byte values maps to one printable Unicode character,
// so that BPE tokens are strings of those characters.
#include <optional>
#include <string>
#include <string_view>

namespace octet::tokenizer {

// Bytes → the UTF-8 encoding of their byte-level characters.
std::string bytes_to_byte_level(std::string_view bytes);
// The inverse; nullopt when text holds a character outside the byte-level alphabet.
std::optional<std::string> byte_level_to_bytes(std::string_view text);

}  // namespace octet::tokenizer
