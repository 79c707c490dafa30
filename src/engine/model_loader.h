#pragma once
// Loading a model: a GGUF file or a Hugging Face directory (model/model_files.h), its tokenizer, the backend --device picks, and the
// forward pass with the KV cache the caller asks for. Shared by the one-sequence Engine and the server.
#include "model/llama_config.h"
#include "model/llama_model.h"
#include "octet/engine.h"
#include "tokenizer/tokenizer.h"

#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace octet::engine {

struct LoadedModel {
  std::string path;
  model::LlamaConfig config;
  std::unique_ptr<tokenizer::Tokenizer> tokenizer;
  std::vector<int32_t> stop_ids;  // the tokenizer's and the checkpoint's end-of-sequence ids
  std::string format;             // "gguf", "safetensors", "modelopt FP8 (FP8)", …
  // generation_config.json's sampling suggestions, when the checkpoint has one.
  std::optional<float> suggested_temperature, suggested_top_p;
  std::optional<int> suggested_top_k;
  std::unique_ptr<backend::Backend> backend;
  std::unique_ptr<model::LlamaModel> model;
};

struct KvPoolRequest {
  int64_t slots = 1;       // sequences in flight at once
  bool paged = false;      // false: every slot owns max_context positions (identity block tables)
  int64_t kv_blocks = 0;   // paged: blocks in the pool; 0: slots full contexts
  int64_t block_size = 16;
};

// options.model_path empty: default_model_path(). The context is options.max_context when set (capped
// at the model's), else min(model context, 8192).
LoadedModel load_model(const EngineOptions& options, const KvPoolRequest& kv = {});

// The shape in a Hugging Face config.json with random weights made by the backend (benchmarks: speed
// does not depend on weight values) and a stand-in tokenizer: ids 0-255 are the 256 bytes, id i
// above decodes as "t<i>", the config's EOS ids stop.
LoadedModel load_dummy_model(const std::string& config_json_path, const EngineOptions& options, const KvPoolRequest& kv = {});

// --device auto: the GPU when one can run this precision, else the CPU (saying why at info level).
std::unique_ptr<backend::Backend> choose_backend(const EngineOptions& options);

// Prompt token ids as the Engine builds them: the chat template (special tokens allowed), or a plain
// completion prompt (BOS when the vocabulary asks for it, special tokens encoded as text).
std::vector<int32_t> chat_prompt_ids(const tokenizer::Tokenizer& tokenizer, const std::vector<Message>& messages);
std::vector<int32_t> completion_prompt_ids(const tokenizer::Tokenizer& tokenizer, const std::string& prompt);

}  // namespace octet::engine
