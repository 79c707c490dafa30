#pragma once
// Byte-level BPE tokenizer (GPT-2 byte-to-unicode mapping, merges by rank) with the pre-tokenizers
// of the models we run, special tokens matched whole, and chat templates.
//
// Every byte string encodes and decodes back to itself (with allow_special = false): the
// pre-tokenizer regexes only see valid UTF-8 runs, invalid bytes become pieces of their own, and
// byte-level BPE has a token for every byte.
#include <nlohmann/json_fwd.hpp>

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace octet::gguf { class File; }

namespace octet::tokenizer {

class BytePairEncoder;
class PreTokenizerChain;

// The named pre-tokenizers; each is a chain of split patterns (pre_tokenizer_patterns).
enum class PreTokenizer {
  smollm,  // Digits(individual) then the GPT-2 regex (SmolLM / SmolLM2)
  gpt2,    // the GPT-2 regex
  llama3,  // the Llama 3 regex (FORMATS.md)
};
// PCRE2 patterns applied in turn; each splits every piece of the previous step into its matches
// and the gaps between them (Hugging Face "isolated" splitting).
std::vector<std::string> pre_tokenizer_patterns(PreTokenizer kind);

enum class ChatTemplate { chatml, llama3 };

struct ChatMessage {
  std::string role;  // "system", "user", "assistant"
  std::string content;
};

// GGUF token types (tokenizer.ggml.token_type); control and user-defined tokens are special.
enum class TokenType : int32_t { normal = 1, unknown = 2, control = 3, user_defined = 4, unused = 5, byte = 6 };

// Everything a tokenizer is built from; from_gguf and from_hf_json fill one of these.
struct TokenizerSpec {
  std::string source;                     // names the origin in errors and warnings
  std::vector<std::string> tokens;        // id -> text: byte-level for ordinary tokens, raw for specials
  std::vector<TokenType> token_types;     // empty: all normal
  std::vector<std::pair<std::string, std::string>> merges;  // by rank, first = highest priority
  std::vector<std::string> split_patterns = pre_tokenizer_patterns(PreTokenizer::gpt2);
  // A piece that is itself a token is emitted whole before any merging (tiktoken's rule, which
  // Llama 3 relies on: some of its tokens are not reachable through its merges).
  bool ignore_merges = false;
  std::optional<int32_t> bos_id, eos_id, eot_id, unknown_id;
  std::vector<int32_t> extra_stop_ids;    // e.g. eom, or the eos list of a generation config
  bool add_bos = false;
  std::string chat_template;              // the model's Jinja text; only used to pick the format
};

class Tokenizer {
 public:
  static Tokenizer from_spec(TokenizerSpec spec);
  static Tokenizer from_gguf(const gguf::File& file);
  // tokenizer.json, with tokenizer_config.json (chat template, bos/eos, add_bos_token) when given.
  static Tokenizer from_hf_json(const nlohmann::json& tokenizer_json, const std::string& source,
                                const nlohmann::json* tokenizer_config = nullptr);
  static Tokenizer from_hf_files(const std::string& tokenizer_json_path,
                                 const std::string& tokenizer_config_path = "");

  // Special tokens in the text are matched whole (longest first) when allow_special is true.
  // Never adds BOS: callers add bos_id() when add_bos() and the text does not already start with it.
  std::vector<int32_t> encode(std::string_view text, bool allow_special = true) const;
  // octet::Error for ids outside [0, vocab_size).
  std::string decode(const std::vector<int32_t>& ids) const;
  // The bytes of one token (specials give their text); for streaming, the caller joins pieces and
  // holds back incomplete UTF-8 sequences (see Utf8Streamer).
  const std::string& token_bytes(int32_t id) const;

  // Renders messages with the model's chat format, ending with the assistant header when
  // add_generation_prompt. The text includes the BOS token's text where the format has one
  // (Llama 3), so encode it with allow_special and add no other BOS.
  std::string apply_chat_template(const std::vector<ChatMessage>& messages,
                                  bool add_generation_prompt = true) const;
  ChatTemplate chat_template() const { return chat_template_; }
  // ChatML models such as SmolLM2 insert this system turn when the first message is not one.
  const std::string& default_system_prompt() const { return default_system_prompt_; }

  int32_t vocab_size() const { return static_cast<int32_t>(token_text_.size()); }
  std::optional<int32_t> bos_id() const { return bos_id_; }
  // Ids that end a turn or the text (eos, eot, <|im_end|>, <|eot_id|>, <|eom_id|>, <|end_of_text|>,
  // <|endoftext|>), each once.
  const std::vector<int32_t>& stop_ids() const { return stop_ids_; }
  bool is_stop(int32_t id) const;
  bool add_bos() const { return add_bos_; }
  std::optional<int32_t> token_id(const std::string& token_text) const;
  bool is_special(int32_t id) const;

 private:
  void encode_ordinary(std::string_view text, std::vector<int32_t>& ids) const;

  std::vector<std::string> token_text_;   // as in the vocabulary (byte-level for ordinary tokens)
  std::vector<std::string> token_bytes_;  // decoded bytes of each token
  std::vector<bool> is_special_;
  std::unordered_map<std::string, int32_t> token_to_id_;
  // Special tokens by their first byte, longest first, so matching is one table look-up per byte.
  std::array<std::vector<std::pair<std::string, int32_t>>, 256> specials_by_first_byte_;
  std::shared_ptr<const PreTokenizerChain> pre_tokenizer_;
  std::shared_ptr<const BytePairEncoder> bpe_;  // shared by copies; holds the word cache
  ChatTemplate chat_template_ = ChatTemplate::chatml;
  std::string default_system_prompt_;
  std::optional<int32_t> bos_id_;
  std::vector<int32_t> stop_ids_;
  bool add_bos_ = false;
};

// Joins token byte pieces and releases only complete UTF-8 sequences. Bytes that cannot start or
// continue a sequence come out as U+FFFD, one per maximal invalid subpart (as Python's
// errors="replace" does); flush() releases a trailing incomplete sequence the same way.
class Utf8Streamer {
 public:
  std::string push(std::string_view bytes);
  std::string flush();

 private:
  std::string pending_;
};

}  // namespace octet::tokenizer
