// A tokenizer written as tokenizer.json + tokenizer_config.json and read back through the Hugging Face
// loader is the same tokenizer: vocabulary, merges, special tokens, pre-tokenizer, bos, chat template,
// and the same ids for text exercising each pre-tokenizer's rules.
#include <gtest/gtest.h>

#include <filesystem>
#include <unistd.h>

#include "quantize/tokenizer_export.h"
#include "tokenizer/byte_level.h"
#include "tokenizer/tokenizer.h"

namespace octet::quantize {
namespace {

namespace fs = std::filesystem;
using tokenizer::PreTokenizerKind;

tokenizer::Vocabulary vocabulary(PreTokenizerKind kind) {
  tokenizer::Vocabulary v;
  for (int b = 0; b < 256; ++b) v.tokens.push_back(tokenizer::bytes_to_byte_level(std::string(1, static_cast<char>(b))));
  const std::string space = tokenizer::bytes_to_byte_level(" ");
  for (const auto& [a, b] : std::vector<std::pair<std::string, std::string>>{{"h", "e"}, {"l", "l"}, {"he", "ll"}, {"hell", "o"},
                                                                            {space, "w"}, {"1", "2"}, {"12", "3"}}) {
    v.merges.emplace_back(a, b);
    v.tokens.push_back(a + b);
  }
  v.special.assign(v.tokens.size(), false);
  for (const char* special : {"<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"}) {
    v.tokens.push_back(special);
    v.special.push_back(true);
  }
  v.pre_tokenizer = kind;
  v.bos_id = static_cast<int32_t>(v.tokens.size() - 4);
  v.add_bos = kind == PreTokenizerKind::llama3;
  v.stop_ids = {static_cast<int32_t>(v.tokens.size() - 1)};
  v.chat_template = tokenizer::ChatTemplate(tokenizer::ChatTemplate::Kind::llama3);
  v.source = "test";
  return v;
}

TEST(TokenizerExport, EachPreTokenizerKindReadsBackAsTheSameTokenizer) {
  const fs::path dir = fs::temp_directory_path() / ("octet_tok_export_" + std::to_string(::getpid()));
  for (PreTokenizerKind kind : {PreTokenizerKind::gpt2, PreTokenizerKind::smollm, PreTokenizerKind::llama3}) {
    fs::remove_all(dir);
    fs::create_directories(dir);
    const tokenizer::Tokenizer original(vocabulary(kind));
    write_tokenizer_files(original, "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>' }}", dir.string());
    const auto reread = tokenizer::Tokenizer::from_hf_files((dir / "tokenizer.json").string(), (dir / "tokenizer_config.json").string());
    EXPECT_EQ(reread.vocabulary().tokens, original.vocabulary().tokens);
    EXPECT_EQ(reread.vocabulary().merges, original.vocabulary().merges);
    EXPECT_EQ(reread.vocabulary().special, original.vocabulary().special);
    EXPECT_EQ(reread.pre_tokenizer_kind(), kind);
    EXPECT_EQ(reread.bos_id(), original.bos_id());
    EXPECT_EQ(reread.add_bos(), original.add_bos()) << static_cast<int>(kind);
    EXPECT_EQ(reread.chat_template().kind(), tokenizer::ChatTemplate::Kind::llama3);
    EXPECT_NE(std::find(reread.stop_ids().begin(), reread.stop_ids().end(), original.stop_ids()[0]), reread.stop_ids().end());
    for (const std::string text : {"hello world 12345 hello", "<|begin_of_text|>hello<|eot_id|> 1234567", "HELLO's  \n\n 99 world"})
      EXPECT_EQ(reread.encode(text), original.encode(text)) << text << " kind " << static_cast<int>(kind);
  }
  fs::remove_all(dir);
}

}  // namespace
}  // namespace octet::quantize
