#pragma once
// Token sampling from logits: repetition penalty, temperature, top-k, top-p, min-p, seeded RNG.
// temperature <= 0 means greedy (argmax; the lowest index wins ties).
// Order: repetition penalty → temperature → top-k → softmax → top-p → min-p → renormalise → draw.
// NaN logits count as -inf. When no logit is finite the result is 0 (argmax of all -inf), not an
// error; when some logit is +inf the lowest such index is returned. Previous tokens outside
// [0, logits.size()) are ignored by the penalty (tokenizers can know more ids than the output layer).
#include <cstdint>
#include <random>
#include <span>
#include <vector>

namespace octet::engine {

struct SamplingParams {
  float temperature = 0.7f;
  int top_k = 0;           // 0: off
  float top_p = 1.0f;      // 1: off
  float min_p = 0.0f;      // 0: off
  float repetition_penalty = 1.0f;  // 1: off; CTRL-style: positive logits / p, negative * p
  uint64_t seed = 0;       // same seed, same tokens
};

// Whether the repetition penalty is on (it needs the sequence's history, so device samplers leave
// such rows to a host Sampler).
inline bool penalizes_repetition(float repetition_penalty) {
  return repetition_penalty != 1.0f && repetition_penalty > 0.0f;
}

// One draw with a given uniform in [0, 1) instead of a Sampler's stream: the same logit processing
// and order as Sampler::sample (the device sampler, backend::Backend::sample_rows, draws
// counter_uniform(seed, step) into this on the host). logits is modified.
int32_t sample_with_uniform(std::span<float> logits, const SamplingParams& params,
                            std::span<const int32_t> previous_tokens, double uniform);

class Sampler {
 public:
  explicit Sampler(const SamplingParams& params);
  // previous_tokens: prompt + generated so far (used by the repetition penalty). logits is modified.
  int32_t sample(std::span<float> logits, std::span<const int32_t> previous_tokens);

 private:
  SamplingParams params_;
  std::mt19937_64 rng_;
  std::vector<std::pair<float, int32_t>> candidates_;
  std::vector<int32_t> penalized_tokens_;  // scratch: each distinct previous token is penalised once
};

}  // namespace octet::engine
