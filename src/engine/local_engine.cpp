// The Engine on this machine: model + tokenizer + sampler over a backend, one sequence at a time
// (the server's continuous batching drives LlamaModel directly with many slots).
#include "backend/device.h"
#include "common/error.h"
#include "common/progress_bar.h"
#include "engine/model_info.h"
#include "engine/sampler.h"
#include "engine/stop_strings.h"
#include "model/llama_model.h"
#include "model/model_files.h"
#include "octet/engine.h"
#include "tokenizer/tokenizer.h"

#include <spdlog/spdlog.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>

namespace octet {
namespace {

using Clock = std::chrono::steady_clock;

double ms_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

uint64_t peak_resident_bytes() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<uint64_t>(usage.ru_maxrss) * 1024;  // Linux reports KiB
}

constexpr uint64_t kProgressBarBytes = uint64_t{1} << 30;

// Prompt tokens are fed in chunks so activation buffers stay bounded for long prompts.
constexpr int64_t kPrefillChunk = 256;

class LocalEngine final : public Engine {
 public:
  explicit LocalEngine(const EngineOptions& options) : options_(options) {
    if (options_.model_path.empty()) options_.model_path = default_model_path();
    model::ModelFiles files = model::open_model_files(options_.model_path);
    if (options_.prepared_engine && !files.quantization.quantized())
      fail("engine_dir {}: not a prepared FP8 engine directory (its config has no quantization_config and there is no "
           "hf_quant_config.json); make one with `octet quantize SOURCE {}`",
           options_.model_path, options_.model_path);
    config_ = files.config;
    tokenizer_ = std::move(files.tokenizer);
    stop_ids_ = files.stop_ids;
    format_ = files.format;
    suggested_temperature_ = files.temperature;
    suggested_top_p_ = files.top_p;
    suggested_top_k_ = files.top_k;
    backend_ = choose_backend();

    model::ModelOptions model_options;
    model_options.precision = options_.precision;
    model_options.max_context = options_.max_context > 0 ? std::min(options_.max_context, config_.context_length)
                                                         : std::min<int64_t>(config_.context_length, 8192);
    model_options.kv_fp8_format = fp8::parse_format(options_.kv_cache_dtype);
    // A progress bar for checkpoints that take a while, only on a terminal (pipes get one-line output).
    std::unique_ptr<ProgressBar> bar;
    if (::isatty(STDERR_FILENO) && files.weights->stored_bytes() >= kProgressBarBytes) {
      bar = std::make_unique<ProgressBar>("loading", files.weights->stored_bytes());
      files.weights->set_progress([&bar](uint64_t done) { bar->update(done); });
    }
    auto start = Clock::now();
    model_ = std::make_unique<model::LlamaModel>(config_, files.weights.get(), *backend_, model_options);
    if (bar) bar->finish();
    const double load_ms = ms_between(start, Clock::now());
    const uint64_t stored = files.weights->stored_bytes();
    spdlog::debug("loaded {} ({}, {} layers, {} precision) in {:.0f} ms, {:.1f} MiB of weights{}", options_.model_path,
                  files.format, config_.layers, precision_name(options_.precision), load_ms,
                  static_cast<double>(model_->weight_bytes()) / (1 << 20),
                  stored > 0 && load_ms > 0 ? fmt::format(", {:.2f} GB/s from the files", stored / load_ms / 1e6) : "");
  }

  GenerationResult chat(const std::vector<Message>& messages, const GenerationParams& params,
                        const TokenCallback& on_piece) override {
    std::vector<tokenizer::ChatMessage> chat_messages;
    for (const auto& m : messages) chat_messages.push_back({m.role, m.content});
    std::string prompt = tokenizer_->apply_chat_template(chat_messages, true);
    return generate(tokenizer_->encode(prompt, /*allow_special=*/true), params, on_piece);
  }

  GenerationResult complete(const std::string& prompt, const GenerationParams& params,
                            const TokenCallback& on_piece) override {
    std::vector<int32_t> ids;
    if (tokenizer_->add_bos() && tokenizer_->bos_id()) ids.push_back(*tokenizer_->bos_id());
    auto body = tokenizer_->encode(prompt, /*allow_special=*/false);
    ids.insert(ids.end(), body.begin(), body.end());
    return generate(ids, params, on_piece);
  }

  // --device auto: the GPU when one can run this precision, else the CPU (saying why at info level).
  std::unique_ptr<backend::Backend> choose_backend() const {
    if (options_.device == Device::cpu) return backend::make_cpu_backend(options_.threads);
    if (options_.device == Device::cuda) return backend::make_cuda_backend(0);
    const backend::CudaStatus cuda = backend::probe_cuda();
    if (!cuda.available) {
      spdlog::info("running on the CPU: {}", cuda.reason);
      return backend::make_cpu_backend(options_.threads);
    }
    const backend::GpuInfo& gpu = cuda.gpus.front();
    if (options_.precision == Precision::fp8 && !gpu.fp8_tensor_cores()) {
      spdlog::warn("{} (compute {}.{}) has no FP8 tensor cores (8.9+ needed): running fp8 on the CPU; "
                   "--precision bf16 runs on the GPU", gpu.name, gpu.compute_major, gpu.compute_minor);
      return backend::make_cpu_backend(options_.threads);
    }
    return backend::make_cuda_backend(gpu.index);
  }

  ModelInfo info() const override {
    ModelInfo info = engine::describe_model(config_, options_.precision, options_.model_path, backend_->name());
    info.kv_bytes_per_token = model_->kv_bytes_per_position();
    info.format = format_;
    info.suggested_temperature = suggested_temperature_;
    info.suggested_top_p = suggested_top_p_;
    info.suggested_top_k = suggested_top_k_;
    return info;
  }

 private:
  GenerationResult generate(const std::vector<int32_t>& prompt, const GenerationParams& params,
                            const TokenCallback& on_piece) {
    const int64_t context = model_->options().max_context;
    if (prompt.empty()) fail("the prompt is empty");
    if (static_cast<int64_t>(prompt.size()) >= context)
      fail("the prompt has {} tokens; the context holds {} (prompt + generated tokens)", prompt.size(), context);
    if (params.max_tokens < 0) fail("max_tokens must be >= 0, got {}", params.max_tokens);

    GenerationResult result;
    result.prompt_tokens = static_cast<int64_t>(prompt.size());
    engine::Sampler sampler(engine::SamplingParams{params.temperature, params.top_k, params.top_p, params.min_p,
                                                   params.repetition_penalty, params.seed});
    engine::StopStringFilter stop_filter(params.stop);
    tokenizer::Utf8Streamer utf8;
    std::vector<float> logits(static_cast<size_t>(config_.vocab));
    std::vector<int32_t> history = prompt;
    model_->clear_slot(0);

    const auto start = Clock::now();
    for (int64_t begin = 0; begin < result.prompt_tokens; begin += kPrefillChunk) {
      const int64_t end = std::min(result.prompt_tokens, begin + kPrefillChunk);
      backend::TokenBatch batch;
      for (int64_t i = begin; i < end; ++i) {
        batch.tokens.push_back(prompt[i]);
        batch.positions.push_back(i);
        batch.slots.push_back(0);
      }
      std::vector<int64_t> logit_rows;
      if (end == result.prompt_tokens) logit_rows.push_back(end - begin - 1);
      model_->forward(batch, logit_rows, logits.data());
    }
    const auto prefill_done = Clock::now();

    bool keep_going = true;
    auto emit = [&](const std::string& text) {
      if (text.empty()) return;
      result.text += text;
      if (on_piece && !on_piece(text)) keep_going = false;
    };
    result.finish_reason = "length";
    int64_t position = result.prompt_tokens;
    const auto& stop_ids = stop_ids_;
    auto last_token_time = start;
    while (result.completion_tokens < params.max_tokens && keep_going) {
      const int32_t token = sampler.sample(logits, history);
      const auto now = Clock::now();
      if (result.completion_tokens == 0) result.time_to_first_token_ms = ms_between(start, now);
      else result.inter_token_ms.push_back(ms_between(last_token_time, now));
      last_token_time = now;
      ++result.completion_tokens;
      history.push_back(token);
      const bool is_stop = std::find(stop_ids.begin(), stop_ids.end(), token) != stop_ids.end();
      if (is_stop && !params.ignore_eos) {
        result.finish_reason = "stop";
        break;
      }
      emit(stop_filter.push(utf8.push(tokenizer_->token_bytes(token))));
      if (stop_filter.stopped()) {
        result.finish_reason = "stop";
        break;
      }
      if (result.completion_tokens == params.max_tokens) break;
      if (position + 1 >= model_->options().max_context) break;  // context full: finish as "length"
      backend::TokenBatch step{{token}, {position}, {0}};
      const int64_t last_row = 0;
      model_->forward(step, std::span<const int64_t>(&last_row, 1), logits.data());
      ++position;
    }
    if (!stop_filter.stopped()) emit(stop_filter.push(utf8.flush()) + stop_filter.flush());
    const auto end = Clock::now();

    const double prefill_ms = ms_between(start, prefill_done);
    const double decode_ms = ms_between(prefill_done, end);
    result.total_ms = ms_between(start, end);
    result.prefill_tok_s = prefill_ms > 0 ? 1000.0 * static_cast<double>(result.prompt_tokens) / prefill_ms : 0;
    // The first token comes from the prefill's logits; decode speed counts the forward passes after it.
    const int64_t decode_steps = std::max<int64_t>(result.completion_tokens - 1, 0);
    result.decode_tok_s = decode_ms > 0 && decode_steps > 0 ? 1000.0 * static_cast<double>(decode_steps) / decode_ms : 0;
    result.peak_memory_bytes = peak_resident_bytes();
    return result;
  }

  EngineOptions options_;
  model::LlamaConfig config_;
  std::unique_ptr<tokenizer::Tokenizer> tokenizer_;
  std::vector<int32_t> stop_ids_;  // the tokenizer's and the checkpoint's end-of-sequence ids
  std::string format_;
  std::optional<float> suggested_temperature_, suggested_top_p_;
  std::optional<int> suggested_top_k_;
  std::unique_ptr<backend::Backend> backend_;
  std::unique_ptr<model::LlamaModel> model_;
};

}  // namespace

std::unique_ptr<Engine> Engine::create(const EngineOptions& options) { return std::make_unique<LocalEngine>(options); }

}  // namespace octet
