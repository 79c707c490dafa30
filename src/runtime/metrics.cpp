#include "runtime/metrics.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace octet::runtime {

LatencySummary summarize(std::deque<double> values) {
  LatencySummary s;
  s.samples = values.size();
  if (values.empty()) return s;
  std::sort(values.begin(), values.end());
  s.mean_ms = std::accumulate(values.begin(), values.end(), 0.0) / static_cast<double>(values.size());
  // Nearest-rank percentiles.
  auto rank = [&](double p) {
    size_t index = static_cast<size_t>(std::ceil(p * static_cast<double>(values.size()))) ;
    return values[std::min(values.size() - 1, index == 0 ? 0 : index - 1)];
  };
  s.p50_ms = rank(0.50);
  s.p99_ms = rank(0.99);
  return s;
}

Histogram::Histogram(std::vector<double> bounds_ms)
    : upper_bounds_ms(std::move(bounds_ms)), counts(upper_bounds_ms.size(), 0) {}

void Histogram::observe(double value_ms) {
  ++count;
  sum_ms += value_ms;
  for (size_t i = 0; i < upper_bounds_ms.size(); ++i)
    if (value_ms <= upper_bounds_ms[i]) ++counts[i];
}

MetricsRegistry::MetricsRegistry() {
  // Milliseconds: TTFT spans queueing and prefill (up to seconds on a CPU), ITL one decode step.
  serving_.time_to_first_token = Histogram({10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000});
  serving_.inter_token_latency = Histogram({1, 2.5, 5, 10, 20, 40, 80, 160, 320, 640, 1280, 5000});
}

void MetricsRegistry::set_scheduler_gauges(const SchedulerGauges& gauges) {
  std::lock_guard lock(mutex_);
  serving_.gauges = gauges;
}

void MetricsRegistry::count_finish_reason(const std::string& reason) {
  std::lock_guard lock(mutex_);
  ++serving_.requests_by_finish_reason[reason];
}

void MetricsRegistry::count_http_status(int status) {
  std::lock_guard lock(mutex_);
  ++serving_.requests_by_status[std::to_string(status)];
}

void MetricsRegistry::observe_first_token(double ms) {
  std::lock_guard lock(mutex_);
  serving_.time_to_first_token.observe(ms);
}

void MetricsRegistry::observe_token_gap(double ms) {
  std::lock_guard lock(mutex_);
  serving_.inter_token_latency.observe(ms);
}

ServingSnapshot MetricsRegistry::serving_snapshot() const {
  std::lock_guard lock(mutex_);
  return serving_;
}

void MetricsRegistry::record(const GenerationResult& result) {
  std::lock_guard lock(mutex_);
  serving_.prompt_tokens += static_cast<uint64_t>(result.prompt_tokens);
  serving_.generation_tokens += static_cast<uint64_t>(result.completion_tokens);
  ++requests_;
  prompt_tokens_ += static_cast<uint64_t>(result.prompt_tokens);
  completion_tokens_ += static_cast<uint64_t>(result.completion_tokens);
  last_request_tokens_ = static_cast<uint64_t>(result.prompt_tokens + result.completion_tokens);
  generation_ms_ += result.total_ms;
  if (result.completion_tokens > 0) ttft_ms_.push_back(result.time_to_first_token_ms);
  for (double gap : result.inter_token_ms) itl_ms_.push_back(gap);
  while (ttft_ms_.size() > kWindow) ttft_ms_.pop_front();
  while (itl_ms_.size() > kWindow) itl_ms_.pop_front();
}

MetricsSnapshot MetricsRegistry::snapshot() const {
  std::lock_guard lock(mutex_);
  MetricsSnapshot s;
  s.requests = requests_;
  s.prompt_tokens = prompt_tokens_;
  s.completion_tokens = completion_tokens_;
  s.throughput_tok_s = generation_ms_ > 0 ? 1000.0 * static_cast<double>(completion_tokens_) / generation_ms_ : 0;
  s.time_to_first_token = summarize(ttft_ms_);
  s.inter_token_latency = summarize(itl_ms_);
  s.last_request_tokens = last_request_tokens_;
  return s;
}

}  // namespace octet::runtime
