#include "backend/cuda/step_graphs.h"

#include "backend/cuda/cuda_check.h"

#include <algorithm>

namespace octet::backend::cuda {

StepGraphs::~StepGraphs() {
  if (capturing_) abandon_capture(capture_stream_);
  clear();
}

void StepGraphs::clear() {
  for (auto& [key, graph] : graphs_) cudaGraphExecDestroy(graph.exec);
  graphs_.clear();
  // Keys whose eager pass predates the latest allocation can no longer be recorded; the key whose
  // eager pass made that allocation (its buffers now sized) stays, so its next pass is captured.
  std::erase_if(eager_epochs_, [&](const auto& entry) { return entry.second != *epoch_; });
  graphs_epoch_ = *epoch_;
}

void StepGraphs::start_capture(const Key& key, cudaStream_t stream) {
  // Thread-local mode: an allocation or synchronisation on this thread during capture is an error
  // (it would not be replayed), which turns a missed case into a clear failure.
  OCTET_CUDA_CHECK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
  capturing_ = true;
  capture_stream_ = stream;
  recording_key_ = key;
  recording_ = Graph{};
}

void StepGraphs::note_cache(const CudaKvCache* cache) {
  if (capturing_ && std::find(recording_.caches.begin(), recording_.caches.end(), cache) == recording_.caches.end())
    recording_.caches.push_back(cache);
}

void StepGraphs::launch(const Graph& graph, cudaStream_t stream) {
  OCTET_CUDA_CHECK(cudaGraphLaunch(graph.exec, stream));
}

bool StepGraphs::evict_stale(cudaStream_t stream) {
  auto oldest = std::min_element(graphs_.begin(), graphs_.end(),
                                 [](const auto& a, const auto& b) { return a.second.last_used < b.second.last_used; });
  if (oldest == graphs_.end() || uses_ - oldest->second.last_used < kStaleLaunches) return false;
  // It may still be running on the stream; evictions are rare, so wait rather than rely on deferred destruction.
  OCTET_CUDA_CHECK(cudaStreamSynchronize(stream));
  cudaGraphExecDestroy(oldest->second.exec);
  graphs_.erase(oldest);
  return true;
}

void StepGraphs::abandon_capture(cudaStream_t stream) {
  if (!capturing_) return;
  capturing_ = false;
  cudaGraph_t graph = nullptr;
  cudaStreamEndCapture(stream, &graph);
  if (graph) cudaGraphDestroy(graph);
  cudaGetLastError();  // the failed step's error is already reported
}

void StepGraphs::end(Action action, cudaStream_t stream) {
  if (action == Action::eager) {
    if (std::get<0>(eager_key_) != nullptr) eager_epochs_[eager_key_] = *epoch_;
    return;
  }
  if (action != Action::record) return;
  capturing_ = false;
  cudaGraph_t graph = nullptr;
  OCTET_CUDA_CHECK(cudaStreamEndCapture(stream, &graph));
  cudaGraphExec_t exec = nullptr;
  if (*epoch_ != graphs_epoch_) {  // a buffer grew while recording: the graph may hold a freed address
    cudaGraphDestroy(graph);
    fail("cuda backend: device memory was reallocated while recording a step of {} tokens", std::get<1>(recording_key_));
  }
  const cudaError_t status = cudaGraphInstantiate(&exec, graph, 0);
  cudaGraphDestroy(graph);
  OCTET_CUDA_CHECK(status);
  recording_.exec = exec;
  recording_.last_used = ++uses_;
  graphs_[recording_key_] = recording_;
  launch(graphs_[recording_key_], stream);  // the captured work has not run yet
}

}  // namespace octet::backend::cuda
