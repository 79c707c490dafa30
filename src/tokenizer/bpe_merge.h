#pragma once
// Byte-pair merging of one pre-tokenized piece: joins the adjacent pair of symbols with the lowest
// merge rank (the leftmost among equal ranks) until no adjacent pair has one. Candidate pairs wait in
// a heap, so a piece of n characters costs O(n log n): rescanning every pair after each merge costs
// O(n²), hours for the one-megabyte word a request body may hold.
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace octet::tokenizer {

using MergeRanks = std::unordered_map<std::string, int32_t>;  // "left right" → rank

// text: byte-level (valid UTF-8); its characters are the initial symbols. Returns the merged symbols.
std::vector<std::string> bpe_merge(std::string_view text, const MergeRanks& ranks);

}  // namespace octet::tokenizer
