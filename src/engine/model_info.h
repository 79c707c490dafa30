#pragma once
#include "model/llama_config.h"
#include "octet/engine.h"

namespace octet::engine {

// Shapes, parameters and the BF16 vs FP8 weight bytes of a model, from its config alone. FP8 here
// means the published layout: linear layers E4M3 with one float32 scale per output channel;
// embeddings, norms and the LM head in BF16.
ModelInfo describe_model(const model::LlamaConfig& config, Precision precision, const std::string& path,
                         const std::string& device);

}  // namespace octet::engine
