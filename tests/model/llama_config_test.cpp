// Llama configuration from the real HF config.json files (configs/models/) and from GGUF metadata.
// Parameter counts are checked against the formula written out with the numbers; llama3 RoPE
// frequencies against Hugging Face transformers (tools/llama3_rope_golden.py).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <numbers>

#include "../formats/gguf_test_writer.h"
#include "common/error.h"
#include "formats/gguf.h"
#include "model/llama_config.h"

namespace octet::model {
namespace {

namespace tw = gguf::testing;
using nlohmann::json;

const std::string kConfigs = std::string(OCTET_SOURCE_DIR) + "/configs/models/";

json load_json(const std::string& name) {
  std::ifstream stream(kConfigs + name);
  return json::parse(stream);
}

std::string error_of(const std::function<void()>& action) {
  try {
    action();
  } catch (const Error& error) {
    return error.what();
  }
  return "<no error>";
}

void expect_message(const std::string& message, std::initializer_list<std::string> parts) {
  for (const std::string& part : parts) EXPECT_NE(message.find(part), std::string::npos) << "'" << part << "' not in: " << message;
}

// transformers' llama3 inverse frequencies for head_dim 128, theta 500000, factor 8, low 1, high 4,
// original context 8192 (float32): tools/llama3_rope_golden.py configs/models/Llama-3.1-8B-Instruct.json
const std::vector<double> kLlama3InverseFrequencies = {
    1.0, 0.8146172165870667, 0.663601279258728, 0.5405809879302979,
    0.44036662578582764, 0.3587302267551422, 0.2922278344631195, 0.2380538135766983,
    0.193922758102417, 0.1579728126525879, 0.12868738174438477, 0.10483095049858093,
    0.08539710193872452, 0.06956595182418823, 0.05666961893439293, 0.046164050698280334,
    0.03760603070259094, 0.030634520575404167, 0.02495540864765644, 0.020329104736447334,
    0.016560440883040428, 0.013490419834852219, 0.010989529080688953, 0.008952259086072445,
    0.00729266507551074, 0.005940730683505535, 0.00483942124992609, 0.003942275885492563,
    0.0032114461064338684, 0.0021665706299245358, 0.0013718936825171113, 0.0008567514596506953,
    0.0005248460220173001, 0.0003126936499029398, 0.0001785077911335975, 9.556212171446532e-05,
    7.784655463183299e-05, 6.341514381347224e-05, 5.165906986803748e-05, 4.208236714475788e-05,
    3.428102354519069e-05, 2.7925909307668917e-05, 2.2748929040972143e-05, 1.8531669411459006e-05,
    1.5096217794052791e-05, 1.2297638932068367e-05, 1.0017868589784484e-05, 8.160727702488657e-06,
    6.647869668086059e-06, 5.415469331637723e-06, 4.411534519022098e-06, 3.593711880967021e-06,
    2.927499735960737e-06, 2.3847917418606812e-06, 1.9426925064180978e-06, 1.5825507944100536e-06,
    1.289173155782919e-06, 1.050182618200779e-06, 8.554969213037111e-07, 6.969025321268418e-07,
    5.677088097399974e-07, 4.6246537976912805e-07, 3.76732259610435e-07, 3.068925877869333e-07,
};

void expect_llama3_frequencies(const std::vector<double>& actual) {
  ASSERT_EQ(actual.size(), kLlama3InverseFrequencies.size());
  for (size_t i = 0; i < actual.size(); ++i)  // transformers works in float32, Octet in double
    EXPECT_NEAR(actual[i], kLlama3InverseFrequencies[i], 1e-6 * kLlama3InverseFrequencies[i]) << "pair " << i;
}

TEST(LlamaConfig, Llama33_70B) {
  const LlamaConfig config = config_from_hf_file(kConfigs + "Llama-3.3-70B-Instruct.json");
  EXPECT_EQ(config.name, "Llama-3.3-70B-Instruct");
  EXPECT_EQ(config.layers, 80);
  EXPECT_EQ(config.hidden, 8192);
  EXPECT_EQ(config.ffn, 28672);
  EXPECT_EQ(config.heads, 64);
  EXPECT_EQ(config.kv_heads, 8);
  EXPECT_EQ(config.head_dim, 128);
  EXPECT_EQ(config.vocab, 128256);
  EXPECT_EQ(config.context_length, 131072);
  EXPECT_EQ(config.rms_norm_eps, 1e-5);
  EXPECT_EQ(config.rope_theta, 500000.0);
  EXPECT_EQ(config.rope_scaling.type, "llama3");
  EXPECT_EQ(config.rope_scaling.factor, 8.0);
  EXPECT_EQ(config.rope_scaling.low_freq_factor, 1.0);
  EXPECT_EQ(config.rope_scaling.high_freq_factor, 4.0);
  EXPECT_EQ(config.rope_scaling.original_max_position_embeddings, 8192);
  EXPECT_FALSE(config.tied_embeddings);
  EXPECT_EQ(config.bos_token_id, 128000);
  EXPECT_EQ(config.eos_token_ids, (std::vector<int64_t>{128001, 128008, 128009}));
  EXPECT_EQ(config.q_dim(), 8192);
  EXPECT_EQ(config.kv_dim(), 1024);

  // embeddings + 80 × (q, o: 8192×8192; k, v: 8192×1024; gate, up, down: 8192×28672; 2 norms)
  // + final norm + untied head
  const int64_t per_layer = 2 * 8192LL * 8192 + 2 * 8192LL * 1024 + 3 * 8192LL * 28672 + 2 * 8192;
  const int64_t expected = 128256LL * 8192 + 80 * per_layer + 8192 + 128256LL * 8192;
  EXPECT_EQ(per_layer, 855'654'400);
  EXPECT_EQ(expected, 70'553'706'496);
  EXPECT_EQ(config.parameter_count(), expected);
  expect_llama3_frequencies(config.rope_inverse_frequencies());  // same head_dim, theta and scaling as 8B
}

TEST(LlamaConfig, Llama31_8B) {
  const LlamaConfig config = config_from_hf_file(kConfigs + "Llama-3.1-8B-Instruct.json");
  EXPECT_EQ(config.layers, 32);
  EXPECT_EQ(config.hidden, 4096);
  EXPECT_EQ(config.ffn, 14336);
  EXPECT_EQ(config.heads, 32);
  EXPECT_EQ(config.kv_heads, 8);
  EXPECT_EQ(config.head_dim, 128);  // hidden / heads: the file has no head_dim
  EXPECT_EQ(config.vocab, 128256);
  EXPECT_EQ(config.context_length, 131072);
  EXPECT_EQ(config.rope_scaling.type, "llama3");
  EXPECT_FALSE(config.tied_embeddings);
  EXPECT_EQ(config.bos_token_id, 128000);
  EXPECT_EQ(config.eos_token_ids, (std::vector<int64_t>{128001, 128008, 128009}));

  // embeddings + 32 × (q, o: 4096×4096; k, v: 4096×1024; gate, up, down: 4096×14336; 2 norms)
  // + final norm + untied head
  const int64_t per_layer = 2 * 4096LL * 4096 + 2 * 4096LL * 1024 + 3 * 4096LL * 14336 + 2 * 4096;
  const int64_t expected = 128256LL * 4096 + 32 * per_layer + 4096 + 128256LL * 4096;
  EXPECT_EQ(expected, 8'030'261'248);
  EXPECT_EQ(config.parameter_count(), expected);
  expect_llama3_frequencies(config.rope_inverse_frequencies());
}

TEST(LlamaConfig, SmolLM2_135M) {
  const LlamaConfig config = config_from_hf_file(kConfigs + "SmolLM2-135M-Instruct.json");
  EXPECT_EQ(config.hidden, 576);
  EXPECT_EQ(config.heads, 9);
  EXPECT_EQ(config.kv_heads, 3);
  EXPECT_EQ(config.head_dim, 64);
  EXPECT_EQ(config.rope_theta, 100000.0);  // an integer in the file
  EXPECT_TRUE(config.rope_scaling.type.empty());  // "rope_scaling": null
  EXPECT_TRUE(config.tied_embeddings);
  EXPECT_EQ(config.bos_token_id, 1);
  EXPECT_EQ(config.eos_token_ids, std::vector<int64_t>{2});
  // embeddings (tied, so no head) + 30 × (q, o: 576×576; k, v: 576×192; 3 × 576×1536; 2 norms) + norm
  EXPECT_EQ(config.parameter_count(),
            49152LL * 576 + 30 * (2 * 576LL * 576 + 2 * 576LL * 192 + 3 * 576LL * 1536 + 2 * 576) + 576);
  EXPECT_EQ(config.parameter_count(), 134'515'008);
  const auto frequencies = config.rope_inverse_frequencies();
  ASSERT_EQ(frequencies.size(), 32u);
  for (size_t i = 0; i < frequencies.size(); ++i)  // unscaled: theta^(-2i/d)
    EXPECT_NEAR(frequencies[i], std::exp(-std::log(100000.0) * static_cast<double>(2 * i) / 64.0), 1e-15) << i;
}

TEST(LlamaConfig, RopeScalingVariants) {
  json config = load_json("Llama-3.1-8B-Instruct.json");
  json older = config;
  older["rope_scaling"].erase("rope_type");
  older["rope_scaling"]["type"] = "llama3";  // the pre-4.45 spelling
  expect_llama3_frequencies(config_from_hf_json(older, "older.json").rope_inverse_frequencies());

  json linear = config;
  linear["rope_scaling"] = {{"rope_type", "linear"}, {"factor", 2.0}};
  json none = config;
  none["rope_scaling"] = nullptr;
  const auto scaled = config_from_hf_json(linear, "linear.json").rope_inverse_frequencies();
  const auto plain = config_from_hf_json(none, "none.json").rope_inverse_frequencies();
  for (size_t i = 0; i < plain.size(); ++i) EXPECT_DOUBLE_EQ(scaled[i], plain[i] / 2) << i;
  // llama3 keeps high frequencies and divides the lowest ones by the factor.
  const auto llama3 = config_from_hf_json(config, "llama3.json").rope_inverse_frequencies();
  EXPECT_EQ(llama3[0], plain[0]);
  EXPECT_DOUBLE_EQ(llama3[63], plain[63] / 8);
}

TEST(LlamaConfig, HfErrorsNameSourceAndKey) {
  const json base = load_json("Llama-3.1-8B-Instruct.json");
  auto error = [&](const std::function<void(json&)>& damage) {
    json config = base;
    damage(config);
    return error_of([&] { config_from_hf_json(config, "bad/config.json"); });
  };
  expect_message(error([](json& c) { c.erase("hidden_size"); }), {"bad/config.json", "missing key 'hidden_size'"});
  expect_message(error([](json& c) { c["hidden_size"] = "4096"; }), {"'hidden_size'", "expected an integer", "string"});
  expect_message(error([](json& c) { c["num_hidden_layers"] = 32.5; }), {"'num_hidden_layers'", "expected an integer"});
  expect_message(error([](json& c) { c["rms_norm_eps"] = "small"; }), {"'rms_norm_eps'", "expected a number"});
  expect_message(error([](json& c) { c["tie_word_embeddings"] = 0; }), {"'tie_word_embeddings'", "true or false"});
  expect_message(error([](json& c) { c["num_key_value_heads"] = 5; }), {"bad/config.json", "multiple of kv_heads (5)"});
  expect_message(error([](json& c) { c["num_attention_heads"] = 0; }), {"heads", "must be positive, found 0"});
  expect_message(error([](json& c) { c["head_dim"] = 127; }), {"head_dim must be even"});
  expect_message(error([](json& c) { c["rope_scaling"].erase("factor"); }), {"missing key 'rope_scaling.factor'"});
  expect_message(error([](json& c) { c["rope_scaling"]["rope_type"] = "yarn"; }), {"'rope_scaling.rope_type'", "yarn"});
  expect_message(error([](json& c) { c["rope_scaling"] = 8; }), {"'rope_scaling'", "object"});
  expect_message(error([](json& c) { c["eos_token_id"] = {128001, "x"}; }), {"'eos_token_id'", "expected an integer"});
  expect_message(error([](json& c) { c["bos_token_id"] = 200000; }), {"bos_token_id 200000", "vocabulary"});
  expect_message(error([](json& c) { c["model_type"] = "mistral"; }), {"'model_type'", "mistral"});
  expect_message(error([](json& c) { c["vocab_size"] = uint64_t{1} << 63; }), {"'vocab_size'", "does not fit"});
  expect_message(error([](json& c) { c["hidden_size"] = int64_t{1} << 40; }), {"hidden", "above the supported maximum"});

  expect_message(error_of([] { config_from_hf_json(json::array(), "array.json"); }), {"array.json", "JSON object"});
  expect_message(error_of([] { config_from_hf_file("/nonexistent/config.json"); }), {"/nonexistent/config.json", "cannot open"});
  const std::string broken = ::testing::TempDir() + "/octet_broken_config.json";
  std::ofstream(broken) << "{\"hidden_size\": 4096,";
  expect_message(error_of([&] { config_from_hf_file(broken); }), {broken, "invalid JSON"});
}

// A tiny llama GGUF with the metadata keys llama.cpp writes. changes: key -> replacement value,
// or nullopt to leave the key out; keys not in the base are appended.
using Changes = std::vector<std::pair<std::string, std::optional<gguf::Value>>>;
tw::GgufWriter tiny_llama_gguf(const Changes& changes = {}) {
  const std::vector<std::pair<std::string, gguf::Value>> base = {
      {"general.architecture", tw::str("llama")},
      {"general.name", tw::str("tiny")},
      {"llama.block_count", tw::u32(2)},
      {"llama.context_length", tw::u32(4096)},
      {"llama.embedding_length", tw::u32(64)},
      {"llama.feed_forward_length", tw::u32(128)},
      {"llama.attention.head_count", tw::u32(4)},
      {"llama.attention.head_count_kv", tw::u32(2)},
      {"llama.rope.freq_base", tw::f32(500000.0f)},
      {"llama.attention.layer_norm_rms_epsilon", tw::f32(1e-5f)},
      {"tokenizer.ggml.tokens", tw::array(gguf::ValueType::STRING, {tw::str("a"), tw::str("b"), tw::str("c")})},
      {"tokenizer.ggml.bos_token_id", tw::u32(0)},
      {"tokenizer.ggml.eos_token_id", tw::u32(1)},
      {"tokenizer.ggml.eot_token_id", tw::u32(2)},
  };
  auto find_change = [&](const std::string& key) {
    return std::find_if(changes.begin(), changes.end(), [&](const auto& change) { return change.first == key; });
  };
  tw::GgufWriter writer;
  for (const auto& [key, value] : base) {
    const auto change = find_change(key);
    if (change == changes.end()) writer.add(key, value);
    else if (change->second) writer.add(key, *change->second);
  }
  for (const auto& change : changes) {
    const bool in_base =
        std::any_of(base.begin(), base.end(), [&](const auto& entry) { return entry.first == change.first; });
    if (!in_base && change.second) writer.add(change.first, *change.second);
  }
  writer.add_f32_tensor("token_embd.weight", {64, 3}, std::vector<float>(64 * 3, 0.5f));
  return writer;
}

LlamaConfig gguf_config(const tw::GgufWriter& writer) {
  const auto bytes = writer.build();
  return config_from_gguf(gguf::File::parse(bytes, "tiny.gguf"));
}

TEST(LlamaConfig, FromGgufMetadata) {
  const LlamaConfig config = gguf_config(tiny_llama_gguf());
  EXPECT_EQ(config.name, "tiny");
  EXPECT_EQ(config.layers, 2);
  EXPECT_EQ(config.hidden, 64);
  EXPECT_EQ(config.ffn, 128);
  EXPECT_EQ(config.heads, 4);
  EXPECT_EQ(config.kv_heads, 2);
  EXPECT_EQ(config.head_dim, 16);  // embedding_length / head_count
  EXPECT_EQ(config.vocab, 3);      // from the token list (no llama.vocab_size)
  EXPECT_EQ(config.context_length, 4096);
  EXPECT_EQ(config.rope_theta, 500000.0);
  EXPECT_TRUE(config.tied_embeddings);  // no output.weight
  EXPECT_EQ(config.bos_token_id, 0);
  EXPECT_EQ(config.eos_token_ids, (std::vector<int64_t>{1, 2}));  // eos and eot

  tw::GgufWriter untied = tiny_llama_gguf({{"llama.attention.key_length", tw::u32(32)},
                                           {"llama.rope.scaling.type", tw::str("linear")},
                                           {"llama.rope.scaling.factor", tw::f32(4.0f)}});
  untied.add_f32_tensor("output.weight", {64, 3}, std::vector<float>(64 * 3));
  const LlamaConfig untied_config = gguf_config(untied);
  EXPECT_FALSE(untied_config.tied_embeddings);
  EXPECT_EQ(untied_config.head_dim, 32);
  EXPECT_EQ(untied_config.rope_scaling.type, "linear");
  EXPECT_EQ(untied_config.rope_inverse_frequencies()[0], 0.25);
}

TEST(LlamaConfig, GgufRopeFreqsTensorReproducesLlama3Scaling) {
  // llama.cpp's converter stores llama3 scaling as per-pair divisors in rope_freqs.weight; build
  // them from the 8B config's parameters and expect transformers' frequencies back.
  tw::GgufWriter writer;
  writer.add("general.architecture", tw::str("llama"));
  writer.add("llama.block_count", tw::u32(1));
  writer.add("llama.context_length", tw::u32(131072));
  writer.add("llama.embedding_length", tw::u32(4096));
  writer.add("llama.feed_forward_length", tw::u32(14336));
  writer.add("llama.attention.head_count", tw::u32(32));
  writer.add("llama.attention.head_count_kv", tw::u32(8));
  writer.add("llama.rope.freq_base", tw::f32(500000.0f));
  writer.add("llama.rope.dimension_count", tw::u32(128));
  writer.add("llama.attention.layer_norm_rms_epsilon", tw::f32(1e-5f));
  writer.add("llama.vocab_size", tw::u32(128256));
  std::vector<float> divisors;
  for (int i = 0; i < 64; ++i) {
    const double wavelength = 2 * std::numbers::pi * std::pow(500000.0, i / 64.0);
    if (wavelength < 8192.0 / 4) divisors.push_back(1.0f);
    else if (wavelength > 8192.0 / 1) divisors.push_back(8.0f);
    else {
      const double smooth = (8192.0 / wavelength - 1) / (4 - 1);
      divisors.push_back(static_cast<float>(1 / ((1 - smooth) / 8 + smooth)));
    }
  }
  writer.add_f32_tensor("rope_freqs.weight", {64}, divisors);
  const LlamaConfig config = gguf_config(writer);
  EXPECT_EQ(config.rope_freq_factors.size(), 64u);
  expect_llama3_frequencies(config.rope_inverse_frequencies());
}

TEST(LlamaConfig, GgufErrorsNameSourceAndKey) {
  auto error = [](const Changes& changes) { return error_of([&] { gguf_config(tiny_llama_gguf(changes)); }); };
  expect_message(error({{"llama.block_count", std::nullopt}}), {"tiny.gguf", "missing metadata key 'llama.block_count'"});
  expect_message(error({{"llama.attention.layer_norm_rms_epsilon", std::nullopt}}),
                 {"missing metadata key 'llama.attention.layer_norm_rms_epsilon'"});
  expect_message(error({{"general.architecture", std::nullopt}}), {"missing metadata key 'general.architecture'"});
  expect_message(error({{"general.architecture", tw::str("qwen2")}}), {"tiny.gguf", "'general.architecture'", "qwen2"});
  expect_message(error({{"llama.block_count", tw::str("2")}}),
                 {"'llama.block_count'", "expected an integer, found STRING"});
  expect_message(error({{"llama.rope.freq_base", tw::boolean(true)}}), {"'llama.rope.freq_base'", "found BOOL"});
  expect_message(error({{"llama.attention.head_count_kv", tw::u32(3)}}), {"tiny.gguf", "multiple of kv_heads (3)"});
  expect_message(error({{"llama.attention.head_count", tw::u32(0)}}), {"heads", "must be positive, found 0"});
  expect_message(error({{"tokenizer.ggml.tokens", std::nullopt}}), {"'llama.vocab_size'", "'tokenizer.ggml.tokens'"});
  expect_message(error({{"llama.rope.scaling.type", tw::str("yarn")}}), {"'llama.rope.scaling.type'", "yarn"});
  expect_message(error({{"llama.rope.scaling.type", tw::str("linear")}}), {"missing metadata key 'llama.rope.scaling.factor'"});
  expect_message(error({{"llama.rope.dimension_count", tw::u32(8)}}), {"'llama.rope.dimension_count'", "partial rotary"});
  expect_message(error({{"llama.vocab_size", tw::u32(5)}}), {"'token_embd.weight'", "[64, 5]", "[64, 3]"});
  expect_message(error({{"tokenizer.ggml.eos_token_id", tw::u32(7)}}), {"eos_token_id 7", "vocabulary"});

  tw::GgufWriter bad_factors = tiny_llama_gguf();
  bad_factors.add_f32_tensor("rope_freqs.weight", {3}, {1, 1, 1});
  expect_message(error_of([&] { gguf_config(bad_factors); }), {"'rope_freqs.weight'", "expected 8 elements"});
}

}  // namespace
}  // namespace octet::model
