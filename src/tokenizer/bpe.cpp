#include "tokenizer/bpe.h"

#include <mutex>
#include <queue>

#include "tokenizer/byte_level.h"

namespace octet::tokenizer {
namespace {

// Pieces are words, numbers and whitespace runs, so a small cache catches most of real text;
// long pieces (rare) are not worth the memory.
constexpr size_t kMaxCachedPieceBytes = 64;
constexpr size_t kMaxCacheEntries = 1 << 16;

struct Symbol {
  int32_t id;    // -1 once merged into the symbol on its left
  int32_t prev;  // neighbours in the linked list, -1 at the ends
  int32_t next;
};

struct Candidate {
  uint32_t rank;
  int32_t left;  // symbol index; symbols keep their start order, so lower is further left
  int32_t left_id;
  int32_t right_id;
  int32_t result_id;
  bool operator>(const Candidate& other) const {
    return rank != other.rank ? rank > other.rank : left > other.left;
  }
};

}  // namespace

struct BytePairEncoder::Cache {
  std::mutex mutex;
  std::unordered_map<std::string, std::vector<int32_t>> ids_of_piece;
};

BytePairEncoder::BytePairEncoder(const std::unordered_map<std::string, int32_t>& token_to_id,
                                 const std::vector<std::pair<std::string, std::string>>& merges,
                                 std::optional<int32_t> unknown_id, bool ignore_merges)
    : unknown_id_(unknown_id), cache_(std::make_unique<Cache>()) {
  if (ignore_merges) whole_piece_ids_ = token_to_id;
  for (int byte = 0; byte < 256; ++byte) {
    const auto found = token_to_id.find(byte_to_unicode(static_cast<uint8_t>(byte)));
    byte_token_[byte] = found == token_to_id.end() ? -1 : found->second;
  }
  merges_.reserve(merges.size());
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const auto& [left, right] = merges[rank];
    const auto left_id = token_to_id.find(left);
    const auto right_id = token_to_id.find(right);
    const auto result_id = token_to_id.find(left + right);
    if (left_id == token_to_id.end() || right_id == token_to_id.end() || result_id == token_to_id.end()) {
      ++skipped_merges_;
      continue;
    }
    // A repeated pair keeps its first (best) rank, as a rank-ordered merge table implies.
    merges_.emplace(pair_key(left_id->second, right_id->second),
                    Merge{static_cast<uint32_t>(rank), result_id->second});
  }
}

BytePairEncoder::~BytePairEncoder() = default;

int BytePairEncoder::missing_byte_tokens() const {
  int missing = 0;
  for (int32_t id : byte_token_) missing += id < 0;
  return missing;
}

void BytePairEncoder::encode(std::string_view piece, std::vector<int32_t>& ids) const {
  if (piece.size() > kMaxCachedPieceBytes) {
    merge_piece(piece, ids);
    return;
  }
  const std::string key(piece);
  {
    std::lock_guard lock(cache_->mutex);
    const auto found = cache_->ids_of_piece.find(key);
    if (found != cache_->ids_of_piece.end()) {
      ids.insert(ids.end(), found->second.begin(), found->second.end());
      return;
    }
  }
  const size_t first = ids.size();
  merge_piece(piece, ids);
  std::lock_guard lock(cache_->mutex);
  if (cache_->ids_of_piece.size() >= kMaxCacheEntries) cache_->ids_of_piece.clear();
  cache_->ids_of_piece.emplace(key, std::vector<int32_t>(ids.begin() + first, ids.end()));
}

void BytePairEncoder::merge_piece(std::string_view piece, std::vector<int32_t>& ids) const {
  if (!whole_piece_ids_.empty()) {
    const auto found = whole_piece_ids_.find(bytes_to_byte_level(piece));
    if (found != whole_piece_ids_.end()) {
      ids.push_back(found->second);
      return;
    }
  }
  std::vector<Symbol> symbols;
  symbols.reserve(piece.size());
  for (char byte : piece) {
    int32_t id = byte_token_[static_cast<uint8_t>(byte)];
    if (id < 0) {
      if (!unknown_id_) continue;
      id = *unknown_id_;
    }
    const auto index = static_cast<int32_t>(symbols.size());
    symbols.push_back({id, index - 1, index + 1});
  }
  if (symbols.empty()) return;
  symbols.back().next = -1;

  // A heap of candidate pairs gives O(n log n) on long pieces (whitespace runs, random bytes);
  // stale candidates are skipped when popped.
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<>> heap;
  auto consider = [&](int32_t left) {
    if (left < 0) return;
    const int32_t right = symbols[left].next;
    if (right < 0) return;
    const auto found = merges_.find(pair_key(symbols[left].id, symbols[right].id));
    if (found == merges_.end()) return;
    heap.push({found->second.rank, left, symbols[left].id, symbols[right].id, found->second.result_id});
  };
  for (int32_t i = 0; i + 1 < static_cast<int32_t>(symbols.size()); ++i) consider(i);

  while (!heap.empty()) {
    const Candidate candidate = heap.top();
    heap.pop();
    Symbol& left = symbols[candidate.left];
    // Token texts only grow under merging, so unchanged ids mean the pair is still the same one.
    if (left.id != candidate.left_id || left.next < 0 || symbols[left.next].id != candidate.right_id) continue;
    Symbol& right = symbols[left.next];
    left.id = candidate.result_id;
    left.next = right.next;
    if (right.next >= 0) symbols[right.next].prev = candidate.left;
    right.id = -1;
    consider(left.prev);
    consider(candidate.left);
  }
  for (int32_t i = 0; i >= 0; i = symbols[i].next) ids.push_back(symbols[i].id);
}

}  // namespace octet::tokenizer
