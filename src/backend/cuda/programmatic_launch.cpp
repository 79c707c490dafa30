#include "backend/cuda/programmatic_launch.h"

#include "backend/cuda/cuda_check.h"

#include <mutex>
#include <utility>
#include <vector>

namespace octet::backend::cuda {
namespace {

// A handful of streams (one per backend), looked up at every launch: a short list under a lock
// costs far less than the launch.
struct StreamSettings {
  std::mutex mutex;
  std::vector<std::pair<cudaStream_t, bool>> streams;
};

StreamSettings& settings() {
  static StreamSettings instance;
  return instance;
}

}  // namespace

bool device_has_programmatic_launches(int device) {
  int major = 0;
  OCTET_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device));
  return major >= 9;
}

bool programmatic_launches(cudaStream_t stream) {
  StreamSettings& s = settings();
  std::lock_guard lock(s.mutex);
  for (const auto& [known, on] : s.streams)
    if (known == stream) return on;
  return false;
}

void set_programmatic_launches(cudaStream_t stream, bool on) {
  int device = 0;
  OCTET_CUDA_CHECK(cudaGetDevice(&device));
  on = on && device_has_programmatic_launches(device);
  StreamSettings& s = settings();
  std::lock_guard lock(s.mutex);
  for (auto& [known, setting] : s.streams)
    if (known == stream) {
      setting = on;
      return;
    }
  s.streams.emplace_back(stream, on);
}

void forget_programmatic_launches(cudaStream_t stream) {
  StreamSettings& s = settings();
  std::lock_guard lock(s.mutex);
  std::erase_if(s.streams, [&](const auto& entry) { return entry.first == stream; });
}

}  // namespace octet::backend::cuda
