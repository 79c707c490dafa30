#include "engine/scheduler.h"

#include "common/error.h"
#include "engine/step_padding.h"
#include "model/llama_model.h"
#include "runtime/metrics.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <numeric>

namespace octet::engine {

namespace {
double ms_between(std::chrono::steady_clock::time_point a, std::chrono::steady_clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}
}  // namespace

struct Scheduler::Sequence {
  uint64_t id = 0;
  RequestSpec spec;
  Sampler sampler;
  StopStringFilter stop_filter;
  tokenizer::Utf8Streamer utf8;
  std::vector<int32_t> history;  // prompt + generated (repetition penalty)
  int64_t slot = -1;
  std::vector<int32_t> blocks;  // allocated, in position order
  int64_t reserved_blocks = 0;  // the most it can ever need
  int64_t prefilled = 0;        // prompt tokens already in the cache
  int32_t pending_token = -1;   // the sampled token to feed at the next step (decode phase)
  GenerationResult result;
  Clock::time_point submitted, last_token;
  bool finished = false;
  // Drawn by the backend where the logits are (no repetition penalty: it needs the history); else
  // its row's logits come to the host for this sequence's own Sampler.
  bool device_sampled = false;

  explicit Sequence(RequestSpec s)
      : spec(std::move(s)),
        sampler(SamplingParams{spec.params.temperature, spec.params.top_k, spec.params.top_p, spec.params.min_p,
                               spec.params.repetition_penalty, spec.params.seed}),
        stop_filter(spec.params.stop),
        history(spec.prompt) {}
  int64_t prompt_size() const { return static_cast<int64_t>(spec.prompt.size()); }
  // Position the next fed token takes: prompt, then each generated token but the newest.
  int64_t next_position() const { return prefilled + std::max<int64_t>(result.completion_tokens - 1, 0); }
  bool decoding() const { return pending_token >= 0; }
};

Scheduler::Scheduler(model::LlamaModel& model, const tokenizer::Tokenizer& tokenizer, runtime::MetricsRegistry& metrics,
                     const SchedulerOptions& options)
    : model_(model), tokenizer_(tokenizer), metrics_(metrics), options_(options),
      blocks_(model.kv_spec().pool_blocks()) {
  const auto& kv = model.kv_spec();
  // Without a shared pool every slot owns its contiguous run of blocks (backends that do not read
  // block tables yet); admission then needs only a free slot.
  per_slot_blocks_ = kv.num_blocks == 0;
  blocks_per_slot_ = kv.blocks_per_slot();
  context_ = model.options().max_context;
  block_size_ = kv.block_size;
  vocab_ = model.config().vocab;
  if (options_.stop_ids.empty()) options_.stop_ids = tokenizer.stop_ids();
  const int64_t recorded = model.backend().max_recorded_step_tokens();
  pad_ = options_.pad_steps.value_or(recorded > 0) && kv.slots >= 2;
  running_limit_ = options_.max_running > 0 ? std::min(options_.max_running, kv.slots) : kv.slots;
  if (pad_) {
    padding_slot_ = kv.slots - 1;
    running_limit_ = std::min(running_limit_, kv.slots - 1);
    max_padded_tokens_ = recorded > 0 ? recorded : SchedulerOptions::kMaxPaddedTokens;
    if (per_slot_blocks_) {
      padding_blocks_ = {static_cast<int32_t>(padding_slot_ * blocks_per_slot_)};
    } else {
      auto block = blocks_.allocate(1);
      if (!block) fail("scheduler: the KV pool has no block left for the padding tokens of padded steps");
      padding_blocks_ = *block;
    }
    model_.clear_slot(padding_slot_);
    model_.set_block_table(padding_slot_, padding_blocks_);
  }
  if (options_.step_token_budget < running_limit_)
    fail("scheduler: a step budget of {} tokens cannot hold one decode token for each of {} running requests",
         options_.step_token_budget, running_limit_);
  for (int64_t s = running_limit_ - 1; s >= 0; --s) free_slots_.push_back(s);
  state_.kv_blocks_total = request_blocks();
  state_.block_size = block_size_;
  state_.context = context_;
  publish_gauges();
}

Scheduler::~Scheduler() { shutdown(std::chrono::milliseconds(0)); }

uint64_t Scheduler::submit(RequestSpec spec) {
  const auto prompt = static_cast<int64_t>(spec.prompt.size());
  if (prompt == 0) throw RequestRejected(RequestRejected::Reason::invalid, "the prompt is empty");
  if (spec.params.max_tokens < 0)
    throw RequestRejected(RequestRejected::Reason::invalid, fmt::format("max_tokens must be >= 0, got {}", spec.params.max_tokens));
  if (prompt >= context_)
    throw RequestRejected(RequestRejected::Reason::too_large,
                          fmt::format("the prompt has {} tokens; the context holds {} (prompt + generated tokens)",
                                      prompt, context_));
  auto sequence = std::make_unique<Sequence>(std::move(spec));
  sequence->device_sampled = options_.sample_on_backend.value_or(model_.backend().samples_on_device()) &&
                             !penalizes_repetition(sequence->spec.params.repetition_penalty);
  // Positions fed: the prompt and every generated token but the last, never past the context.
  const int64_t positions = std::min(prompt + std::max(sequence->spec.params.max_tokens - 1, 0), context_);
  sequence->reserved_blocks = blocks_for(positions, block_size_);
  if (sequence->reserved_blocks > request_blocks())
    throw RequestRejected(RequestRejected::Reason::too_large,
                          fmt::format("the request needs {} KV positions ({} blocks); the pool holds {} blocks of {}",
                                      positions, sequence->reserved_blocks, request_blocks(), block_size_));
  sequence->submitted = Clock::now();
  std::lock_guard lock(mutex_);
  if (!accepting_) throw RequestRejected(RequestRejected::Reason::shutting_down, "the server is shutting down");
  sequence->id = next_id_++;
  const uint64_t id = sequence->id;
  incoming_.push_back(std::move(sequence));
  ++state_.waiting;
  metrics_.set_scheduler_gauges({state_.running, state_.waiting, state_.kv_blocks_used, state_.kv_blocks_total, block_size_});
  wake_.notify_one();
  return id;
}

void Scheduler::cancel(uint64_t id) {
  std::lock_guard lock(mutex_);
  cancelled_.insert(id);
  wake_.notify_one();
}

SchedulerState Scheduler::state() const {
  std::lock_guard lock(mutex_);
  return state_;
}

void Scheduler::take_submissions() {
  std::lock_guard lock(mutex_);
  while (!incoming_.empty()) {
    waiting_.push_back(std::move(incoming_.front()));
    incoming_.pop_front();
  }
}

void Scheduler::apply_cancellations() {
  std::unordered_set<uint64_t> ids;
  bool abort_everything = false;
  {
    std::lock_guard lock(mutex_);
    ids.swap(cancelled_);
    abort_everything = abort_requested_;
  }
  if (abort_everything) {
    abort_all("abort");
    return;
  }
  if (ids.empty()) return;
  for (auto& s : running_)
    if (ids.count(s->id)) finish(*s, "abort");
  for (auto& s : waiting_)
    if (ids.count(s->id)) finish(*s, "abort");
}

void Scheduler::abort_all(const std::string& reason) {
  for (auto& s : running_) finish(*s, reason);
  for (auto& s : waiting_) finish(*s, reason);
}

int64_t Scheduler::reserved_unallocated_blocks() const {
  int64_t total = 0;
  for (const auto& s : running_) total += s->reserved_blocks - static_cast<int64_t>(s->blocks.size());
  return total;
}

// First come, first served: the head of the queue waits for blocks rather than being overtaken by
// smaller requests, so a long prompt cannot starve.
void Scheduler::admit_waiting() {
  std::erase_if(waiting_, [](const auto& s) { return s->finished; });
  int64_t available = blocks_.free_count() - reserved_unallocated_blocks();
  while (!waiting_.empty() && !free_slots_.empty()) {
    Sequence& head = *waiting_.front();
    if (head.spec.params.max_tokens == 0) {  // nothing to generate: no need to read the prompt
      head.result.prompt_tokens = head.prompt_size();
      finish(head, "length");
      waiting_.pop_front();
      continue;
    }
    if (!per_slot_blocks_ && head.reserved_blocks > available) break;
    available -= head.reserved_blocks;
    head.slot = free_slots_.back();
    free_slots_.pop_back();
    model_.clear_slot(head.slot);
    head.result.prompt_tokens = head.prompt_size();
    running_.push_back(std::move(waiting_.front()));
    waiting_.pop_front();
  }
}

void Scheduler::grow_blocks(Sequence& s, int64_t positions) {
  const int64_t needed = blocks_for(positions, block_size_) - static_cast<int64_t>(s.blocks.size());
  if (needed <= 0) return;
  if (per_slot_blocks_) {
    for (int64_t i = 0; i < needed; ++i)
      s.blocks.push_back(static_cast<int32_t>(s.slot * blocks_per_slot_ + static_cast<int64_t>(s.blocks.size())));
    per_slot_used_ += needed;
    model_.set_block_table(s.slot, s.blocks);
    return;
  }
  auto fresh = blocks_.allocate(needed);
  // Admission reserved these blocks, so the pool cannot be short here.
  if (!fresh) fail("scheduler: KV pool short of {} reserved blocks (bug in the reservation accounting)", needed);
  s.blocks.insert(s.blocks.end(), fresh->begin(), fresh->end());
  model_.set_block_table(s.slot, s.blocks);
}

void Scheduler::finish(Sequence& s, const std::string& reason, const std::string& error) {
  if (s.finished) return;
  s.finished = true;
  if (reason != "abort" && reason != "error" && !s.stop_filter.stopped()) {
    const std::string tail = s.stop_filter.push(s.utf8.flush()) + s.stop_filter.flush();
    if (!tail.empty()) {
      s.result.text += tail;
      if (s.spec.on_text) s.spec.on_text(tail);
    }
  }
  if (!s.blocks.empty()) {
    if (per_slot_blocks_) per_slot_used_ -= static_cast<int64_t>(s.blocks.size());
    else blocks_.release(s.blocks);
    s.blocks.clear();
    model_.set_block_table(s.slot, s.blocks);
  }
  if (s.slot >= 0) {
    free_slots_.push_back(s.slot);
    s.slot = -1;
  }
  const auto now = Clock::now();
  s.result.finish_reason = reason;
  s.result.total_ms = ms_between(s.submitted, now);
  RequestOutcome outcome{reason, error, s.result};
  metrics_.record(s.result);
  metrics_.count_finish_reason(reason);
  if (s.spec.on_finish) s.spec.on_finish(outcome);
}

void Scheduler::accept_token(Sequence& s, int32_t token) {
  const auto now = Clock::now();
  if (s.result.completion_tokens == 0) {
    s.result.time_to_first_token_ms = ms_between(s.submitted, now);
    metrics_.observe_first_token(s.result.time_to_first_token_ms);
  } else {
    s.result.inter_token_ms.push_back(ms_between(s.last_token, now));
    metrics_.observe_token_gap(s.result.inter_token_ms.back());
  }
  s.last_token = now;
  ++s.result.completion_tokens;
  s.history.push_back(token);
  const auto& stop_ids = options_.stop_ids;
  if (!s.spec.params.ignore_eos && std::find(stop_ids.begin(), stop_ids.end(), token) != stop_ids.end()) {
    finish(s, "stop");
    return;
  }
  const std::string text = s.stop_filter.push(s.utf8.push(tokenizer_.token_bytes(token)));
  if (!text.empty()) {
    s.result.text += text;
    if (s.spec.on_text && !s.spec.on_text(text)) {
      finish(s, "abort");
      return;
    }
  }
  if (s.stop_filter.stopped()) return finish(s, "stop");
  if (s.result.completion_tokens >= s.spec.params.max_tokens) return finish(s, "length");
  if (s.next_position() + 1 >= context_) return finish(s, "length");  // context full (as LocalEngine)
  s.pending_token = token;
}

bool Scheduler::step() {
  take_submissions();
  apply_cancellations();
  admit_waiting();
  std::erase_if(running_, [](const auto& s) { return s->finished; });
  if (running_.empty()) {
    publish_gauges();
    return false;
  }

  const auto step_start = Clock::now();
  backend::TokenBatch batch;
  std::vector<int64_t> logit_rows;
  std::vector<Sequence*> row_owners;
  // Decode tokens first: every running stream advances one token per step.
  for (auto& s : running_) {
    if (!s->decoding()) continue;
    const int64_t position = s->next_position();
    grow_blocks(*s, position + 1);
    logit_rows.push_back(static_cast<int64_t>(batch.size()));
    row_owners.push_back(s.get());
    batch.tokens.push_back(s->pending_token);
    batch.positions.push_back(position);
    batch.slots.push_back(s->slot);
  }
  // Prompt chunks fill what is left of the budget, oldest request first.
  int64_t budget = options_.step_token_budget - static_cast<int64_t>(batch.size());
  for (auto& s : running_) {
    if (s->decoding() || budget <= 0) continue;
    const int64_t chunk = std::min(budget, s->prompt_size() - s->prefilled);
    grow_blocks(*s, s->prefilled + chunk);
    for (int64_t i = s->prefilled; i < s->prefilled + chunk; ++i) {
      batch.tokens.push_back(s->spec.prompt[static_cast<size_t>(i)]);
      batch.positions.push_back(i);
      batch.slots.push_back(s->slot);
    }
    s->prefilled += chunk;
    budget -= chunk;
    if (s->prefilled == s->prompt_size()) {
      logit_rows.push_back(static_cast<int64_t>(batch.size()) - 1);
      row_owners.push_back(s.get());
    }
  }

  if (pad_) timing_.padding_tokens += pad_step(batch, logit_rows, padding_slot_, max_padded_tokens_);
  if (timing_.replayed_at_start < 0) timing_.replayed_at_start = model_.backend().replayed_steps();
  if (logit_rows.size() == batch.size()) ++timing_.decode_only_steps;
  const auto forward_start = Clock::now();
  auto forward_end = forward_start;
  try {
    model_.forward(batch, logit_rows, nullptr);
    model_.backend().synchronize();  // the forward's time ends here, not inside the sampling below
    forward_end = Clock::now();
    // The device's own time for the step, for the debug line only (a query per step otherwise wasted).
    if (spdlog::should_log(spdlog::level::debug)) {
      if (const double device_ms = model_.backend().last_step_device_ms(); device_ms >= 0) {
        timing_.device_ms += device_ms;
        ++timing_.device_timed_steps;
      }
    }
    if (!row_owners.empty()) sample_rows(row_owners);
  } catch (const std::exception& e) {
    spdlog::error("scheduler: forward pass or sampling failed: {}", e.what());
    for (auto& s : running_) finish(*s, "error", e.what());
    running_.clear();
    publish_gauges();
    return true;
  }
  const auto sampled = Clock::now();
  for (size_t r = 0; r < row_owners.size(); ++r) accept_token(*row_owners[r], sampled_[r]);
  timing_.steps += 1;
  timing_.tokens += static_cast<int64_t>(batch.size());  // padding included: what the forward pass computed
  timing_.batch_ms += ms_between(step_start, forward_start);
  timing_.forward_ms += ms_between(forward_start, forward_end);
  timing_.sample_ms += ms_between(forward_end, sampled);
  timing_.accept_ms += ms_between(sampled, Clock::now());
  if (timing_.steps == kStepTimingWindow) {
    const double n = static_cast<double>(timing_.steps);
    spdlog::debug("scheduler: {} steps ({} decode-only, {} replayed from a recording), {:.1f} tokens/step ({:.1f} of "
                  "them padding); per step: batch {:.2f} ms, forward {:.2f} ms (device {:.2f} ms), sampling (with any "
                  "logits copy) {:.2f} ms, streaming {:.2f} ms",
                  timing_.steps, timing_.decode_only_steps, model_.backend().replayed_steps() - timing_.replayed_at_start,
                  static_cast<double>(timing_.tokens) / n, static_cast<double>(timing_.padding_tokens) / n,
                  timing_.batch_ms / n, timing_.forward_ms / n,
                  timing_.device_timed_steps > 0 ? timing_.device_ms / static_cast<double>(timing_.device_timed_steps) : -1.0,
                  timing_.sample_ms / n, timing_.accept_ms / n);
    timing_ = {};
  }
  std::erase_if(running_, [](const auto& s) { return s->finished; });
  publish_gauges();
  return true;
}

// Row r of the step's logits belongs to row_owners[r]. Device-sampled rows go to the backend in one
// call (only their token ids come back); the others are copied to the host and drawn in parallel,
// each by its own sequence's sampler (own seed and history), so the result is the same as one by one.
void Scheduler::sample_rows(const std::vector<Sequence*>& row_owners) {
  const backend::Activations& logits = model_.logits();
  sampled_.resize(row_owners.size());
  device_rows_.clear();
  device_settings_.clear();
  host_rows_.clear();
  for (size_t r = 0; r < row_owners.size(); ++r) {
    const Sequence& owner = *row_owners[r];
    if (!owner.device_sampled) {
      host_rows_.push_back(static_cast<int64_t>(r));
      continue;
    }
    const GenerationParams& p = owner.spec.params;
    device_rows_.push_back(static_cast<int64_t>(r));
    device_settings_.push_back(backend::RowSampling{p.temperature, p.top_k, p.top_p, p.min_p, p.seed,
                                                    static_cast<uint64_t>(owner.result.completion_tokens)});
  }
  if (!device_rows_.empty()) {
    device_tokens_.resize(device_rows_.size());
    model_.backend().sample_rows(logits, device_rows_, device_settings_, device_tokens_);
    for (size_t i = 0; i < device_rows_.size(); ++i) sampled_[static_cast<size_t>(device_rows_[i])] = device_tokens_[i];
  }
  if (host_rows_.empty()) return;
  const auto vocab = static_cast<size_t>(vocab_);
  logits_.resize(host_rows_.size() * vocab);
  model_.backend().copy_rows_to_host(logits, host_rows_, logits_.data());
  sampling_pool_.parallel_for(host_rows_.size(), [&](size_t begin, size_t end) {
    for (size_t i = begin; i < end; ++i) {
      Sequence& owner = *row_owners[static_cast<size_t>(host_rows_[i])];
      sampled_[static_cast<size_t>(host_rows_[i])] =
          owner.sampler.sample(std::span<float>(logits_.data() + i * vocab, vocab), owner.history);
    }
  });
}

void Scheduler::publish_gauges() {
  std::lock_guard lock(mutex_);
  state_.running = static_cast<int64_t>(running_.size());
  state_.waiting = static_cast<int64_t>(waiting_.size() + incoming_.size());
  state_.kv_blocks_used = per_slot_blocks_ ? per_slot_used_ : blocks_.used() - padding_pool_blocks();
  metrics_.set_scheduler_gauges({state_.running, state_.waiting, state_.kv_blocks_used, state_.kv_blocks_total, block_size_});
}

int64_t Scheduler::warm_up() {
  if (!pad_) return 0;
  const auto started = Clock::now();
  const std::vector<int64_t> sizes =
      padded_step_sizes(padded_step_size(std::min(running_limit_, max_padded_tokens_), max_padded_tokens_));
  backend::Backend& backend = model_.backend();
  const auto padding_step = [&](int64_t tokens) {
    backend::TokenBatch batch;
    batch.tokens.assign(static_cast<size_t>(tokens), 0);
    batch.positions.assign(static_cast<size_t>(tokens), 0);
    batch.slots.assign(static_cast<size_t>(tokens), padding_slot_);
    std::vector<int64_t> rows(static_cast<size_t>(tokens));
    std::iota(rows.begin(), rows.end(), int64_t{0});
    const int64_t replayed = backend.replayed_steps();
    model_.forward(batch, rows, nullptr);
    return backend.replayed_steps() > replayed;
  };
  // The largest first, sampled once: every buffer a step or the sampler grows is then at its size, so
  // no later allocation drops the recordings (step_graphs.h).
  padding_step(sizes.front());
  if (backend.samples_on_device()) {
    std::vector<int64_t> rows(static_cast<size_t>(sizes.front()));
    std::iota(rows.begin(), rows.end(), int64_t{0});
    std::vector<backend::RowSampling> settings(rows.size());
    std::vector<int32_t> tokens(rows.size());
    backend.sample_rows(model_.logits(), rows, settings, tokens);
  }
  // Eager (sizes, tunes), recorded, replayed: at most a few passes each. A smaller step can still grow
  // a buffer (more attention splits per token) and so drop the recordings made before it: a second
  // round records those again, with every buffer at its size.
  for (int round = 0; round < 2; ++round)
    for (int64_t tokens : sizes)
      for (int pass = 0; pass < 4 && !padding_step(tokens); ++pass) {
      }
  int64_t recorded = 0;
  for (int64_t tokens : sizes) recorded += padding_step(tokens) ? 1 : 0;
  backend.synchronize();
  spdlog::info("scheduler: {} of {} padded step sizes (1 to {} tokens) recorded before serving, in {:.1f} s", recorded,
               sizes.size(), sizes.front(), ms_between(started, Clock::now()) / 1000.0);
  return recorded;
}

void Scheduler::start() {
  if (thread_.joinable()) return;
  thread_ = std::thread([this] { run_loop(); });
}

void Scheduler::run_loop() {
  for (;;) {
    {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [&] {
        return quit_ || abort_requested_ || !incoming_.empty() || !cancelled_.empty() || !running_.empty() ||
               !waiting_.empty();
      });
      if (quit_) break;
    }
    step();
  }
}

void Scheduler::shutdown(std::chrono::milliseconds drain) {
  {
    std::lock_guard lock(mutex_);
    accepting_ = false;
  }
  if (thread_.joinable()) {
    const auto deadline = Clock::now() + drain;
    while (Clock::now() < deadline) {
      if (state().running == 0 && state().waiting == 0) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    {
      std::lock_guard lock(mutex_);
      abort_requested_ = true;
      wake_.notify_one();
    }
    // The loop aborts everything at its next step; wait for that before stopping it.
    while (state().running != 0 || state().waiting != 0) std::this_thread::sleep_for(std::chrono::milliseconds(2));
    {
      std::lock_guard lock(mutex_);
      quit_ = true;
      wake_.notify_one();
    }
    thread_.join();
  } else {
    take_submissions();
    abort_all("abort");
    std::erase_if(running_, [](const auto& s) { return s->finished; });
    waiting_.clear();
    publish_gauges();
  }
}

}  // namespace octet::engine
