#include "engine/step_padding.h"

#include <algorithm>

namespace octet::engine {

int64_t padded_step_size(int64_t tokens, int64_t max_tokens) {
  if (tokens < 1 || tokens > max_tokens) return tokens;
  if (tokens <= 8) {
    int64_t size = 1;
    while (size < tokens) size *= 2;
    return std::min(size, max_tokens);
  }
  return std::min((tokens + 7) / 8 * 8, max_tokens);
}

std::vector<int64_t> padded_step_sizes(int64_t max_tokens) {
  std::vector<int64_t> sizes;
  for (int64_t tokens = 1; tokens <= max_tokens; ++tokens)
    if (padded_step_size(tokens, max_tokens) == tokens) sizes.push_back(tokens);
  std::reverse(sizes.begin(), sizes.end());
  return sizes;
}

int64_t pad_step(backend::TokenBatch& batch, std::vector<int64_t>& logit_rows, int64_t padding_slot, int64_t max_tokens) {
  const auto tokens = static_cast<int64_t>(batch.size());
  if (tokens < 1 || tokens > max_tokens) return 0;  // above every recorded size: never recorded, left as it is
  const int64_t target = padded_step_size(tokens, max_tokens);
  for (int64_t i = tokens; i < target; ++i) {
    batch.tokens.push_back(0);
    batch.positions.push_back(0);
    batch.slots.push_back(padding_slot);
  }
  // Rows past the real ones: padding tokens, the last repeated; a step without padding tokens
  // repeats its last token's row (computed twice, sampled never).
  const int64_t rows_target = padded_step_size(static_cast<int64_t>(logit_rows.size()), target);
  for (int64_t next = std::min(tokens, target - 1); static_cast<int64_t>(logit_rows.size()) < rows_target;
       next = std::min(next + 1, target - 1))
    logit_rows.push_back(next);
  return target - tokens;
}

}  // namespace octet::engine
