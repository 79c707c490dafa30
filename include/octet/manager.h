#pragma once
// The FP8 model manager (the seed's FP8ModelManager): builds the engine from the configuration and
// answers what the model is, what FP8 saves, and how it has been performing.
#include "octet/config.h"
#include "octet/engine.h"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace octet {

struct ManagedModelInfo {
  std::string name;
  std::string architecture;
  int64_t parameters = 0;
  std::string precision;      // fp8 | bf16 | f32
  std::string fp8_dtype;      // float8_e4m3fn | float8_e5m2
  std::string kv_cache_dtype;
  std::vector<std::string> devices;  // "cpu", "cuda:0", … (configured when the engine is not loaded)
  int tensor_parallel_size = 1;
  int64_t context_length = 0;  // configured, else the model's (at most 8192)
  bool loaded = false;         // the engine is up
  std::string not_loaded_reason;
};

struct MemorySavings {
  int64_t context_tokens = 0;
  uint64_t weights_bf16_bytes = 0, weights_fp8_bytes = 0;
  uint64_t kv_cache_bf16_bytes = 0, kv_cache_fp8_bytes = 0;  // one sequence at context_tokens
  uint64_t total_bf16_bytes = 0, total_fp8_bytes = 0;
  double weights_savings_percentage = 0, kv_cache_savings_percentage = 0, total_savings_percentage = 0;
};

struct LatencyStats {
  double mean_ms = 0, p50_ms = 0, p99_ms = 0;
};

struct PerformanceStats {
  uint64_t requests = 0;
  uint64_t prompt_tokens = 0, completion_tokens = 0;
  double throughput_tok_s = 0;
  LatencyStats time_to_first_token, inter_token_latency;
  uint64_t host_memory_bytes = 0, host_peak_memory_bytes = 0;
  uint64_t gpu_memory_bytes = 0;        // in use on GPU 0 (0 without a GPU)
  uint64_t gpu_peak_memory_bytes = 0;   // the most seen in use on GPU 0 (at load, after each request)
  uint64_t kv_cache_bytes_in_use = 0;   // the latest request's K/V
  uint64_t kv_cache_bytes_per_token = 0;
};

class FP8ModelManager {
 public:
  // Never throws for a missing or unloadable model: model_info() says why it is not loaded.
  explicit FP8ModelManager(Config config);
  ~FP8ModelManager();

  ManagedModelInfo model_info() const;
  MemorySavings estimate_memory_savings() const;  // from the model's real shapes
  PerformanceStats performance_stats() const;

  bool loaded() const;
  // Runs one chat turn on the local engine (octet::Error when it is not loaded), recording metrics.
  GenerationResult generate(const std::vector<Message>& messages, const GenerationParams& params,
                            const TokenCallback& on_piece = {});
  const Config& config() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

std::unique_ptr<FP8ModelManager> create_fp8_manager(const Config& config);

}  // namespace octet
