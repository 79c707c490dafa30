#include <spdlog/spdlog.h>

#include <limits>

#include "common/error.h"
#include "formats/gguf.h"
#include "tokenizer/tokenizer.h"

namespace octet::tokenizer {
namespace {

// Token ids are optional; some converters write -1 for "none", which we treat as absent.
std::optional<int32_t> optional_id(const gguf::File& file, const std::string& key) {
  const std::optional<int64_t> value = file.get_int(key);
  if (!value || *value < 0) return std::nullopt;
  if (*value > std::numeric_limits<int32_t>::max()) fail("{}: {} = {} is not a token id", file.path(), key, *value);
  return static_cast<int32_t>(*value);
}

PreTokenizer pre_tokenizer_from_name(const gguf::File& file, const std::string& name) {
  if (name == "smollm") return PreTokenizer::smollm;
  if (name == "llama3" || name == "llama-v3" || name == "llama-bpe") return PreTokenizer::llama3;
  if (name != "gpt2" && name != "gpt-2" && name != "default") {
    spdlog::warn("{}: tokenizer.ggml.pre '{}' is not one we know; using the GPT-2 regex", file.path(), name);
  }
  return PreTokenizer::gpt2;
}

}  // namespace

Tokenizer Tokenizer::from_gguf(const gguf::File& file) {
  TokenizerSpec spec;
  spec.source = file.path();
  const std::optional<std::string> model = file.get_string("tokenizer.ggml.model");
  if (!model) fail("{}: no tokenizer.ggml.model", file.path());
  if (*model != "gpt2") {
    fail("{}: tokenizer.ggml.model is '{}', expected 'gpt2' (byte-level BPE, the only kind supported)",
         file.path(), *model);
  }

  std::optional<std::vector<std::string>> tokens = file.get_string_array("tokenizer.ggml.tokens");
  if (!tokens || tokens->empty()) fail("{}: no tokenizer.ggml.tokens", file.path());
  spec.tokens = std::move(*tokens);

  if (const auto types = file.get_int_array("tokenizer.ggml.token_type")) {
    if (types->size() != spec.tokens.size()) {
      fail("{}: tokenizer.ggml.token_type has {} entries, expected {} (one per token)", file.path(),
           types->size(), spec.tokens.size());
    }
    spec.token_types.reserve(types->size());
    for (int64_t type : *types) {
      spec.token_types.push_back(type >= 1 && type <= 6 ? static_cast<TokenType>(type) : TokenType::normal);
    }
  }

  const std::optional<std::vector<std::string>> merges = file.get_string_array("tokenizer.ggml.merges");
  if (!merges) fail("{}: no tokenizer.ggml.merges (needed for BPE)", file.path());
  spec.merges.reserve(merges->size());
  for (size_t rank = 0; rank < merges->size(); ++rank) {
    // Byte-level token texts never contain a space (0x20 is written as U+0120), so the first
    // space is the separator.
    const std::string& merge = (*merges)[rank];
    const size_t space = merge.find(' ');
    if (space == std::string::npos || space == 0 || space + 1 == merge.size()) {
      fail("{}: tokenizer.ggml.merges[{}] = '{}', expected 'left right'", file.path(), rank, merge);
    }
    spec.merges.emplace_back(merge.substr(0, space), merge.substr(space + 1));
  }

  const PreTokenizer pre = pre_tokenizer_from_name(file, file.get_string("tokenizer.ggml.pre").value_or("default"));
  spec.split_patterns = pre_tokenizer_patterns(pre);
  spec.ignore_merges = pre == PreTokenizer::llama3;  // as llama.cpp does for Llama 3 vocabularies

  spec.bos_id = optional_id(file, "tokenizer.ggml.bos_token_id");
  spec.eos_id = optional_id(file, "tokenizer.ggml.eos_token_id");
  spec.eot_id = optional_id(file, "tokenizer.ggml.eot_token_id");
  spec.unknown_id = optional_id(file, "tokenizer.ggml.unknown_token_id");
  if (const auto eom = optional_id(file, "tokenizer.ggml.eom_token_id")) spec.extra_stop_ids.push_back(*eom);
  // Llama 3 files written before the key existed expect a BOS; byte-level models generally do not.
  spec.add_bos = file.get_bool("tokenizer.ggml.add_bos_token").value_or(pre == PreTokenizer::llama3);
  spec.chat_template = file.get_string("tokenizer.chat_template").value_or("");
  return from_spec(std::move(spec));
}

}  // namespace octet::tokenizer
