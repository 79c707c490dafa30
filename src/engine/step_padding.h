#pragma once
// Decode steps padded to a few batch sizes, so a backend that records steps (CUDA graphs) holds one
// recording per size instead of one per exact batch, and can record them all before serving.
// Padding tokens are token 0 at position 0 of a slot kept for them: they write only that slot's
// first KV cell and read only it, and their logits rows are computed but not sampled.
#include "backend/backend.h"

#include <cstdint>
#include <vector>

namespace octet::engine {

// The padded size of a step of `tokens` tokens: 1, 2, 4, 8, then multiples of 8 up to max_tokens;
// a step above max_tokens (never recorded) keeps its size.
int64_t padded_step_size(int64_t tokens, int64_t max_tokens);

// Every padded size from 1 to max_tokens, largest first (warming up in that order sizes the
// backend's buffers once).
std::vector<int64_t> padded_step_sizes(int64_t max_tokens);

// Pads batch to padded_step_size(batch.size(), max_tokens) tokens in padding_slot, and logit_rows to
// padded_step_size(logit_rows.size(), ...) rows: padding tokens' rows (the last one repeated where
// there are fewer padding tokens than missing rows; the last token's where there are none). The real
// tokens and rows keep their order and come first. Steps above max_tokens are left as they are.
// Returns the number of tokens added.
int64_t pad_step(backend::TokenBatch& batch, std::vector<int64_t>& logit_rows, int64_t padding_slot, int64_t max_tokens);

}  // namespace octet::engine
