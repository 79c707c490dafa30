#include "tokenizer/tokenizer.h"

#include "common/error.h"
#include "tokenizer/bpe_merge.h"
#include "tokenizer/byte_level.h"

#include <algorithm>

namespace octet::tokenizer {
namespace {

// Pieces up to this many bytes are cached (nearly all: words, numbers, spaces).
constexpr size_t kMaxCachedPieceBytes = 256;

}  // namespace

Tokenizer::Tokenizer(Vocabulary vocabulary)
    : vocabulary_(std::move(vocabulary)), pre_tokenizer_(vocabulary_.pre_tokenizer) {
  const auto& tokens = vocabulary_.tokens;
  if (tokens.empty()) fail("{}: the vocabulary is empty", vocabulary_.source);
  vocabulary_.special.resize(tokens.size(), false);
  decoded_.resize(tokens.size());
  for (size_t id = 0; id < tokens.size(); ++id) {
    if (tokens[id].empty()) continue;  // a gap in the ids
    token_to_id_.emplace(tokens[id], static_cast<int32_t>(id));
    if (vocabulary_.special[id]) {
      specials_.emplace_back(tokens[id], static_cast<int32_t>(id));
      decoded_[id] = tokens[id];
    } else {
      // Tokens outside the byte-level alphabet (rare added tokens) decode as their text.
      decoded_[id] = byte_level_to_bytes(tokens[id]).value_or(tokens[id]);
    }
  }
  std::sort(specials_.begin(), specials_.end(),
            [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); });
  for (size_t rank = 0; rank < vocabulary_.merges.size(); ++rank) {
    const auto& [left, right] = vocabulary_.merges[rank];
    merge_rank_.emplace(left + " " + right, static_cast<int32_t>(rank));
  }
  auto check_id = [&](int32_t id, const char* what) {
    if (id < 0 || id >= static_cast<int32_t>(tokens.size()))
      fail("{}: {} id {} is outside the vocabulary of {}", vocabulary_.source, what, id, tokens.size());
  };
  if (vocabulary_.bos_id) check_id(*vocabulary_.bos_id, "bos token");
  for (int32_t id : vocabulary_.stop_ids) check_id(id, "stop token");
}

std::optional<int32_t> Tokenizer::token_id(const std::string& token_text) const {
  auto it = token_to_id_.find(token_text);
  if (it == token_to_id_.end()) return std::nullopt;
  return it->second;
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool allow_special) const {
  std::vector<int32_t> out;
  if (!allow_special || specials_.empty()) {
    encode_ordinary(text, out);
    return out;
  }
  // Each special's next occurrence, searched again only once the text before it is consumed: one pass
  // over the text per special (searching every special afresh after each match was quadratic).
  std::vector<size_t> next_at(specials_.size());
  for (size_t i = 0; i < specials_.size(); ++i) next_at[i] = text.find(specials_[i].first);
  size_t position = 0;
  while (position < text.size()) {
    // The earliest special token in the rest of the text; the longest one where several start there
    // (specials_ is longest first).
    size_t best = specials_.size();
    for (size_t i = 0; i < specials_.size(); ++i)
      if (next_at[i] != std::string_view::npos && (best == specials_.size() || next_at[i] < next_at[best])) best = i;
    if (best == specials_.size()) break;
    const size_t at = next_at[best];
    encode_ordinary(text.substr(position, at - position), out);
    out.push_back(specials_[best].second);
    position = at + specials_[best].first.size();
    for (size_t i = 0; i < specials_.size(); ++i)
      if (next_at[i] != std::string_view::npos && next_at[i] < position) next_at[i] = text.find(specials_[i].first, position);
  }
  if (position < text.size()) encode_ordinary(text.substr(position), out);
  return out;
}

void Tokenizer::encode_ordinary(std::string_view text, std::vector<int32_t>& out) const {
  if (text.empty()) return;
  for (const auto& piece : pre_tokenizer_.split(text)) encode_piece(piece, out);
}

void Tokenizer::encode_piece(const std::string& piece, std::vector<int32_t>& out) const {
  {
    std::lock_guard lock(cache_->mutex);
    if (auto it = cache_->ids.find(piece); it != cache_->ids.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  const std::string level = bytes_to_byte_level(piece);
  std::vector<int32_t> ids;
  if (auto whole = token_to_id_.find(level); whole != token_to_id_.end()) {
    ids.push_back(whole->second);
  } else {
    const std::vector<std::string> symbols = bpe_merge(level, merge_rank_);
    for (const auto& symbol : symbols) {
      auto it = token_to_id_.find(symbol);
      if (it != token_to_id_.end()) {
        ids.push_back(it->second);
        continue;
      }
      // Some vocabularies lack a few byte symbols (SmolLM2 has no token for 21 of the 256 bytes):
      // such a byte is encoded as U+FFFD, the replacement character, as a lossy decoder would show it.
      static const std::string replacement = "\xEF\xBF\xBD";
      if (piece == replacement)
        fail("{}: no token for the byte-level symbol '{}' nor for U+FFFD (the vocabulary lacks part of the byte alphabet)",
             vocabulary_.source, symbol);
      encode_piece(replacement, ids);
    }
  }
  out.insert(out.end(), ids.begin(), ids.end());
  if (piece.size() > kMaxCachedPieceBytes) return;  // rare, and a cache of long pieces would hold much memory
  std::lock_guard lock(cache_->mutex);
  if (cache_->ids.size() > 100000) cache_->ids.clear();  // bound the memory a long-running server spends here
  cache_->ids.emplace(piece, std::move(ids));
}

std::string Tokenizer::token_bytes(int32_t id) const {
  if (id < 0 || id >= vocab_size()) fail("token id {} is outside the vocabulary of {}", id, vocab_size());
  return decoded_[id];
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids) const {
  std::string out;
  for (int32_t id : ids) out += token_bytes(id);
  return out;
}

namespace {
// Bytes a UTF-8 sequence starting with lead needs in total; 0 for a byte that cannot start one.
size_t sequence_length(unsigned char lead) {
  if (lead < 0x80) return 1;
  if (lead >= 0xC2 && lead <= 0xDF) return 2;
  if (lead >= 0xE0 && lead <= 0xEF) return 3;
  if (lead >= 0xF0 && lead <= 0xF4) return 4;
  return 0;
}
}  // namespace

std::string Utf8Streamer::push(std::string_view bytes) {
  pending_.append(bytes);
  std::string out;
  size_t i = 0;
  while (i < pending_.size()) {
    const size_t length = sequence_length(static_cast<unsigned char>(pending_[i]));
    if (length == 0) {  // can never start a sequence: release as is
      out += pending_[i++];
      continue;
    }
    size_t have = 1;
    while (have < length && i + have < pending_.size() &&
           (static_cast<unsigned char>(pending_[i + have]) & 0xC0) == 0x80)
      ++have;
    if (have == length) {
      out.append(pending_, i, length);
      i += length;
    } else if (i + have == pending_.size()) {
      break;  // incomplete at the end: wait for more bytes
    } else {
      out.append(pending_, i, have);  // broken sequence: release what there is
      i += have;
    }
  }
  pending_.erase(0, i);
  return out;
}

std::string Utf8Streamer::flush() {
  std::string out;
  out.swap(pending_);
  return out;
}

}  // namespace octet::tokenizer
