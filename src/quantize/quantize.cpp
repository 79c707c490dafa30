#include "quantize/quantize.h"

#include <fnmatch.h>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>

#include "backend/backend.h"
#include "common/bf16.h"
#include "common/error.h"
#include "common/progress_bar.h"
#include "formats/gguf.h"
#include "formats/json_file.h"
#include "formats/safetensors_writer.h"
#include "fp8/scaling.h"
#include "model/llama_model.h"
#include "model/model_files.h"
#include "quantize/calibration_backend.h"
#include "quantize/tokenizer_export.h"

namespace octet::quantize {
namespace {

namespace fs = std::filesystem;
using formats::PlannedTensor;
using nlohmann::ordered_json;
using safetensors::Dtype;

constexpr int64_t kCalibrationChunk = 256;
constexpr int64_t kCalibrationContext = 1024;

struct Calibration {
  std::map<std::string, float> input_amax;  // by module
  std::vector<float> k_amax, v_amax;        // by layer
  int64_t tokens = 0;
};

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("{}: cannot open the calibration text", path);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (text.empty()) fail("{}: the calibration text is empty", path);
  return text;
}

// Runs the model in BF16 over the text (sequences of up to kCalibrationContext tokens, prefilled in
// chunks) and records the amax of every linear layer's input and of each layer's K and V.
Calibration calibrate(const model::ModelFiles& files, const QuantizeOptions& options) {
  const std::string text = read_text(options.calibration_text_path);
  std::vector<int32_t> tokens;
  if (files.tokenizer->add_bos() && files.tokenizer->bos_id()) tokens.push_back(*files.tokenizer->bos_id());
  const auto body = files.tokenizer->encode(text, /*allow_special=*/false);
  tokens.insert(tokens.end(), body.begin(), body.end());
  if (static_cast<int64_t>(tokens.size()) > options.calibration_max_tokens)
    tokens.resize(static_cast<size_t>(options.calibration_max_tokens));

  auto cpu = backend::make_cpu_backend(options.threads);
  CalibrationBackend observer(*cpu, files.config.layers);
  model::ModelOptions model_options;
  model_options.precision = Precision::bf16;
  model_options.max_context = std::min(files.config.context_length, kCalibrationContext);
  model::LlamaModel model(files.config, files.weights.get(), observer, model_options);
  const auto total = static_cast<int64_t>(tokens.size());
  for (int64_t sequence = 0; sequence < total; sequence += model_options.max_context) {
    model.clear_slot(0);
    const int64_t end = std::min(total, sequence + model_options.max_context);
    for (int64_t begin = sequence; begin < end; begin += kCalibrationChunk) {
      backend::TokenBatch batch;
      for (int64_t i = begin; i < std::min(end, begin + kCalibrationChunk); ++i) {
        batch.tokens.push_back(tokens[static_cast<size_t>(i)]);
        batch.positions.push_back(i - sequence);
        batch.slots.push_back(0);
      }
      // An FP8 head needs its input's amax too: then every row goes through the final norm and the head.
      std::vector<int64_t> logit_rows;
      if (options.fp8_lm_head)
        for (int64_t r = 0; r < static_cast<int64_t>(batch.size()); ++r) logit_rows.push_back(r);
      model.forward(batch, logit_rows, nullptr);
    }
  }
  Calibration calibration;
  for (const auto& [module, weight] : model.linear_layers()) {
    const auto it = observer.input_amax().find(weight);
    calibration.input_amax[module] = it == observer.input_amax().end() ? 0.0f : it->second;
  }
  calibration.k_amax = observer.k_amax();
  calibration.v_amax = observer.v_amax();
  calibration.tokens = total;
  return calibration;
}

// Llama 3 scaling as llama.cpp's converter stores it (a rope_freqs tensor) is written back as the
// rope_scaling object it came from, when the factors are those of the standard Llama 3 parameters.
ordered_json rope_scaling_json(const model::LlamaConfig& config, const std::string& source) {
  model::RopeScaling scaling = config.rope_scaling;
  if (!config.rope_freq_factors.empty()) {
    model::LlamaConfig candidate = config;
    candidate.rope_freq_factors.clear();
    candidate.rope_scaling = {"llama3", 8.0, 1.0, 4.0, 8192};
    const auto expected = config.rope_inverse_frequencies(), found = candidate.rope_inverse_frequencies();
    for (size_t i = 0; i < expected.size(); ++i)
      if (std::fabs(found[i] - expected[i]) > 1e-4 * std::fabs(expected[i]))
        fail("{}: the rope_freqs factors are not Llama 3 scaling (factor 8, low 1, high 4, 8192 positions); "
             "no config.json rope_scaling can express them",
             source);
    scaling = candidate.rope_scaling;
  }
  if (scaling.type.empty()) return nullptr;
  if (scaling.type == "linear") return {{"rope_type", "linear"}, {"factor", scaling.factor}};
  return {{"rope_type", "llama3"}, {"factor", scaling.factor}, {"low_freq_factor", scaling.low_freq_factor},
          {"high_freq_factor", scaling.high_freq_factor},
          {"original_max_position_embeddings", scaling.original_max_position_embeddings}};
}

ordered_json config_from_gguf(const model::ModelFiles& files) {
  const model::LlamaConfig& c = files.config;
  ordered_json eos = ordered_json::array();
  for (int32_t id : files.stop_ids) eos.push_back(id);
  return {{"architectures", {"LlamaForCausalLM"}},
          {"model_type", "llama"},
          {"_name_or_path", c.name},
          {"hidden_size", c.hidden},
          {"intermediate_size", c.ffn},
          {"num_hidden_layers", c.layers},
          {"num_attention_heads", c.heads},
          {"num_key_value_heads", c.kv_heads},
          {"head_dim", c.head_dim},
          {"vocab_size", c.vocab},
          {"max_position_embeddings", c.context_length},
          {"rms_norm_eps", c.rms_norm_eps},
          {"rope_theta", c.rope_theta},
          {"rope_scaling", rope_scaling_json(c, files.path)},
          {"tie_word_embeddings", c.tied_embeddings},
          {"hidden_act", "silu"},
          {"attention_bias", false},
          {"mlp_bias", false},
          {"bos_token_id", c.bos_token_id ? ordered_json(*c.bos_token_id) : ordered_json(nullptr)},
          {"eos_token_id", eos},
          {"torch_dtype", "bfloat16"}};
}

void write_json(const fs::path& path, const ordered_json& json) {
  std::ofstream out(path);
  out << json.dump(2) << "\n";
  if (!out) fail("{}: write failed", path.string());
}

void check_destination(const fs::path& destination) {
  if (fs::exists(destination) && !(fs::is_directory(destination) && fs::is_empty(destination)))
    fail("{}: already exists and is not an empty directory (octet quantize writes a new directory)", destination.string());
  fs::create_directories(destination);
}

// What each planned tensor holds, produced when the writer asks for its bytes.
class CheckpointPlan {
 public:
  CheckpointPlan(const model::ModelFiles& files, const QuantizeOptions& options, const Calibration* calibration)
      : files_(files), options_(options), calibration_(calibration) {
    const model::LlamaConfig& c = files.config;
    add(bf16("model.embed_tokens.weight", {c.vocab, c.hidden}));
    for (int64_t i = 0; i < c.layers; ++i) {
      const std::string p = fmt::format("model.layers.{}.", i);
      add(f32(p + "input_layernorm.weight", {c.hidden}));
      linear(p + "self_attn.q_proj", c.q_dim(), c.hidden);
      linear(p + "self_attn.k_proj", c.kv_dim(), c.hidden);
      linear(p + "self_attn.v_proj", c.kv_dim(), c.hidden);
      if (calibration_) {
        add(scalar(p + "self_attn.k_proj.k_scale", fp8::scale_from_amax(calibration_->k_amax[i], fp8::Format::e4m3)));
        add(scalar(p + "self_attn.v_proj.v_scale", fp8::scale_from_amax(calibration_->v_amax[i], fp8::Format::e4m3)));
      }
      linear(p + "self_attn.o_proj", c.hidden, c.q_dim());
      add(f32(p + "post_attention_layernorm.weight", {c.hidden}));
      linear(p + "mlp.gate_proj", c.ffn, c.hidden);
      linear(p + "mlp.up_proj", c.ffn, c.hidden);
      linear(p + "mlp.down_proj", c.hidden, c.ffn);
    }
    add(f32("model.norm.weight", {c.hidden}));
    if (!c.tied_embeddings) linear("lm_head", c.vocab, c.hidden);
  }

  const std::vector<PlannedTensor>& tensors() const { return tensors_; }
  void fill(const PlannedTensor& tensor, std::span<uint8_t> out) { producers_.at(tensor.name)(out); }
  int64_t fp8_layers = 0, bf16_layers = 0;

 private:
  using Producer = std::function<void(std::span<uint8_t>)>;
  struct Entry {
    PlannedTensor tensor;
    Producer produce;
  };

  void add(Entry entry) {
    producers_[entry.tensor.name] = std::move(entry.produce);
    tensors_.push_back(std::move(entry.tensor));
  }

  Entry f32(const std::string& name, std::vector<int64_t> shape) {
    return {{name, Dtype::F32, shape}, [this, name, shape](std::span<uint8_t> out) {
              const std::vector<float> values = files_.weights->load(name, shape);
              std::memcpy(out.data(), values.data(), out.size());
            }};
  }
  Entry bf16(const std::string& name, std::vector<int64_t> shape) {
    return {{name, Dtype::BF16, shape}, [this, name, shape](std::span<uint8_t> out) {
              const std::vector<float> values = files_.weights->load(name, shape);
              for (size_t i = 0; i < values.size(); ++i) {
                const uint16_t b = float_to_bf16(values[i]);
                out[2 * i] = static_cast<uint8_t>(b);
                out[2 * i + 1] = static_cast<uint8_t>(b >> 8);
              }
            }};
  }
  static Entry scalar(const std::string& name, float value) {
    return {{name, Dtype::F32, {}}, [value](std::span<uint8_t> out) { std::memcpy(out.data(), &value, 4); }};
  }

  // An FP8 layer: the weight's codes, then its scales (computed with the codes, kept until written).
  void linear(const std::string& module, int64_t out, int64_t in) {
    if (excluded_from_quantization(module, options_.exclude, options_.fp8_lm_head)) {
      add(bf16(module + ".weight", {out, in}));
      ++bf16_layers;
      return;
    }
    ++fp8_layers;
    // The LM head keeps a scale per vocabulary row: one scale over all rows would flatten the logits
    // of rows far below the largest.
    const bool per_tensor = calibration_ != nullptr && module != "lm_head";
    add({{module + ".weight", Dtype::F8_E4M3, {out, in}}, [this, module, out, in, per_tensor](std::span<uint8_t> bytes) {
           const std::vector<float> values = files_.weights->load(module + ".weight", {out, in});
           auto q = fp8::quantize(values.data(), static_cast<size_t>(out), static_cast<size_t>(in),
                                  per_tensor ? fp8::ScaleGranularity::per_tensor : fp8::ScaleGranularity::per_output_channel);
           std::memcpy(bytes.data(), q.codes.data(), bytes.size());
           pending_scales_[module] = std::move(q.scales);
         }});
    const std::vector<int64_t> scale_shape = per_tensor ? std::vector<int64_t>{} : std::vector<int64_t>{out};
    add({{module + ".weight_scale", Dtype::F32, scale_shape}, [this, module](std::span<uint8_t> bytes) {
           const auto it = pending_scales_.find(module);
           if (it == pending_scales_.end()) fail("quantize: the scales of {} were asked for before its weight", module);
           std::memcpy(bytes.data(), it->second.data(), bytes.size());
           pending_scales_.erase(it);
         }});
    if (calibration_)
      add(scalar(module + ".input_scale", fp8::scale_from_amax(calibration_->input_amax.at(module), fp8::Format::e4m3)));
  }

  const model::ModelFiles& files_;
  const QuantizeOptions& options_;
  const Calibration* calibration_;
  std::vector<PlannedTensor> tensors_;
  std::map<std::string, Producer> producers_;
  std::map<std::string, std::vector<float>> pending_scales_;
};

void write_tokenizer(const model::ModelFiles& files, const fs::path& destination) {
  const fs::path source(files.path);
  if (fs::is_directory(source)) {
    for (const char* name : {"tokenizer.json", "tokenizer_config.json", "generation_config.json", "special_tokens_map.json"})
      if (fs::exists(source / name)) fs::copy_file(source / name, destination / name);
    return;
  }
  const gguf::File gguf = gguf::File::open(files.path);
  write_tokenizer_files(*files.tokenizer, gguf.get_string("tokenizer.chat_template").value_or(""), destination.string());
  ordered_json eos = ordered_json::array();
  for (int32_t id : files.stop_ids) eos.push_back(id);
  write_json(destination / "generation_config.json",
             {{"bos_token_id", files.config.bos_token_id ? ordered_json(*files.config.bos_token_id) : ordered_json(nullptr)},
              {"eos_token_id", eos}});
}

}  // namespace

bool excluded_from_quantization(const std::string& module, const std::vector<std::string>& patterns, bool fp8_lm_head) {
  if (module == "lm_head" && !fp8_lm_head) return true;
  for (const auto& pattern : patterns)
    if (pattern == module || ::fnmatch(pattern.c_str(), module.c_str(), 0) == 0) return true;
  return false;
}

QuantizeReport quantize_checkpoint(const QuantizeOptions& options) {
  const auto start = std::chrono::steady_clock::now();
  const fs::path destination(options.destination);
  model::ModelFiles files = model::open_model_files(options.source);
  if (files.quantization.quantized())
    fail("{}: already quantized ({}); octet quantize takes BF16/F16/F32 checkpoints or GGUF files", options.source,
         files.format);
  if (options.fp8_lm_head && files.config.tied_embeddings)
    fail("{}: the LM head is tied to the embedding table, so there is no lm_head tensor to write in FP8 (the engine "
         "quantizes a tied head at load with llm.lm_head_precision=fp8)",
         options.source);
  check_destination(destination);

  QuantizeReport report;
  std::unique_ptr<Calibration> calibration;
  if (!options.calibration_text_path.empty()) {
    calibration = std::make_unique<Calibration>(calibrate(files, options));
    report.calibration_tokens = calibration->tokens;
  }
  report.algorithm = calibration ? "FP8" : "FP8_PER_CHANNEL_PER_TOKEN";

  CheckpointPlan plan(files, options, calibration.get());
  uint64_t total = 0;
  for (const auto& t : plan.tensors()) total += t.byte_size();
  std::unique_ptr<ProgressBar> bar;
  if (options.show_progress) bar = std::make_unique<ProgressBar>("writing", total);
  const auto shards = formats::write_safetensors_shards(
      destination.string(), plan.tensors(), [&](const PlannedTensor& t, std::span<uint8_t> out) { plan.fill(t, out); },
      options.max_shard_bytes, {{"format", "pt"}}, [&](uint64_t done, uint64_t) {
        if (bar) bar->update(done);
      });
  if (bar) bar->finish();
  report.fp8_layers = plan.fp8_layers;
  report.bf16_layers = plan.bf16_layers;
  report.shard_files = shards.files;
  report.bytes_written = shards.tensor_bytes;

  ordered_json excluded = options.fp8_lm_head ? ordered_json::array() : ordered_json::array({"lm_head"});
  for (const auto& p : options.exclude) excluded.push_back(p);
  const ordered_json kv_algorithm = calibration ? ordered_json("FP8") : ordered_json(nullptr);
  const ordered_json producer = {{"name", "octet"}, {"version", "0.1.0"}};
  write_json(destination / "hf_quant_config.json",
             {{"producer", producer},
              {"quantization", {{"quant_algo", report.algorithm}, {"kv_cache_quant_algo", kv_algorithm},
                                {"exclude_modules", excluded}}}});
  ordered_json config = fs::is_directory(options.source)
                            ? ordered_json(formats::read_json_file((fs::path(options.source) / "config.json").string()))
                            : config_from_gguf(files);
  // Both spellings of the settings, for the loaders that read the config.json form (ignore,
  // kv_cache_scheme) and those that read the hf_quant_config.json form (exclude_modules, kv_cache_quant_algo).
  config["quantization_config"] = {
      {"quant_method", "modelopt"},
      {"quant_algo", report.algorithm},
      {"kv_cache_quant_algo", kv_algorithm},
      {"exclude_modules", excluded},
      {"ignore", excluded},
      {"kv_cache_scheme", calibration ? ordered_json{{"num_bits", 8}, {"type", "float"}, {"strategy", "tensor"},
                                                     {"dynamic", false}, {"symmetric", true}}
                                      : ordered_json(nullptr)},
      {"producer", producer}};
  write_json(destination / "config.json", config);
  write_tokenizer(files, destination);
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return report;
}

}  // namespace octet::quantize
