#pragma once
// /metrics: the registry's serving counters, histograms and gauges in the Prometheus text format
// (version 0.0.4), with the process's memory.
#include "runtime/metrics.h"

#include <cstdint>
#include <optional>
#include <string>

namespace octet::server {

struct MemoryGauges {
  uint64_t host_resident_bytes = 0;
  uint64_t host_peak_resident_bytes = 0;
  std::optional<uint64_t> gpu_used_bytes;  // only when the model runs on a GPU
};

MemoryGauges read_memory_gauges(bool on_gpu);
std::string render_prometheus(const runtime::ServingSnapshot& snapshot, const MemoryGauges& memory);

}  // namespace octet::server
