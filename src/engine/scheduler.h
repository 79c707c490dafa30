#pragma once
// Continuous batching over one LlamaModel: every step is one forward pass holding one decode token of
// each running request plus chunks of prompts being prefilled, so requests join and leave the batch at
// every step and running streams keep flowing while new prompts are read. KV positions live in a
// paged pool; a request is admitted only when the blocks it may need (prompt + max_tokens) can be
// reserved, waits while they are short, and is refused at submit when it could never fit.
//
// Thread model: submit/cancel/state from any thread; the steps, and every callback, run on the
// scheduler's own thread (start) or on the caller of step (tests).
#include "backend/backend.h"
#include "common/error.h"
#include "common/thread_pool.h"
#include "engine/block_allocator.h"
#include "engine/sampler.h"
#include "engine/stop_strings.h"
#include "octet/engine.h"
#include "tokenizer/tokenizer.h"

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>

namespace octet::model {
class LlamaModel;
}
namespace octet::runtime {
class MetricsRegistry;
}

namespace octet::engine {

struct SchedulerOptions {
  int64_t step_token_budget = 256;  // tokens per forward pass: decode rows first, prefill chunks fill the rest
  // End-of-sequence ids (the tokenizer's and the checkpoint's: engine::LoadedModel::stop_ids);
  // empty: the tokenizer's.
  std::vector<int32_t> stop_ids;
  // Rows drawn by Backend::sample_rows (counter-based RNG of (seed, token index); only ids leave the
  // device) rather than by per-request host Samplers over copied logits. Unset: where the backend
  // samples on the device (CUDA, unless OCTET_CUDA_SAMPLING=0). Requests with a repetition penalty
  // always use their host Sampler.
  std::optional<bool> sample_on_backend;
  // Requests run at once, at most; 0: one per slot of the model. With padded steps the model's last
  // slot holds the padding tokens, so a caller gives the model max_running + 1 slots.
  int64_t max_running = 0;
  // Steps of up to the backend's max_recorded_step_tokens() padded to a few sizes
  // (engine/step_padding.h), so each size is recorded once (warm_up records them all before
  // serving). Unset: where the backend records steps. Forced on a backend that records none (tests),
  // steps are padded up to kMaxPaddedTokens.
  std::optional<bool> pad_steps;
  static constexpr int64_t kMaxPaddedTokens = 128;
};

struct RequestOutcome {
  std::string finish_reason;  // stop | length | abort (cancelled, client gone, shutdown) | error
  std::string error;          // when finish_reason is error
  GenerationResult result;    // text, token counts, latencies
};

struct RequestSpec {
  std::vector<int32_t> prompt;
  GenerationParams params;
  // Each piece of text as it is produced; returning false aborts the request (client gone).
  std::function<bool(std::string_view piece)> on_text;
  // Exactly once, when the request ends for any reason (also after an abort or at shutdown).
  std::function<void(const RequestOutcome& outcome)> on_finish;
};

// Refused at submit: the request can never run (too long for the context or the pool) or the
// scheduler no longer accepts work. The server answers 400 or 503.
class RequestRejected : public Error {
 public:
  enum class Reason { invalid, too_large, shutting_down };
  RequestRejected(Reason reason, const std::string& message) : Error(message), reason(reason) {}
  Reason reason;
};

struct SchedulerState {
  int64_t running = 0, waiting = 0, kv_blocks_used = 0, kv_blocks_total = 0, block_size = 0, context = 0;
};

class Scheduler {
 public:
  // The model's slots bound how many requests run at once. With a shared pool
  // (ModelOptions::kv_blocks > 0) blocks go to whoever needs them; without one (kv_blocks == 0) each
  // slot uses its own contiguous blocks, for backends that do not read block tables yet.
  Scheduler(model::LlamaModel& model, const tokenizer::Tokenizer& tokenizer, runtime::MetricsRegistry& metrics,
            const SchedulerOptions& options);
  ~Scheduler();
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Queues a request and returns its id; throws RequestRejected when it can never be served.
  uint64_t submit(RequestSpec spec);
  // The request ends with finish_reason abort at the next step (its blocks return to the pool).
  void cancel(uint64_t id);

  // Runs steps on a thread of its own until shutdown.
  void start();
  // Stops accepting, lets in-flight requests finish for up to drain, aborts the rest, joins the thread.
  void shutdown(std::chrono::milliseconds drain);

  // One step (tests drive the scheduler without its thread); false when there was nothing to do.
  bool step();
  // Before start: runs padding-only steps of every padded decode size up to the running limit, so the
  // backend sizes its buffers, tunes its GEMMs and records each step before the first request (the
  // first request of a new size would otherwise wait for all three). Returns the sizes recorded; 0
  // without padded steps.
  int64_t warm_up();
  bool pads_steps() const { return pad_; }
  SchedulerState state() const;

 private:
  struct Sequence;
  using Clock = std::chrono::steady_clock;

  void take_submissions();
  void apply_cancellations();
  void admit_waiting();
  void finish(Sequence& sequence, const std::string& reason, const std::string& error = {});
  void accept_token(Sequence& sequence, int32_t token);  // a sampled token: stop checks, text, streaming
  void grow_blocks(Sequence& sequence, int64_t positions);
  void sample_rows(const std::vector<Sequence*>& row_owners);  // the step's tokens into sampled_
  int64_t reserved_unallocated_blocks() const;
  // Pool blocks held for the padding tokens (not the requests'), and those left for requests.
  int64_t padding_pool_blocks() const { return per_slot_blocks_ ? 0 : static_cast<int64_t>(padding_blocks_.size()); }
  int64_t request_blocks() const { return blocks_.total() - padding_pool_blocks(); }
  void publish_gauges();
  void abort_all(const std::string& reason);
  void run_loop();

  model::LlamaModel& model_;
  const tokenizer::Tokenizer& tokenizer_;
  runtime::MetricsRegistry& metrics_;
  SchedulerOptions options_;
  int64_t context_ = 0, block_size_ = 0, vocab_ = 0;
  // Where step time goes (logged at debug level every kStepTimingWindow steps): building the batch,
  // the forward pass, sampling (on the device, or the logits' copy to the host and host samplers) and
  // streaming the tokens.
  static constexpr int64_t kStepTimingWindow = 256;
  struct StepTiming {
    int64_t steps = 0, tokens = 0, padding_tokens = 0, decode_only_steps = 0;
    int64_t replayed_at_start = -1;  // the backend's replayed_steps() when the window began
    double batch_ms = 0, forward_ms = 0, device_ms = 0, sample_ms = 0, accept_ms = 0;
    int64_t device_timed_steps = 0;
  } timing_;
  // Sampling of a step's rows (a vocabulary-wide pass each) runs on all cores between forward passes.
  ThreadPool sampling_pool_;
  std::vector<int32_t> sampled_;
  std::vector<int64_t> device_rows_, host_rows_;  // a step's logits rows by where they are sampled
  std::vector<backend::RowSampling> device_settings_;
  std::vector<int32_t> device_tokens_;

  // Shared with submitting threads (guarded by mutex_).
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::unique_ptr<Sequence>> incoming_;
  std::unordered_set<uint64_t> cancelled_;
  uint64_t next_id_ = 1;
  bool accepting_ = true;
  bool quit_ = false;
  bool abort_requested_ = false;
  SchedulerState state_;

  // The step thread's own.
  BlockAllocator blocks_;
  bool per_slot_blocks_ = false;
  int64_t blocks_per_slot_ = 0, per_slot_used_ = 0;
  std::vector<int64_t> free_slots_;
  // Padded steps: the slot of the padding tokens, its pool blocks, the largest padded step.
  bool pad_ = false;
  int64_t padding_slot_ = -1, max_padded_tokens_ = 0, running_limit_ = 0;
  std::vector<int32_t> padding_blocks_;
  std::deque<std::unique_ptr<Sequence>> waiting_;
  std::vector<std::unique_ptr<Sequence>> running_;  // admission order
  std::vector<float> logits_;
  std::thread thread_;
};

}  // namespace octet::engine
