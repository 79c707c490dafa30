#pragma once
// Byte-pair encoding of one pre-tokenized piece: start from one token per byte, then repeatedly
// merge the adjacent pair with the lowest merge rank (the leftmost on ties), as Hugging Face's BPE
// model does. Merges are keyed by token ids, so encoding never builds strings.
#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace octet::tokenizer {

class BytePairEncoder {
 public:
  // token_to_id maps byte-level token text to ids. Merges whose parts or result are not in the
  // vocabulary are skipped (counted in skipped_merges()). unknown_id stands in for bytes that
  // have no token; without one such bytes are dropped. With ignore_merges a piece whose byte-level
  // text is a token encodes as that token.
  BytePairEncoder(const std::unordered_map<std::string, int32_t>& token_to_id,
                  const std::vector<std::pair<std::string, std::string>>& merges,
                  std::optional<int32_t> unknown_id, bool ignore_merges);
  ~BytePairEncoder();

  // Appends the ids of one piece (raw bytes). Thread-safe; short pieces are cached.
  void encode(std::string_view piece, std::vector<int32_t>& ids) const;

  size_t skipped_merges() const { return skipped_merges_; }
  int missing_byte_tokens() const;

 private:
  struct Merge {
    uint32_t rank;
    int32_t result_id;
  };
  static uint64_t pair_key(int32_t left, int32_t right) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
  }
  void merge_piece(std::string_view piece, std::vector<int32_t>& ids) const;

  std::array<int32_t, 256> byte_token_;  // -1 when the vocabulary lacks the byte's token
  std::unordered_map<uint64_t, Merge> merges_;
  std::optional<int32_t> unknown_id_;
  std::unordered_map<std::string, int32_t> whole_piece_ids_;  // byte-level text -> id; only with ignore_merges
  size_t skipped_merges_ = 0;
  struct Cache;
  std::unique_ptr<Cache> cache_;
};

}  // namespace octet::tokenizer
