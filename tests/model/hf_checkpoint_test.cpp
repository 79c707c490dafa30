// Hugging Face model directories written here in the published layouts (tests/support/tiny_checkpoint.h)
// load through open_model_files and give the logits of the same weights handed to LlamaModel by a
// WeightSource written in the test: exactly for 16/32-bit checkpoints and for FP8 codes (kept bit for
// bit), and within a stated tolerance of the quantize-at-load path for per-tensor/static FP8.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>

#include "backend/backend.h"
#include "backend/device.h"
#include "common/error.h"
#include "model/llama_model.h"
#include "model/model_files.h"
#include "support/error_text.h"
#include "support/random.h"
#include "support/scoped_environment.h"
#include "support/tiny_checkpoint.h"

namespace octet::model {
namespace {

namespace tw = octet::testing;
using nlohmann::json;
namespace fs = std::filesystem;

std::vector<float> logits(const LlamaConfig& config, const WeightSource& weights, Precision precision = Precision::fp8) {
  return tw::tiny_logits(config, weights, precision);
}
using tw::relative_difference;

tw::TestWeightSource float_source(const tw::TinyLlama& m) {
  tw::TestWeightSource source;
  source.weights = m.weights;
  return source;
}

// The stated tolerance for checkpoints quantized differently from the quantize-at-load path (per-tensor
// weight scales, static activation and KV scales): their logits' relative error against float32 is at
// most 1.5 times that of quantizing at load (per-channel weights, dynamic activations), plus 0.02.
void expect_close_to_quantize_at_load(const std::vector<float>& loaded, const LlamaConfig& config, const tw::TinyLlama& m,
                                      const char* what) {
  const auto exact = logits(config, float_source(m), Precision::f32);
  const double checkpoint_error = relative_difference(loaded, exact);
  const double at_load_error = relative_difference(logits(config, float_source(m)), exact);
  std::printf("[%s] relative logit error vs f32 %.4f; quantize-at-load %.4f\n", what, checkpoint_error, at_load_error);
  EXPECT_LT(checkpoint_error, 1.5 * at_load_error + 0.02) << what;
}

std::vector<uint8_t> encode(const std::vector<float>& values, const std::string& dtype) {
  if (dtype == "BF16") return tw::bf16_bytes(values);
  if (dtype == "F16") return tw::f16_bytes(values);
  return tw::f32_bytes(values);
}

std::vector<tw::StTensor> float_tensors(const tw::TinyLlama& m, const std::string& dtype) {
  std::vector<tw::StTensor> tensors;
  for (const auto& name : m.order) tensors.push_back({name, dtype, m.shapes.at(name), encode(m.weights.at(name), dtype)});
  return tensors;
}

fs::path write_float_dir(const std::string& name, const tw::TinyLlama& m, const std::string& dtype, int shards) {
  const fs::path dir = tw::fresh_directory(name);
  tw::write_text(dir / "config.json", m.config_json().dump(2));
  tw::write_tiny_tokenizer(dir);
  tw::write_weights(dir, float_tensors(m, dtype), shards);
  return dir;
}

// The quantized layouts: every body linear in FP8 from the tests' own quantizer; lm_head kept BF16.
struct Fp8Layout {
  bool per_channel = false;          // weight_scale [out, 1] instead of a scalar
  bool static_inputs = true;         // input_scale per linear
  std::string kv_names = "modelopt";  // "modelopt" (k_proj.k_scale), "ct" (self_attn.k_scale), "old" (k_proj.output_scale), ""
  std::vector<std::string> keep_bf16;  // modules written as BF16
};

// Octet's own in-memory scheme: weight_scale per output channel, activations quantized per token.
Fp8Layout per_channel_dynamic() {
  Fp8Layout layout;
  layout.per_channel = true;
  layout.static_inputs = false;
  layout.kv_names = "";
  return layout;
}

// Static scales that cover the tiny model's values, as a calibration would make them. Linear inputs are
// rmsnorm outputs (|x| ≲ 5), averages of V rows, and silu(gate)·up with gate and up of std ≈ 1.2: up to
// ~16. K and V rows are W·rmsnorm(x) with W ~ N(0, 0.15²) over 64 inputs: std ≈ 0.15·√64 = 1.2, so 6
// and 7 cover 5σ. (Scales of 8 for inputs and 3 for V clipped values on some draws and made the error
// bound below fail on about 1 draw in 50; scales that clip are a calibration error, not a loader's.)
constexpr float kInputScale = 16.0f / 448.0f;
constexpr float kKScale = 6.0f / 448.0f, kVScale = 7.0f / 448.0f;

std::pair<std::vector<tw::StTensor>, tw::TestWeightSource> fp8_tensors(const tw::TinyLlama& m, const Fp8Layout& layout) {
  tw::TestWeightSource source = float_source(m);
  std::vector<tw::StTensor> tensors;
  const auto modules = tw::TinyLlama::linear_modules(m.layers);
  for (const auto& name : m.order) {
    const std::string module = name.substr(0, name.size() - 7);  // without ".weight"
    const bool linear = std::find(modules.begin(), modules.end(), module) != modules.end();
    const bool keep = std::find(layout.keep_bf16.begin(), layout.keep_bf16.end(), module) != layout.keep_bf16.end();
    if (!linear || keep) {
      tensors.push_back({name, "BF16", m.shapes.at(name), tw::bf16_bytes(m.weights.at(name))});
      if (keep) source.keep_16bit.push_back(module);
      continue;
    }
    const auto& shape = m.shapes.at(name);
    tw::ReferenceFp8 q = tw::reference_quantize(m.weights.at(name), shape[0], shape[1], layout.per_channel);
    tensors.push_back({name, "F8_E4M3", shape, q.codes});
    if (layout.per_channel) tensors.push_back({module + ".weight_scale", "F32", {shape[0], 1}, tw::f32_bytes(q.scales)});
    else tensors.push_back({module + ".weight_scale", "F32", {}, tw::f32_bytes(q.scales)});
    if (layout.static_inputs) {
      tensors.push_back({module + ".input_scale", "F32", {}, tw::f32_bytes({kInputScale})});
      source.input_scales[module] = kInputScale;
    }
    source.fp8[module] = q;
  }
  if (!layout.kv_names.empty()) {
    for (int64_t i = 0; i < m.layers; ++i) {
      const std::string p = "model.layers." + std::to_string(i) + ".self_attn.";
      const std::string k = layout.kv_names == "modelopt" ? "k_proj.k_scale" : layout.kv_names == "ct" ? "k_scale" : "k_proj.output_scale";
      const std::string v = layout.kv_names == "modelopt" ? "v_proj.v_scale" : layout.kv_names == "ct" ? "v_scale" : "v_proj.output_scale";
      tensors.push_back({p + k, "F32", {}, tw::f32_bytes({kKScale * (1 + i)})});
      tensors.push_back({p + v, "F32", {1}, tw::f32_bytes({kVScale * (1 + i)})});
      source.kv.push_back({kKScale * (1 + i), kVScale * (1 + i)});
    }
  }
  return {tensors, source};
}

// ModelOpt's hf_quant_config.json and config.json quantization_config, as nvidia/*-FP8 publish them.
void write_modelopt_dir(const fs::path& dir, const tw::TinyLlama& m, const Fp8Layout& layout,
                        const std::vector<tw::StTensor>& tensors, int shards = 1) {
  const std::string algo = layout.per_channel ? "FP8_PER_CHANNEL_PER_TOKEN" : "FP8";
  json excluded = {"lm_head"};
  for (const auto& k : layout.keep_bf16) excluded.push_back(k);
  const json kv_algo = layout.kv_names.empty() ? json(nullptr) : json("FP8");
  tw::write_text(dir / "hf_quant_config.json",
                 json{{"producer", {{"name", "modelopt"}, {"version", "0.23.0"}}},
                      {"quantization", {{"quant_algo", algo}, {"kv_cache_quant_algo", kv_algo}, {"exclude_modules", excluded}}}}
                     .dump(4));
  json config = m.config_json();
  config["quantization_config"] = {{"quant_method", "modelopt"}, {"quant_algo", algo}, {"kv_cache_quant_algo", kv_algo},
                                   {"exclude_modules", excluded}};
  tw::write_text(dir / "config.json", config.dump(2));
  tw::write_tiny_tokenizer(dir);
  tw::write_weights(dir, tensors, shards);
}

// compressed-tensors (llm-compressor) config.json, as RedHatAI/*-FP8(-dynamic) publish it.
void write_compressed_tensors_dir(const fs::path& dir, const tw::TinyLlama& m, const Fp8Layout& layout,
                                  const std::vector<tw::StTensor>& tensors, const json& ignore) {
  json inputs = layout.static_inputs
                    ? json{{"num_bits", 8}, {"type", "float"}, {"strategy", "tensor"}, {"dynamic", false}, {"symmetric", true}}
                    : json{{"num_bits", 8}, {"type", "float"}, {"strategy", "token"}, {"dynamic", true}, {"symmetric", true}};
  json config = m.config_json();
  config["quantization_config"] = {
      {"quant_method", "compressed-tensors"},
      {"format", "float-quantized"},
      {"quantization_status", "compressed"},
      {"config_groups",
       {{"group_0",
         {{"targets", {"Linear"}},
          {"weights", {{"num_bits", 8}, {"type", "float"}, {"strategy", layout.per_channel ? "channel" : "tensor"},
                       {"dynamic", false}, {"symmetric", true}, {"observer", "minmax"}}},
          {"input_activations", inputs},
          {"output_activations", nullptr}}}}},
      {"ignore", ignore},
      {"kv_cache_scheme", layout.kv_names.empty() ? json(nullptr)
                                                  : json{{"num_bits", 8}, {"type", "float"}, {"strategy", "tensor"},
                                                         {"dynamic", false}, {"symmetric", true}}}};
  tw::write_text(dir / "config.json", config.dump(2));
  tw::write_tiny_tokenizer(dir);
  tw::write_weights(dir, tensors);
}

using tw::error_of;
using tw::expect_parts;

// Loads a directory and runs it (the whole loading path: config, tokenizer, weights, model).
std::vector<float> dir_logits(const fs::path& dir, Precision precision = Precision::fp8) {
  ModelFiles files = open_model_files(dir.string());
  return logits(files.config, *files.weights, precision);
}

TEST(HfCheckpoint, TheTestWriterLaysOutTheHeaderAsTheFormatDefinesIt) {
  const auto bytes = tw::safetensors_bytes({{"a", "BF16", {2, 3}, std::vector<uint8_t>(12)}, {"b", "F8_E4M3", {4}, {1, 2, 3, 4}}},
                                           {{"format", "pt"}});
  uint64_t length = 0;
  for (int i = 7; i >= 0; --i) length = (length << 8) | bytes[static_cast<size_t>(i)];
  EXPECT_EQ(length % 8, 0u);
  ASSERT_EQ(bytes.size(), 8 + length + 16);
  const json header = json::parse(std::string(bytes.begin() + 8, bytes.begin() + 8 + static_cast<std::ptrdiff_t>(length)));
  EXPECT_EQ(header["__metadata__"], (json{{"format", "pt"}}));
  EXPECT_EQ(header["a"], (json{{"dtype", "BF16"}, {"shape", {2, 3}}, {"data_offsets", {0, 12}}}));
  EXPECT_EQ(header["b"], (json{{"dtype", "F8_E4M3"}, {"shape", {4}}, {"data_offsets", {12, 16}}}));
}

TEST(HfCheckpoint, Bf16F16F32DirectoriesGiveTheLogitsOfTheirWeights) {
  std::mt19937_64 rng(tw::test_seed("HfCheckpoint.Bf16F16F32DirectoriesGiveTheLogitsOfTheirWeights"));
  const tw::TinyLlama m = tw::TinyLlama::random(rng);
  const tw::TestWeightSource reference = float_source(m);
  const auto dir = write_float_dir("bf16", m, "BF16", 1);
  ModelFiles files = open_model_files(dir.string());
  EXPECT_EQ(files.format, "safetensors");
  EXPECT_EQ(files.config.layers, 2);
  EXPECT_EQ(files.config.kv_heads, 2);
  EXPECT_EQ(files.config.name, dir.filename().string());
  EXPECT_EQ(files.tokenizer->chat_template().kind(), tokenizer::ChatTemplate::Kind::chatml);
  for (int32_t id : {257, 258}) EXPECT_NE(std::find(files.stop_ids.begin(), files.stop_ids.end(), id), files.stop_ids.end()) << id;
  EXPECT_EQ(files.tokenizer->encode("Hi"), (std::vector<int32_t>{72, 105}));
  ASSERT_TRUE(files.temperature.has_value());  // generation_config.json suggests temperature 0.6
  EXPECT_FLOAT_EQ(*files.temperature, 0.6f);
  EXPECT_FALSE(files.top_p.has_value());
  // BF16 weights are quantized at load exactly as the in-memory path quantizes the same floats.
  EXPECT_EQ(logits(files.config, *files.weights), logits(files.config, reference));
  EXPECT_EQ(logits(files.config, *files.weights, Precision::f32), logits(files.config, reference, Precision::f32));

  // F32 and F16 files, sharded with an index: F32 holds the BF16 values exactly; F16 rounds the
  // smallest ones (below its normal range), so its reference takes the F16 values.
  tw::TestWeightSource f16_reference = reference;
  for (auto& [name, values] : f16_reference.weights)
    for (float& v : values) v = tw::f16_value(tw::f16_bits(v));
  for (const std::string dtype : {"F32", "F16"}) {
    const auto sharded = write_float_dir("sharded_" + dtype, m, dtype, 3);
    EXPECT_TRUE(fs::exists(sharded / "model-00003-of-00003.safetensors"));
    EXPECT_EQ(dir_logits(sharded), logits(files.config, dtype == "F16" ? f16_reference : reference)) << dtype;
    fs::remove_all(sharded);
  }
  fs::remove_all(dir);
}

TEST(HfCheckpoint, TiedEmbeddingsAndAnUnknownChatTemplate) {
  std::mt19937_64 rng(tw::test_seed("HfCheckpoint.TiedEmbeddingsAndAnUnknownChatTemplate"));
  const tw::TinyLlama m = tw::TinyLlama::random(rng, /*tied=*/true);
  const auto dir = tw::fresh_directory("tied");
  tw::write_text(dir / "config.json", m.config_json().dump());
  tw::write_tiny_tokenizer(dir, "{{ messages | some_unknown_format }}");
  tw::write_weights(dir, float_tensors(m, "BF16"));
  ModelFiles files = open_model_files(dir.string());
  EXPECT_TRUE(files.config.tied_embeddings);
  // No Llama 3 header tokens in the vocabulary: the family's template is ChatML.
  EXPECT_EQ(files.tokenizer->chat_template().kind(), tokenizer::ChatTemplate::Kind::chatml);
  EXPECT_EQ(logits(files.config, *files.weights), logits(files.config, float_source(m)));
  fs::remove_all(dir);
}

TEST(HfCheckpoint, ModelOptFp8KeepsCodesScalesInputAndKvScales) {
  std::mt19937_64 rng(tw::test_seed("HfCheckpoint.ModelOptFp8KeepsCodesScalesInputAndKvScales"));
  const tw::TinyLlama m = tw::TinyLlama::random(rng);
  const Fp8Layout layout;  // per-tensor weights, static inputs, ModelOpt KV names
  auto [tensors, reference] = fp8_tensors(m, layout);
  const auto dir = tw::fresh_directory("modelopt");
  write_modelopt_dir(dir, m, layout, tensors, /*shards=*/2);
  ModelFiles files = open_model_files(dir.string());
  EXPECT_EQ(files.format, "modelopt FP8");
  EXPECT_TRUE(files.quantization.fp8_kv_cache);
  EXPECT_TRUE(files.quantization.is_excluded("lm_head"));
  const auto loaded = logits(files.config, *files.weights);
  EXPECT_EQ(loaded, logits(files.config, reference));  // codes, scales, input and KV scales all taken as stored

  expect_close_to_quantize_at_load(loaded, files.config, m, "modelopt FP8 (per-tensor, static)");

  // bf16 precision dequantizes the codes (code × scale) instead.
  const auto bf16 = logits(files.config, *files.weights, Precision::bf16);
  EXPECT_EQ(bf16, logits(files.config, reference, Precision::bf16));
  fs::remove_all(dir);
}

TEST(HfCheckpoint, ModelOptPerChannelAndOlderKvScaleNames) {
  std::mt19937_64 rng(tw::test_seed("HfCheckpoint.ModelOptPerChannelAndOlderKvScaleNames"));
  const tw::TinyLlama m = tw::TinyLlama::random(rng);
  // FP8_PER_CHANNEL_PER_TOKEN is Octet's own in-memory scheme: the logits are those of quantizing at load.
  const Fp8Layout layout = per_channel_dynamic();
  auto [tensors, reference] = fp8_tensors(m, layout);
  const auto dir = tw::fresh_directory("modelopt_pc");
  write_modelopt_dir(dir, m, layout, tensors);
  EXPECT_EQ(dir_logits(dir), logits(open_model_files(dir.string()).config, float_source(m)));
  fs::remove_all(dir);

  for (const std::string names : {"old", "ct"}) {
    Fp8Layout kv_layout;
    kv_layout.kv_names = names;
    auto [kv_tensors, kv_reference] = fp8_tensors(m, kv_layout);
    const auto kv_dir = tw::fresh_directory("modelopt_kv_" + names);
    write_modelopt_dir(kv_dir, m, kv_layout, kv_tensors);
    ModelFiles files = open_model_files(kv_dir.string());
    ASSERT_TRUE(files.weights->kv_scales(1).has_value()) << names;
    EXPECT_EQ(files.weights->kv_scales(1)->k_scale, 2 * kKScale);
    EXPECT_EQ(logits(files.config, *files.weights), logits(files.config, kv_reference)) << names;
    fs::remove_all(kv_dir);
  }
}

TEST(HfCheckpoint, CompressedTensorsDynamicPerChannelIsTheQuantizeAtLoadPath) {
  std::mt19937_64 rng(tw::test_seed("HfCheckpoint.CompressedTensorsDynamicPerChannelIsTheQuantizeAtLoadPath"));
  const tw::TinyLlama m = tw::TinyLlama::random(rng);
  const Fp8Layout layout = per_channel_dynamic();
  auto [tensors, reference] = fp8_tensors(m, layout);
  const auto dir = tw::fresh_directory("ct_dynamic");
  write_compressed_tensors_dir(dir, m, layout, tensors, {"lm_head"});
  ModelFiles files = open_model_files(dir.string());
  EXPECT_EQ(files.format, "compressed-tensors FP8 weights per channel, dynamic activations");
  // Per-channel amax / 448 scales and per-token dynamic activations: bit for bit the in-memory path.
  EXPECT_EQ(logits(files.config, *files.weights), logits(files.config, float_source(m)));
  EXPECT_EQ(logits(files.config, *files.weights), logits(files.config, reference));
  fs::remove_all(dir);
}

TEST(HfCheckpoint, CompressedTensorsStaticWithIgnoredLayers) {
  std::mt19937_64 rng(tw::test_seed("HfCheckpoint.CompressedTensorsStaticWithIgnoredLayers"));
  const tw::TinyLlama m = tw::TinyLlama::random(rng);
  Fp8Layout layout;  // per-tensor, static
  layout.kv_names = "ct";
  layout.keep_bf16 = {"model.layers.0.mlp.down_proj", "model.layers.1.self_attn.o_proj"};
  auto [tensors, reference] = fp8_tensors(m, layout);
  const auto dir = tw::fresh_directory("ct_static");
  write_compressed_tensors_dir(dir, m, layout, tensors,
                               {"lm_head", "model.layers.0.mlp.down_proj", "re:model\\.layers\\.1\\.self_attn\\.o_pro.*"});
  ModelFiles files = open_model_files(dir.string());
  EXPECT_TRUE(files.quantization.static_activations);
  EXPECT_TRUE(files.quantization.is_excluded("model.layers.1.self_attn.o_proj"));
  EXPECT_FALSE(files.quantization.is_excluded("model.layers.0.self_attn.o_proj"));
  const auto loaded = logits(files.config, *files.weights);
  EXPECT_EQ(loaded, logits(files.config, reference));  // ignored layers kept BF16, the rest as stored
  expect_close_to_quantize_at_load(loaded, files.config, m, "compressed-tensors FP8 (per-tensor, static)");
  fs::remove_all(dir);
}

// ---- damaged directories: each a clear error naming the file and the tensor ------------------

class HfCheckpointDamaged : public ::testing::Test {
 protected:
  void SetUp() override {
    std::mt19937_64 rng(tw::test_seed("HfCheckpointDamaged"));
    model_ = tw::TinyLlama::random(rng);
    std::tie(tensors_, reference_) = fp8_tensors(model_, Fp8Layout{});
    dir_ = tw::fresh_directory("damaged");
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::vector<tw::StTensor> without(const std::string& name) const {
    std::vector<tw::StTensor> out;
    for (const auto& t : tensors_)
      if (t.name != name) out.push_back(t);
    return out;
  }
  std::string load_error() {
    return error_of([&] { dir_logits(dir_); });
  }

  tw::TinyLlama model_;
  std::vector<tw::StTensor> tensors_;
  tw::TestWeightSource reference_;
  fs::path dir_;
};

TEST_F(HfCheckpointDamaged, TruncatedShardAndHeaderLengthPastTheFile) {
  write_modelopt_dir(dir_, model_, Fp8Layout{}, tensors_, 2);
  const fs::path shard = dir_ / "model-00002-of-00002.safetensors";
  const auto size = fs::file_size(shard);
  fs::resize_file(shard, size - 100);
  expect_parts(load_error(), {"model-00002-of-00002.safetensors", "truncated"});
  fs::resize_file(shard, 100);
  expect_parts(load_error(), {"model-00002-of-00002.safetensors", "header length", "past the end"});
}

TEST_F(HfCheckpointDamaged, BadJsonInConfigAndIndex) {
  write_modelopt_dir(dir_, model_, Fp8Layout{}, tensors_, 2);
  tw::write_text(dir_ / "model.safetensors.index.json", "{\"weight_map\": {\"a\": ");
  expect_parts(load_error(), {"model.safetensors.index.json", "not valid JSON"});
  tw::write_text(dir_ / "config.json", "{\"hidden_size\": 64,,}");
  expect_parts(load_error(), {"config.json", "not valid JSON"});
}

TEST_F(HfCheckpointDamaged, UnknownDtypeAndShapeByteSizeMismatch) {
  auto tensors = tensors_;
  tensors[3].dtype = "F8_E4M3FNUZ";
  write_modelopt_dir(dir_, model_, Fp8Layout{}, tensors);
  expect_parts(load_error(), {"model.safetensors", tensors[3].name, "unknown dtype 'F8_E4M3FNUZ'"});
  tensors = tensors_;
  tensors[1].shape[0] += 1;  // the bytes no longer match the shape
  write_modelopt_dir(dir_, model_, Fp8Layout{}, tensors);
  expect_parts(load_error(), {"model.safetensors", tensors[1].name, "bytes"});
}

TEST_F(HfCheckpointDamaged, MissingTensorScaleAndShard) {
  write_modelopt_dir(dir_, model_, Fp8Layout{}, without("model.layers.1.mlp.up_proj.weight"));
  expect_parts(load_error(), {dir_.string(), "'model.layers.1.mlp.up_proj.weight'", "missing"});
  fs::remove_all(dir_);
  fs::create_directories(dir_);
  write_modelopt_dir(dir_, model_, Fp8Layout{}, without("model.layers.0.self_attn.k_proj.weight_scale"));
  expect_parts(load_error(), {"missing scale", "'model.layers.0.self_attn.k_proj.weight_scale'"});
  fs::remove_all(dir_);
  fs::create_directories(dir_);
  write_modelopt_dir(dir_, model_, Fp8Layout{}, without("model.layers.0.mlp.gate_proj.input_scale"));
  expect_parts(load_error(), {"missing scale", "'model.layers.0.mlp.gate_proj.input_scale'"});
  fs::remove_all(dir_);
  fs::create_directories(dir_);
  write_modelopt_dir(dir_, model_, Fp8Layout{}, without("model.layers.1.self_attn.v_proj.v_scale"));
  expect_parts(load_error(), {"missing scale", "layer 1", "no V scale"});
  fs::remove_all(dir_);
  fs::create_directories(dir_);
  write_modelopt_dir(dir_, model_, Fp8Layout{}, tensors_, 3);
  fs::remove(dir_ / "model-00002-of-00003.safetensors");
  expect_parts(load_error(), {"shard 'model-00002-of-00003.safetensors'", "model.safetensors.index.json", "missing"});
}

TEST_F(HfCheckpointDamaged, WrongShapeScaleAndInconsistentConfig) {
  auto tensors = tensors_;
  for (auto& t : tensors)
    if (t.name == "model.layers.1.self_attn.o_proj.weight_scale") {
      t.shape = {2};
      t.data = tw::f32_bytes({0.1f, 0.2f});
    }
  write_modelopt_dir(dir_, model_, Fp8Layout{}, tensors);
  expect_parts(load_error(), {"'model.layers.1.self_attn.o_proj.weight_scale'", "shape [2]", "per output channel"});
  tensors = tensors_;
  for (auto& t : tensors)
    if (t.name == "model.layers.0.self_attn.q_proj.weight_scale") t.data = tw::f32_bytes({-1.0f});
  write_modelopt_dir(dir_, model_, Fp8Layout{}, tensors);
  expect_parts(load_error(), {"'model.layers.0.self_attn.q_proj.weight_scale'", "positive finite"});
  // The config excludes a layer the file stores in FP8.
  Fp8Layout excluding;
  excluding.keep_bf16 = {"model.layers.0.mlp.up_proj"};
  write_modelopt_dir(dir_, model_, excluding, tensors_);
  expect_parts(load_error(), {"'model.layers.0.mlp.up_proj.weight' is F8_E4M3", "hf_quant_config.json", "excludes"});
  // An unsupported scheme is named.
  json config = model_.config_json();
  config["quantization_config"] = {{"quant_method", "gptq"}, {"bits", 4}};
  fs::remove(dir_ / "hf_quant_config.json");
  tw::write_text(dir_ / "config.json", config.dump());
  expect_parts(load_error(), {"config.json quantization_config", "quant_method 'gptq'"});
}

// Loads dir with the weights handed to the backend as their stored bytes (the default) or widened to
// float32 on the host (OCTET_STORED_UPLOAD=0, read when the directory opens), and runs it on `on`
// with the embedding table and LM head in `vocab` precision (fp8 precision only).
std::vector<float> dir_logits_via(const fs::path& dir, bool stored_upload, Precision precision, VocabPrecision vocab,
                                  backend::Backend& on) {
  ::setenv("OCTET_STORED_UPLOAD", stored_upload ? "1" : "0", 1);
  ModelFiles files = open_model_files(dir.string());
  ::unsetenv("OCTET_STORED_UPLOAD");
  return tw::tiny_logits(files.config, *files.weights, precision, vocab, &on);
}

// The precisions the stored-upload tests load with: each model precision, and fp8 with an fp8
// embedding table and LM head (shared by a tied table).
const std::vector<std::pair<Precision, VocabPrecision>> kStoredUploadCases = {
    {Precision::fp8, VocabPrecision::bf16},
    {Precision::fp8, VocabPrecision::fp8},
    {Precision::bf16, VocabPrecision::bf16},
    {Precision::f32, VocabPrecision::bf16}};

// Checkpoints of every float dtype (tied and untied, sharded) and ModelOpt FP8 (per-tensor and
// per-channel, a layer kept BF16) written for the stored-upload tests; removed on destruction.
struct StoredUploadDirs {
  explicit StoredUploadDirs(const char* test) {
    std::mt19937_64 rng(tw::test_seed(test));
    const tw::TinyLlama m = tw::TinyLlama::random(rng), tied = tw::TinyLlama::random(rng, /*tied=*/true);
    dirs.push_back(write_float_dir("stored_bf16", m, "BF16", 1));
    dirs.push_back(write_float_dir("stored_f16", m, "F16", 3));
    dirs.push_back(write_float_dir("stored_f32", m, "F32", 2));
    dirs.push_back(write_float_dir("stored_tied", tied, "BF16", 1));
    for (bool per_channel : {false, true}) {
      Fp8Layout layout;
      layout.per_channel = per_channel;
      if (per_channel) layout.keep_bf16 = {"model.layers.1.mlp.down_proj"};
      auto [tensors, reference] = fp8_tensors(m, layout);
      dirs.push_back(tw::fresh_directory(per_channel ? "stored_modelopt_pc" : "stored_modelopt"));
      write_modelopt_dir(dirs.back(), m, layout, tensors, /*shards=*/2);
    }
  }
  ~StoredUploadDirs() {
    for (const auto& dir : dirs) fs::remove_all(dir);
  }
  std::vector<fs::path> dirs;
};

TEST(HfCheckpoint, StoredUploadGivesTheLogitsOfTheFloat32Path) {
  const StoredUploadDirs checkpoints("HfCheckpoint.StoredUploadGivesTheLogitsOfTheFloat32Path");
  auto cpu = backend::make_cpu_backend(3);
  for (const auto& dir : checkpoints.dirs)
    for (auto [precision, vocab] : kStoredUploadCases)
      EXPECT_EQ(dir_logits_via(dir, true, precision, vocab, *cpu), dir_logits_via(dir, false, precision, vocab, *cpu))
          << dir.filename() << " precision " << int(precision) << " vocab " << int(vocab);
}

// On the GPU: the stored bytes converted there give what the host conversion gives (bit for bit),
// and the CPU's logits within the CUDA backend's model tolerance (tests/backend/cuda_backend_test.cpp).
TEST(CudaStoredUpload, TinyCheckpointsLoadAsThroughTheHostAndCloseToTheCpu) {
  const backend::CudaStatus status = backend::probe_cuda();
  if (!status.available) GTEST_SKIP() << "no GPU: " << status.reason;
  const StoredUploadDirs checkpoints("CudaStoredUpload.TinyCheckpointsLoadAsThroughTheHostAndCloseToTheCpu");
  auto gpu = [] {
    const tw::ScopedEnvironment small_staging("OCTET_CUDA_STAGING_BYTES", "4096");  // every weight straddles several buffers
    return backend::make_cuda_backend(0);
  }();
  auto cpu = backend::make_cpu_backend(2);
  for (const auto& dir : checkpoints.dirs) {
    const auto exact = dir_logits_via(dir, true, Precision::f32, VocabPrecision::bf16, *cpu);
    for (auto [precision, vocab] : kStoredUploadCases) {
      const auto on_gpu = dir_logits_via(dir, true, precision, vocab, *gpu);
      const auto on_cpu = dir_logits_via(dir, true, precision, vocab, *cpu);
      EXPECT_EQ(on_gpu, dir_logits_via(dir, false, precision, vocab, *gpu))
          << dir.filename() << " precision " << int(precision) << " vocab " << int(vocab);
      if (precision == Precision::fp8)  // activation codes may round apart: judged by the error against float32
        EXPECT_LT(relative_difference(on_gpu, exact), 1.5 * relative_difference(on_cpu, exact) + 1e-3)
            << dir.filename() << " vocab " << int(vocab);
      else
        EXPECT_LT(relative_difference(on_gpu, on_cpu), precision == Precision::f32 ? 1e-4 : 1e-2)
            << dir.filename() << " precision " << int(precision);
    }
  }
}

}  // namespace
}  // namespace octet::model
