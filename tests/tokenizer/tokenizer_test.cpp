// The tokenizer against Hugging Face's tokenizers (golden ids from tools/make_tokenizer_golden.py),
// plus round-trip properties on random bytes and the chat templates.
#include "formats/gguf.h"
#include "support/error_text.h"
#include "support/model_files.h"
#include "support/random.h"
#include "tokenizer/byte_level.h"
#include "tokenizer/pre_tokenizer.h"
#include "tokenizer/tokenizer.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <fstream>

namespace octet::tokenizer {
namespace {

nlohmann::json golden() {
  std::ifstream in(testing::fixture_path("tokenizer_golden.json"));
  return nlohmann::json::parse(in);
}

Tokenizer smollm2(const std::string& path) { return Tokenizer::from_gguf(gguf::File::open(path)); }

TEST(Tokenizer, SmolLM2IdsMatchHuggingFace) {
  OCTET_REQUIRE_SMOLLM2(path);
  Tokenizer tok = smollm2(path);
  auto cases = golden()["smollm2"];
  ASSERT_GE(cases.size(), 20u);
  for (const auto& c : cases) {
    const std::string text = c["text"];
    EXPECT_EQ(tok.encode(text), c["ids"].get<std::vector<int32_t>>()) << text;
    EXPECT_EQ(tok.decode(c["ids"].get<std::vector<int32_t>>()), text);
  }
}

TEST(Tokenizer, Llama3PreTokenizerPiecesMatchHuggingFace) {
  PreTokenizer llama3(PreTokenizerKind::llama3);
  for (const auto& c : golden()["llama3_pieces"]) {
    const std::string text = c["text"];
    EXPECT_EQ(llama3.split(text), c["pieces"].get<std::vector<std::string>>()) << text;
  }
}

// Bytes with a token round-trip exactly; the few a vocabulary lacks come back as U+FFFD.
TEST(Tokenizer, RandomBytesRoundTrip) {
  OCTET_REQUIRE_SMOLLM2(path);
  Tokenizer tok = smollm2(path);
  std::mt19937_64 rng(testing::test_seed("Tokenizer.RandomBytes"));
  std::uniform_int_distribution<int> length(0, 64), byte(0, 255), kind(0, 3);
  const std::vector<std::string> fragments = {"é", "😀", "中文", " the", "123", "\n\n", "  ", "<|im_end|>"};
  for (int i = 0; i < 500; ++i) {
    std::string text;
    for (int n = length(rng); n > 0; --n) {
      if (kind(rng) == 0) text += fragments[static_cast<size_t>(byte(rng)) % fragments.size()];
      else text += static_cast<char>(byte(rng));  // includes invalid UTF-8
    }
    std::string expected;
    for (char c : text) {
      if (tok.token_id(bytes_to_byte_level(std::string(1, c)))) expected += c;
      else expected += "\xEF\xBF\xBD";
    }
    EXPECT_EQ(tok.decode(tok.encode(text, /*allow_special=*/false)), expected);
  }
}

TEST(Tokenizer, SpecialTokensAreMatchedWholeOnlyWhenAllowed) {
  OCTET_REQUIRE_SMOLLM2(path);
  Tokenizer tok = smollm2(path);
  const auto im_end = tok.token_id("<|im_end|>");
  ASSERT_TRUE(im_end);
  EXPECT_EQ(tok.encode("<|im_end|>"), std::vector<int32_t>{*im_end});
  auto plain = tok.encode("<|im_end|>", /*allow_special=*/false);
  EXPECT_GT(plain.size(), 1u);
  EXPECT_EQ(std::count(plain.begin(), plain.end(), *im_end), 0);
  // End of turn and end of text stop generation.
  EXPECT_NE(std::find(tok.stop_ids().begin(), tok.stop_ids().end(), *im_end), tok.stop_ids().end());
}

// Inputs as long as a request body may be (1 MB): a run of letters, of spaces and of punctuation is
// one piece each, and thousands of special tokens. The merge and the special-token search were
// quadratic in these lengths (hours); now they take well under a second.
TEST(Tokenizer, LongRunsAndManySpecialTokensRoundTrip) {
  OCTET_REQUIRE_SMOLLM2(path);
  Tokenizer tok = smollm2(path);
  const auto im_end = tok.token_id("<|im_end|>");
  ASSERT_TRUE(im_end);
  std::string text = std::string(200000, 'x') + std::string(200000, ' ') + std::string(100000, '!') + "abc";
  for (int i = 0; i < 20000; ++i) text += i % 2 ? "<|im_end|>" : "<|im_end|>hi ";
  const auto ids = tok.encode(text);
  EXPECT_EQ(std::count(ids.begin(), ids.end(), *im_end), 20000);
  EXPECT_EQ(tok.decode(ids), text);
  const auto plain = tok.encode(text, /*allow_special=*/false);
  EXPECT_EQ(std::count(plain.begin(), plain.end(), *im_end), 0);
  EXPECT_EQ(tok.decode(plain), text);
}

TEST(ChatTemplate, SmolLM2InsertsItsDefaultSystemTurn) {
  OCTET_REQUIRE_SMOLLM2(path);
  Tokenizer tok = smollm2(path);
  EXPECT_EQ(tok.chat_template().kind(), ChatTemplate::Kind::chatml);
  EXPECT_EQ(tok.apply_chat_template({{"user", "Hi"}}),
            "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
            "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
  EXPECT_EQ(tok.apply_chat_template({{"system", "Be brief."}, {"user", "Hi"}, {"assistant", "Hello."}, {"user", "Bye"}}),
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
            "<|im_start|>assistant\nHello.<|im_end|>\n<|im_start|>user\nBye<|im_end|>\n<|im_start|>assistant\n");
}

TEST(ChatTemplate, Llama3Format) {
  ChatTemplate llama3 = ChatTemplate::from_template_text(
      "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' }}", ChatTemplate::Kind::chatml, "test");
  EXPECT_EQ(llama3.kind(), ChatTemplate::Kind::llama3);
  EXPECT_EQ(llama3.render({{"system", "S"}, {"user", "U"}, {"assistant", "A"}, {"user", "V"}}, true),
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nS<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\nU<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\nA<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\nV<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n");
  EXPECT_THROW(llama3.render({{"wizard", "x"}}, true), std::exception);
}

// A tiny tokenizer.json in the real layout: byte-level vocab with a few merges and added tokens.
TEST(Tokenizer, FromHuggingFaceJson) {
  nlohmann::json vocab = nlohmann::json::object();
  const std::string alphabet_text = "Ġabcdehlort";  // byte-level characters (Ġ is the space)
  int id = 0;
  for (const std::string symbol : {"Ġ", "a", "b", "c", "d", "e", "h", "l", "o", "r", "t", "he", "ll", "hell", "hello", "Ġt", "Ġthe"})
    vocab[symbol] = id++;
  nlohmann::json j = {
      {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", {"h e", "l l", "he ll", "hell o", "Ġ t", "Ġt he"}}}},
      {"added_tokens", {{{"id", 17}, {"content", "<|eot_id|>"}, {"special", true}}}},
      {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}}}};
  Tokenizer tok = Tokenizer::from_hf_json(j, "tokenizer.json");
  EXPECT_EQ(tok.encode("hello the<|eot_id|>"), (std::vector<int32_t>{14, 16, 17}));
  EXPECT_EQ(tok.decode({14, 16, 17}), "hello the<|eot_id|>");
  EXPECT_EQ(tok.stop_ids(), std::vector<int32_t>{17});
  EXPECT_THROW(tok.encode("xyz"), std::exception);  // no byte-level symbol for x: a clear error
}

// Fields of the wrong type are errors naming the file and the field; they were JSON library exceptions
// naming neither, or (an added token's id as a float beyond int64) undefined conversions: fuzz findings.
TEST(Tokenizer, MalformedHuggingFaceFieldsAreNamedErrors) {
  const nlohmann::json vocab = {{"a", 0}, {"b", 1}};
  const auto error = [&](nlohmann::json added, nlohmann::json merges, const nlohmann::json* config = nullptr,
                         nlohmann::json type = "BPE") {
    const nlohmann::json j = {{"model", {{"type", type}, {"vocab", vocab}, {"merges", merges}}}, {"added_tokens", added}};
    return testing::error_of([&] { Tokenizer::from_hf_json(j, "dir/tokenizer.json", config); });
  };
  const nlohmann::json no_added = nlohmann::json::array(), no_merges = nlohmann::json::array();
  testing::expect_parts(error({{{"id", 2.58e83}, {"content", "<s>"}}}, no_merges), {"dir/tokenizer.json", "added token id", "not an integer"});
  testing::expect_parts(error({{{"id", "2"}, {"content", "<s>"}}}, no_merges), {"dir/tokenizer.json", "added token id \"2\""});
  testing::expect_parts(error({{{"id", 2}, {"content", 5}}}, no_merges), {"dir/tokenizer.json", "content is not a string"});
  testing::expect_parts(error({{{"id", 2}, {"content", "<s>"}, {"special", "yes"}}}, no_merges),
                        {"dir/tokenizer.json", "added token 2", "special", "true or false"});
  testing::expect_parts(error({7}, no_merges), {"dir/tokenizer.json", "lacks id or content"});
  testing::expect_parts(error(no_added, nlohmann::json::array({nlohmann::json::array({"a", 1})})), {"dir/tokenizer.json", "merge #0"});
  testing::expect_parts(error(no_added, no_merges, nullptr, 3), {"dir/tokenizer.json", "model.type is 3"});
  const nlohmann::json not_object = nlohmann::json::array();
  testing::expect_parts(error(no_added, no_merges, &not_object), {"tokenizer_config.json", "expected a JSON object"});
  const nlohmann::json bad_bos = {{"bos_token", {{"content", 1}}}};
  testing::expect_parts(error(no_added, no_merges, &bad_bos), {"tokenizer_config.json", "bos_token", "content must be a string"});
  const nlohmann::json bad_add_bos = {{"add_bos_token", "true"}};
  testing::expect_parts(error(no_added, no_merges, &bad_add_bos), {"tokenizer_config.json", "add_bos_token"});
  const nlohmann::json bad_templates = {{"chat_template", {{{"name", 1}}}}};
  testing::expect_parts(error(no_added, no_merges, &bad_templates), {"tokenizer_config.json", "chat_template[]", "name"});
  const nlohmann::json fine = {{"add_bos_token", nullptr}, {"chat_template", {7, {{"name", "default"}, {"template", ""}}}}};
  EXPECT_EQ(error(no_added, no_merges, &fine), "<no error>");
}

TEST(Utf8Streamer, HoldsBackIncompleteSequencesOnly) {
  Utf8Streamer s;
  const std::string euro = "\xE2\x82\xAC";  // €
  EXPECT_EQ(s.push("a" + euro.substr(0, 1)), "a");
  EXPECT_EQ(s.push(euro.substr(1, 1)), "");
  EXPECT_EQ(s.push(euro.substr(2) + "b"), euro + "b");
  EXPECT_EQ(s.push("\xFF"), "\xFF");           // can never start a sequence: released as is
  EXPECT_EQ(s.push("\xC3" "x"), "\xC3" "x");  // broken sequence: released
  EXPECT_EQ(s.push("\xF0\x9F"), "");
  EXPECT_EQ(s.flush(), "\xF0\x9F");
}

}  // namespace
}  // namespace octet::tokenizer
