#pragma once
// Byte-level BPE tokenizer (GPT-2 byte alphabet, merges by rank) with the pre-tokenizers of the
// models we run, special tokens matched whole, and chat templates.
#include "tokenizer/bpe_merge.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/pre_tokenizer.h"

#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace octet::gguf { class File; }

namespace octet::tokenizer {

// Everything a tokenizer is built from, whatever the file format.
struct Vocabulary {
  std::vector<std::string> tokens;                          // byte-level strings, by id
  std::vector<std::pair<std::string, std::string>> merges;  // in rank order
  std::vector<bool> special;                                // matched whole in text, decoded verbatim
  PreTokenizerKind pre_tokenizer = PreTokenizerKind::gpt2;
  std::optional<int32_t> bos_id;
  std::vector<int32_t> stop_ids;
  bool add_bos = false;
  ChatTemplate chat_template;
  std::string source;  // for error messages
};

class Tokenizer {
 public:
  explicit Tokenizer(Vocabulary vocabulary);

  static Tokenizer from_gguf(const gguf::File& file);
  // tokenizer.json, with tokenizer_config.json (chat template, bos/eos, add_bos) when given.
  static Tokenizer from_hf_json(const nlohmann::json& tokenizer_json, const std::string& source,
                                const nlohmann::json* tokenizer_config = nullptr);
  static Tokenizer from_hf_files(const std::string& tokenizer_json_path, const std::string& tokenizer_config_path = "");

  // Special tokens in the text are matched whole when allow_special is true; otherwise their text is
  // encoded like any other.
  std::vector<int32_t> encode(std::string_view text, bool allow_special = true) const;
  std::string decode(const std::vector<int32_t>& ids) const;
  // The bytes of one token (special tokens give their text).
  std::string token_bytes(int32_t id) const;

  std::string apply_chat_template(const std::vector<ChatMessage>& messages, bool add_generation_prompt = true) const {
    return vocabulary_.chat_template.render(messages, add_generation_prompt);
  }
  const ChatTemplate& chat_template() const { return vocabulary_.chat_template; }

  int32_t vocab_size() const { return static_cast<int32_t>(vocabulary_.tokens.size()); }
  std::optional<int32_t> bos_id() const { return vocabulary_.bos_id; }
  const std::vector<int32_t>& stop_ids() const { return vocabulary_.stop_ids; }
  bool add_bos() const { return vocabulary_.add_bos; }
  std::optional<int32_t> token_id(const std::string& token_text) const;
  PreTokenizerKind pre_tokenizer_kind() const { return pre_tokenizer_.kind(); }
  const Vocabulary& vocabulary() const { return vocabulary_; }  // for writing it out (tokenizer.json)

 private:
  void encode_ordinary(std::string_view text, std::vector<int32_t>& out) const;
  void encode_piece(const std::string& piece, std::vector<int32_t>& out) const;

  Vocabulary vocabulary_;
  PreTokenizer pre_tokenizer_;
  std::unordered_map<std::string, int32_t> token_to_id_;
  MergeRanks merge_rank_;
  std::vector<std::pair<std::string, int32_t>> specials_;  // longest first
  std::vector<std::string> decoded_;                      // raw bytes of each token
  struct PieceCache {  // pre-tokenized piece → ids; shared by threads (the server encodes concurrently)
    std::mutex mutex;
    std::unordered_map<std::string, std::vector<int32_t>> ids;
  };
  std::unique_ptr<PieceCache> cache_ = std::make_unique<PieceCache>();
};

// Joins token byte pieces and releases only complete UTF-8 sequences; bytes that can never complete
// a sequence are released as they are (the caller sees exactly the model's bytes).
class Utf8Streamer {
 public:
  std::string push(std::string_view bytes);
  std::string flush();

 private:
  std::string pending_;
};

}  // namespace octet::tokenizer
