#pragma once
// Splits text into the pieces that BPE encodes separately, with each model's regular expression
// (Unicode categories through PCRE2). Bytes that are not valid UTF-8 become pieces of their own.
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace octet::tokenizer {

enum class PreTokenizerKind {
  smollm,  // every ASCII digit alone, then the GPT-2 regex (SmolLM / SmolLM2)
  gpt2,    // the GPT-2 regex
  llama3,  // the Llama 3 regex
};

class PreTokenizer {
 public:
  explicit PreTokenizer(PreTokenizerKind kind);
  ~PreTokenizer();
  PreTokenizer(PreTokenizer&&) noexcept;
  PreTokenizer& operator=(PreTokenizer&&) noexcept;

  std::vector<std::string> split(std::string_view text) const;
  PreTokenizerKind kind() const { return kind_; }

 private:
  struct Compiled;
  void split_valid_utf8(std::string_view text, std::vector<std::string>& out) const;
  PreTokenizerKind kind_;
  std::unique_ptr<Compiled> compiled_;
};

}  // namespace octet::tokenizer
