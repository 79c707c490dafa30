#pragma once
// The one metrics registry: every finished generation reports its tokens and latencies here; the
// model manager and the server's /metrics read from it, and the scheduler sets its gauges after
// every step. Thread-safe.
#include "octet/engine.h"

#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <string>
#include <vector>

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

// Cumulative histogram in the Prometheus sense: counts[i] holds observations <= upper_bounds_ms[i];
// count and sum cover every observation (the implicit +Inf bucket is count).
struct Histogram {
  std::vector<double> upper_bounds_ms;
  std::vector<uint64_t> counts;
  uint64_t count = 0;
  double sum_ms = 0;
  explicit Histogram(std::vector<double> bounds_ms = {});
  void observe(double value_ms);
};

// What the scheduler reports after each step.
struct SchedulerGauges {
  int64_t running_requests = 0;
  int64_t waiting_requests = 0;
  int64_t kv_blocks_used = 0;
  int64_t kv_blocks_total = 0;
  int64_t kv_block_size = 0;  // positions per block
};

struct ServingSnapshot {
  SchedulerGauges gauges;
  std::map<std::string, uint64_t> requests_by_status;         // HTTP status code → requests answered
  std::map<std::string, uint64_t> requests_by_finish_reason;  // stop | length | abort | error
  uint64_t prompt_tokens = 0, generation_tokens = 0;
  Histogram time_to_first_token, inter_token_latency;
};

class MetricsRegistry {
 public:
  MetricsRegistry();
  // Totals and the recent-latency windows, once a request has finished. The Prometheus latency
  // histograms are not touched here: a server observes them as tokens come (below).
  void record(const GenerationResult& result);
  // A request's first token (from its submission) and each later gap, observed when they happen so
  // /metrics shows a long request's latencies while it runs, not after it ends.
  void observe_first_token(double ms);
  void observe_token_gap(double ms);
  MetricsSnapshot snapshot() const;

  void set_scheduler_gauges(const SchedulerGauges& gauges);
  void count_finish_reason(const std::string& reason);
  void count_http_status(int status);
  ServingSnapshot serving_snapshot() const;

 private:
  static constexpr size_t kWindow = 100000;  // latencies kept for percentiles
  mutable std::mutex mutex_;
  uint64_t requests_ = 0, prompt_tokens_ = 0, completion_tokens_ = 0, last_request_tokens_ = 0;
  double generation_ms_ = 0;
  std::deque<double> ttft_ms_, itl_ms_;
  ServingSnapshot serving_;
};

LatencySummary summarize(std::deque<double> values);

}  // namespace octet::runtime
