#define PCRE2_CODE_UNIT_WIDTH 8
#include "tokenizer/pre_tokenizer.h"

#include <pcre2.h>

#include "common/error.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/utf8.h"

namespace octet::tokenizer {

std::vector<std::string> pre_tokenizer_patterns(PreTokenizer kind) {
  const std::string gpt2 =
      R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
  switch (kind) {
    // Digits(individual_digits) isolates every \p{N} character before the GPT-2 regex runs, so
    // the regex's lookahead sees the end of the piece, not the digit after it.
    case PreTokenizer::smollm: return {R"(\p{N})", gpt2};
    case PreTokenizer::gpt2: return {gpt2};
    case PreTokenizer::llama3:
      return {R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|)"
              R"( ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)"};
  }
  return {gpt2};
}

class CompiledPattern {
 public:
  explicit CompiledPattern(const std::string& pattern) {
    int error_code = 0;
    PCRE2_SIZE error_offset = 0;
    code_ = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                          PCRE2_UTF | PCRE2_UCP, &error_code, &error_offset, nullptr);
    if (code_ == nullptr) {
      PCRE2_UCHAR message[256];
      pcre2_get_error_message(error_code, message, sizeof(message));
      fail("pre-tokenizer pattern '{}' does not compile at offset {}: {}", pattern, error_offset,
           reinterpret_cast<const char*>(message));
    }
    // JIT is an optimisation only: without it pcre2_match interprets the same pattern.
    pcre2_jit_compile(code_, PCRE2_JIT_COMPLETE);
  }
  ~CompiledPattern() { pcre2_code_free(code_); }
  CompiledPattern(const CompiledPattern&) = delete;
  CompiledPattern& operator=(const CompiledPattern&) = delete;

  // Calls emit for each match and each gap between matches of the valid UTF-8 text, in order.
  template <typename Emit>
  void split(std::string_view text, Emit&& emit) const {
    // Match data per call keeps a shared tokenizer usable from several threads.
    std::unique_ptr<pcre2_match_data, decltype(&pcre2_match_data_free)> match(
        pcre2_match_data_create_from_pattern(code_, nullptr), &pcre2_match_data_free);
    if (!match) fail("pre-tokenizer: out of memory for PCRE2 match data");
    const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
    size_t gap_start = 0;
    size_t offset = 0;
    while (offset < text.size()) {
      const int rc = pcre2_match(code_, subject, text.size(), offset, PCRE2_NO_UTF_CHECK, match.get(), nullptr);
      if (rc == PCRE2_ERROR_NOMATCH) break;
      if (rc < 0) {
        PCRE2_UCHAR message[256];
        pcre2_get_error_message(rc, message, sizeof(message));
        fail("pre-tokenizer: PCRE2 match failed: {}", reinterpret_cast<const char*>(message));
      }
      const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(match.get());
      const size_t start = ovector[0], end = ovector[1];
      if (end == start) {  // empty matches split nothing; step over one code point
        offset = start + scan_utf8(text.substr(start)).length;
        continue;
      }
      if (start > gap_start) emit(text.substr(gap_start, start - gap_start));
      emit(text.substr(start, end - start));
      gap_start = offset = end;
    }
    if (gap_start < text.size()) emit(text.substr(gap_start));
  }

 private:
  pcre2_code* code_ = nullptr;
};

PreTokenizerChain::PreTokenizerChain(const std::vector<std::string>& patterns) {
  for (const std::string& pattern : patterns) patterns_.push_back(std::make_unique<CompiledPattern>(pattern));
}

PreTokenizerChain::~PreTokenizerChain() = default;

void PreTokenizerChain::split(std::string_view text, std::vector<std::string_view>& pieces) const {
  size_t position = 0;
  while (position < text.size()) {
    const size_t run = valid_utf8_prefix(text.substr(position));
    if (run > 0) {
      split_run(text.substr(position, run), 0, pieces);
      position += run;
    } else {
      pieces.push_back(text.substr(position, 1));
      position += 1;
    }
  }
}

void PreTokenizerChain::split_run(std::string_view run, size_t step, std::vector<std::string_view>& pieces) const {
  if (step == patterns_.size()) {
    pieces.push_back(run);
    return;
  }
  patterns_[step]->split(run, [&](std::string_view piece) { split_run(piece, step + 1, pieces); });
}

}  // namespace octet::tokenizer
