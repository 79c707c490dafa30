#include "tokenizer/tokenizer.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "common/error.h"
#include "tokenizer/bpe.h"
#include "tokenizer/byte_level.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/pre_tokenizer.h"

namespace octet::tokenizer {
namespace {

void check_id(const TokenizerSpec& spec, const char* what, std::optional<int32_t> id) {
  if (id && (*id < 0 || static_cast<size_t>(*id) >= spec.tokens.size())) {
    fail("{}: {} id {} is outside the vocabulary of {} tokens", spec.source, what, *id, spec.tokens.size());
  }
}

ChatTemplate choose_chat_template(const TokenizerSpec& spec,
                                  const std::unordered_map<std::string, int32_t>& token_to_id) {
  if (auto format = chat_template_from_text(spec.chat_template)) return *format;
  // No usable template text: go by the vocabulary's family of control tokens.
  ChatTemplate format = ChatTemplate::chatml;
  if (!token_to_id.count("<|im_start|>") && token_to_id.count("<|start_header_id|>")) format = ChatTemplate::llama3;
  spdlog::warn("{}: {} chat template; using {} from the vocabulary", spec.source,
               spec.chat_template.empty() ? "no" : "unrecognised",
               format == ChatTemplate::chatml ? "ChatML" : "Llama 3");
  return format;
}

}  // namespace

Tokenizer Tokenizer::from_spec(TokenizerSpec spec) {
  if (spec.tokens.empty()) fail("{}: empty vocabulary", spec.source);
  if (!spec.token_types.empty() && spec.token_types.size() != spec.tokens.size()) {
    fail("{}: {} token types for {} tokens", spec.source, spec.token_types.size(), spec.tokens.size());
  }
  check_id(spec, "bos", spec.bos_id);
  check_id(spec, "eos", spec.eos_id);
  check_id(spec, "eot", spec.eot_id);
  check_id(spec, "unknown token", spec.unknown_id);
  for (int32_t id : spec.extra_stop_ids) check_id(spec, "stop token", id);

  Tokenizer tokenizer;
  const size_t count = spec.tokens.size();
  tokenizer.token_text_ = std::move(spec.tokens);
  tokenizer.is_special_.assign(count, false);
  tokenizer.token_bytes_.resize(count);
  tokenizer.token_to_id_.reserve(count);
  for (size_t id = 0; id < count; ++id) {
    const std::string& text = tokenizer.token_text_[id];
    const TokenType type = spec.token_types.empty() ? TokenType::normal : spec.token_types[id];
    const bool special = type == TokenType::control || type == TokenType::user_defined;
    tokenizer.is_special_[id] = special;
    // Special tokens are stored as plain text, ordinary ones in the byte-level alphabet.
    tokenizer.token_bytes_[id] = special ? text : byte_level_to_bytes(text);
    // The first of duplicated texts wins, as in a JSON vocabulary object.
    tokenizer.token_to_id_.emplace(text, static_cast<int32_t>(id));
    if (special && !text.empty()) {
      tokenizer.specials_by_first_byte_[static_cast<uint8_t>(text[0])].emplace_back(text, static_cast<int32_t>(id));
    }
  }
  for (auto& candidates : tokenizer.specials_by_first_byte_) {
    std::stable_sort(candidates.begin(), candidates.end(),
                     [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); });
  }

  // Bytes without a token (SmolLM2 lacks 21, e.g. 0x04 and 0xFF) become the unknown token, unless
  // that is a control token: SmolLM2's is <|endoftext|>, and a document end inside a prompt is
  // worse than a dropped byte. Hugging Face drops them too.
  std::optional<int32_t> byte_stand_in = spec.unknown_id;
  if (byte_stand_in && tokenizer.is_special_[*byte_stand_in]) byte_stand_in.reset();
  auto bpe = std::make_shared<BytePairEncoder>(tokenizer.token_to_id_, spec.merges, byte_stand_in,
                                                spec.ignore_merges);
  if (bpe->missing_byte_tokens() > 0) {
    spdlog::warn("{}: vocabulary lacks {} of the 256 byte tokens; those bytes encode as {}, so they do not "
                 "survive a round trip", spec.source, bpe->missing_byte_tokens(),
                 byte_stand_in ? "the unknown token" : "nothing");
  }
  if (bpe->skipped_merges() > 0) {
    spdlog::warn("{}: skipped {} merges whose parts or result are not in the vocabulary", spec.source,
                 bpe->skipped_merges());
  }
  tokenizer.bpe_ = std::move(bpe);
  tokenizer.pre_tokenizer_ = std::make_shared<PreTokenizerChain>(spec.split_patterns);

  tokenizer.chat_template_ = choose_chat_template(spec, tokenizer.token_to_id_);
  if (tokenizer.chat_template_ == ChatTemplate::chatml) {
    tokenizer.default_system_prompt_ = default_system_prompt_from_template(spec.chat_template);
  }
  tokenizer.bos_id_ = spec.bos_id;
  tokenizer.add_bos_ = spec.add_bos && spec.bos_id.has_value();

  auto add_stop = [&](std::optional<int32_t> id) {
    if (id && std::find(tokenizer.stop_ids_.begin(), tokenizer.stop_ids_.end(), *id) == tokenizer.stop_ids_.end()) {
      tokenizer.stop_ids_.push_back(*id);
    }
  };
  add_stop(spec.eos_id);
  add_stop(spec.eot_id);
  for (int32_t id : spec.extra_stop_ids) add_stop(id);
  for (const char* text : {"<|im_end|>", "<|eot_id|>", "<|eom_id|>", "<|end_of_text|>", "<|endoftext|>"}) {
    add_stop(tokenizer.token_id(text));
  }
  return tokenizer;
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool allow_special) const {
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + 1);
  if (!allow_special) {
    encode_ordinary(text, ids);
    return ids;
  }
  size_t segment_start = 0;
  size_t position = 0;
  while (position < text.size()) {
    const auto& candidates = specials_by_first_byte_[static_cast<uint8_t>(text[position])];
    const std::pair<std::string, int32_t>* match = nullptr;
    for (const auto& candidate : candidates) {
      if (text.substr(position).starts_with(candidate.first)) {
        match = &candidate;
        break;
      }
    }
    if (match == nullptr) {
      ++position;
      continue;
    }
    encode_ordinary(text.substr(segment_start, position - segment_start), ids);
    ids.push_back(match->second);
    position += match->first.size();
    segment_start = position;
  }
  encode_ordinary(text.substr(segment_start), ids);
  return ids;
}

void Tokenizer::encode_ordinary(std::string_view text, std::vector<int32_t>& ids) const {
  if (text.empty()) return;
  std::vector<std::string_view> pieces;
  pre_tokenizer_->split(text, pieces);
  for (std::string_view piece : pieces) bpe_->encode(piece, ids);
}

const std::string& Tokenizer::token_bytes(int32_t id) const {
  if (id < 0 || id >= vocab_size()) fail("token id {} is outside the vocabulary of {} tokens", id, vocab_size());
  return token_bytes_[id];
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids) const {
  std::string text;
  for (int32_t id : ids) text.append(token_bytes(id));
  return text;
}

std::string Tokenizer::apply_chat_template(const std::vector<ChatMessage>& messages,
                                           bool add_generation_prompt) const {
  return render_chat(chat_template_, messages, default_system_prompt_, add_generation_prompt);
}

bool Tokenizer::is_stop(int32_t id) const {
  return std::find(stop_ids_.begin(), stop_ids_.end(), id) != stop_ids_.end();
}

std::optional<int32_t> Tokenizer::token_id(const std::string& token_text) const {
  const auto found = token_to_id_.find(token_text);
  if (found == token_to_id_.end()) return std::nullopt;
  return found->second;
}

bool Tokenizer::is_special(int32_t id) const {
  return id >= 0 && id < vocab_size() && is_special_[id];
}

}  // namespace octet::tokenizer
