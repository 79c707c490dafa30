#pragma once
// Batches for attention tests written as segments: consecutive positions of one slot.
#include "backend/backend.h"

#include <cstdint>
#include <vector>

namespace octet::testing {

struct TokenSegment {
  int64_t slot, begin, count;  // positions begin .. begin + count - 1 of slot
};

// The segments' tokens in order (token id 0). long_run[i]: token i's segment has at least
// min_run_tokens tokens (the tensor-core prefill attention takes it).
inline backend::TokenBatch batch_of_segments(const std::vector<TokenSegment>& segments, int64_t min_run_tokens,
                                             std::vector<bool>& long_run) {
  backend::TokenBatch batch;
  long_run.clear();
  for (const TokenSegment& segment : segments)
    for (int64_t i = 0; i < segment.count; ++i) {
      batch.tokens.push_back(0);
      batch.slots.push_back(segment.slot);
      batch.positions.push_back(segment.begin + i);
      long_run.push_back(segment.count >= min_run_tokens);
    }
  return batch;
}

}  // namespace octet::testing
