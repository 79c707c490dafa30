#include "engine/sampler.h"

#include "common/error.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace octet::engine {
namespace {

constexpr float kNegativeInfinity = -std::numeric_limits<float>::infinity();

// Lowest index wins ties because only a strictly greater value replaces the best so far.
int32_t argmax(std::span<const float> logits) {
  int32_t best = 0;
  for (size_t i = 1; i < logits.size(); ++i)
    if (logits[i] > logits[best]) best = static_cast<int32_t>(i);
  return best;
}

// A strict total order (value, then index) so that sorting is reproducible whatever std::sort does.
bool higher_first(const std::pair<float, int32_t>& a, const std::pair<float, int32_t>& b) {
  return a.first > b.first || (a.first == b.first && a.second < b.second);
}

// std::uniform_real_distribution differs between standard libraries; the top 53 bits of the
// engine's output give the same double in [0, 1) everywhere, keeping seeded runs portable.
double uniform01(std::mt19937_64& rng) { return static_cast<double>(rng() >> 11) * 0x1.0p-53; }

// The whole pipeline; draw() gives the uniform in [0, 1), called only when a token is drawn (greedy
// and degenerate rows consume none, so a Sampler's stream advances exactly as it always has).
template <typename Draw>
int32_t sample_logits(std::span<float> logits, const SamplingParams& params, std::span<const int32_t> previous_tokens,
                      std::vector<std::pair<float, int32_t>>& candidates, std::vector<int32_t>& penalized_tokens,
                      Draw draw) {
  if (logits.empty()) fail("sampler: empty logits");
  if (logits.size() > static_cast<size_t>(std::numeric_limits<int32_t>::max()))
    fail("sampler: {} logits exceed the int32 token id range", logits.size());
  for (float& logit : logits)
    if (std::isnan(logit)) logit = kNegativeInfinity;

  if (penalizes_repetition(params.repetition_penalty)) {
    penalized_tokens.assign(previous_tokens.begin(), previous_tokens.end());
    std::sort(penalized_tokens.begin(), penalized_tokens.end());
    penalized_tokens.erase(std::unique(penalized_tokens.begin(), penalized_tokens.end()), penalized_tokens.end());
    for (int32_t token : penalized_tokens) {
      if (token < 0 || static_cast<size_t>(token) >= logits.size()) continue;
      float& logit = logits[token];
      logit = logit > 0.0f ? logit / params.repetition_penalty : logit * params.repetition_penalty;
    }
  }

  // The negated test also sends a NaN temperature to greedy.
  if (!(params.temperature > 0.0f)) return argmax(logits);
  for (float& logit : logits) logit /= params.temperature;

  candidates.clear();
  float max_logit = kNegativeInfinity;
  for (size_t i = 0; i < logits.size(); ++i) {
    if (logits[i] == kNegativeInfinity) continue;
    candidates.emplace_back(logits[i], static_cast<int32_t>(i));
    max_logit = std::max(max_logit, logits[i]);
  }
  // No finite logit: nothing to draw from. +inf logits hold all the mass and exp(inf - inf) is NaN.
  if (candidates.empty() || std::isinf(max_logit)) return argmax(logits);

  bool sorted = false;
  if (params.top_k > 0 && static_cast<size_t>(params.top_k) < candidates.size()) {
    std::partial_sort(candidates.begin(), candidates.begin() + params.top_k, candidates.end(), higher_first);
    candidates.resize(params.top_k);
    sorted = true;
  }

  // Unnormalised probabilities relative to the best token (whose weight is exactly 1); the draw
  // scales by the kept total, so renormalising is implicit.
  double total = 0.0;
  for (auto& [weight, token] : candidates) {
    weight = std::exp(weight - max_logit);
    total += weight;
  }

  if (params.top_p < 1.0f) {
    if (!sorted) std::sort(candidates.begin(), candidates.end(), higher_first);
    const double target = static_cast<double>(params.top_p) * total;
    double cumulative = 0.0;
    size_t kept = 0;
    // The first token is always kept, so top_p <= 0 degrades to greedy rather than to nothing.
    do cumulative += candidates[kept++].first;
    while (kept < candidates.size() && cumulative < target);
    candidates.resize(kept);
    total = cumulative;
  }

  if (params.min_p > 0.0f) {
    // p_max has weight 1 here; capping min_p at 1 keeps the best token even for min_p > 1.
    const float threshold = std::min(params.min_p, 1.0f);
    std::erase_if(candidates, [threshold](const auto& candidate) { return candidate.first < threshold; });
    total = 0.0;
    for (const auto& candidate : candidates) total += candidate.first;
  }

  const double target = draw() * total;
  double cumulative = 0.0;
  for (const auto& [weight, token] : candidates) {
    cumulative += weight;
    if (target < cumulative) return token;
  }
  // Rounding can leave target a hair above the final sum.
  return candidates.back().second;
}

}  // namespace

Sampler::Sampler(const SamplingParams& params) : params_(params), rng_(params.seed) {}

int32_t Sampler::sample(std::span<float> logits, std::span<const int32_t> previous_tokens) {
  return sample_logits(logits, params_, previous_tokens, candidates_, penalized_tokens_, [this] { return uniform01(rng_); });
}

int32_t sample_with_uniform(std::span<float> logits, const SamplingParams& params, std::span<const int32_t> previous_tokens,
                            double uniform) {
  std::vector<std::pair<float, int32_t>> candidates;
  std::vector<int32_t> penalized_tokens;
  return sample_logits(logits, params, previous_tokens, candidates, penalized_tokens, [uniform] { return uniform; });
}

}  // namespace octet::engine
