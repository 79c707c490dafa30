#include "engine/model_info.h"

#include "common/error.h"
#include "model/model_files.h"

#include <filesystem>

namespace octet::engine {

ModelInfo describe_model(const model::LlamaConfig& c, Precision precision, const std::string& path,
                         const std::string& device) {
  ModelInfo info;
  info.name = c.name;
  info.architecture = c.architecture;
  info.path = path;
  info.precision = std::string(precision_name(precision));
  info.device = device;
  info.parameters = c.parameter_count();
  info.layers = c.layers;
  info.hidden = c.hidden;
  info.heads = c.heads;
  info.kv_heads = c.kv_heads;
  info.head_dim = c.head_dim;
  info.ffn = c.ffn;
  info.vocab = c.vocab;
  info.context_length = c.context_length;
  info.tied_embeddings = c.tied_embeddings;

  const uint64_t linear_params_per_layer = static_cast<uint64_t>(
      c.hidden * c.q_dim() + 2 * c.hidden * c.kv_dim() + c.q_dim() * c.hidden + 3 * c.hidden * c.ffn);
  const uint64_t channel_scales_per_layer =
      static_cast<uint64_t>(c.q_dim() + 2 * c.kv_dim() + c.hidden + 2 * c.ffn + c.hidden);
  const uint64_t linear_params = linear_params_per_layer * static_cast<uint64_t>(c.layers);
  const uint64_t other_params = static_cast<uint64_t>(info.parameters) - linear_params;
  info.weight_bytes_bf16 = static_cast<uint64_t>(info.parameters) * 2;
  info.weight_bytes_fp8 = linear_params + channel_scales_per_layer * static_cast<uint64_t>(c.layers) * 4 +
                          other_params * 2;
  info.savings_percentage =
      100.0 * (1.0 - static_cast<double>(info.weight_bytes_fp8) / static_cast<double>(info.weight_bytes_bf16));
  return info;
}

}  // namespace octet::engine

namespace octet {

ModelInfo inspect_model(const EngineOptions& options) {
  const std::string path = options.model_path.empty() ? default_model_path() : options.model_path;
  return engine::describe_model(model::read_model_config(path), options.precision, path, "cpu");
}

}  // namespace octet
