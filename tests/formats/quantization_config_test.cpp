// The quantization settings of FP8 checkpoints in the shapes their exporters write (ModelOpt's
// hf_quant_config.json, its older and newer config.json forms, compressed-tensors), exclusion
// patterns, and clear errors for the schemes Octet does not read.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <unistd.h>

#include "common/error.h"
#include "formats/quantization_config.h"

#include <nlohmann/json.hpp>

namespace octet::formats {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

class QuantizationConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("octet_qc_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  QuantizationConfig read(const json& config) { return read_quantization_config(dir_.string(), config, "config.json"); }
  std::string error(const json& config) {
    try {
      read(config);
    } catch (const Error& e) {
      return e.what();
    }
    return "<no error>";
  }
  void write_hf_quant(const json& quantization) {
    std::ofstream(dir_ / "hf_quant_config.json") << json{{"producer", {{"name", "modelopt"}}}, {"quantization", quantization}}.dump();
  }
  fs::path dir_;
};

TEST_F(QuantizationConfigTest, NoQuantizationConfigMeansFloatWeights) {
  const auto c = read(json{{"hidden_size", 64}});
  EXPECT_FALSE(c.quantized());
  EXPECT_FALSE(c.is_excluded("lm_head"));
}

TEST_F(QuantizationConfigTest, ModelOptNewerConfigJsonForm) {
  // As ModelOpt ≥ 0.29 writes config.json (nvidia/Llama-3.3-70B-Instruct-FP8 and later exports).
  const json config = {{"quantization_config",
                        {{"config_groups",
                          {{"group_0",
                            {{"input_activations", {{"dynamic", false}, {"num_bits", 8}, {"type", "float"}}},
                             {"weights", {{"dynamic", false}, {"num_bits", 8}, {"type", "float"}}},
                             {"targets", {"Linear"}}}}}},
                         {"ignore", {"lm_head", "model.layers.0*"}},
                         {"kv_cache_scheme", {{"dynamic", false}, {"num_bits", 8}, {"type", "float"}}},
                         {"producer", {{"name", "modelopt"}, {"version", "0.29.0"}}},
                         {"quant_algo", "FP8"},
                         {"quant_method", "modelopt"}}}};
  const auto c = read(config);
  EXPECT_EQ(c.method, QuantizationConfig::Method::modelopt);
  EXPECT_EQ(c.algorithm, "FP8");
  EXPECT_TRUE(c.static_activations);
  EXPECT_FALSE(c.per_channel_weights);
  EXPECT_TRUE(c.fp8_kv_cache);
  EXPECT_TRUE(c.is_excluded("lm_head"));
  // "module*" covers the module and everything under it, as ModelOpt means it.
  EXPECT_TRUE(c.is_excluded("model.layers.0.mlp.up_proj"));
  EXPECT_TRUE(c.is_excluded("model.layers.0"));
  EXPECT_TRUE(c.is_excluded("model.layers.07.mlp.up_proj"));  // fnmatch semantics, as vLLM applies them
  EXPECT_FALSE(c.is_excluded("model.layers.1.mlp.up_proj"));
}

TEST_F(QuantizationConfigTest, HfQuantConfigIsAuthoritative) {
  write_hf_quant({{"quant_algo", "FP8_PER_CHANNEL_PER_TOKEN"}, {"kv_cache_quant_algo", nullptr}, {"exclude_modules", {"lm_head"}}});
  const json config = {{"quantization_config", {{"quant_method", "modelopt"}, {"quant_algo", "FP8"}}}};
  const auto c = read(config);  // logs a warning about the disagreement
  EXPECT_EQ(c.algorithm, "FP8_PER_CHANNEL_PER_TOKEN");
  EXPECT_TRUE(c.per_channel_weights);
  EXPECT_FALSE(c.static_activations);
  EXPECT_FALSE(c.fp8_kv_cache);
  EXPECT_NE(c.source.find("hf_quant_config.json"), std::string::npos);
}

TEST_F(QuantizationConfigTest, ModelOptNestedFormAndUnsupportedAlgorithms) {
  const json nested = {{"quantization_config",
                        {{"quant_method", "modelopt"}, {"quantization", {{"quant_algo", "fp8"}, {"kv_cache_quant_algo", "FP8"}}}}}};
  const auto c = read(nested);
  EXPECT_EQ(c.algorithm, "FP8");  // ModelOpt may write it lower-case
  EXPECT_TRUE(c.fp8_kv_cache);
  EXPECT_NE(error({{"quantization_config", {{"quant_method", "modelopt"}, {"quant_algo", "FP8_PB_WO"}}}}).find("'FP8_PB_WO' is not supported"),
            std::string::npos);
  EXPECT_NE(error({{"quantization_config", {{"quant_method", "modelopt"}, {"quant_algo", "NVFP4"}}}}).find("NVFP4"), std::string::npos);
  write_hf_quant({{"quant_algo", "FP8"}, {"kv_cache_quant_algo", "NVFP4"}});
  EXPECT_NE(error(json::object()).find("kv_cache_quant_algo 'NVFP4'"), std::string::npos);
}

json compressed_tensors(const json& weights, const json& inputs, const json& extra = json::object()) {
  json settings = {{"quant_method", "compressed-tensors"},
                   {"format", "float-quantized"},
                   {"config_groups", {{"group_0", {{"targets", {"Linear"}}, {"weights", weights}, {"input_activations", inputs}}}}},
                   {"ignore", {"lm_head", "re:.*mlp\\.down_proj$"}}};
  settings.update(extra);
  return {{"quantization_config", settings}};
}

TEST_F(QuantizationConfigTest, CompressedTensorsSchemes) {
  const json channel = {{"num_bits", 8}, {"type", "float"}, {"strategy", "channel"}, {"dynamic", false}, {"symmetric", true}};
  const json token = {{"num_bits", 8}, {"type", "float"}, {"strategy", "token"}, {"dynamic", true}};
  const auto dynamic = read(compressed_tensors(channel, token));  // RedHatAI *-FP8-dynamic
  EXPECT_EQ(dynamic.method, QuantizationConfig::Method::compressed_tensors);
  EXPECT_TRUE(dynamic.per_channel_weights);
  EXPECT_FALSE(dynamic.static_activations);
  EXPECT_FALSE(dynamic.fp8_kv_cache);
  EXPECT_TRUE(dynamic.is_excluded("model.layers.3.mlp.down_proj"));  // "re:" matched from the start of the name
  EXPECT_FALSE(dynamic.is_excluded("model.layers.3.mlp.up_proj"));

  const json tensor = {{"num_bits", 8}, {"type", "float"}, {"strategy", "tensor"}, {"dynamic", false}};
  const auto statics = read(compressed_tensors(tensor, tensor, {{"kv_cache_scheme", tensor}}));  // RedHatAI *-FP8
  EXPECT_FALSE(statics.per_channel_weights);
  EXPECT_TRUE(statics.static_activations);
  EXPECT_TRUE(statics.fp8_kv_cache);
  EXPECT_FALSE(read(compressed_tensors(tensor, nullptr)).static_activations);  // weight-only: dynamic in Octet

  // FP8_BLOCK (RedHatAI *-FP8-block): 128×128 weight blocks, dynamic activations in 1x128 groups.
  json block = channel;
  block["strategy"] = "block";
  block["block_structure"] = {128, 128};
  const json groups = {{"num_bits", 8}, {"type", "float"}, {"strategy", "group"}, {"group_size", 128}, {"dynamic", true}};
  const auto blocks = read(compressed_tensors(block, groups));
  EXPECT_TRUE(blocks.block_weights);
  EXPECT_FALSE(blocks.per_channel_weights);
  EXPECT_FALSE(blocks.static_activations);
  EXPECT_EQ(blocks.algorithm, "FP8 weights per 128x128 block, dynamic activations");
  EXPECT_NE(error(compressed_tensors(channel, groups)).find("dynamic strategy 'group' is not supported"), std::string::npos);
  for (const json& structure : {json{64, 64}, json{128}, json(nullptr)}) {
    json other = block;
    other["block_structure"] = structure;
    const std::string message = error(compressed_tensors(other, groups));
    EXPECT_NE(message.find("group_0.weights: block_structure"), std::string::npos) << message;
    EXPECT_NE(message.find("needs block_structure [128, 128]"), std::string::npos) << message;
  }
  json grouped = channel;
  grouped["strategy"] = "group";
  EXPECT_NE(error(compressed_tensors(grouped, token)).find("strategy 'group' is not supported"), std::string::npos);
  json int8 = channel;
  int8["type"] = "int";
  EXPECT_NE(error(compressed_tensors(int8, token)).find("type 'int'"), std::string::npos);
  EXPECT_NE(error(compressed_tensors(channel, token, {{"format", "pack-quantized"}})).find("format 'pack-quantized'"),
            std::string::npos);
  EXPECT_NE(error(compressed_tensors(channel, token, {{"ignore", {"re:(unclosed"}}})).find("not a valid regular expression"),
            std::string::npos);
  EXPECT_NE(error({{"quantization_config", {{"quant_method", "awq"}}}}).find("quant_method 'awq' is not supported"),
            std::string::npos);
  EXPECT_NE(error({{"quantization_config", 5}}).find("expected an object"), std::string::npos);
}

}  // namespace
}  // namespace octet::formats
