#pragma once
#include "model/llama_config.h"
#include "octet/engine.h"

#include <optional>

namespace octet::engine {

// How the engine stores the vocabulary tensors in fp8 precision (model::vocab_tensor_fp8 decides).
struct VocabStorage {
  bool embedding_fp8 = false;
  bool lm_head_fp8 = false;
};

// The storage the settings give where no checkpoint decides auto (or checkpoint_fp8 where one does).
VocabStorage vocab_storage(VocabPrecision embedding, VocabPrecision lm_head, std::optional<bool> checkpoint_fp8 = {});

// Shapes, parameters and the BF16 vs FP8 weight bytes of a model, from its config alone, as the
// engine stores them. FP8: linear layers E4M3 with one float32 scale per output channel, norms 2
// bytes (as published), the embedding table and the LM head BF16, or E4M3 with a float32 scale per
// vocabulary row where `vocab` says so (a tied table and head in one format count once; in two
// formats, twice). BF16: every parameter 2 bytes.
ModelInfo describe_model(const model::LlamaConfig& config, Precision precision, const std::string& path,
                         const std::string& device, VocabStorage vocab = {});

}  // namespace octet::engine
