// Weight bytes from a model's shape (engine::describe_model) with the embedding table and LM head in
// BF16 or FP8, checked against the arithmetic done by hand for Llama-3.1-8B and SmolLM2-135M (tied).
#include "engine/model_info.h"
#include "model/llama_config.h"

#include <gtest/gtest.h>

namespace octet::engine {
namespace {

// Llama-3.1-8B (hidden 4096, ffn 14336, 32 layers, 32 heads, 8 KV heads of 128, vocab 128256, untied):
//   linears per layer: q 4096·4096 + k,v 2·4096·1024 + o 4096·4096 + gate,up,down 3·4096·14336
//                      = 218,103,808; × 32 = 6,979,321,856 (1 byte each in FP8)
//   channel scales: (4096 + 2·1024 + 4096 + 2·14336 + 4096) · 32 = 1,376,256 floats = 5,505,024 bytes
//   one vocabulary tensor: 128256 · 4096 = 525,336,576 values: BF16 1,050,673,152 bytes;
//     FP8 525,336,576 + 128256 · 4 = 525,849,600 bytes
//   norms: 32 · 2 · 4096 + 4096 = 266,240 values, 532,480 bytes
//   parameters 6,979,321,856 + 2 · 525,336,576 + 266,240 = 8,030,261,248; BF16 16,060,522,496 bytes
//   FP8, BF16 table and head: 6,979,321,856 + 5,505,024 + 2 · 1,050,673,152 + 532,480 = 9,086,705,664 (56.58%)
//   FP8, FP8 table and head:  6,979,321,856 + 5,505,024 + 2 · 525,849,600 + 532,480 = 8,037,058,560 (50.04%)
//   FP8 head only: 8,561,882,112 (53.31%)
TEST(ModelInfo, Llama31_8BWeightBytesByHand) {
  const model::LlamaConfig c =
      model::config_from_hf_file(std::string(OCTET_SOURCE_DIR) + "/configs/models/Llama-3.1-8B-Instruct.json");
  const ModelInfo bf16_vocab = describe_model(c, Precision::fp8, "", "", {false, false});
  EXPECT_EQ(bf16_vocab.parameters, 8'030'261'248);
  EXPECT_EQ(bf16_vocab.weight_bytes_bf16, 16'060'522'496ull);
  EXPECT_EQ(bf16_vocab.weight_bytes_fp8, 9'086'705'664ull);
  const ModelInfo fp8_vocab = describe_model(c, Precision::fp8, "", "", {true, true});
  EXPECT_EQ(fp8_vocab.weight_bytes_fp8, 8'037'058'560ull);
  EXPECT_LE(static_cast<double>(fp8_vocab.weight_bytes_fp8) / static_cast<double>(fp8_vocab.weight_bytes_bf16), 0.52);
  EXPECT_EQ(describe_model(c, Precision::fp8, "", "", {false, true}).weight_bytes_fp8, 8'561'882'112ull);
  EXPECT_EQ(describe_model(c, Precision::fp8, "", "", {true, false}).weight_bytes_fp8, 8'561'882'112ull);
}

// SmolLM2-135M (hidden 576, vocab 49152, tied): the table is 28,311,552 values; FP8 with a float
// per row is 28,311,552 + 196,608 = 28,508,160 bytes, and a tied FP8 table and head are that one copy.
TEST(ModelInfo, TiedFp8TableAndHeadCountOnce) {
  const model::LlamaConfig c =
      model::config_from_hf_file(std::string(OCTET_SOURCE_DIR) + "/configs/models/SmolLM2-135M-Instruct.json");
  ASSERT_TRUE(c.tied_embeddings);
  const ModelInfo bf16 = describe_model(c, Precision::fp8, "", "", {false, false});
  const ModelInfo fp8 = describe_model(c, Precision::fp8, "", "", {true, true});
  const ModelInfo mixed = describe_model(c, Precision::fp8, "", "", {false, true});
  EXPECT_EQ(bf16.parameters, 134'515'008);
  EXPECT_EQ(bf16.weight_bytes_fp8 - fp8.weight_bytes_fp8, 2ull * 28'311'552 - 28'508'160);
  EXPECT_EQ(mixed.weight_bytes_fp8 - bf16.weight_bytes_fp8, 28'508'160ull);  // a second tensor beside the table
}

}  // namespace
}  // namespace octet::engine
