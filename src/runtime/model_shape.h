#pragma once
// The shape of the configured model without loading it: from its GGUF file, or, for a Hugging Face
// model name (e.g. nvidia/Llama-3.3-70B-Instruct-FP8), from configs/models/<name>.json.
#include "engine/model_info.h"
#include "model/llama_config.h"

#include <optional>
#include <string>

namespace octet::runtime {

struct ModelShape {
  model::LlamaConfig config;
  std::string source;      // the file the shape came from
  bool weights_local = false;  // a loadable model file exists
  // Whether the checkpoint stores its vocabulary tensors in FP8, where the name tells: published FP8
  // exports (…-FP8, …-FP8-dynamic) exclude lm_head and keep the embedding BF16; nullopt: unknown.
  std::optional<bool> checkpoint_vocab_fp8;
};

// nullopt when neither a model file nor a known shape exists for the name.
std::optional<ModelShape> find_model_shape(const std::string& model);

// Bytes of weights for a precision (fp8: linear E4M3 + channel scales, the embedding table and LM
// head as `vocab` says, the rest BF16; engine::describe_model) and of the KV cache per token
// (element_bytes 1: E4M3 plus a float scale per (token, kv head), as the engine stores them; 2:
// BF16; 4: float32).
uint64_t weight_bytes(const model::LlamaConfig& c, bool fp8, engine::VocabStorage vocab);
uint64_t kv_bytes_per_token(const model::LlamaConfig& c, int element_bytes);

}  // namespace octet::runtime
