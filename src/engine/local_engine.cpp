// The Engine on this machine: model + tokenizer + sampler over a backend, one sequence at a time
// (the server's continuous batching drives LlamaModel directly with many slots).
#include "common/error.h"
#include "engine/model_info.h"
#include "engine/model_loader.h"
#include "engine/sampler.h"
#include "engine/stop_strings.h"
#include "model/llama_model.h"
#include "octet/engine.h"
#include "tokenizer/tokenizer.h"

#include <sys/resource.h>

#include <algorithm>
#include <chrono>

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

// Prompt tokens are fed in chunks so activation buffers stay bounded for long prompts.
constexpr int64_t kPrefillChunk = 256;

class LocalEngine final : public Engine {
 public:
  explicit LocalEngine(const EngineOptions& options) : options_(options) {
    engine::LoadedModel loaded = engine::load_model(options_);
    options_.model_path = loaded.path;
    config_ = loaded.config;
    tokenizer_ = std::move(loaded.tokenizer);
    stop_ids_ = std::move(loaded.stop_ids);
    format_ = std::move(loaded.format);
    suggested_temperature_ = loaded.suggested_temperature;
    suggested_top_p_ = loaded.suggested_top_p;
    suggested_top_k_ = loaded.suggested_top_k;
    backend_ = std::move(loaded.backend);
    model_ = std::move(loaded.model);
  }

  GenerationResult chat(const std::vector<Message>& messages, const GenerationParams& params,
                        const TokenCallback& on_piece) override {
    return generate(engine::chat_prompt_ids(*tokenizer_, messages), params, on_piece);
  }

  GenerationResult complete(const std::string& prompt, const GenerationParams& params,
                            const TokenCallback& on_piece) override {
    return generate(engine::completion_prompt_ids(*tokenizer_, prompt), params, on_piece);
  }

  ModelInfo info() const override {
    ModelInfo info = engine::describe_model(config_, options_.precision, options_.model_path, backend_->name(),
                                            {model_->embedding_fp8(), model_->lm_head_fp8()});
    info.kv_bytes_per_token = model_->kv_bytes_per_position();
    info.numerics = std::string(numerics_name(backend_->numerics()));
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
    // Rows without a repetition penalty (which needs the history) are drawn where the logits are;
    // the others come to the host for the sampler.
    const bool device_sampled = model_->backend().samples_on_device() && !engine::penalizes_repetition(params.repetition_penalty);
    std::vector<float> logits(device_sampled ? 0 : static_cast<size_t>(config_.vocab));
    float* logits_out = device_sampled ? nullptr : logits.data();
    std::vector<int32_t> history = prompt;
    auto next_token = [&]() {
      if (!device_sampled) return sampler.sample(logits, history);
      const int64_t row = 0;
      const backend::RowSampling setting{params.temperature, params.top_k, params.top_p, params.min_p, params.seed,
                                         static_cast<uint64_t>(result.completion_tokens)};
      int32_t token = 0;
      model_->backend().sample_rows(model_->logits(), std::span<const int64_t>(&row, 1),
                                    std::span<const backend::RowSampling>(&setting, 1), std::span<int32_t>(&token, 1));
      return token;
    };
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
      model_->forward(batch, logit_rows, logits_out);
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
      const int32_t token = next_token();
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
      model_->forward(step, std::span<const int64_t>(&last_row, 1), logits_out);
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
