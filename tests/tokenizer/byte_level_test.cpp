#include "tokenizer/byte_level.h"

#include <gtest/gtest.h>

#include <random>
#include <set>

#include "test_support.h"

namespace octet::tokenizer {
namespace {

TEST(ByteLevel, AlphabetMatchesGpt2) {
  std::set<std::string> seen;
  for (int byte = 0; byte < 256; ++byte) seen.insert(byte_to_unicode(static_cast<uint8_t>(byte)));
  EXPECT_EQ(seen.size(), 256u);
  // Spot values of GPT-2's bytes_to_unicode().
  EXPECT_EQ(byte_to_unicode('A'), "A");
  EXPECT_EQ(byte_to_unicode(' '), "\xC4\xA0");     // U+0120 Ġ
  EXPECT_EQ(byte_to_unicode('\n'), "\xC4\x8A");    // U+010A Ċ
  EXPECT_EQ(byte_to_unicode(0), "\xC4\x80");       // U+0100
  EXPECT_EQ(byte_to_unicode(0x7F), "\xC4\xA1");    // U+0121
  EXPECT_EQ(byte_to_unicode(0xAD), "\xC5\x83");    // U+0143, the last remapped byte
  EXPECT_EQ(byte_to_unicode(0xE9), "\xC3\xA9");    // é maps to itself
}

TEST(ByteLevel, RoundTripsRandomBytes) {
  std::mt19937_64 rng(testing::test_seed());
  for (int round = 0; round < 500; ++round) {
    const std::string bytes = testing::random_bytes(rng, 64);
    EXPECT_EQ(byte_level_to_bytes(bytes_to_byte_level(bytes)), bytes) << testing::hex(bytes);
  }
}

TEST(ByteLevel, ForeignCodePointsPassThrough) {
  EXPECT_EQ(byte_level_to_bytes("\xC4\xA0" "中"), " 中");
}

}  // namespace
}  // namespace octet::tokenizer
