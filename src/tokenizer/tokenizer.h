#pragma once
// Byte-level BPE tokenizer (GPT-2 byte-to-unicode mapping, merges by rank) with the pre-tokenizers
// of the models we run, special tokens matched whole, and chat templates.
#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace octet::gguf { class File; }

namespace octet::tokenizer {

enum class PreTokenizer {
  smollm,  // Digits(individual) then the GPT-2 regex (SmolLM / SmolLM2)
  gpt2,    // the GPT-2 regex
  llama3,  // the Llama 3 regex (FORMATS.md)
};

enum class ChatTemplate { chatml, llama3 };

struct ChatMessage {
  std::string role;  // "system", "user", "assistant"
  std::string content;
};

class Tokenizer {
 public:
  static Tokenizer from_gguf(const gguf::File& file);
  // tokenizer.json (+ optional tokenizer_config.json next to it for the chat template and specials).
  static Tokenizer from_hf_json(const nlohmann::json& tokenizer_json, const std::string& source);
  static Tokenizer from_hf_files(const std::string& tokenizer_json_path,
                                 const std::string& tokenizer_config_path = "");

  // Special tokens (control tokens) in the text are matched whole when allow_special is true.
  std::vector<int32_t> encode(std::string_view text, bool allow_special = true) const;
  std::string decode(const std::vector<int32_t>& ids) const;
  // The bytes of one token (specials give their text); for streaming, the caller joins pieces and
  // holds back incomplete UTF-8 sequences (see Utf8Streamer).
  std::string token_bytes(int32_t id) const;

  // Renders messages with the model's chat template, ending with the assistant header.
  std::string apply_chat_template(const std::vector<ChatMessage>& messages,
                                  bool add_generation_prompt = true) const;
  ChatTemplate chat_template() const { return chat_template_; }

  int32_t vocab_size() const { return static_cast<int32_t>(id_to_token_.size()); }
  std::optional<int32_t> bos_id() const { return bos_id_; }
  // Ids that end a turn or the text (eos, eot, <|im_end|>, <|eot_id|>, <|end_of_text|>).
  const std::vector<int32_t>& stop_ids() const { return stop_ids_; }
  bool add_bos() const { return add_bos_; }
  std::optional<int32_t> token_id(const std::string& token_text) const;

 private:
  friend class TokenizerBuilder;
  std::vector<std::string> id_to_token_;       // byte-level (GPT-2 unicode) token strings
  std::unordered_map<std::string, int32_t> token_to_id_;
  std::unordered_map<std::string, int32_t> merge_rank_;  // "left right" -> rank
  std::vector<bool> is_special_;
  std::vector<std::pair<std::string, int32_t>> specials_;  // matched whole, longest first
  PreTokenizer pre_tokenizer_ = PreTokenizer::gpt2;
  ChatTemplate chat_template_ = ChatTemplate::chatml;
  std::optional<int32_t> bos_id_;
  std::vector<int32_t> stop_ids_;
  bool add_bos_ = false;
  std::string default_system_prompt_;  // ChatML models (SmolLM2) insert one when none is given
  std::shared_ptr<const void> regex_;  // compiled pre-tokenizer pattern(s)
  mutable std::shared_ptr<void> cache_;  // word -> ids cache
};

// Joins token byte pieces and releases only complete UTF-8 sequences (invalid bytes are released
// as U+FFFD once they cannot start or continue a sequence).
class Utf8Streamer {
 public:
  std::string push(std::string_view bytes);
  std::string flush();

 private:
  std::string pending_;
};

}  // namespace octet::tokenizer
