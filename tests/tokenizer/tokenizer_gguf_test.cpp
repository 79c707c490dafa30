// Tokenizer::from_gguf on the real SmolLM2 file, against golden ids from Hugging Face's own
// GGUF converter (tools/make_tokenizer_golden.py). Skipped, visibly, when the model is absent.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <random>
#include <set>

#include "formats/gguf.h"
#include "test_support.h"
#include "tokenizer/byte_level.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace octet::tokenizer {
namespace {

class SmolLm2Gguf : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const std::string path = testing::models_dir() + "/SmolLM2-135M-Instruct.Q4_1.gguf";
    if (!std::filesystem::exists(path)) return;
    tokenizer_ = std::make_unique<Tokenizer>(Tokenizer::from_gguf(gguf::File::open(path)));
  }
  static void TearDownTestSuite() { tokenizer_.reset(); }
  void SetUp() override {
    if (!tokenizer_) {
      GTEST_SKIP() << "no " << testing::models_dir() << "/SmolLM2-135M-Instruct.Q4_1.gguf (set OCTET_MODELS)";
    }
  }
  static std::unique_ptr<Tokenizer> tokenizer_;
};
std::unique_ptr<Tokenizer> SmolLm2Gguf::tokenizer_;

TEST_F(SmolLm2Gguf, Metadata) {
  const Tokenizer& tokenizer = *tokenizer_;
  EXPECT_EQ(tokenizer.vocab_size(), 49152);
  EXPECT_EQ(tokenizer.bos_id(), 1);  // <|im_start|>
  EXPECT_FALSE(tokenizer.add_bos());
  EXPECT_EQ(tokenizer.stop_ids(), (std::vector<int32_t>{2, 0}));  // <|im_end|> (eos), <|endoftext|>
  EXPECT_EQ(tokenizer.token_id("<|im_start|>"), 1);
  for (int32_t id = 0; id <= 16; ++id) EXPECT_TRUE(tokenizer.is_special(id)) << id;  // the 17 control tokens
  EXPECT_FALSE(tokenizer.is_special(17));
  EXPECT_EQ(tokenizer.chat_template(), ChatTemplate::chatml);
  // Read out of tokenizer.chat_template, not the built-in fallback (which has the same text).
  EXPECT_EQ(tokenizer.default_system_prompt(), kSmolLmDefaultSystemPrompt);
}

TEST_F(SmolLm2Gguf, MatchesHuggingFaceGolden) {
  const nlohmann::json golden = testing::load_json(testing::fixture_path("smollm2_tokenizer_golden.json"));
  ASSERT_GE(golden["cases"].size(), 20u);
  for (const auto& test_case : golden["cases"]) {
    const std::string text = test_case["text"];
    const std::vector<int32_t> ids = tokenizer_->encode(text, true);
    EXPECT_EQ(ids, test_case["ids"].get<std::vector<int32_t>>()) << "text: " << text;
    if (!test_case.value("lossy", false)) {
      EXPECT_EQ(tokenizer_->decode(ids), text);
    }
  }
}

TEST_F(SmolLm2Gguf, ChatPromptEncodesWithControlTokens) {
  const std::string prompt = tokenizer_->apply_chat_template({{"user", "Hi"}});
  const std::vector<int32_t> ids = tokenizer_->encode(prompt);
  EXPECT_EQ(ids.front(), 1);
  EXPECT_EQ(std::count(ids.begin(), ids.end(), 1), 3);  // system, user, assistant headers
  EXPECT_EQ(std::count(ids.begin(), ids.end(), 2), 2);
  EXPECT_EQ(tokenizer_->decode(ids), prompt);
}

// SmolLM2 has no token for 21 bytes (0x04, 0xF1, 0xFF ...): they are dropped as Hugging Face
// does, never turned into the unknown token (<|endoftext|>, a control token). Every other byte
// string round-trips exactly.
TEST_F(SmolLm2Gguf, RoundTripsEveryRepresentableByteString) {
  std::set<char> missing;
  for (int byte = 0; byte < 256; ++byte) {
    if (!tokenizer_->token_id(byte_to_unicode(static_cast<uint8_t>(byte)))) missing.insert(static_cast<char>(byte));
  }
  EXPECT_EQ(missing.size(), 21u);
  // Hugging Face gives [81, 82] ("a", "b") for "a\x04b": the byte is its own piece, then dropped.
  EXPECT_EQ(tokenizer_->encode("a\x04" "b", false), (std::vector<int32_t>{81, 82}));

  std::mt19937_64 rng(testing::test_seed());
  for (int round = 0; round < 2000; ++round) {
    std::string bytes = testing::random_bytes(rng, 120);
    std::erase_if(bytes, [&](char c) { return missing.count(c) != 0; });
    EXPECT_EQ(tokenizer_->decode(tokenizer_->encode(bytes, false)), bytes) << testing::hex(bytes);
  }
}

}  // namespace
}  // namespace octet::tokenizer
