// The real SmolLM2-135M-Instruct Q4_1 GGUF, when present ($OCTET_MODELS or <source>/models).
// Golden values come from gguf-py: tools/smollm2_golden_values.py prints the table below.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>

#include "formats/gguf.h"
#include "model/llama_config.h"

namespace octet::gguf {
namespace {

std::string model_path() {
  const char* models = std::getenv("OCTET_MODELS");
  const std::string directory = models && *models ? models : std::string(OCTET_SOURCE_DIR) + "/models";
  return directory + "/SmolLM2-135M-Instruct.Q4_1.gguf";
}

#define SKIP_WITHOUT_MODEL(path)                                                                   \
  if (!std::filesystem::exists(path))                                                              \
  GTEST_SKIP() << path << " is absent; set OCTET_MODELS to the directory holding it to run this test"

struct Golden {
  const char* name;
  TensorType type;
  uint64_t element_count;
  double sum;  // float64 sum of all dequantized values (numpy, pairwise)
  std::vector<std::pair<uint64_t, uint32_t>> values;  // index, float bits
};

constexpr auto Q8_0 = TensorType::Q8_0;
constexpr auto Q4_1 = TensorType::Q4_1;
constexpr auto F32 = TensorType::F32;

// /tmp/refenv/bin/python tools/smollm2_golden_values.py models/SmolLM2-135M-Instruct.Q4_1.gguf
const std::vector<Golden> kGolden = {
    {"token_embd.weight", Q8_0, 28311552, -15353.04449415207, {{0, 0xbdda3400u}, {1, 0x3d071400u}, {575, 0x3cf3c000u}, {576017, 0x3e5b0400u}, {28311551, 0xbd2ad000u}}},  // -0.106544, 0.0329781, 0.0297546, 0.213882, -0.0417023
    {"blk.0.attn_q.weight", Q4_1, 331776, 59.22322082519531, {{0, 0xbdc54000u}, {31, 0xbdc54000u}, {32, 0xbeb14000u}, {1000, 0xbe0dc000u}, {331775, 0xbe830000u}}},  // -0.0963135, -0.0963135, -0.346191, -0.138428, -0.255859
    {"blk.29.ffn_down.weight", Q4_1, 884736, 49.83570861816406, {{0, 0xbe8bf000u}, {15, 0xbe0ab000u}, {16, 0x3ea5f800u}, {123457, 0xbd11c000u}, {884735, 0x3d680000u}}},  // -0.273315, -0.135437, 0.324158, -0.0355835, 0.0566406
    {"blk.0.attn_norm.weight", F32, 576, 0.6129436492919922, {{0, 0x3c650000u}, {1, 0x3cc30000u}, {575, 0xbd1d0000u}}},  // 0.0139771, 0.0238037, -0.0383301
    {"output_norm.weight", F32, 576, 1038.33203125, {{0, 0x3fe10000u}, {287, 0x3fe10000u}, {575, 0x3ffe0000u}}},  // 1.75781, 1.75781, 1.98438
};

TEST(GgufSmolLM2, TensorTableAndDequantizedValues) {
  const std::string path = model_path();
  SKIP_WITHOUT_MODEL(path);
  const File file = File::open(path);
  EXPECT_EQ(file.version(), 3u);
  EXPECT_EQ(file.alignment(), 32u);
  ASSERT_EQ(file.tensors().size(), 272u);
  std::map<TensorType, int> type_counts;
  for (const TensorInfo& tensor : file.tensors()) type_counts[tensor.type]++;
  EXPECT_EQ(type_counts, (std::map<TensorType, int>{{Q4_1, 210}, {F32, 61}, {Q8_0, 1}}));
  EXPECT_EQ(file.tensor("token_embd.weight").dims, (std::vector<uint64_t>{576, 49152}));

  for (const Golden& golden : kGolden) {
    const TensorInfo& tensor = file.tensor(golden.name);
    EXPECT_EQ(tensor.type, golden.type) << golden.name;
    const std::vector<float> values = file.dequantize(tensor);
    ASSERT_EQ(values.size(), golden.element_count) << golden.name;
    for (const auto& [index, bits] : golden.values) {
      uint32_t actual;
      std::memcpy(&actual, &values[index], 4);
      EXPECT_EQ(actual, bits) << golden.name << "[" << index << "] = " << values[index];
    }
    double sum = 0;
    for (float value : values) sum += value;
    EXPECT_NEAR(sum, golden.sum, 1e-9 * (1 + std::abs(golden.sum))) << golden.name;  // summation order differs
  }
}

TEST(GgufSmolLM2, ConfigFromMetadata) {
  const std::string path = model_path();
  SKIP_WITHOUT_MODEL(path);
  const File file = File::open(path);
  const model::LlamaConfig config = model::config_from_gguf(file);
  EXPECT_EQ(config.layers, 30);
  EXPECT_EQ(config.hidden, 576);
  EXPECT_EQ(config.ffn, 1536);
  EXPECT_EQ(config.heads, 9);
  EXPECT_EQ(config.kv_heads, 3);
  EXPECT_EQ(config.head_dim, 64);
  EXPECT_EQ(config.vocab, 49152);
  EXPECT_EQ(config.context_length, 8192);
  EXPECT_EQ(config.rope_theta, 100000.0);
  EXPECT_EQ(config.rms_norm_eps, double{1e-5f});  // stored as FLOAT32
  EXPECT_TRUE(config.rope_scaling.type.empty());
  EXPECT_TRUE(config.tied_embeddings);
  EXPECT_EQ(config.bos_token_id, 1);
  EXPECT_EQ(config.eos_token_ids, std::vector<int64_t>{2});
  // Identity: the parameter count from the shapes equals the elements actually stored.
  uint64_t stored = 0;
  for (const TensorInfo& tensor : file.tensors()) stored += tensor.element_count;
  EXPECT_EQ(config.parameter_count(), static_cast<int64_t>(stored));

  // The HF config of the same model agrees.
  const auto hf = model::config_from_hf_file(std::string(OCTET_SOURCE_DIR) + "/configs/models/SmolLM2-135M-Instruct.json");
  EXPECT_EQ(hf.parameter_count(), config.parameter_count());
  EXPECT_EQ(hf.head_dim, config.head_dim);
  EXPECT_EQ(hf.rope_inverse_frequencies(), config.rope_inverse_frequencies());
}

}  // namespace
}  // namespace octet::gguf
