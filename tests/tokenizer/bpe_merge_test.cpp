// The heap-ordered byte-pair merge against the plain definition (rescan every adjacent pair, merge the
// lowest rank, leftmost on ties; repeat) on random merge tables and texts, and pieces far longer than
// the plain loop could take (it is quadratic: a test of it would run for hours).
#include "support/random.h"
#include "tokenizer/bpe_merge.h"

#include <gtest/gtest.h>

#include <climits>
#include <string>
#include <vector>

namespace octet::tokenizer {
namespace {

std::vector<std::string> characters(const std::string& text) {
  std::vector<std::string> out;
  for (size_t i = 0; i < text.size();) {
    const auto lead = static_cast<unsigned char>(text[i]);
    const size_t length = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
    out.push_back(text.substr(i, length));
    i += length;
  }
  return out;
}

std::vector<std::string> reference_merge(const std::string& text, const MergeRanks& ranks) {
  std::vector<std::string> symbols = characters(text);
  for (;;) {
    int32_t best_rank = INT32_MAX;
    size_t best = 0;
    for (size_t i = 0; i + 1 < symbols.size(); ++i)
      if (auto it = ranks.find(symbols[i] + " " + symbols[i + 1]); it != ranks.end() && it->second < best_rank) {
        best_rank = it->second;
        best = i;
      }
    if (best_rank == INT32_MAX) return symbols;
    symbols[best] += symbols[best + 1];
    symbols.erase(symbols.begin() + static_cast<std::ptrdiff_t>(best) + 1);
  }
}

TEST(BpeMerge, MatchesTheRescanningDefinitionOnRandomTables) {
  std::mt19937_64 rng(testing::test_seed("BpeMerge.Random"));
  // Few distinct characters (one of two bytes, one of four), so that merges overlap and ranks tie.
  const std::vector<std::string> alphabet = {"a", "b", "c", "\xC3\xA9", "\xF0\x9F\x99\x82"};
  for (int table = 0; table < 40; ++table) {
    std::vector<std::string> symbols = alphabet;
    MergeRanks ranks;
    std::uniform_int_distribution<int> merges(0, 60);
    for (int r = merges(rng); r > 0; --r) {
      std::uniform_int_distribution<size_t> pick(0, symbols.size() - 1);
      const std::string left = symbols[pick(rng)], right = symbols[pick(rng)];
      if (ranks.emplace(left + " " + right, static_cast<int32_t>(ranks.size())).second) symbols.push_back(left + right);
    }
    std::uniform_int_distribution<size_t> length(0, 200), character(0, alphabet.size() - 1);
    for (int text_index = 0; text_index < 50; ++text_index) {
      std::string text;
      for (size_t n = length(rng); n > 0; --n) text += alphabet[character(rng)];
      ASSERT_EQ(bpe_merge(text, ranks), reference_merge(text, ranks)) << "table " << table << ", text '" << text << "'";
    }
  }
}

TEST(BpeMerge, MergesAMegabyteWord) {
  // "a a" → "aa", "aa aa" → "aaaa", …: a word of 2^20 letters merges to one symbol in 20 rounds.
  MergeRanks ranks;
  std::string unit = "a";
  for (int32_t rank = 0; rank < 20; ++rank) {
    ranks.emplace(unit + " " + unit, rank);
    unit += unit;
  }
  const std::string word(size_t{1} << 20, 'a');
  const auto symbols = bpe_merge(word, ranks);
  ASSERT_EQ(symbols.size(), 1u);
  EXPECT_EQ(symbols[0], word);
  // One letter more: the last stays alone.
  EXPECT_EQ(bpe_merge(word + "a", ranks), (std::vector<std::string>{word, "a"}));
}

TEST(BpeMerge, EmptyAndUnmergeableTexts) {
  const MergeRanks ranks = {{"a b", 0}};
  EXPECT_TRUE(bpe_merge("", ranks).empty());
  EXPECT_EQ(bpe_merge("ba", ranks), (std::vector<std::string>{"b", "a"}));
  EXPECT_EQ(bpe_merge("abab", ranks), (std::vector<std::string>{"ab", "ab"}));
}

}  // namespace
}  // namespace octet::tokenizer
