#include "tokenizer/bpe.h"

#include <gtest/gtest.h>

#include <map>
#include <random>

#include "test_support.h"
#include "tokenizer/byte_level.h"
#include "tokenizer/tokenizer.h"

namespace octet::tokenizer {
namespace {

using Merges = std::vector<std::pair<std::string, std::string>>;

// The textbook algorithm, slow and obvious: merge the lowest-ranked adjacent pair (leftmost on
// ties) until no pair has a rank.
std::vector<std::string> reference_bpe(const std::string& piece, const Merges& merges) {
  std::map<std::pair<std::string, std::string>, size_t> rank;
  for (size_t i = 0; i < merges.size(); ++i) rank.emplace(merges[i], i);
  std::vector<std::string> symbols;
  for (char byte : piece) symbols.push_back(byte_to_unicode(static_cast<uint8_t>(byte)));
  while (true) {
    size_t best = symbols.size(), best_rank = SIZE_MAX;
    for (size_t i = 0; i + 1 < symbols.size(); ++i) {
      const auto found = rank.find({symbols[i], symbols[i + 1]});
      if (found != rank.end() && found->second < best_rank) best = i, best_rank = found->second;
    }
    if (best == symbols.size()) return symbols;
    symbols[best] += symbols[best + 1];
    symbols.erase(symbols.begin() + static_cast<long>(best) + 1);
  }
}

struct SmallVocab {
  std::unordered_map<std::string, int32_t> token_to_id;
  std::vector<std::string> tokens;
  void add(const std::string& token) {
    if (token_to_id.emplace(token, static_cast<int32_t>(tokens.size())).second) tokens.push_back(token);
  }
};

std::vector<std::string> encode_texts(const BytePairEncoder& bpe, const SmallVocab& vocab, const std::string& piece) {
  std::vector<int32_t> ids;
  bpe.encode(piece, ids);
  std::vector<std::string> texts;
  for (int32_t id : ids) texts.push_back(vocab.tokens[id]);
  return texts;
}

TEST(BytePairEncoder, LowestRankFirstThenLeftmost) {
  SmallVocab vocab;
  for (int byte = 0; byte < 256; ++byte) vocab.add(byte_to_unicode(static_cast<uint8_t>(byte)));
  const Merges merges = {{"b", "c"}, {"a", "a"}, {"a", "bc"}, {"aa", "a"}};
  for (const auto& [left, right] : merges) vocab.add(left + right);
  const BytePairEncoder bpe(vocab.token_to_id, merges, std::nullopt, false);
  EXPECT_EQ(encode_texts(bpe, vocab, "abc"), (std::vector<std::string>{"abc"}));
  // "a a" has the same rank at every position: the leftmost goes first, and the next "a a"
  // (rank 1) still beats "aa a" (rank 3).
  EXPECT_EQ(encode_texts(bpe, vocab, "aaaa"), (std::vector<std::string>{"aa", "aa"}));
  EXPECT_EQ(encode_texts(bpe, vocab, "aaa"), (std::vector<std::string>{"aaa"}));
  // "b c" (rank 0) first; then "a a" (rank 1) beats "a bc" (rank 2).
  EXPECT_EQ(encode_texts(bpe, vocab, "aabc"), (std::vector<std::string>{"aa", "bc"}));
  EXPECT_EQ(encode_texts(bpe, vocab, " x"), (std::vector<std::string>{"\xC4\xA0", "x"}));
}

TEST(BytePairEncoder, IgnoreMergesTakesWholeTokens) {
  SmallVocab vocab;
  for (int byte = 0; byte < 256; ++byte) vocab.add(byte_to_unicode(static_cast<uint8_t>(byte)));
  vocab.add("abc");  // reachable through no merge
  const BytePairEncoder plain(vocab.token_to_id, {}, std::nullopt, false);
  const BytePairEncoder whole(vocab.token_to_id, {}, std::nullopt, true);
  EXPECT_EQ(encode_texts(plain, vocab, "abc"), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(encode_texts(whole, vocab, "abc"), (std::vector<std::string>{"abc"}));
}

TEST(BytePairEncoder, SkipsMergesOutsideTheVocabulary) {
  SmallVocab vocab;
  for (int byte = 0; byte < 256; ++byte) vocab.add(byte_to_unicode(static_cast<uint8_t>(byte)));
  const BytePairEncoder bpe(vocab.token_to_id, {{"a", "b"}, {"q", "zz"}}, std::nullopt, false);
  EXPECT_EQ(bpe.skipped_merges(), 2u);
  EXPECT_EQ(bpe.missing_byte_tokens(), 0);
}

// Random pieces over a dense little merge table, where heap order and stale entries matter.
TEST(BytePairEncoder, MatchesReferenceOnRandomPieces) {
  std::mt19937_64 rng(testing::test_seed());
  SmallVocab vocab;
  for (int byte = 0; byte < 256; ++byte) vocab.add(byte_to_unicode(static_cast<uint8_t>(byte)));
  Merges merges;
  std::vector<std::string> pool = {"a", "b", "c", "d"};
  std::uniform_int_distribution<int> coin(0, 2);
  for (int i = 0; i < 60; ++i) {
    std::uniform_int_distribution<size_t> pick(0, pool.size() - 1);
    const std::string left = pool[pick(rng)], right = pool[pick(rng)];
    if (left.size() + right.size() > 6) continue;
    merges.emplace_back(left, right);
    if (vocab.token_to_id.count(left + right) == 0) pool.push_back(left + right);
    vocab.add(left + right);
  }
  const BytePairEncoder bpe(vocab.token_to_id, merges, std::nullopt, false);
  std::uniform_int_distribution<size_t> length(0, 40);
  std::uniform_int_distribution<int> letter('a', 'd');
  for (int round = 0; round < 2000; ++round) {
    std::string piece(length(rng), 'a');
    for (char& c : piece) c = static_cast<char>(letter(rng));
    EXPECT_EQ(encode_texts(bpe, vocab, piece), reference_bpe(piece, merges)) << piece;
    EXPECT_EQ(encode_texts(bpe, vocab, piece), reference_bpe(piece, merges)) << "cached: " << piece;
  }
}

TEST(BytePairEncoder, LongPiecesStayFast) {
  SmallVocab vocab;
  for (int byte = 0; byte < 256; ++byte) vocab.add(byte_to_unicode(static_cast<uint8_t>(byte)));
  Merges merges = {{"\xC4\xA0", "\xC4\xA0"}};
  vocab.add("\xC4\xA0\xC4\xA0");
  const BytePairEncoder bpe(vocab.token_to_id, merges, std::nullopt, false);
  std::vector<int32_t> ids;
  bpe.encode(std::string(200000, ' '), ids);  // quadratic merging would take minutes here
  EXPECT_EQ(ids.size(), 100000u);
}

}  // namespace
}  // namespace octet::tokenizer
