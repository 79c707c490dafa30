#include "engine/model_loader.h"

#include "backend/device.h"
#include "common/error.h"
#include "formats/gguf.h"
#include "model/weight_source.h"
#include "tokenizer/byte_level.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <filesystem>

namespace octet::engine {

std::unique_ptr<backend::Backend> choose_backend(const EngineOptions& options) {
  if (options.device == Device::cpu) return backend::make_cpu_backend(options.threads);
  if (options.device == Device::cuda) return backend::make_cuda_backend(0);
  const backend::CudaStatus cuda = backend::probe_cuda();
  if (!cuda.available) {
    spdlog::info("running on the CPU: {}", cuda.reason);
    return backend::make_cpu_backend(options.threads);
  }
  const backend::GpuInfo& gpu = cuda.gpus.front();
  if (options.precision == Precision::fp8 && !gpu.fp8_tensor_cores()) {
    spdlog::warn("{} (compute {}.{}) has no FP8 tensor cores (8.9+ needed): running fp8 on the CPU; "
                 "--precision bf16 runs on the GPU", gpu.name, gpu.compute_major, gpu.compute_minor);
    return backend::make_cpu_backend(options.threads);
  }
  return backend::make_cuda_backend(gpu.index);
}

namespace {

model::ModelOptions model_options_for(const EngineOptions& options, const model::LlamaConfig& config,
                                      const KvPoolRequest& kv) {
  model::ModelOptions model_options;
  model_options.precision = options.precision;
  model_options.max_context = options.max_context > 0 ? std::min(options.max_context, config.context_length)
                                                       : std::min<int64_t>(config.context_length, 8192);
  model_options.kv_fp8_format = fp8::parse_format(options.kv_cache_dtype);
  model_options.slots = kv.slots;
  if (kv.paged)
    model_options.kv_blocks = kv.kv_blocks > 0 ? kv.kv_blocks
                                               : kv.slots * ((model_options.max_context + kv.block_size - 1) / kv.block_size);
  model_options.kv_block_size = kv.block_size;
  return model_options;
}

tokenizer::Tokenizer stand_in_tokenizer(const model::LlamaConfig& config, const std::string& source) {
  tokenizer::Vocabulary v;
  v.source = source + " (stand-in tokenizer for random weights)";
  for (int64_t id = 0; id < config.vocab; ++id)
    v.tokens.push_back(id < 256 ? tokenizer::bytes_to_byte_level(std::string(1, static_cast<char>(id)))
                                : "t" + std::to_string(id));
  for (int64_t eos : config.eos_token_ids)
    if (eos >= 0 && eos < config.vocab) v.stop_ids.push_back(static_cast<int32_t>(eos));
  return tokenizer::Tokenizer(std::move(v));
}

}  // namespace

LoadedModel load_dummy_model(const std::string& config_json_path, const EngineOptions& options, const KvPoolRequest& kv) {
  LoadedModel loaded;
  loaded.path = config_json_path;
  loaded.config = model::config_from_hf_file(config_json_path);
  if (loaded.config.vocab < 256) fail("{}: vocab_size {} is below the 256 byte tokens", config_json_path, loaded.config.vocab);
  loaded.tokenizer = std::make_unique<tokenizer::Tokenizer>(stand_in_tokenizer(loaded.config, config_json_path));
  loaded.backend = choose_backend(options);
  loaded.model = std::make_unique<model::LlamaModel>(loaded.config, nullptr, *loaded.backend,
                                                     model_options_for(options, loaded.config, kv));
  return loaded;
}

LoadedModel load_model(const EngineOptions& options, const KvPoolRequest& kv) {
  LoadedModel loaded;
  loaded.path = options.model_path.empty() ? default_model_path() : options.model_path;
  if (!std::filesystem::exists(loaded.path))
    fail("model file not found: {} (run scripts/setup.sh to fetch the default model, or pass --model)", loaded.path);
  auto file = std::make_shared<gguf::File>(gguf::File::open(loaded.path));
  loaded.config = model::config_from_gguf(*file);
  loaded.tokenizer = std::make_unique<tokenizer::Tokenizer>(tokenizer::Tokenizer::from_gguf(*file));
  loaded.backend = choose_backend(options);
  const model::ModelOptions model_options = model_options_for(options, loaded.config, kv);
  auto weights = model::make_gguf_weight_source(file, loaded.config);
  const auto start = std::chrono::steady_clock::now();
  loaded.model = std::make_unique<model::LlamaModel>(loaded.config, weights.get(), *loaded.backend, model_options);
  spdlog::debug("loaded {} ({} layers, {} precision) in {:.0f} ms, {:.1f} MiB of weights", loaded.path,
                loaded.config.layers, precision_name(options.precision),
                std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count(),
                static_cast<double>(loaded.model->weight_bytes()) / (1 << 20));
  return loaded;
}

std::vector<int32_t> chat_prompt_ids(const tokenizer::Tokenizer& tokenizer, const std::vector<Message>& messages) {
  std::vector<tokenizer::ChatMessage> chat_messages;
  for (const auto& m : messages) chat_messages.push_back({m.role, m.content});
  return tokenizer.encode(tokenizer.apply_chat_template(chat_messages, true), /*allow_special=*/true);
}

std::vector<int32_t> completion_prompt_ids(const tokenizer::Tokenizer& tokenizer, const std::string& prompt) {
  std::vector<int32_t> ids;
  if (tokenizer.add_bos() && tokenizer.bos_id()) ids.push_back(*tokenizer.bos_id());
  auto body = tokenizer.encode(prompt, /*allow_special=*/false);
  ids.insert(ids.end(), body.begin(), body.end());
  return ids;
}

}  // namespace octet::engine
