#include "tokenizer/pre_tokenizer.h"

#include "common/error.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

namespace octet::tokenizer {
namespace {

constexpr const char* kGpt2Pattern = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
constexpr const char* kLlama3Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
// HF's Digits pre-tokenizer splits ASCII digits only (other numerals stay with the GPT-2 regex).
constexpr const char* kDigitPattern = R"([0-9])";

struct Regex {
  pcre2_code* code = nullptr;
  explicit Regex(const char* pattern) {
    int error = 0;
    PCRE2_SIZE offset = 0;
    code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern), PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP, &error,
                         &offset, nullptr);
    if (!code) {
      PCRE2_UCHAR message[256];
      pcre2_get_error_message(error, message, sizeof message);
      fail("pre-tokenizer regex does not compile at {}: {}", offset, reinterpret_cast<const char*>(message));
    }
    pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);  // optional speed-up; matching works without it
  }
  ~Regex() { pcre2_code_free(code); }
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // Calls visit(piece, is_match) for every match of the pattern in text (valid UTF-8) and for the
  // text between matches, in order.
  template <typename Visit>
  void scan(std::string_view text, Visit&& visit) const {
    pcre2_match_data* match = pcre2_match_data_create_from_pattern(code, nullptr);
    size_t start = 0, emitted = 0;
    while (start < text.size()) {
      int rc = pcre2_match(code, reinterpret_cast<PCRE2_SPTR>(text.data()), text.size(), start, PCRE2_NO_UTF_CHECK,
                           match, nullptr);
      if (rc < 0) break;
      const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(match);
      size_t begin = ovector[0], end = ovector[1];
      if (begin > emitted) visit(text.substr(emitted, begin - emitted), false);
      if (end == begin) {  // empty match: step one character forward
        size_t next = begin + 1;
        while (next < text.size() && (static_cast<unsigned char>(text[next]) & 0xC0) == 0x80) ++next;
        start = next;
        continue;
      }
      visit(text.substr(begin, end - begin), true);
      emitted = start = end;
    }
    if (emitted < text.size()) visit(text.substr(emitted), false);
    pcre2_match_data_free(match);
  }

  void split(std::string_view text, std::vector<std::string>& out) const {
    scan(text, [&](std::string_view piece, bool) { out.emplace_back(piece); });
  }
};

// Length of the valid UTF-8 sequence at text[i], or 0 when the bytes there are not one.
size_t utf8_sequence_length(std::string_view text, size_t i) {
  const auto c = static_cast<unsigned char>(text[i]);
  size_t length;
  uint32_t cp;
  if (c < 0x80) return 1;
  if ((c & 0xE0) == 0xC0) { length = 2; cp = c & 0x1F; }
  else if ((c & 0xF0) == 0xE0) { length = 3; cp = c & 0x0F; }
  else if ((c & 0xF8) == 0xF0) { length = 4; cp = c & 0x07; }
  else return 0;
  if (i + length > text.size()) return 0;
  for (size_t k = 1; k < length; ++k) {
    const auto cc = static_cast<unsigned char>(text[i + k]);
    if ((cc & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (cc & 0x3F);
  }
  // Overlong forms, surrogates and values past U+10FFFF are invalid.
  if ((length == 2 && cp < 0x80) || (length == 3 && cp < 0x800) || (length == 4 && cp < 0x10000)) return 0;
  if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return length;
}

}  // namespace

struct PreTokenizer::Compiled {
  std::unique_ptr<Regex> main;
  std::unique_ptr<Regex> digits;
};

PreTokenizer::PreTokenizer(PreTokenizerKind kind) : kind_(kind), compiled_(std::make_unique<Compiled>()) {
  compiled_->main = std::make_unique<Regex>(kind == PreTokenizerKind::llama3 ? kLlama3Pattern : kGpt2Pattern);
  if (kind == PreTokenizerKind::smollm) compiled_->digits = std::make_unique<Regex>(kDigitPattern);
}

PreTokenizer::~PreTokenizer() = default;
PreTokenizer::PreTokenizer(PreTokenizer&&) noexcept = default;
PreTokenizer& PreTokenizer::operator=(PreTokenizer&&) noexcept = default;

void PreTokenizer::split_valid_utf8(std::string_view text, std::vector<std::string>& out) const {
  if (!compiled_->digits) {
    compiled_->main->split(text, out);
    return;
  }
  // Digits first: each digit is a piece, the runs between them go through the main regex.
  compiled_->digits->scan(text, [&](std::string_view piece, bool is_digit) {
    if (is_digit) out.emplace_back(piece);
    else compiled_->main->split(piece, out);
  });
}

std::vector<std::string> PreTokenizer::split(std::string_view text) const {
  std::vector<std::string> out;
  size_t i = 0, run_start = 0;
  while (i < text.size()) {
    const size_t length = utf8_sequence_length(text, i);
    if (length > 0) {
      i += length;
      continue;
    }
    if (i > run_start) split_valid_utf8(text.substr(run_start, i - run_start), out);
    out.emplace_back(text.substr(i, 1));  // an invalid byte is a piece of its own
    run_start = ++i;
  }
  if (i > run_start) split_valid_utf8(text.substr(run_start, i - run_start), out);
  return out;
}

}  // namespace octet::tokenizer
