#include <gtest/gtest.h>

#include <random>
#include <string>

#include "test_support.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/utf8.h"

namespace octet::tokenizer {
namespace {

const std::string kFffd = "\xEF\xBF\xBD";

std::string stream_all(const std::string& bytes) {
  Utf8Streamer streamer;
  std::string text = streamer.push(bytes);
  return text + streamer.flush();
}

TEST(Utf8Streamer, HoldsBackIncompleteSequences) {
  Utf8Streamer streamer;
  const std::string emoji = "\xF0\x9F\x98\x80";  // U+1F600
  EXPECT_EQ(streamer.push("ab"), "ab");
  EXPECT_EQ(streamer.push(emoji.substr(0, 1)), "");
  EXPECT_EQ(streamer.push(emoji.substr(1, 2)), "");
  EXPECT_EQ(streamer.push(emoji.substr(3) + "c\xE4"), emoji + "c");
  EXPECT_EQ(streamer.push("\xB8\xAD"), "\xE4\xB8\xAD");  // 中
  EXPECT_EQ(streamer.flush(), "");
}

// Expected strings are Python's bytes.decode("utf-8", errors="replace") of the same input: one
// U+FFFD per maximal subpart of an ill-formed sequence (Unicode §3.9).
TEST(Utf8Streamer, ReplacesInvalidBytesLikePython) {
  EXPECT_EQ(stream_all("a\xFF" "b"), "a" + kFffd + "b");
  EXPECT_EQ(stream_all("\xE4\xB8"), kFffd);
  EXPECT_EQ(stream_all("\xE4\xB8" "a"), kFffd + "a");
  EXPECT_EQ(stream_all("\xF0\x9F\x98"), kFffd);
  EXPECT_EQ(stream_all("\xC0\xAF"), kFffd + kFffd);                     // overlong
  EXPECT_EQ(stream_all("\xED\xA0\x80"), kFffd + kFffd + kFffd);         // surrogate
  EXPECT_EQ(stream_all("\xF4\x90\x80\x80"), kFffd + kFffd + kFffd + kFffd);  // past U+10FFFF
  EXPECT_EQ(stream_all("\xE0\x80\xAF"), kFffd + kFffd + kFffd);
  EXPECT_EQ(stream_all("\xF0\x9F\x98\x80\x80"), "\xF0\x9F\x98\x80" + kFffd);
  EXPECT_EQ(stream_all("\xC3"), kFffd);
}

TEST(Utf8Streamer, InvalidByteReleasedAsSoonAsItCannotContinue) {
  Utf8Streamer streamer;
  EXPECT_EQ(streamer.push("\xE4"), "");
  EXPECT_EQ(streamer.push("x"), kFffd + "x");
}

// Any chunking of the same bytes gives the same text, and the text is valid UTF-8; for valid
// input it is the input itself.
TEST(Utf8Streamer, ChunkingDoesNotMatter) {
  std::mt19937_64 rng(testing::test_seed());
  for (int round = 0; round < 2000; ++round) {
    const std::string bytes = testing::random_bytes(rng, 40);
    const std::string whole = stream_all(bytes);
    EXPECT_EQ(valid_utf8_prefix(whole), whole.size()) << testing::hex(bytes);
    if (valid_utf8_prefix(bytes) == bytes.size()) {
      EXPECT_EQ(whole, bytes);
    }
    Utf8Streamer streamer;
    std::string streamed;
    size_t position = 0;
    while (position < bytes.size()) {
      const size_t chunk = std::uniform_int_distribution<size_t>(0, 5)(rng);
      streamed += streamer.push(std::string_view(bytes).substr(position, chunk));
      position += chunk;
    }
    streamed += streamer.flush();
    EXPECT_EQ(streamed, whole) << testing::hex(bytes);
  }
}

}  // namespace
}  // namespace octet::tokenizer
