#include "engine/model_loader.h"

#include "backend/device.h"
#include "common/error.h"
#include "common/progress_bar.h"
#include "engine/backend_choice.h"
#include "model/model_files.h"
#include "model/weight_source.h"
#include "tokenizer/byte_level.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>

namespace octet::engine {

// Checkpoints smaller than this load too fast for a progress bar to help.
constexpr uint64_t kProgressBarBytes = uint64_t{1} << 30;

std::unique_ptr<backend::Backend> choose_backend(const EngineOptions& options) {
  if (options.device == Device::cpu) return backend::make_cpu_backend(options.threads, options.numerics);
  const backend::CudaStatus cuda = backend::probe_cuda();
  const BackendChoice choice = decide_backend(options.device, options.precision, cuda);
  if (choice.cuda) return backend::make_cuda_backend(choice.gpu_index, options.numerics);
  if (!choice.notice.empty()) spdlog::warn("{}", choice.notice);
  else spdlog::info("running on the CPU: {}", cuda.reason);
  return backend::make_cpu_backend(options.threads, options.numerics);
}

namespace {

model::ModelOptions model_options_for(const EngineOptions& options, const model::LlamaConfig& config,
                                      const KvPoolRequest& kv) {
  model::ModelOptions model_options;
  model_options.precision = options.precision;
  model_options.lm_head_precision = options.lm_head_precision;
  model_options.embedding_precision = options.embedding_precision;
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
  loaded.stop_ids = loaded.tokenizer->stop_ids();
  loaded.format = "random weights";
  loaded.backend = choose_backend(options);
  loaded.model = std::make_unique<model::LlamaModel>(loaded.config, nullptr, *loaded.backend,
                                                     model_options_for(options, loaded.config, kv));
  return loaded;
}

LoadedModel load_model(const EngineOptions& options, const KvPoolRequest& kv) {
  LoadedModel loaded;
  loaded.path = options.model_path.empty() ? default_model_path() : options.model_path;
  model::ModelFiles files = model::open_model_files(loaded.path);
  if (options.prepared_engine && !files.quantization.quantized())
    fail("engine_dir {}: not a prepared FP8 engine directory (its config has no quantization_config and there is no "
         "hf_quant_config.json); make one with `octet quantize SOURCE {}`",
         loaded.path, loaded.path);
  loaded.config = files.config;
  loaded.tokenizer = std::move(files.tokenizer);
  loaded.stop_ids = files.stop_ids;
  loaded.format = files.format;
  loaded.suggested_temperature = files.temperature;
  loaded.suggested_top_p = files.top_p;
  loaded.suggested_top_k = files.top_k;
  loaded.backend = choose_backend(options);
  const model::ModelOptions model_options = model_options_for(options, loaded.config, kv);
  // A progress bar for checkpoints that take a while, only on a terminal (pipes get one-line output).
  const uint64_t stored = files.weights->stored_bytes();
  std::unique_ptr<ProgressBar> bar;
  if (::isatty(STDERR_FILENO) && stored >= kProgressBarBytes) {
    bar = std::make_unique<ProgressBar>("loading", stored);
    files.weights->set_progress([&bar](uint64_t done) { bar->update(done); });
  }
  const auto start = std::chrono::steady_clock::now();
  loaded.model = std::make_unique<model::LlamaModel>(loaded.config, files.weights.get(), *loaded.backend, model_options);
  if (bar) bar->finish();
  const double load_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  spdlog::debug("loaded {} ({}, {} layers, {} precision) in {:.0f} ms, {:.1f} MiB of weights{}", loaded.path,
                files.format, loaded.config.layers, precision_name(options.precision), load_ms,
                static_cast<double>(loaded.model->weight_bytes()) / (1 << 20),
                stored > 0 && load_ms > 0 ? fmt::format(", {:.2f} GB/s from the files", stored / load_ms / 1e6) : "");
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
