#pragma once
// Pre-tokenization: a chain of PCRE2 patterns, each splitting every piece of the step before into
// its matches and the gaps between them (Hugging Face's "isolated" split). Patterns run with
// PCRE2_UTF | PCRE2_UCP so \s, \p{L} and \p{N} follow Unicode, not ASCII. The categories are
// those of the system PCRE2's Unicode version (10.42: Unicode 14); Hugging Face's Oniguruma knows
// later ones, so letters first assigned after that (CJK Extension H/I, Egyptian Hieroglyphs
// Extended-A) split differently. Random differential runs agree on everything assigned by 14.
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace octet::tokenizer {

class CompiledPattern;

class PreTokenizerChain {
 public:
  // octet::Error naming the pattern and the offset when one does not compile.
  explicit PreTokenizerChain(const std::vector<std::string>& patterns);
  ~PreTokenizerChain();

  // Appends the pieces of text to pieces (views into text), in order, none empty. The patterns
  // only see valid UTF-8 runs; every byte outside one becomes a piece of its own, so any byte
  // string is split without loss.
  void split(std::string_view text, std::vector<std::string_view>& pieces) const;

 private:
  void split_run(std::string_view run, size_t step, std::vector<std::string_view>& pieces) const;

  std::vector<std::unique_ptr<CompiledPattern>> patterns_;
};

}  // namespace octet::tokenizer
