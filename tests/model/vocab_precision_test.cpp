// The embedding table and the LM head in fp8 precision (llm.lm_head_precision,
// llm.embedding_precision): how auto resolves, what fp8 costs a tiny model's logits against float32
// next to the BF16 head, and that a tied fp8 table and head are one copy.
#include "backend/backend.h"
#include "common/error.h"
#include "model/llama_model.h"
#include "support/random.h"
#include "support/tiny_checkpoint.h"

#include <gtest/gtest.h>

#include <cstdio>

namespace octet::model {
namespace {

namespace tw = octet::testing;

TEST(VocabPrecision, AutoIsTheCheckpointsChoiceElseTheDefault) {
  const auto fp8 = Precision::fp8;
  const bool by_default = kAutoVocabPrecision == VocabPrecision::fp8;
  EXPECT_EQ(vocab_tensor_fp8(fp8, VocabPrecision::auto_select, std::nullopt, "x"), by_default);
  EXPECT_FALSE(vocab_tensor_fp8(fp8, VocabPrecision::auto_select, false, "x"));  // e.g. ModelOpt excludes lm_head
  EXPECT_TRUE(vocab_tensor_fp8(fp8, VocabPrecision::auto_select, true, "x"));    // an FP8 lm_head on disk
  EXPECT_TRUE(vocab_tensor_fp8(fp8, VocabPrecision::fp8, false, "x"));            // asked for: quantized at load
  EXPECT_FALSE(vocab_tensor_fp8(fp8, VocabPrecision::bf16, true, "x"));           // asked for: dequantized
  for (Precision other : {Precision::bf16, Precision::f32}) {
    EXPECT_FALSE(vocab_tensor_fp8(other, VocabPrecision::auto_select, true, "x"));
    EXPECT_FALSE(vocab_tensor_fp8(other, VocabPrecision::bf16, std::nullopt, "x"));
    try {
      vocab_tensor_fp8(other, VocabPrecision::fp8, std::nullopt, "llm.lm_head_precision");
      ADD_FAILURE() << "fp8 head accepted under " << precision_name(other);
    } catch (const Error& e) {
      const std::string message = e.what();
      EXPECT_NE(message.find("llm.lm_head_precision = fp8 needs llm.precision = fp8"), std::string::npos) << message;
    }
  }
}

struct Built {
  std::vector<float> logits;
  uint64_t weight_bytes = 0;
  bool embedding_fp8 = false, lm_head_fp8 = false;
};

// Logits of 16 positions of a fixed token sequence.
std::vector<float> forward_logits(LlamaModel& model) {
  const int64_t vocab = model.config().vocab;
  backend::TokenBatch batch;
  std::vector<int64_t> rows;
  for (int32_t i = 0; i < 16; ++i) {
    batch.tokens.push_back((i * 37 + 11) % static_cast<int32_t>(vocab));
    batch.positions.push_back(i);
    batch.slots.push_back(0);
    rows.push_back(i);
  }
  std::vector<float> logits(rows.size() * static_cast<size_t>(vocab));
  model.forward(batch, rows, logits.data());
  return logits;
}

Built build(const LlamaConfig& config, const WeightSource& weights, Precision precision, VocabPrecision table,
            VocabPrecision head) {
  auto backend = backend::make_cpu_backend(1);
  ModelOptions options;
  options.precision = precision;
  options.max_context = 64;
  options.embedding_precision = table;
  options.lm_head_precision = head;
  LlamaModel model(config, &weights, *backend, options);
  return {forward_logits(model), model.weight_bytes(), model.embedding_fp8(), model.lm_head_fp8()};
}

// The tiny model's FP8 body with the vocabulary tensors in fp8 against float32: within 1.5 times
// the error of the same body with them in BF16, plus 0.02 (the tolerance the checkpoint layouts'
// tests state), for an untied and a tied model.
TEST(VocabPrecision, TinyModelWithFp8HeadAndTableStaysNearTheBf16Head) {
  for (bool tied : {false, true}) {
    std::mt19937_64 rng(tw::test_seed("VocabPrecision.TinyModelWithFp8HeadAndTableStaysNearTheBf16Head") + tied);
    const tw::TinyLlama m = tw::TinyLlama::random(rng, tied);
    tw::TestWeightSource weights;
    weights.weights = m.weights;
    LlamaConfig config = config_from_hf_json(m.config_json(), "tiny");
    const Built fp8 = build(config, weights, Precision::fp8, VocabPrecision::fp8, VocabPrecision::fp8);
    const Built bf16 = build(config, weights, Precision::fp8, VocabPrecision::bf16, VocabPrecision::bf16);
    EXPECT_TRUE(fp8.embedding_fp8 && fp8.lm_head_fp8);
    EXPECT_FALSE(bf16.embedding_fp8 || bf16.lm_head_fp8);
    const std::vector<float> exact =
        build(config, weights, Precision::f32, VocabPrecision::auto_select, VocabPrecision::auto_select).logits;
    const double fp8_error = tw::relative_difference(fp8.logits, exact);
    const double bf16_error = tw::relative_difference(bf16.logits, exact);
    std::printf("[%s] relative logit error vs f32: fp8 head + table %.4f, bf16 head + table %.4f\n",
                tied ? "tied" : "untied", fp8_error, bf16_error);
    EXPECT_NE(fp8.logits, bf16.logits);  // the setting took effect
    EXPECT_LT(fp8_error, 1.5 * bf16_error + 0.02);

    // Storage: an fp8 tensor is vocab · hidden codes + a float scale per row; a tied fp8 table
    // and head are one copy, so a BF16 table beside an fp8 head costs its full 2 bytes per value.
    const uint64_t table = static_cast<uint64_t>(m.vocab * m.hidden), fp8_tensor = table + m.vocab * 4;
    if (tied) {
      const Built mixed = build(config, weights, Precision::fp8, VocabPrecision::bf16, VocabPrecision::fp8);
      EXPECT_EQ(mixed.weight_bytes - fp8.weight_bytes, table * 2);
      EXPECT_EQ(bf16.weight_bytes - fp8.weight_bytes, 2 * (table * 2) - fp8_tensor);  // two BF16 copies today
    } else {
      EXPECT_EQ(bf16.weight_bytes - fp8.weight_bytes, 2 * (table * 2 - fp8_tensor));
    }
  }
}

}  // namespace
}  // namespace octet::model
