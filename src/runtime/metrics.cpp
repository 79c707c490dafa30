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

void MetricsRegistry::record(const GenerationResult& result) {
  std::lock_guard lock(mutex_);
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
