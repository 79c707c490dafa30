// libFuzzer target: the tokenizer on arbitrary text (any bytes: the CLI takes them raw), with the
// default model's vocabulary (SmolLM2's byte-level BPE from its GGUF; OCTET_FUZZ_GGUF names another).
// Checked on every input: ids inside the vocabulary; decode(encode(text)) gives the text back, with
// special tokens matched or not (byte-level BPE loses nothing but the bytes the vocabulary has no
// token for, which become U+FFFD); the UTF-8 streamer that releases
// generated text passes the bytes through unchanged whatever the chunking; the chat template renders.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>

#include "common/error.h"
#include "fuzz_input.h"
#include "formats/gguf.h"
#include "tokenizer/byte_level.h"
#include "tokenizer/tokenizer.h"

namespace {

std::unique_ptr<octet::tokenizer::Tokenizer> tokenizer;

// What decode(encode(text)) must give: the text, except that a byte without a token of its own
// (SmolLM2 lacks 21 of the 256, control bytes and bytes that never occur in UTF-8) becomes U+FFFD.
std::string expected_round_trip(std::string_view text) {
  std::string out;
  for (const char c : text) {
    if (tokenizer->token_id(octet::tokenizer::bytes_to_byte_level(std::string(1, c)))) out += c;
    else out += "\xEF\xBF\xBD";
  }
  return out;
}

void check_round_trip(std::string_view text, bool allow_special, const std::string& expected) {
  const auto ids = tokenizer->encode(text, allow_special);
  for (int32_t id : ids)
    if (id < 0 || id >= tokenizer->vocab_size()) __builtin_trap();
  if (tokenizer->decode(ids) != expected) __builtin_trap();
}

// Pushes the text in chunks whose sizes come from the text itself; the output must be the input.
void check_streamer(std::string_view text) {
  octet::tokenizer::Utf8Streamer streamer;
  std::string out;
  octet::fuzz::for_each_read(text, 5, [&](std::string_view piece) { out += streamer.push(piece); });
  out += streamer.flush();
  if (out != text) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  const char* path = std::getenv("OCTET_FUZZ_GGUF");
  const std::string gguf = path ? path : OCTET_SOURCE_DIR "/models/SmolLM2-135M-Instruct.Q4_1.gguf";
  try {
    tokenizer = std::make_unique<octet::tokenizer::Tokenizer>(
        octet::tokenizer::Tokenizer::from_gguf(octet::gguf::File::open(gguf)));
  } catch (const octet::Error& e) {
    std::fprintf(stderr, "fuzz_tokenizer needs a GGUF with a tokenizer (scripts/setup.sh fetches it): %s\n", e.what());
    std::exit(1);
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const std::string expected = expected_round_trip(text);
  check_round_trip(text, true, expected);
  check_round_trip(text, false, expected);
  check_streamer(text);
  (void)tokenizer->apply_chat_template({{"system", std::string(text)}, {"user", std::string(text)}}, true);
  return 0;
}
