#include "tokenizer/bpe_merge.h"

#include <algorithm>
#include <queue>

namespace octet::tokenizer {
namespace {

struct Symbol {
  size_t begin = 0, length = 0;  // a span of the text; length 0: merged into its left neighbour
  int prev = -1, next = -1;
};

// A pair (left symbol, its next) as it was when pushed; stale once either side has changed length.
struct Candidate {
  int32_t rank;
  size_t begin;  // the left symbol's start: spans never move, so this orders ties leftmost first
  int left;
  size_t left_length, right_length;
};

struct LaterFirst {  // std::priority_queue keeps the greatest on top: the lowest (rank, begin) here
  bool operator()(const Candidate& a, const Candidate& b) const {
    return a.rank != b.rank ? a.rank > b.rank : a.begin > b.begin;
  }
};

size_t character_length(unsigned char lead) {
  if (lead >= 0xF0) return 4;
  if (lead >= 0xE0) return 3;
  if (lead >= 0xC0) return 2;
  return 1;
}

}  // namespace

std::vector<std::string> bpe_merge(std::string_view text, const MergeRanks& ranks) {
  std::vector<Symbol> symbols;
  for (size_t i = 0; i < text.size();) {
    const size_t length = std::min(character_length(static_cast<unsigned char>(text[i])), text.size() - i);
    const int index = static_cast<int>(symbols.size());
    symbols.push_back({i, length, index - 1, -1});
    if (index > 0) symbols[static_cast<size_t>(index) - 1].next = index;
    i += length;
  }
  std::priority_queue<Candidate, std::vector<Candidate>, LaterFirst> heap;
  std::string key;
  const auto consider = [&](int left) {
    if (left < 0) return;
    const Symbol& a = symbols[static_cast<size_t>(left)];
    if (a.next < 0) return;
    const Symbol& b = symbols[static_cast<size_t>(a.next)];
    key.assign(text.substr(a.begin, a.length)).append(" ").append(text.substr(b.begin, b.length));
    if (const auto it = ranks.find(key); it != ranks.end()) heap.push({it->second, a.begin, left, a.length, b.length});
  };
  for (int i = 0; i + 1 < static_cast<int>(symbols.size()); ++i) consider(i);
  while (!heap.empty()) {
    const Candidate c = heap.top();
    heap.pop();
    Symbol& left = symbols[static_cast<size_t>(c.left)];
    if (left.length != c.left_length || left.next < 0) continue;
    Symbol& right = symbols[static_cast<size_t>(left.next)];
    if (right.length != c.right_length) continue;
    left.length += right.length;
    right.length = 0;
    left.next = right.next;
    if (left.next >= 0) symbols[static_cast<size_t>(left.next)].prev = c.left;
    consider(left.prev);
    consider(c.left);
  }
  std::vector<std::string> out;
  for (int i = symbols.empty() ? -1 : 0; i >= 0; i = symbols[static_cast<size_t>(i)].next)
    out.emplace_back(text.substr(symbols[static_cast<size_t>(i)].begin, symbols[static_cast<size_t>(i)].length));
  return out;
}

}  // namespace octet::tokenizer
