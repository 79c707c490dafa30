// octet quantize: the written files are checked field by field here, independently of the reader
// (header JSON parsed from the raw bytes, codes against the tests' own quantizer), then loaded back:
// weight-only output gives exactly the quantize-at-load logits; calibrated output stays within the
// stated tolerance; GGUF SmolLM2 → FP8 directory → engine gives the in-memory FP8 greedy output.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "backend/backend.h"
#include "common/error.h"
#include "formats/safetensors_writer.h"
#include "model/llama_model.h"
#include "model/model_files.h"
#include "octet/config.h"
#include "octet/engine.h"
#include "quantize/quantize.h"
#include "support/model_files.h"
#include "support/random.h"
#include "support/tiny_checkpoint.h"

namespace octet::quantize {
namespace {

namespace tw = octet::testing;
namespace fs = std::filesystem;
using nlohmann::json;

std::vector<uint8_t> read_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<uint8_t>((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

json read_json(const fs::path& path) {
  std::ifstream in(path);
  return json::parse(in);
}

// A safetensors file split by hand: the header JSON and the data section.
struct RawFile {
  json header;
  std::vector<uint8_t> data;
};
RawFile split(const fs::path& path) {
  const auto bytes = read_bytes(path);
  uint64_t length = 0;
  for (int i = 7; i >= 0; --i) length = (length << 8) | bytes.at(static_cast<size_t>(i));
  RawFile raw;
  raw.header = json::parse(std::string(bytes.begin() + 8, bytes.begin() + 8 + static_cast<std::ptrdiff_t>(length)));
  raw.data.assign(bytes.begin() + 8 + static_cast<std::ptrdiff_t>(length), bytes.end());
  EXPECT_EQ(length % 8, 0u) << path;
  return raw;
}

std::vector<uint8_t> tensor_data(const RawFile& raw, const std::string& name) {
  const auto& offsets = raw.header.at(name).at("data_offsets");
  return std::vector<uint8_t>(raw.data.begin() + offsets[0].get<std::ptrdiff_t>(), raw.data.begin() + offsets[1].get<std::ptrdiff_t>());
}

std::vector<float> floats(const std::vector<uint8_t>& bytes) {
  std::vector<float> out(bytes.size() / 4);
  std::memcpy(out.data(), bytes.data(), bytes.size());
  return out;
}

std::vector<float> logits(const model::LlamaConfig& config, const model::WeightSource& weights,
                          Precision precision = Precision::fp8) {
  return tw::tiny_logits(config, weights, precision);
}

fs::path tiny_bf16_dir(const tw::TinyLlama& m, const std::string& name) {
  const auto dir = tw::fresh_directory(name);
  tw::write_text(dir / "config.json", m.config_json().dump(2));
  tw::write_tiny_tokenizer(dir);
  std::vector<tw::StTensor> tensors;
  for (const auto& n : m.order) tensors.push_back({n, "BF16", m.shapes.at(n), tw::bf16_bytes(m.weights.at(n))});
  tw::write_weights(dir, tensors);
  return dir;
}

TEST(SafetensorsWriter, ShardsHeadersAndIndexAsTheFormatDefinesThem) {
  const auto dir = tw::fresh_directory("writer");
  std::vector<formats::PlannedTensor> plan = {{"a", safetensors::Dtype::F32, {2, 3}},
                                              {"b", safetensors::Dtype::F8_E4M3, {5}},
                                              {"c", safetensors::Dtype::BF16, {4, 2}},
                                              {"d", safetensors::Dtype::F32, {}}};
  auto fill = [](const formats::PlannedTensor& t, std::span<uint8_t> out) {
    for (size_t i = 0; i < out.size(); ++i) out[i] = static_cast<uint8_t>(t.name[0] + i);
  };
  const auto written = formats::write_safetensors_shards(dir.string(), plan, fill, 30, {{"format", "pt"}});
  ASSERT_EQ(written.files, (std::vector<std::string>{"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"}));
  EXPECT_EQ(written.tensor_bytes, 24u + 5 + 16 + 4);
  const RawFile first = split(dir / written.files[0]);
  EXPECT_EQ(first.header.at("__metadata__"), (json{{"format", "pt"}}));
  EXPECT_EQ(first.header.at("a"), (json{{"dtype", "F32"}, {"shape", {2, 3}}, {"data_offsets", {0, 24}}}));
  EXPECT_EQ(first.header.at("b"), (json{{"dtype", "F8_E4M3"}, {"shape", {5}}, {"data_offsets", {24, 29}}}));
  EXPECT_EQ(first.data.size(), 29u);
  const RawFile second = split(dir / written.files[1]);
  EXPECT_EQ(second.header.at("c"), (json{{"dtype", "BF16"}, {"shape", {4, 2}}, {"data_offsets", {0, 16}}}));
  EXPECT_EQ(second.header.at("d"), (json{{"dtype", "F32"}, {"shape", json::array()}, {"data_offsets", {16, 20}}}));
  EXPECT_EQ(tensor_data(second, "d"), (std::vector<uint8_t>{'d', 'e', 'f', 'g'}));
  const json index = read_json(dir / "model.safetensors.index.json");
  EXPECT_EQ(index.at("metadata").at("total_size"), 49);
  EXPECT_EQ(index.at("weight_map"), (json{{"a", written.files[0]}, {"b", written.files[0]}, {"c", written.files[1]},
                                          {"d", written.files[1]}}));
  fs::remove_all(dir);
}

TEST(Quantize, WeightOnlyTinyModelIsTheQuantizeAtLoadPathOnDisk) {
  std::mt19937_64 rng(tw::test_seed("Quantize.WeightOnlyTinyModelIsTheQuantizeAtLoadPathOnDisk"));
  const tw::TinyLlama m = tw::TinyLlama::random(rng);
  const auto source = tiny_bf16_dir(m, "q_source");
  const fs::path destination = source.string() + "_fp8";
  fs::remove_all(destination);
  const QuantizeReport report = quantize_checkpoint({.source = source.string(), .destination = destination.string()});
  EXPECT_EQ(report.algorithm, "FP8_PER_CHANNEL_PER_TOKEN");
  EXPECT_EQ(report.fp8_layers, 14);
  EXPECT_EQ(report.bf16_layers, 1);  // lm_head

  const json hf_quant = read_json(destination / "hf_quant_config.json");
  EXPECT_EQ(hf_quant.at("quantization"), (json{{"quant_algo", "FP8_PER_CHANNEL_PER_TOKEN"}, {"kv_cache_quant_algo", nullptr},
                                               {"exclude_modules", {"lm_head"}}}));
  const json config = read_json(destination / "config.json");
  EXPECT_EQ(config.at("quantization_config").at("quant_method"), "modelopt");
  EXPECT_EQ(config.at("quantization_config").at("quant_algo"), "FP8_PER_CHANNEL_PER_TOKEN");
  EXPECT_EQ(config.at("hidden_size"), 64);
  for (const char* file : {"tokenizer.json", "tokenizer_config.json", "generation_config.json"})
    EXPECT_EQ(read_bytes(destination / file), read_bytes(source / file)) << file;

  const RawFile raw = split(destination / "model.safetensors");
  EXPECT_EQ(raw.header.at("model.embed_tokens.weight").at("dtype"), "BF16");
  EXPECT_EQ(raw.header.at("model.norm.weight").at("dtype"), "F32");
  EXPECT_EQ(raw.header.at("lm_head.weight").at("dtype"), "BF16");
  EXPECT_EQ(tensor_data(raw, "lm_head.weight"), tw::bf16_bytes(m.weights.at("lm_head.weight")));
  for (const auto& module : tw::TinyLlama::linear_modules(m.layers)) {
    const auto& shape = m.shapes.at(module + ".weight");
    EXPECT_EQ(raw.header.at(module + ".weight").at("dtype"), "F8_E4M3");
    EXPECT_EQ(raw.header.at(module + ".weight").at("shape"), json(shape));
    EXPECT_EQ(raw.header.at(module + ".weight_scale"),
              (json{{"dtype", "F32"}, {"shape", {shape[0]}}, {"data_offsets", raw.header.at(module + ".weight_scale").at("data_offsets")}}));
    EXPECT_FALSE(raw.header.contains(module + ".input_scale"));
    const tw::ReferenceFp8 expected = tw::reference_quantize(m.weights.at(module + ".weight"), shape[0], shape[1], true);
    EXPECT_EQ(tensor_data(raw, module + ".weight"), expected.codes) << module;
    EXPECT_EQ(floats(tensor_data(raw, module + ".weight_scale")), expected.scales) << module;
  }

  model::ModelFiles loaded = model::open_model_files(destination.string());
  tw::TestWeightSource in_memory;
  in_memory.weights = m.weights;
  EXPECT_EQ(logits(loaded.config, *loaded.weights), logits(loaded.config, in_memory));
  EXPECT_THROW(quantize_checkpoint({.source = destination.string(), .destination = destination.string() + "2"}), Error);
  EXPECT_THROW(quantize_checkpoint({.source = source.string(), .destination = destination.string()}), Error);  // not empty
  fs::remove_all(source);
  fs::remove_all(destination);
}

TEST(Quantize, CalibratedTinyModelHasStaticScalesAndExcludedLayers) {
  std::mt19937_64 rng(tw::test_seed("Quantize.CalibratedTinyModelHasStaticScalesAndExcludedLayers"));
  const tw::TinyLlama m = tw::TinyLlama::random(rng);
  const auto source = tiny_bf16_dir(m, "qc_source");
  const fs::path destination = source.string() + "_fp8";
  fs::remove_all(destination);
  tw::write_text(source / "calib.txt", "The quick brown fox jumps over the lazy dog. Pack my box with five dozen liquor jugs.");
  QuantizeOptions options{.source = source.string(), .destination = destination.string()};
  options.calibration_text_path = (source / "calib.txt").string();
  options.exclude = {"model.layers.1.mlp.*"};
  options.max_shard_bytes = 20000;
  const QuantizeReport report = quantize_checkpoint(options);
  EXPECT_EQ(report.algorithm, "FP8");
  EXPECT_EQ(report.bf16_layers, 4);
  EXPECT_GT(report.shard_files.size(), 3u);
  const json hf_quant = read_json(destination / "hf_quant_config.json");
  EXPECT_EQ(hf_quant.at("quantization").at("kv_cache_quant_algo"), "FP8");
  EXPECT_EQ(hf_quant.at("quantization").at("exclude_modules"), (json{"lm_head", "model.layers.1.mlp.*"}));

  // Read every shard's header by hand, through the index.
  const json index = read_json(destination / "model.safetensors.index.json");
  std::map<std::string, RawFile> shards;
  for (const auto& file : report.shard_files) shards[file] = split(destination / file);
  auto tensor = [&](const std::string& name) { return tensor_data(shards.at(index.at("weight_map").at(name)), name); };
  auto header = [&](const std::string& name) { return shards.at(index.at("weight_map").at(name)).header.at(name); };
  for (const auto& module : tw::TinyLlama::linear_modules(m.layers)) {
    if (module.starts_with("model.layers.1.mlp.")) {
      EXPECT_EQ(header(module + ".weight").at("dtype"), "BF16") << module;
      EXPECT_FALSE(index.at("weight_map").contains(module + ".weight_scale"));
      continue;
    }
    EXPECT_EQ(header(module + ".weight_scale").at("shape"), json::array());
    EXPECT_EQ(header(module + ".input_scale").at("shape"), json::array());
    const auto& shape = m.shapes.at(module + ".weight");
    const tw::ReferenceFp8 expected = tw::reference_quantize(m.weights.at(module + ".weight"), shape[0], shape[1], false);
    EXPECT_EQ(tensor(module + ".weight"), expected.codes) << module;
    EXPECT_EQ(floats(tensor(module + ".weight_scale")), expected.scales) << module;
  }
  // q, k and v read the same input, as do gate and up: their calibrated input scales are equal.
  for (int64_t i = 0; i < m.layers; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    const float q = floats(tensor(p + "self_attn.q_proj.input_scale"))[0];
    EXPECT_GT(q, 0.0f);
    EXPECT_EQ(floats(tensor(p + "self_attn.k_proj.input_scale"))[0], q);
    EXPECT_EQ(floats(tensor(p + "self_attn.v_proj.input_scale"))[0], q);
    EXPECT_GT(floats(tensor(p + "self_attn.k_proj.k_scale"))[0], 0.0f);
    EXPECT_GT(floats(tensor(p + "self_attn.v_proj.v_scale"))[0], 0.0f);
  }
  EXPECT_EQ(floats(tensor("model.layers.0.mlp.gate_proj.input_scale")), floats(tensor("model.layers.0.mlp.up_proj.input_scale")));

  // Loaded back: static scales cost accuracy against the quantize-at-load path, within the stated bound
  // (relative logit error vs float32 at most 1.5 × the quantize-at-load error + 0.02).
  model::ModelFiles loaded = model::open_model_files(destination.string());
  EXPECT_TRUE(loaded.weights->kv_scales(0).has_value());
  tw::TestWeightSource in_memory;
  in_memory.weights = m.weights;
  const auto exact = logits(loaded.config, in_memory, Precision::f32);
  auto error = [&](const std::vector<float>& a) { return tw::relative_difference(a, exact); };
  const double calibrated = error(logits(loaded.config, *loaded.weights)), at_load = error(logits(loaded.config, in_memory));
  std::printf("[calibrated FP8 directory] relative logit error vs f32 %.4f; quantize-at-load %.4f\n", calibrated, at_load);
  EXPECT_LT(calibrated, 1.5 * at_load + 0.02);
  fs::remove_all(source);
  fs::remove_all(destination);
}

// GGUF SmolLM2 → FP8 directory (weight-only: Octet's own scheme) → the engine, run as a prepared
// engine directory: the greedy output of 5 fixed prompts equals the in-memory FP8 path's.
// --lm-head-precision fp8: lm_head.weight F8_E4M3 with weight_scale [vocab] (one per row, whatever
// the algorithm) and no longer in the exclude list; auto then loads it as stored and quantizes the
// embedding table at load, giving the in-memory fp8 head + table path bit for bit. The default
// output (lm_head excluded) keeps both BF16 under auto, unless asked otherwise.
TEST(Quantize, Fp8LmHeadIsWrittenInTheModelOptLayoutAndLoads) {
  std::mt19937_64 rng(tw::test_seed("Quantize.Fp8LmHeadIsWrittenInTheModelOptLayoutAndLoads"));
  const tw::TinyLlama m = tw::TinyLlama::random(rng);
  const auto source = tiny_bf16_dir(m, "qh_source");
  const fs::path destination = source.string() + "_fp8", plain = source.string() + "_plain";
  fs::remove_all(destination);
  fs::remove_all(plain);
  QuantizeOptions options{.source = source.string(), .destination = destination.string()};
  options.fp8_lm_head = true;
  const QuantizeReport report = quantize_checkpoint(options);
  EXPECT_EQ(report.fp8_layers, 15);
  EXPECT_EQ(report.bf16_layers, 0);
  EXPECT_EQ(read_json(destination / "hf_quant_config.json").at("quantization").at("exclude_modules"), json::array());
  EXPECT_EQ(read_json(destination / "config.json").at("quantization_config").at("ignore"), json::array());
  const RawFile raw = split(destination / "model.safetensors");
  EXPECT_EQ(raw.header.at("lm_head.weight").at("dtype"), "F8_E4M3");
  EXPECT_EQ(raw.header.at("lm_head.weight").at("shape"), (json{m.vocab, m.hidden}));
  EXPECT_EQ(raw.header.at("lm_head.weight_scale").at("shape"), (json{m.vocab}));
  EXPECT_EQ(raw.header.at("model.embed_tokens.weight").at("dtype"), "BF16");
  const tw::ReferenceFp8 expected = tw::reference_quantize(m.weights.at("lm_head.weight"), m.vocab, m.hidden, true);
  EXPECT_EQ(tensor_data(raw, "lm_head.weight"), expected.codes);
  EXPECT_EQ(floats(tensor_data(raw, "lm_head.weight_scale")), expected.scales);

  auto vocab_storage = [](const model::ModelFiles& files, VocabPrecision requested) {
    auto backend = backend::make_cpu_backend(1);
    model::ModelOptions o;
    o.max_context = 16;
    o.lm_head_precision = o.embedding_precision = requested;
    model::LlamaModel model(files.config, files.weights.get(), *backend, o);
    return std::pair{model.embedding_fp8(), model.lm_head_fp8()};
  };
  model::ModelFiles loaded = model::open_model_files(destination.string());
  EXPECT_EQ(vocab_storage(loaded, VocabPrecision::auto_select), (std::pair{true, true}));
  tw::TestWeightSource in_memory;
  in_memory.weights = m.weights;
  EXPECT_EQ(tw::tiny_logits(loaded.config, *loaded.weights, Precision::fp8, VocabPrecision::auto_select),
            tw::tiny_logits(loaded.config, in_memory, Precision::fp8, VocabPrecision::fp8));
  EXPECT_EQ(vocab_storage(loaded, VocabPrecision::bf16), (std::pair{false, false}));  // dequantized on request

  quantize_checkpoint({.source = source.string(), .destination = plain.string()});
  model::ModelFiles excluded = model::open_model_files(plain.string());
  EXPECT_EQ(vocab_storage(excluded, VocabPrecision::auto_select), (std::pair{false, false}));
  EXPECT_EQ(vocab_storage(excluded, VocabPrecision::fp8), (std::pair{true, true}));

  // Calibrated: the head still has a scale per row, and its static input scale.
  fs::remove_all(destination);
  tw::write_text(source / "calib.txt", "The quick brown fox jumps over the lazy dog.");
  options.calibration_text_path = (source / "calib.txt").string();
  quantize_checkpoint(options);
  const RawFile calibrated = split(destination / "model.safetensors");
  EXPECT_EQ(calibrated.header.at("lm_head.weight_scale").at("shape"), (json{m.vocab}));
  EXPECT_EQ(calibrated.header.at("model.layers.0.mlp.up_proj.weight_scale").at("shape"), json::array());
  const float head_input_scale = floats(tensor_data(calibrated, "lm_head.input_scale"))[0];
  EXPECT_GT(head_input_scale, 0.0f);
  EXPECT_NE(head_input_scale, 1.0f);  // observed (1.0 is the scale of an amax never seen)
  model::ModelFiles calibrated_files = model::open_model_files(destination.string());
  EXPECT_EQ(vocab_storage(calibrated_files, VocabPrecision::auto_select), (std::pair{true, true}));
  for (float v : tw::tiny_logits(calibrated_files.config, *calibrated_files.weights, Precision::fp8, VocabPrecision::auto_select))
    ASSERT_TRUE(std::isfinite(v));

  // A tied head has no tensor of its own to write.
  const tw::TinyLlama tied = tw::TinyLlama::random(rng, /*tied=*/true);
  const auto tied_source = tiny_bf16_dir(tied, "qh_tied");
  QuantizeOptions tied_options{.source = tied_source.string(), .destination = tied_source.string() + "_fp8"};
  tied_options.fp8_lm_head = true;
  try {
    quantize_checkpoint(tied_options);
    ADD_FAILURE() << "a tied model's FP8 lm_head was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("tied to the embedding table"), std::string::npos) << e.what();
  }
  for (const fs::path& dir : {source, destination, plain, tied_source}) fs::remove_all(dir);
}

TEST(Quantize, SmolLM2GgufRoundTripGivesTheInMemoryGreedyOutput) {
  OCTET_REQUIRE_SMOLLM2(gguf);
  const fs::path destination = tw::fresh_directory("smollm2_fp8");
  fs::remove_all(destination);
  const QuantizeReport report = quantize_checkpoint({.source = gguf, .destination = destination.string()});
  EXPECT_EQ(report.algorithm, "FP8_PER_CHANNEL_PER_TOKEN");

  EngineOptions in_memory;
  in_memory.model_path = gguf;
  in_memory.device = Device::cpu;
  in_memory.max_context = 512;
  EngineOptions from_directory = in_memory;
  from_directory.model_path = destination.string();
  from_directory.prepared_engine = true;
  auto a = Engine::create(in_memory);
  auto b = Engine::create(from_directory);
  GenerationParams greedy;
  greedy.temperature = 0;
  greedy.max_tokens = 12;
  for (const std::string prompt : {"What is the capital of France?", "Write a haiku about the sea.",
                                   "How do I craft iron tools in Minecraft?", "List three prime numbers.",
                                   "Translate 'good morning' into Spanish."}) {
    const auto expected = a->chat({{"user", prompt}}, greedy);
    const auto found = b->chat({{"user", prompt}}, greedy);
    EXPECT_EQ(found.prompt_tokens, expected.prompt_tokens) << prompt;
    EXPECT_EQ(found.text, expected.text) << prompt;
  }
  fs::remove_all(destination);
}

TEST(Quantize, EngineDirSettingNamesThePreparedDirectory) {
  ConfigRequest request;
  request.environment = {{"TENSORRT_LLM_ENGINE_DIR", "/engines/llama-fp8"}};
  request.overrides = {"llm.model=/models/llama-bf16"};
  const EngineOptions options = engine_options(load_config(request));
  EXPECT_EQ(options.model_path, "/engines/llama-fp8");
  EXPECT_TRUE(options.prepared_engine);
  request.environment.clear();
  const EngineOptions plain = engine_options(load_config(request));
  EXPECT_EQ(plain.model_path, "/models/llama-bf16");
  EXPECT_FALSE(plain.prepared_engine);
}

TEST(Quantize, EngineDirMustHoldAPreparedFp8Checkpoint) {
  std::mt19937_64 rng(tw::test_seed("Quantize.EngineDirMustHoldAPreparedFp8Checkpoint"));
  const auto source = tiny_bf16_dir(tw::TinyLlama::random(rng), "engine_dir");
  EngineOptions options;
  options.model_path = source.string();
  options.device = Device::cpu;
  options.prepared_engine = true;
  try {
    Engine::create(options);
    ADD_FAILURE() << "a BF16 directory was accepted as a prepared engine";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("octet quantize"), std::string::npos) << e.what();
  }
  fs::remove_all(source);
}

}  // namespace
}  // namespace octet::quantize
