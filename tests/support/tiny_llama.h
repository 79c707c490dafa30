#pragma once
// A tiny random Llama for whole-model tests of the backends: seeded host weights (the same for every
// backend), its config, and the logits of a prefill step followed by decode steps.
#include "backend/backend.h"
#include "model/llama_config.h"
#include "model/llama_model.h"
#include "model/weight_source.h"
#include "support/random.h"

#include <gtest/gtest.h>

#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

namespace octet::backend {

// Seeded host weights, identical for both backends.
class RandomWeights final : public model::WeightSource {
 public:
  explicit RandomWeights(uint64_t seed) : seed_(seed) {}
  bool has(const std::string&) const override { return true; }
  std::vector<float> load(const std::string& name, const std::vector<int64_t>& shape) const override {
    int64_t count = 1;
    for (int64_t d : shape) count *= d;
    std::mt19937_64 rng(seed_ + std::hash<std::string>{}(name));
    const bool norm = name.find("norm") != std::string::npos;
    auto values = testing::random_normal(rng, static_cast<size_t>(count), norm ? 0.1f : 0.05f);
    if (norm)
      for (auto& v : values) v += 1.0f;
    return values;
  }

 private:
  uint64_t seed_;
};

inline model::LlamaConfig tiny_config() {
  model::LlamaConfig config;
  config.layers = 2;
  config.hidden = 256;
  config.heads = 4;
  config.kv_heads = 2;
  config.head_dim = 64;
  config.ffn = 512;
  config.vocab = 300;
  config.context_length = 128;
  config.rope_theta = 10000;
  config.tied_embeddings = false;
  return config;
}

// The same floats to the bit (and as many).
inline bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// Two runs' logits step by step, each the same to the bit (and as many steps); the failure names the
// first step that differs.
inline ::testing::AssertionResult same_steps(const std::vector<std::vector<float>>& a, const std::vector<std::vector<float>>& b) {
  if (a.size() != b.size()) return ::testing::AssertionFailure() << a.size() << " steps against " << b.size();
  for (size_t step = 0; step < a.size(); ++step)
    if (!same_bits(a[step], b[step])) return ::testing::AssertionFailure() << "step " << step << " differs";
  return ::testing::AssertionSuccess();
}

// Logits of a tiny random Llama: one step prefilling slot i with prompt_lengths[i] tokens, then 5
// decode steps of every slot.
inline std::vector<std::vector<float>> tiny_llama_logits(Backend& backend, const model::LlamaConfig& config,
                                                  const model::WeightSource& weights, model::ModelOptions options,
                                                  const std::vector<int64_t>& prompt_lengths) {
  options.slots = static_cast<int64_t>(prompt_lengths.size());
  model::LlamaModel model(config, &weights, backend, options);
  TokenBatch prefill;
  std::vector<int64_t> last;
  for (int64_t slot = 0; slot < options.slots; ++slot) {
    for (int64_t i = 0; i < prompt_lengths[slot]; ++i) {
      prefill.tokens.push_back(static_cast<int32_t>((i * 31 + slot) % config.vocab));
      prefill.slots.push_back(slot);
      prefill.positions.push_back(i);
    }
    last.push_back(static_cast<int64_t>(prefill.size()) - 1);
  }
  std::vector<std::vector<float>> steps;
  std::vector<float> logits(static_cast<size_t>(options.slots * config.vocab));
  model.forward(prefill, last, logits.data());
  steps.push_back(logits);
  for (int64_t step = 0; step < 5; ++step) {
    TokenBatch decode;
    std::vector<int64_t> rows;
    for (int64_t slot = 0; slot < options.slots; ++slot) {
      decode.tokens.push_back(static_cast<int32_t>(7 + 4 * slot));
      decode.positions.push_back(prompt_lengths[slot] + step);
      decode.slots.push_back(slot);
      rows.push_back(slot);
    }
    model.forward(decode, rows, logits.data());
    steps.push_back(logits);
  }
  return steps;
}

}  // namespace octet::backend
