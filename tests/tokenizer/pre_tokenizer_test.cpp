#include "tokenizer/pre_tokenizer.h"

#include <gtest/gtest.h>

#include <random>

#include "common/error.h"
#include "test_support.h"
#include "tokenizer/tokenizer.h"

namespace octet::tokenizer {
namespace {

std::vector<std::string> split(const PreTokenizerChain& chain, std::string_view text) {
  std::vector<std::string_view> views;
  chain.split(text, views);
  return {views.begin(), views.end()};
}

// Golden pieces from Hugging Face tokenizers (tools/make_tokenizer_golden.py).
void expect_golden_pieces(PreTokenizer kind, const std::string& fixture) {
  const PreTokenizerChain chain(pre_tokenizer_patterns(kind));
  const nlohmann::json golden = testing::load_json(testing::fixture_path(fixture));
  ASSERT_GE(golden["cases"].size(), 20u);
  for (const auto& test_case : golden["cases"]) {
    const std::string text = test_case["text"];
    EXPECT_EQ(split(chain, text), test_case["pieces"].get<std::vector<std::string>>()) << "text: " << text;
  }
}

TEST(PreTokenizer, Llama3MatchesHuggingFaceSplit) {
  expect_golden_pieces(PreTokenizer::llama3, "llama3_pretokenizer_golden.json");
}

TEST(PreTokenizer, SmolLmMatchesHuggingFaceSequence) {
  expect_golden_pieces(PreTokenizer::smollm, "smollm_pretokenizer_golden.json");
}

TEST(PreTokenizer, DigitsAreIsolatedBeforeTheRegex) {
  const PreTokenizerChain smollm(pre_tokenizer_patterns(PreTokenizer::smollm));
  const PreTokenizerChain gpt2(pre_tokenizer_patterns(PreTokenizer::gpt2));
  // The regex's lookahead sees the end of the piece "x  ", so both spaces stay together.
  EXPECT_EQ(split(smollm, "x  12"), (std::vector<std::string>{"x", "  ", "1", "2"}));
  EXPECT_EQ(split(gpt2, "x  12"), (std::vector<std::string>{"x", " ", " 12"}));
}

TEST(PreTokenizer, UnicodeCategoriesNotAscii) {
  const PreTokenizerChain gpt2(pre_tokenizer_patterns(PreTokenizer::gpt2));
  // U+3000 is \s, ٣ is \p{N}, ü is \p{L}: ASCII classes would split all three differently.
  EXPECT_EQ(split(gpt2, "über\xE3\x80\x80٣٤"), (std::vector<std::string>{"über", "\xE3\x80\x80", "٣٤"}));
}

TEST(PreTokenizer, InvalidBytesBecomeTheirOwnPieces) {
  const PreTokenizerChain chain(pre_tokenizer_patterns(PreTokenizer::llama3));
  EXPECT_EQ(split(chain, "ab\xFF" "cd \xE4\xB8 e"),
            (std::vector<std::string>{"ab", "\xFF", "cd", " ", "\xE4", "\xB8", " e"}));
  EXPECT_EQ(split(chain, "\xED\xA0\x80"), (std::vector<std::string>{"\xED", "\xA0", "\x80"}));
}

TEST(PreTokenizer, PiecesCoverEveryByteOfRandomInput) {
  std::mt19937_64 rng(testing::test_seed());
  for (PreTokenizer kind : {PreTokenizer::smollm, PreTokenizer::gpt2, PreTokenizer::llama3}) {
    const PreTokenizerChain chain(pre_tokenizer_patterns(kind));
    for (int round = 0; round < 300; ++round) {
      const std::string text = testing::random_bytes(rng, 80);
      std::string joined;
      for (const std::string& piece : split(chain, text)) {
        EXPECT_FALSE(piece.empty());
        joined += piece;
      }
      EXPECT_EQ(joined, text) << testing::hex(text);
    }
  }
}

TEST(PreTokenizer, BadPatternNamesItself) {
  try {
    PreTokenizerChain chain({"(unclosed"});
    FAIL() << "expected octet::Error";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("(unclosed"), std::string::npos) << error.what();
  }
}

}  // namespace
}  // namespace octet::tokenizer
