#include <gtest/gtest.h>

#include <filesystem>
#include <random>

#include "common/error.h"
#include "test_support.h"
#include "tokenizer/byte_level.h"
#include "tokenizer/tokenizer.h"

namespace octet::tokenizer {
namespace {

using testing::fixture_path;
using testing::load_json;

Tokenizer tiny(const std::string& name) {
  return Tokenizer::from_hf_files(fixture_path(name + "/tokenizer.json"));
}

// Golden ids from Hugging Face tokenizers over the same tokenizer.json
// (tools/make_tokenizer_golden.py).
void expect_golden(const Tokenizer& tokenizer, const std::string& golden_path) {
  const nlohmann::json golden = load_json(golden_path);
  ASSERT_GE(golden["cases"].size(), 20u);
  for (const auto& test_case : golden["cases"]) {
    const std::string text = test_case["text"];
    const std::vector<int32_t> ids = tokenizer.encode(text, true);
    EXPECT_EQ(ids, test_case["ids"].get<std::vector<int32_t>>()) << "text: " << text;
    // "lossy": the vocabulary has no token for some byte of the text (SmolLM2 lacks 21).
    if (!test_case.value("lossy", false)) {
      EXPECT_EQ(tokenizer.decode(ids), text);
    }
  }
}

TEST(TokenizerHf, TinySmolLmMatchesHuggingFace) {
  expect_golden(tiny("tiny_smollm_tokenizer"), fixture_path("tiny_smollm_tokenizer/golden.json"));
}

TEST(TokenizerHf, TinyLlama3MatchesHuggingFace) {
  expect_golden(tiny("tiny_llama3_tokenizer"), fixture_path("tiny_llama3_tokenizer/golden.json"));
}

// Older tokenizer.json files write merges as "left right" strings instead of pairs.
TEST(TokenizerHf, MergesAsStrings) {
  nlohmann::json json = load_json(fixture_path("tiny_smollm_tokenizer/tokenizer.json"));
  nlohmann::json merges = nlohmann::json::array();
  for (const auto& pair : json["model"]["merges"]) merges.push_back(pair[0].get<std::string>() + " " + pair[1].get<std::string>());
  ASSERT_FALSE(merges.empty());
  json["model"]["merges"] = merges;
  expect_golden(Tokenizer::from_hf_json(json, "merges-as-strings"), fixture_path("tiny_smollm_tokenizer/golden.json"));
}

TEST(TokenizerHf, SpecialTokensAndStops) {
  const Tokenizer smollm = tiny("tiny_smollm_tokenizer");
  EXPECT_EQ(smollm.bos_id(), 1);  // tokenizer_config.json names <|im_start|>
  EXPECT_FALSE(smollm.add_bos());
  EXPECT_EQ(smollm.stop_ids(), (std::vector<int32_t>{2, 0}));  // <|im_end|> (eos), <|endoftext|>
  EXPECT_TRUE(smollm.is_special(1));
  EXPECT_FALSE(smollm.is_special(100));
  EXPECT_EQ(smollm.token_bytes(1), "<|im_start|>");
  EXPECT_EQ(smollm.token_bytes(*smollm.token_id(byte_to_unicode(' '))), " ");

  const Tokenizer llama3 = tiny("tiny_llama3_tokenizer");
  EXPECT_EQ(llama3.bos_id(), llama3.token_id("<|begin_of_text|>"));
  EXPECT_TRUE(llama3.add_bos());
  EXPECT_EQ(llama3.stop_ids(), (std::vector<int32_t>{*llama3.token_id("<|eot_id|>"), *llama3.token_id("<|end_of_text|>")}));
}

TEST(TokenizerHf, SpecialsOnlyWhenAllowed) {
  const Tokenizer tokenizer = tiny("tiny_smollm_tokenizer");
  const std::string text = "<|im_start|>user\nHi<|im_end|>";
  const std::vector<int32_t> with = tokenizer.encode(text, true);
  const std::vector<int32_t> without = tokenizer.encode(text, false);
  EXPECT_EQ(with.front(), 1);
  EXPECT_EQ(with.back(), 2);
  for (int32_t id : without) EXPECT_FALSE(tokenizer.is_special(id)) << id;
  EXPECT_EQ(tokenizer.decode(with), text);
  EXPECT_EQ(tokenizer.decode(without), text);
}

TEST(TokenizerHf, LongestSpecialWins) {
  TokenizerSpec spec;
  spec.source = "longest-special";
  for (int byte = 0; byte < 256; ++byte) spec.tokens.push_back(byte_to_unicode(static_cast<uint8_t>(byte)));
  spec.token_types.assign(256, TokenType::normal);
  for (const char* special : {"<s>", "<s>x", "<s>xy"}) {
    spec.tokens.push_back(special);
    spec.token_types.push_back(TokenType::user_defined);
  }
  const Tokenizer tokenizer = Tokenizer::from_spec(spec);
  EXPECT_EQ(tokenizer.encode("<s>xy<s>x<s>a"), (std::vector<int32_t>{258, 257, 256, 'a'}));
}

// decode(encode(s)) == s for any bytes: invalid UTF-8, lone continuation bytes, NULs, specials.
TEST(TokenizerHf, RoundTripsRandomBytes) {
  std::mt19937_64 rng(testing::test_seed());
  for (const char* name : {"tiny_smollm_tokenizer", "tiny_llama3_tokenizer"}) {
    const Tokenizer tokenizer = tiny(name);
    for (int round = 0; round < 1000; ++round) {
      const std::string bytes = testing::random_bytes(rng, 100);
      EXPECT_EQ(tokenizer.decode(tokenizer.encode(bytes, false)), bytes) << name << ": " << testing::hex(bytes);
      EXPECT_EQ(tokenizer.decode(tokenizer.encode(bytes, true)), bytes) << name << ": " << testing::hex(bytes);
    }
  }
}

TEST(TokenizerHf, RejectsWhatItCannotReproduce) {
  nlohmann::json json = load_json(fixture_path("tiny_smollm_tokenizer/tokenizer.json"));
  nlohmann::json whitespace = json;
  whitespace["pre_tokenizer"] = {{"type", "Whitespace"}};
  EXPECT_THROW(Tokenizer::from_hf_json(whitespace, "whitespace"), Error);
  nlohmann::json fallback = json;
  fallback["model"]["byte_fallback"] = true;
  EXPECT_THROW(Tokenizer::from_hf_json(fallback, "byte-fallback"), Error);
  nlohmann::json normalized = json;
  normalized["normalizer"] = {{"type", "NFC"}};
  EXPECT_THROW(Tokenizer::from_hf_json(normalized, "normalizer"), Error);
  EXPECT_THROW(Tokenizer::from_hf_files(fixture_path("no_such_dir/tokenizer.json")), Error);
  const Tokenizer tokenizer = Tokenizer::from_hf_json(json, "tiny");
  EXPECT_THROW(tokenizer.decode({tokenizer.vocab_size()}), Error);
  EXPECT_THROW(tokenizer.decode({-1}), Error);
}

// The full SmolLM2 vocabulary as a Hugging Face directory; `tools/make_tokenizer_golden.py
// --hf-dir $OCTET_MODELS/SmolLM2-135M-Instruct-tokenizer` writes one (about 2 MB, not committed).
TEST(TokenizerHf, SmolLm2DirectoryMatchesGolden) {
  const std::string path = testing::models_dir() + "/SmolLM2-135M-Instruct-tokenizer/tokenizer.json";
  if (!std::filesystem::exists(path)) GTEST_SKIP() << "no " << path << " (see tools/make_tokenizer_golden.py --hf-dir)";
  const Tokenizer tokenizer = Tokenizer::from_hf_files(path);
  EXPECT_EQ(tokenizer.vocab_size(), 49152);
  expect_golden(tokenizer, fixture_path("smollm2_tokenizer_golden.json"));
}

}  // namespace
}  // namespace octet::tokenizer
