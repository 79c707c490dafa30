#pragma once
// The one metrics registry: every finished generation reports its tokens and latencies here; the
// model manager (and later the server's /metrics) read summaries from it. Thread-safe.
#include "octet/engine.h"

#include <cstdint>
#include <deque>
#include <mutex>

namespace octet::runtime {

struct LatencySummary {
  double mean_ms = 0, p50_ms = 0, p99_ms = 0;
  uint64_t samples = 0;
};

struct MetricsSnapshot {
  uint64_t requests = 0;
  uint64_t prompt_tokens = 0;
  uint64_t completion_tokens = 0;
  double throughput_tok_s = 0;  // generated tokens / time spent generating them, over all requests
  LatencySummary time_to_first_token;
  LatencySummary inter_token_latency;
  uint64_t last_request_tokens = 0;  // prompt + generated of the latest request (its KV footprint)
};

class MetricsRegistry {
 public:
  void record(const GenerationResult& result);
  MetricsSnapshot snapshot() const;

 private:
  static constexpr size_t kWindow = 100000;  // latencies kept for percentiles
  mutable std::mutex mutex_;
  uint64_t requests_ = 0, prompt_tokens_ = 0, completion_tokens_ = 0, last_request_tokens_ = 0;
  double generation_ms_ = 0;
  std::deque<double> ttft_ms_, itl_ms_;
};

LatencySummary summarize(std::deque<double> values);

}  // namespace octet::runtime
