// The paged KV cache through the forward pass: two sequences whose positions live in scattered,
// interleaved pool blocks (non-identity block tables) give exactly the logits of the contiguous
// layout (num_blocks = 0), in every KV storage. Random weights made by the backend, random tokens.
#include "backend/backend.h"
#include "common/error.h"
#include "model/llama_model.h"
#include "support/random.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>

namespace octet::model {
namespace {

LlamaConfig tiny_config() {
  LlamaConfig c;
  c.name = "tiny";
  c.layers = 2;
  c.hidden = 64;
  c.heads = 4;
  c.kv_heads = 2;
  c.head_dim = 16;
  c.ffn = 128;
  c.vocab = 97;
  c.context_length = 64;
  return c;
}

// Steps of a two-sequence run: first both prompts in one batch, then single-token steps that
// alternate between the slots (so each step has a different mix).
std::vector<backend::TokenBatch> make_steps(std::mt19937_64& rng, int64_t vocab) {
  std::vector<backend::TokenBatch> steps;
  backend::TokenBatch prefill;
  const int64_t lengths[2] = {13, 22};
  for (int64_t slot = 0; slot < 2; ++slot)
    for (int64_t p = 0; p < lengths[slot]; ++p) {
      prefill.tokens.push_back(static_cast<int32_t>(rng() % vocab));
      prefill.positions.push_back(p);
      prefill.slots.push_back(slot);
    }
  steps.push_back(prefill);
  int64_t next[2] = {lengths[0], lengths[1]};
  for (int step = 0; step < 20; ++step) {
    backend::TokenBatch b;
    for (int64_t slot = 0; slot < 2; ++slot) {
      if (step % 3 == 2 && slot == 1) continue;  // slot 1 skips some steps
      b.tokens.push_back(static_cast<int32_t>(rng() % vocab));
      b.positions.push_back(next[slot]++);
      b.slots.push_back(slot);
    }
    steps.push_back(b);
  }
  return steps;
}

std::vector<std::vector<float>> run(LlamaModel& model, const std::vector<backend::TokenBatch>& steps) {
  std::vector<std::vector<float>> out;
  for (const auto& batch : steps) {
    std::vector<int64_t> rows(batch.size());
    std::iota(rows.begin(), rows.end(), 0);
    std::vector<float> logits(rows.size() * static_cast<size_t>(model.config().vocab));
    model.forward(batch, rows, logits.data());
    out.push_back(std::move(logits));
  }
  return out;
}

class PagedKv : public ::testing::TestWithParam<Precision> {};

TEST_P(PagedKv, ScatteredBlockTablesGiveTheContiguousLogits) {
  std::mt19937_64 rng(testing::test_seed("PagedKv.ScatteredBlockTablesGiveTheContiguousLogits"));
  const LlamaConfig config = tiny_config();
  auto backend = backend::make_cpu_backend(2);
  ModelOptions contiguous_options;
  contiguous_options.precision = GetParam();
  contiguous_options.max_context = 48;
  contiguous_options.slots = 2;
  contiguous_options.kv_block_size = 4;
  ModelOptions paged_options = contiguous_options;
  paged_options.kv_blocks = 40;  // more than the 24 the two sequences need: unused blocks in between
  LlamaModel contiguous(config, nullptr, *backend, contiguous_options);
  LlamaModel paged(config, nullptr, *backend, paged_options);

  // A random permutation of the pool, dealt out alternately so the slots' blocks interleave.
  std::vector<int32_t> pool(40);
  std::iota(pool.begin(), pool.end(), 0);
  std::shuffle(pool.begin(), pool.end(), rng);
  std::vector<int32_t> tables[2];
  for (int i = 0; i < 24; ++i) tables[i % 2].push_back(pool[static_cast<size_t>(i)]);
  for (int64_t slot = 0; slot < 2; ++slot) paged.set_block_table(slot, tables[slot]);

  const auto steps = make_steps(rng, config.vocab);
  const auto expected = run(contiguous, steps);
  const auto got = run(paged, steps);
  ASSERT_EQ(expected.size(), got.size());
  for (size_t s = 0; s < expected.size(); ++s) ASSERT_EQ(expected[s], got[s]) << "step " << s;
}

TEST_P(PagedKv, UnmappedPositionIsAnError) {
  const LlamaConfig config = tiny_config();
  auto backend = backend::make_cpu_backend(1);
  ModelOptions options;
  options.precision = GetParam();
  options.max_context = 32;
  options.kv_blocks = 8;
  options.kv_block_size = 4;
  LlamaModel model(config, nullptr, *backend, options);
  const std::vector<int32_t> one_block = {5};
  model.set_block_table(0, one_block);
  backend::TokenBatch batch{{1, 2, 3, 4, 5}, {0, 1, 2, 3, 4}, {0, 0, 0, 0, 0}};  // position 4 needs a second block
  const int64_t row = 4;
  std::vector<float> logits(static_cast<size_t>(config.vocab));
  EXPECT_THROW(model.forward(batch, std::span<const int64_t>(&row, 1), logits.data()), Error);
}

INSTANTIATE_TEST_SUITE_P(Storage, PagedKv, ::testing::Values(Precision::fp8, Precision::bf16, Precision::f32),
                         [](const auto& info) { return std::string(precision_name(info.param)); });

}  // namespace
}  // namespace octet::model
