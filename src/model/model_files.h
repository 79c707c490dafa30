#pragma once
// Opening a model from what users bring: a GGUF file, or a Hugging Face directory (config.json,
// tokenizer.json, tokenizer_config.json, generation_config.json, safetensors single or sharded, in
// BF16/F16/F32 or FP8 from ModelOpt or compressed-tensors). Weights stay in the files (mmap) until
// the model reads them one tensor at a time.
#include "formats/quantization_config.h"
#include "model/llama_config.h"
#include "model/weight_source.h"
#include "tokenizer/tokenizer.h"

#include <memory>
#include <optional>
#include <string>

namespace octet::model {

struct ModelFiles {
  std::string path;
  std::string format;  // "gguf", "safetensors", "modelopt FP8 (FP8)", "compressed-tensors FP8 (...)"
  LlamaConfig config;
  std::unique_ptr<tokenizer::Tokenizer> tokenizer;
  std::unique_ptr<WeightSource> weights;
  formats::QuantizationConfig quantization;  // method none for GGUF and 16/32-bit checkpoints
  std::vector<int32_t> stop_ids;             // the tokenizer's, config.json's and generation_config.json's eos ids
  // generation_config.json's sampling suggestions (do_sample false suggests temperature 0).
  std::optional<float> temperature, top_p;
  std::optional<int> top_k;
};

bool is_model_directory(const std::string& path);  // a directory holding config.json
ModelFiles open_model_files(const std::string& path);
// Only the hyper-parameters (no tokenizer, no weights): `octet info`, shapes for planning.
LlamaConfig read_model_config(const std::string& path);

}  // namespace octet::model
