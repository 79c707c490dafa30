#include "runtime/model_shape.h"

#include "engine/model_info.h"
#include "model/model_files.h"

#include <filesystem>

namespace octet::runtime {

std::optional<ModelShape> find_model_shape(const std::string& model) {
  namespace fs = std::filesystem;
  const std::string path = model.empty() ? default_model_path() : model;
  if (fs::is_regular_file(path) || model::is_model_directory(path)) {
    ModelShape shape;
    shape.config = model::read_model_config(path);
    shape.source = path;
    shape.weights_local = true;
    return shape;
  }
  // "owner/Name-FP8" → configs/models/Name.json (the FP8 export has the shape of its base model).
  std::string name = fs::path(path).filename().string();
  bool fp8_export = false;
  for (const char* suffix : {"-FP8-dynamic", "-FP8"})
    if (name.size() > std::string(suffix).size() && name.ends_with(suffix)) {
      name.resize(name.size() - std::string(suffix).size());
      fp8_export = true;
    }
  const std::string config_json = std::string(OCTET_SOURCE_DIR) + "/configs/models/" + name + ".json";
  if (!fs::is_regular_file(config_json)) return std::nullopt;
  ModelShape shape;
  if (fp8_export) shape.checkpoint_vocab_fp8 = false;
  shape.config = model::config_from_hf_file(config_json);
  shape.source = config_json;
  return shape;
}

uint64_t weight_bytes(const model::LlamaConfig& c, bool fp8, engine::VocabStorage vocab) {
  ModelInfo info = engine::describe_model(c, fp8 ? Precision::fp8 : Precision::bf16, "", "", vocab);
  return fp8 ? info.weight_bytes_fp8 : info.weight_bytes_bf16;
}

uint64_t kv_bytes_per_token(const model::LlamaConfig& c, int element_bytes) {
  const uint64_t values = 2ull * static_cast<uint64_t>(c.layers * c.kv_dim()) * static_cast<uint64_t>(element_bytes);
  // FP8 entries carry the float scale of their (token, kv head), as the engine stores them.
  const uint64_t scales = element_bytes == 1 ? 2ull * static_cast<uint64_t>(c.layers * c.kv_heads) * 4 : 0;
  return values + scales;
}

}  // namespace octet::runtime
