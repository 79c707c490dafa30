#include "model/model_files.h"

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <filesystem>

#include "common/error.h"
#include "formats/gguf.h"
#include "formats/json_file.h"
#include "formats/safetensors_checkpoint.h"

namespace octet::model {
namespace {

namespace fs = std::filesystem;

nlohmann::json read_json(const fs::path& path) { return formats::read_json_file(path.string()); }

LlamaConfig hf_config(const fs::path& dir, const nlohmann::json& json) {
  LlamaConfig config = config_from_hf_json(json, (dir / "config.json").string());
  if (config.name.empty()) config.name = fs::absolute(dir).lexically_normal().filename().string();
  if (config.name.empty()) config.name = fs::absolute(dir).lexically_normal().parent_path().filename().string();
  return config;
}

void add_stop(std::vector<int32_t>& stops, int64_t id) {
  if (std::find(stops.begin(), stops.end(), static_cast<int32_t>(id)) == stops.end()) stops.push_back(static_cast<int32_t>(id));
}

// generation_config.json: eos_token_id (an integer or a list of them) and the suggested sampling.
void read_generation_config(const fs::path& path, ModelFiles& files) {
  if (!fs::exists(path)) return;
  const nlohmann::json generation = read_json(path);
  if (!generation.is_object()) fail("{}: expected a JSON object", path.string());
  if (const auto eos = generation.find("eos_token_id"); eos != generation.end() && !eos->is_null()) {
    const nlohmann::json ids = eos->is_array() ? *eos : nlohmann::json::array({*eos});
    for (const auto& id : ids) {
      if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() >= files.config.vocab)
        fail("{}: eos_token_id {} is not a token id in [0, {})", path.string(), id.dump(), files.config.vocab);
      add_stop(files.stop_ids, id.get<int64_t>());
    }
  }
  auto number = [&](const char* key, double low, double high) -> std::optional<double> {
    const auto it = generation.find(key);
    if (it == generation.end() || it->is_null()) return std::nullopt;
    if (!it->is_number() || it->get<double>() < low || it->get<double>() > high)
      fail("{}: {} must be a number in [{}, {}], found {}", path.string(), key, low, high, it->dump());
    return it->get<double>();
  };
  if (const auto do_sample = generation.find("do_sample"); do_sample != generation.end() && do_sample->is_boolean() &&
                                                           !do_sample->get<bool>()) {
    files.temperature = 0.0f;  // greedy
  } else {
    if (auto t = number("temperature", 0, 100)) files.temperature = static_cast<float>(*t);
    if (auto p = number("top_p", 0, 1)) files.top_p = static_cast<float>(*p);
    if (auto k = number("top_k", 0, 1 << 24)) files.top_k = static_cast<int>(*k);
  }
}

ModelFiles open_directory(const std::string& path) {
  const fs::path dir(path);
  ModelFiles files;
  files.path = path;
  const nlohmann::json config_json = read_json(dir / "config.json");
  files.config = hf_config(dir, config_json);
  files.quantization = formats::read_quantization_config(path, config_json, (dir / "config.json").string());

  const fs::path tokenizer_json = dir / "tokenizer.json";
  if (!fs::exists(tokenizer_json)) fail("{}: no tokenizer.json (Octet reads byte-level BPE tokenizer.json files)", path);
  const fs::path tokenizer_config = dir / "tokenizer_config.json";
  files.tokenizer = std::make_unique<tokenizer::Tokenizer>(tokenizer::Tokenizer::from_hf_files(
      tokenizer_json.string(), fs::exists(tokenizer_config) ? tokenizer_config.string() : ""));

  files.stop_ids = files.tokenizer->stop_ids();
  for (int64_t id : files.config.eos_token_ids) add_stop(files.stop_ids, id);
  read_generation_config(dir / "generation_config.json", files);

  auto checkpoint = std::make_shared<formats::SafetensorsCheckpoint>(formats::SafetensorsCheckpoint::open(path));
  files.weights = make_hf_weight_source(checkpoint, files.quantization);
  switch (files.quantization.method) {
    case formats::QuantizationConfig::Method::none: files.format = "safetensors"; break;
    case formats::QuantizationConfig::Method::modelopt: files.format = "modelopt " + files.quantization.algorithm; break;
    case formats::QuantizationConfig::Method::compressed_tensors:
      files.format = "compressed-tensors " + files.quantization.algorithm;
      break;
  }
  return files;
}

ModelFiles open_gguf(const std::string& path) {
  ModelFiles files;
  files.path = path;
  files.format = "gguf";
  auto file = std::make_shared<gguf::File>(gguf::File::open(path));
  files.config = config_from_gguf(*file);
  files.tokenizer = std::make_unique<tokenizer::Tokenizer>(tokenizer::Tokenizer::from_gguf(*file));
  files.stop_ids = files.tokenizer->stop_ids();
  files.weights = make_gguf_weight_source(file, files.config);
  return files;
}

}  // namespace

bool is_model_directory(const std::string& path) {
  return fs::is_directory(path) && fs::exists(fs::path(path) / "config.json");
}

ModelFiles open_model_files(const std::string& path) {
  if (fs::is_directory(path)) {
    if (!is_model_directory(path)) fail("{}: a model directory needs a config.json (Hugging Face layout)", path);
    return open_directory(path);
  }
  if (!fs::exists(path))
    fail("model not found: {} (run scripts/setup.sh to fetch the default model, or pass --model FILE.gguf or a "
         "Hugging Face directory)",
         path);
  return open_gguf(path);
}

LlamaConfig read_model_config(const std::string& path) {
  if (fs::is_directory(path)) {
    if (!is_model_directory(path)) fail("{}: a model directory needs a config.json (Hugging Face layout)", path);
    return hf_config(path, read_json(fs::path(path) / "config.json"));
  }
  if (!fs::exists(path)) fail("model not found: {}", path);
  return config_from_gguf(gguf::File::open(path));
}

}  // namespace octet::model
