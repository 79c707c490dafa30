#include "engine/model_bench.h"

#include "backend/device.h"
#include "common/error.h"
#include "engine/model_info.h"
#include "model/llama_config.h"
#include "model/llama_model.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>

namespace octet::engine {
namespace {

using Clock = std::chrono::steady_clock;

backend::TokenBatch make_batch(int64_t count, int64_t vocab, auto slot_of, auto position_of) {
  backend::TokenBatch batch;
  for (int64_t i = 0; i < count; ++i) {
    batch.tokens.push_back(static_cast<int32_t>((i * 7919) % vocab));
    batch.slots.push_back(slot_of(i));
    batch.positions.push_back(position_of(i));
  }
  return batch;
}

// Wall time of work() after the backend has drained, in milliseconds.
template <typename Work>
double timed_ms(backend::Backend& b, Work&& work) {
  b.synchronize();
  const auto start = Clock::now();
  work();
  b.synchronize();
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

}  // namespace

ModelBenchReport run_model_bench(const ModelBenchOptions& options) {
  const model::LlamaConfig config = model::config_from_hf_file(options.config_json);
  const backend::CudaStatus cuda = backend::probe_cuda();
  const bool use_cuda = options.device == Device::cuda || (options.device == Device::auto_select && cuda.available);
  std::unique_ptr<backend::Backend> backend = use_cuda ? backend::make_cuda_backend(0, options.numerics)
                                                        : backend::make_cpu_backend(options.threads, options.numerics);

  ModelBenchReport report;
  report.device = use_cuda ? cuda.gpus.at(0).name : "cpu";
  report.model = options.config_json;
  report.precision = std::string(precision_name(options.precision));
  report.numerics = std::string(numerics_name(options.numerics));
  report.parameters = config.parameter_count();
  if (use_cuda) {
    report.copy_bandwidth_bytes_per_s = backend::measure_copy_bandwidth_bytes_per_s(0);
    report.fp8_gemm_flops = backend::measure_fp8_gemm_flops(0);
  }

  const int64_t max_batch = options.decode_batches.empty() ? 1 : *std::max_element(options.decode_batches.begin(), options.decode_batches.end());
  const int64_t max_prefill = options.prefill_tokens.empty() ? 1 : *std::max_element(options.prefill_tokens.begin(), options.prefill_tokens.end());
  const int64_t decode_context = options.context + options.decode_steps + 4;
  model::ModelOptions model_options;
  model_options.precision = options.precision;
  model_options.lm_head_precision = options.lm_head_precision;
  model_options.embedding_precision = options.embedding_precision;
  model_options.slots = 1;
  model_options.max_context = max_prefill;
  if (use_cuda) {
    // Say what does not fit before allocating it.
    const bool fp8 = options.precision == Precision::fp8;
    const ModelInfo shape_info = describe_model(
        config, options.precision, "", "",
        fp8 ? vocab_storage(options.embedding_precision, options.lm_head_precision) : VocabStorage{});
    const uint64_t weight_bytes = fp8 ? shape_info.weight_bytes_fp8 : shape_info.weight_bytes_bf16;
    const uint64_t kv_per_position = 2ull * config.layers * config.kv_dim() * (options.precision == Precision::fp8 ? 1 : 2);
    const uint64_t kv = kv_per_position * static_cast<uint64_t>(std::max(max_prefill, max_batch * decode_context));
    const uint64_t free_bytes = cuda.gpus.at(0).free_memory_bytes;
    if (weight_bytes + kv > free_bytes)
      fail("bench: about {:.1f} GiB of weights and {:.1f} GiB of KV cache do not fit in {:.1f} GiB free: lower the "
           "largest --batch, --context or --prefill", weight_bytes / 1073741824.0, kv / 1073741824.0,
           free_bytes / 1073741824.0);
  }
  model::LlamaModel model(config, nullptr, *backend, model_options);
  report.weight_bytes = model.weight_bytes();
  const double streamed_bytes = static_cast<double>(model.streamed_weight_bytes());

  for (int64_t tokens : options.prefill_tokens) {
    auto batch = make_batch(tokens, config.vocab, [](int64_t) { return int64_t{0}; }, [](int64_t i) { return i; });
    const int64_t last = tokens - 1;
    model.forward(batch, std::span<const int64_t>(&last, 1), nullptr);  // warm-up: allocations, cuBLASLt plans
    std::vector<double> runs;
    for (int r = 0; r < 3; ++r)
      runs.push_back(timed_ms(*backend, [&] { model.forward(batch, std::span<const int64_t>(&last, 1), nullptr); }));
    std::sort(runs.begin(), runs.end());
    PrefillResult p;
    p.tokens = tokens;
    p.ms = runs[1];
    p.tokens_per_s = 1000.0 * static_cast<double>(tokens) / p.ms;
    const double linear_flops = 2.0 * static_cast<double>(config.parameter_count() - config.vocab * config.hidden) * tokens;
    const double attention_flops = 2.0 * 2.0 * config.layers * config.q_dim() * static_cast<double>(tokens) * tokens / 2.0;
    p.tflops = (linear_flops + attention_flops) / (p.ms / 1000.0) / 1e12;
    if (report.fp8_gemm_flops > 0) p.percent_of_peak = 100.0 * p.tflops * 1e12 / report.fp8_gemm_flops;
    report.prefill.push_back(p);
    spdlog::info("prefill {} tokens: {:.2f} ms", tokens, p.ms);
  }

  if (!options.decode_batches.empty()) model.reset_kv_cache(max_batch, decode_context);
  for (int64_t batch_size : options.decode_batches) {
    int64_t step = 0;
    auto one_step = [&] {
      auto batch = make_batch(batch_size, config.vocab, [](int64_t i) { return i; },
                              [&](int64_t) { return options.context + step; });
      std::vector<int64_t> rows(static_cast<size_t>(batch_size));
      for (int64_t i = 0; i < batch_size; ++i) rows[i] = i;
      model.forward(batch, rows, nullptr);
      if (options.sync_each_step) backend->synchronize();
      ++step;
    };
    one_step();  // warm-up
    one_step();
    const double ms = timed_ms(*backend, [&] {
      for (int s = 0; s < options.decode_steps; ++s) one_step();
    });
    DecodeResult d;
    d.batch = batch_size;
    d.ms_per_step = ms / options.decode_steps;
    d.tokens_per_s = 1000.0 * static_cast<double>(batch_size) / d.ms_per_step;
    d.bytes_per_step = streamed_bytes + static_cast<double>(batch_size) * static_cast<double>(options.context) *
                                            static_cast<double>(model.kv_bytes_per_position());
    d.bytes_per_s = d.bytes_per_step / (d.ms_per_step / 1000.0);
    // The copy ceiling counts bytes read plus written; a decode step almost only reads.
    if (report.copy_bandwidth_bytes_per_s > 0) d.percent_of_roofline = 100.0 * d.bytes_per_s / report.copy_bandwidth_bytes_per_s;
    report.decode.push_back(d);
    spdlog::info("decode batch {}: {:.3f} ms/step", batch_size, d.ms_per_step);
  }
  if (use_cuda) report.peak_device_memory_bytes = backend::device_memory_used_bytes(0);
  return report;
}

}  // namespace octet::engine
