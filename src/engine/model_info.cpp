#include "engine/model_info.h"

#include "common/error.h"
#include "model/llama_model.h"
#include "model/model_files.h"

#include <filesystem>

namespace octet::engine {

VocabStorage vocab_storage(VocabPrecision embedding, VocabPrecision lm_head, std::optional<bool> checkpoint_fp8) {
  VocabStorage v;
  v.embedding_fp8 = model::vocab_tensor_fp8(Precision::fp8, embedding, checkpoint_fp8, "llm.embedding_precision");
  v.lm_head_fp8 = model::vocab_tensor_fp8(Precision::fp8, lm_head, checkpoint_fp8, "llm.lm_head_precision");
  return v;
}

ModelInfo describe_model(const model::LlamaConfig& c, Precision precision, const std::string& path,
                         const std::string& device, VocabStorage vocab) {
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
  const uint64_t table_params = static_cast<uint64_t>(c.vocab * c.hidden);
  const uint64_t vocab_tensors = c.tied_embeddings ? 1 : 2;
  const uint64_t norm_params = static_cast<uint64_t>(info.parameters) - linear_params - vocab_tensors * table_params;
  // One vocabulary tensor: BF16, or E4M3 codes with a float32 scale per row.
  const uint64_t table_bytes_fp8 = table_params + static_cast<uint64_t>(c.vocab) * 4;
  auto table_bytes = [&](bool fp8) { return fp8 ? table_bytes_fp8 : table_params * 2; };
  // Tied: an fp8 table and head share one copy; BF16 for both counts one copy, as the BF16 figure
  // does (the engine holds a second BF16 copy for the head today); mixed formats are two tensors.
  const bool one_tied_copy = c.tied_embeddings && vocab.embedding_fp8 == vocab.lm_head_fp8;
  const uint64_t vocab_bytes =
      one_tied_copy ? table_bytes(vocab.embedding_fp8) : table_bytes(vocab.embedding_fp8) + table_bytes(vocab.lm_head_fp8);
  info.weight_bytes_bf16 = static_cast<uint64_t>(info.parameters) * 2;
  info.weight_bytes_fp8 = linear_params + channel_scales_per_layer * static_cast<uint64_t>(c.layers) * 4 +
                          vocab_bytes + norm_params * 2;
  info.savings_percentage =
      100.0 * (1.0 - static_cast<double>(info.weight_bytes_fp8) / static_cast<double>(info.weight_bytes_bf16));
  return info;
}

}  // namespace octet::engine

namespace octet {

ModelInfo inspect_model(const EngineOptions& options) {
  const std::string path = options.model_path.empty() ? default_model_path() : options.model_path;
  const engine::VocabStorage vocab = options.precision == Precision::fp8
                                         ? engine::vocab_storage(options.embedding_precision, options.lm_head_precision)
                                         : engine::VocabStorage{};
  return engine::describe_model(model::read_model_config(path), options.precision, path, "cpu", vocab);
}

}  // namespace octet
