#include "backend/device.h"
#include "common/error.h"
#include "octet/doctor.h"
#include "octet/manager.h"
#include "runtime/metrics.h"
#include "runtime/model_shape.h"

#include <fmt/ranges.h>
#include <spdlog/spdlog.h>
#include <sys/resource.h>
#include <unistd.h>

#include <atomic>
#include <fstream>

namespace octet {
namespace {

uint64_t resident_bytes() {
  std::ifstream statm("/proc/self/statm");
  uint64_t pages_total = 0, pages_resident = 0;
  statm >> pages_total >> pages_resident;
  return pages_resident * static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
}

uint64_t peak_resident_bytes() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<uint64_t>(usage.ru_maxrss) * 1024;
}

double percent_saved(uint64_t fp8, uint64_t bf16) {
  return bf16 ? 100.0 * (1.0 - static_cast<double>(fp8) / static_cast<double>(bf16)) : 0.0;
}

}  // namespace

struct FP8ModelManager::State {
  Config config;
  std::optional<runtime::ModelShape> shape;
  std::unique_ptr<Engine> engine;
  std::string not_loaded_reason;
  runtime::MetricsRegistry metrics;
  ModelInfo engine_info;
  mutable std::atomic<uint64_t> gpu_peak_bytes{0};

  // GPU memory in use now, folded into the peak (sampled at load, after each request and on each
  // stats call: allocations peak while a request runs, and the engine keeps what it allocated).
  uint64_t sample_gpu_memory() const {
    if (!engine || engine_info.device != "cuda") return 0;
    const uint64_t used = backend::device_memory_used_bytes(0);
    uint64_t peak = gpu_peak_bytes.load();
    while (used > peak && !gpu_peak_bytes.compare_exchange_weak(peak, used)) {}
    return used;
  }
};

FP8ModelManager::FP8ModelManager(Config config) : state_(std::make_unique<State>()) {
  state_->config = std::move(config);
  try {
    state_->shape = runtime::find_model_shape(state_->config.llm.model);
  } catch (const std::exception& e) {
    state_->not_loaded_reason = e.what();
    return;
  }
  if (!state_->shape) {
    state_->not_loaded_reason = "model " + (state_->config.llm.model.empty() ? default_model_path() : state_->config.llm.model) +
                                " not found";
    return;
  }
  if (!state_->shape->weights_local) {
    state_->not_loaded_reason = "the weights of " + state_->config.llm.model + " are not on this machine";
    return;
  }
  // Loading a model that the environment check already knows cannot fit would only end in an
  // allocation failure (or the kernel's OOM killer): report the check's reasons instead.
  const EnvironmentReport environment = validate_fp8_environment(state_->config);
  if (environment.status == "unavailable") {
    state_->not_loaded_reason = fmt::format("the environment check says unavailable: {}", fmt::join(environment.reasons, "; "));
    spdlog::warn("local engine not loaded: {}", state_->not_loaded_reason);
    return;
  }
  try {
    state_->engine = Engine::create(engine_options(state_->config));
    state_->engine_info = state_->engine->info();
    state_->sample_gpu_memory();
  } catch (const std::exception& e) {  // out of memory, unsupported GPU, bad file: reported, not thrown
    state_->not_loaded_reason = e.what();
    spdlog::warn("local engine not available: {}", e.what());
  }
}

FP8ModelManager::~FP8ModelManager() = default;

bool FP8ModelManager::loaded() const { return state_->engine != nullptr; }
const Config& FP8ModelManager::config() const { return state_->config; }

ManagedModelInfo FP8ModelManager::model_info() const {
  const Config& c = state_->config;
  ManagedModelInfo info;
  info.precision = std::string(precision_name(c.llm.precision));
  info.fp8_dtype = c.quantization.data_type;
  info.kv_cache_dtype = c.llm.precision == Precision::fp8 && c.quantization.quantize_kv_cache ? c.engine.kv_cache_dtype
                                                                                               : info.precision;
  info.tensor_parallel_size = c.engine.tensor_parallel_size;
  info.loaded = loaded();
  info.not_loaded_reason = state_->not_loaded_reason;
  if (state_->shape) {
    const auto& s = state_->shape->config;
    info.name = s.name.empty() ? (c.llm.model.empty() ? default_model_path() : c.llm.model) : s.name;
    info.architecture = s.architecture;
    info.parameters = s.parameter_count();
    info.context_length = c.engine.max_context_length > 0 ? c.engine.max_context_length : std::min<int64_t>(s.context_length, 8192);
  }
  if (loaded()) {
    info.devices = {state_->engine_info.device == "cuda" ? "cuda:0" : state_->engine_info.device};
  } else {
    const backend::CudaStatus cuda = backend::probe_cuda();
    if (c.llm.device != Device::cpu && cuda.available)
      for (int i = 0; i < std::min<int>(c.engine.tensor_parallel_size, static_cast<int>(cuda.gpus.size())); ++i)
        info.devices.push_back("cuda:" + std::to_string(i));
    else
      info.devices = {"cpu"};
  }
  return info;
}

MemorySavings FP8ModelManager::estimate_memory_savings() const {
  if (!state_->shape) fail("memory savings: {}", state_->not_loaded_reason);
  const auto& s = state_->shape->config;
  const Config& c = state_->config;
  MemorySavings m;
  m.context_tokens = c.engine.max_context_length > 0 ? c.engine.max_context_length : std::min<int64_t>(s.context_length, 8192);
  const engine::VocabStorage vocab = engine::vocab_storage(c.llm.embedding_precision, c.llm.lm_head_precision,
                                                           state_->shape->checkpoint_vocab_fp8);
  m.weights_bf16_bytes = runtime::weight_bytes(s, false, vocab);
  m.weights_fp8_bytes = runtime::weight_bytes(s, true, vocab);
  m.kv_cache_bf16_bytes = runtime::kv_bytes_per_token(s, 2) * static_cast<uint64_t>(m.context_tokens);
  m.kv_cache_fp8_bytes = runtime::kv_bytes_per_token(s, 1) * static_cast<uint64_t>(m.context_tokens);
  m.total_bf16_bytes = m.weights_bf16_bytes + m.kv_cache_bf16_bytes;
  m.total_fp8_bytes = m.weights_fp8_bytes + m.kv_cache_fp8_bytes;
  m.weights_savings_percentage = percent_saved(m.weights_fp8_bytes, m.weights_bf16_bytes);
  m.kv_cache_savings_percentage = percent_saved(m.kv_cache_fp8_bytes, m.kv_cache_bf16_bytes);
  m.total_savings_percentage = percent_saved(m.total_fp8_bytes, m.total_bf16_bytes);
  return m;
}

PerformanceStats FP8ModelManager::performance_stats() const {
  const runtime::MetricsSnapshot snapshot = state_->metrics.snapshot();
  PerformanceStats p;
  p.requests = snapshot.requests;
  p.prompt_tokens = snapshot.prompt_tokens;
  p.completion_tokens = snapshot.completion_tokens;
  p.throughput_tok_s = snapshot.throughput_tok_s;
  p.time_to_first_token = {snapshot.time_to_first_token.mean_ms, snapshot.time_to_first_token.p50_ms,
                           snapshot.time_to_first_token.p99_ms};
  p.inter_token_latency = {snapshot.inter_token_latency.mean_ms, snapshot.inter_token_latency.p50_ms,
                           snapshot.inter_token_latency.p99_ms};
  p.host_memory_bytes = resident_bytes();
  p.host_peak_memory_bytes = peak_resident_bytes();
  p.gpu_memory_bytes = state_->sample_gpu_memory();
  p.gpu_peak_memory_bytes = state_->gpu_peak_bytes.load();
  p.kv_cache_bytes_per_token = state_->engine_info.kv_bytes_per_token;
  p.kv_cache_bytes_in_use = snapshot.last_request_tokens * p.kv_cache_bytes_per_token;
  return p;
}

GenerationResult FP8ModelManager::generate(const std::vector<Message>& messages, const GenerationParams& params,
                                           const TokenCallback& on_piece) {
  if (!loaded()) fail("the local model is not available: {}", state_->not_loaded_reason);
  GenerationResult result = state_->engine->chat(messages, params, on_piece);
  state_->sample_gpu_memory();
  state_->metrics.record(result);
  return result;
}

std::unique_ptr<FP8ModelManager> create_fp8_manager(const Config& config) {
  return std::make_unique<FP8ModelManager>(config);
}

}  // namespace octet
