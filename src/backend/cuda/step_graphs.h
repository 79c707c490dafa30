#pragma once
// Recorded forward steps (CUDA graphs), keyed by the caller (the model object) and the batch shape
// (tokens, logit rows).
//
// The first pass of a key runs eagerly and sizes every scratch buffer; the next one with nothing
// reallocated in between is captured and launched; later ones replay the graph. Everything a kernel
// of the step reads that changes from step to step (tokens, positions, slots, logit rows, block
// tables) lives in device buffers at fixed addresses, uploaded before the launch. Any allocation or
// free of a device object of the backend (weights, activations, caches, scratch) advances an epoch
// and drops every graph, since a graph holds raw device addresses.
#include <cuda_runtime.h>

#include <cstdint>
#include <map>
#include <memory>
#include <tuple>
#include <utility>
#include <vector>

namespace octet::backend::cuda {

class CudaKvCache;

// Shared by the backend and its device objects: destroying one after the backend is fine.
using AllocationEpoch = std::shared_ptr<uint64_t>;

// Advances the epoch when the owning object dies (a member of each device object).
class EpochTicket {
 public:
  EpochTicket() = default;
  explicit EpochTicket(AllocationEpoch epoch) : epoch_(std::move(epoch)) { ++*epoch_; }
  EpochTicket(EpochTicket&&) = default;
  EpochTicket& operator=(EpochTicket&&) = default;
  ~EpochTicket() {
    if (epoch_) ++*epoch_;
  }

 private:
  AllocationEpoch epoch_;
};

class StepGraphs {
 public:
  static constexpr int64_t kMaxTokens = 128;  // larger batches (prefill) gain little and run eagerly
  static constexpr size_t kMaxGraphs = 64;
  static constexpr uint64_t kStaleLaunches = 4 * kMaxGraphs;

  StepGraphs(AllocationEpoch epoch, bool enabled) : epoch_(std::move(epoch)), enabled_(enabled) {}
  ~StepGraphs();
  StepGraphs(const StepGraphs&) = delete;
  StepGraphs& operator=(const StepGraphs&) = delete;

  enum class Action { eager, record, replayed };
  // What to do with a step of this shape; `replayed` means the graph was launched on stream.
  // Before a launch, check(caches, vocab) is called with what the recording used, to validate the batch.
  template <typename Check>
  Action begin(const void* caller, int64_t tokens, int64_t logit_rows, cudaStream_t stream, Check&& check) {
    abandon_capture(stream);
    // A step that is never recorded sizes no recording's buffers: it must not count as the eager
    // pass of whichever key ran eagerly last (a later model at the same address would record at once).
    eager_key_ = Key{nullptr, -1, -1};
    if (!enabled_ || tokens > kMaxTokens) return Action::eager;
    if (*epoch_ != graphs_epoch_) clear();
    const Key key{caller, tokens, logit_rows};
    if (auto it = graphs_.find(key); it != graphs_.end()) {
      check(it->second.caches, it->second.vocab);
      it->second.last_used = ++uses_;
      launch(it->second, stream);
      return Action::replayed;
    }
    // Record only a key that ran eagerly with nothing allocated since: its buffers are sized. When
    // all kMaxGraphs are held, one unused for kStaleLaunches makes room (a server's batch shapes drift
    // as clients come and go, and its ramp-up's shapes should not hold every place); with none stale
    // the step runs eagerly, so more live shapes than places cannot thrash recording.
    if (auto seen = eager_epochs_.find(key); seen != eager_epochs_.end() && seen->second == *epoch_ &&
                                             (graphs_.size() < kMaxGraphs || evict_stale(stream))) {
      start_capture(key, stream);
      return Action::record;
    }
    eager_key_ = key;
    return Action::eager;
  }
  // After the ops of a step begun with `eager` or `record` (the latter ends the capture and launches).
  void end(Action action, cudaStream_t stream);

  bool capturing() const { return capturing_; }
  // Ends an open capture of a step whose ops threw (the stream, and this thread, may not be left
  // capturing: every later allocation or synchronisation would fail).
  void abandon_capture(cudaStream_t stream);
  // Whether a step of this many tokens can be recorded (and later replayed with other positions).
  bool may_record(int64_t tokens) const { return enabled_ && tokens <= kMaxTokens; }
  int64_t max_recorded_tokens() const { return enabled_ ? kMaxTokens : 0; }
  // While recording: what the ops touched, for the replay-time checks.
  void note_cache(const CudaKvCache* cache);
  void note_vocab(int64_t vocab) { recording_.vocab = vocab; }
  size_t size() const { return graphs_.size(); }

 private:
  using Key = std::tuple<const void*, int64_t, int64_t>;  // caller, tokens, logit rows
  struct Graph {
    cudaGraphExec_t exec = nullptr;
    uint64_t last_used = 0;  // uses_ at its last launch
    std::vector<const CudaKvCache*> caches;
    int64_t vocab = -1;
  };
  void start_capture(const Key& key, cudaStream_t stream);
  void launch(const Graph& graph, cudaStream_t stream);
  bool evict_stale(cudaStream_t stream);  // the least recently launched graph, if stale; false if none
  void clear();

  AllocationEpoch epoch_;
  bool enabled_;
  std::map<Key, Graph> graphs_;
  uint64_t uses_ = 0;  // launches so far, for the least-recently-used choice
  uint64_t graphs_epoch_ = 0;
  std::map<Key, uint64_t> eager_epochs_;  // the epoch at the end of each key's last eager pass
  Key eager_key_{nullptr, -1, -1};
  bool capturing_ = false;
  cudaStream_t capture_stream_ = nullptr;  // of the open capture
  Key recording_key_{nullptr, -1, -1};
  Graph recording_;
};

}  // namespace octet::backend::cuda
