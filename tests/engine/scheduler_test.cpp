// The continuous-batching scheduler on the real SmolLM2 (CPU): requests run together give exactly
// the text each gives alone (and what the one-sequence Engine gives), prefill chunks interleave with
// decoding, admission waits for blocks and refuses what can never fit, aborts free their blocks.
#include "engine/model_loader.h"
#include "engine/scheduler.h"
#include "model/llama_model.h"
#include "runtime/metrics.h"
#include "support/model_files.h"
#include "support/random.h"

#include <gtest/gtest.h>

#include <map>

namespace octet::engine {
namespace {

constexpr int64_t kContext = 512;

EngineOptions cpu_options(const std::string& path) {
  EngineOptions o;
  o.model_path = path;
  o.device = Device::cpu;
  o.precision = Precision::fp8;
  o.max_context = kContext;
  return o;
}

struct Collected {
  std::string streamed;
  RequestOutcome outcome;
  bool finished = false;
  int pieces_seen = 0;
};

RequestSpec collecting(std::vector<int32_t> prompt, GenerationParams params, Collected& into, int abort_after_pieces = -1) {
  RequestSpec spec;
  spec.prompt = std::move(prompt);
  spec.params = std::move(params);
  spec.on_text = [&into, abort_after_pieces](std::string_view piece) {
    into.streamed += piece;
    ++into.pieces_seen;
    return abort_after_pieces < 0 || into.pieces_seen < abort_after_pieces;
  };
  spec.on_finish = [&into](const RequestOutcome& outcome) {
    EXPECT_FALSE(into.finished) << "on_finish called twice";
    into.outcome = outcome;
    into.finished = true;
  };
  return spec;
}

GenerationParams greedy(int max_tokens) {
  GenerationParams p;
  p.temperature = 0;
  p.max_tokens = max_tokens;
  return p;
}

const std::vector<std::string>& questions() {
  static const std::vector<std::string> q = {
      "What is the capital of France?", "Name three primary colours.", "How do plants make food?",
      "Write a haiku about the sea.", "What is 12 times 12?", "Why is the sky blue?",
      "Give me a synonym for happy.", "How to craft iron tools in Minecraft?"};
  return q;
}

class SchedulerTest : public ::testing::Test {
 protected:
  // One model per configuration for the whole suite: loading takes a second or two.
  static LoadedModel& model(int64_t slots, int64_t blocks) {
    static std::map<std::pair<int64_t, int64_t>, LoadedModel> cache;
    auto key = std::make_pair(slots, blocks);
    auto it = cache.find(key);
    if (it == cache.end()) {
      KvPoolRequest kv;
      kv.slots = slots;
      kv.paged = blocks >= 0;  // -1: each slot its own contiguous blocks
      kv.kv_blocks = std::max<int64_t>(blocks, 0);
      it = cache.emplace(key, load_model(cpu_options(*testing::smollm2_gguf()), kv)).first;
    }
    return it->second;
  }
  static void run_until_idle(Scheduler& scheduler, int max_steps = 100000) {
    for (int i = 0; i < max_steps && scheduler.step(); ++i) {
    }
  }
  runtime::MetricsRegistry metrics;
};

TEST_F(SchedulerTest, ConcurrentGreedyRequestsGiveTheTextEachGivesAlone) {
  OCTET_REQUIRE_SMOLLM2(path);
  LoadedModel& m = model(8, 0);
  const int max_tokens = 24;

  // Alone: one request at a time through the same scheduler.
  std::vector<std::string> alone;
  {
    Scheduler scheduler(*m.model, *m.tokenizer, metrics, {});
    for (const auto& q : questions()) {
      Collected c;
      scheduler.submit(collecting(chat_prompt_ids(*m.tokenizer, {{"user", q}}), greedy(max_tokens), c));
      run_until_idle(scheduler);
      ASSERT_TRUE(c.finished);
      alone.push_back(c.outcome.result.text);
    }
  }
  // The independent path: the one-sequence Engine (contiguous KV, its own prefill chunking).
  auto engine = Engine::create(cpu_options(path));
  for (size_t i = 0; i < questions().size(); ++i)
    EXPECT_EQ(engine->chat({{"user", questions()[i]}}, greedy(max_tokens)).text, alone[i]) << questions()[i];

  // Together, with a budget that splits prompts across steps and staggered arrivals.
  SchedulerOptions options;
  options.step_token_budget = 40;
  Scheduler scheduler(*m.model, *m.tokenizer, metrics, options);
  std::vector<Collected> together(questions().size());
  for (size_t i = 0; i < questions().size(); ++i) {
    scheduler.submit(collecting(chat_prompt_ids(*m.tokenizer, {{"user", questions()[i]}}), greedy(max_tokens), together[i]));
    scheduler.step();
  }
  run_until_idle(scheduler);
  for (size_t i = 0; i < questions().size(); ++i) {
    ASSERT_TRUE(together[i].finished);
    EXPECT_EQ(together[i].outcome.result.text, alone[i]) << questions()[i];
    EXPECT_EQ(together[i].streamed, alone[i]);
    EXPECT_TRUE(together[i].outcome.finish_reason == "stop" || together[i].outcome.finish_reason == "length");
  }
  const auto state = scheduler.state();
  EXPECT_EQ(state.running, 0);
  EXPECT_EQ(state.kv_blocks_used, 0);
  EXPECT_EQ(metrics.serving_snapshot().gauges.kv_blocks_used, 0);
}

// Padded steps (as on a backend that records steps): the model's last slot holds padding tokens that
// round each step up to a recorded size; the requests' texts are those of unpadded steps, the padding
// block is not counted as used, and warming up (padding-only steps) leaves no trace in the requests.
TEST_F(SchedulerTest, PaddedStepsGiveTheTextEachGivesAlone) {
  OCTET_REQUIRE_SMOLLM2(path);
  LoadedModel& m = model(7, 0);  // 6 running requests + the padding slot
  const int max_tokens = 16;
  const size_t count = 6;
  std::vector<std::string> alone;
  {
    SchedulerOptions unpadded;
    unpadded.pad_steps = false;
    Scheduler scheduler(*m.model, *m.tokenizer, metrics, unpadded);
    EXPECT_FALSE(scheduler.pads_steps());
    for (size_t i = 0; i < count; ++i) {
      Collected c;
      scheduler.submit(collecting(chat_prompt_ids(*m.tokenizer, {{"user", questions()[i]}}), greedy(max_tokens), c));
      run_until_idle(scheduler);
      ASSERT_TRUE(c.finished);
      alone.push_back(c.outcome.result.text);
    }
  }
  SchedulerOptions options;
  options.pad_steps = true;
  options.max_running = 6;
  options.step_token_budget = 37;  // prompt steps of 37 tokens pad to 40; 6 decode rows pad to 8
  Scheduler scheduler(*m.model, *m.tokenizer, metrics, options);
  ASSERT_TRUE(scheduler.pads_steps());
  const int64_t pool = m.model->kv_spec().pool_blocks();
  EXPECT_EQ(scheduler.state().kv_blocks_total, pool - 1);  // one block for the padding tokens
  EXPECT_EQ(scheduler.warm_up(), 0);  // nothing is recorded on the CPU, but the steps ran
  EXPECT_EQ(scheduler.state().kv_blocks_used, 0);
  std::vector<Collected> together(count);
  for (size_t i = 0; i < count; ++i) {
    scheduler.submit(collecting(chat_prompt_ids(*m.tokenizer, {{"user", questions()[i]}}), greedy(max_tokens), together[i]));
    scheduler.step();
  }
  run_until_idle(scheduler);
  for (size_t i = 0; i < count; ++i) {
    ASSERT_TRUE(together[i].finished);
    EXPECT_EQ(together[i].outcome.result.text, alone[i]) << questions()[i];
  }
  EXPECT_EQ(scheduler.state().running, 0);
  EXPECT_EQ(scheduler.state().kv_blocks_used, 0);
  // Six running requests at most (the seventh slot is the padding tokens'): the seventh waits.
  std::vector<Collected> more(7);
  for (size_t i = 0; i < more.size(); ++i)
    scheduler.submit(collecting(chat_prompt_ids(*m.tokenizer, {{"user", questions()[i]}}), greedy(2), more[i]));
  scheduler.step();
  EXPECT_EQ(scheduler.state().running, 6);
  EXPECT_EQ(scheduler.state().waiting, 1);
  run_until_idle(scheduler);
  for (const auto& c : more) EXPECT_TRUE(c.finished);
}

// Without a shared pool (backends that do not read block tables) each slot uses its own blocks;
// batching still gives each request its text alone and the blocks return at the end.
TEST_F(SchedulerTest, PerSlotBlocksWithoutASharedPool) {
  OCTET_REQUIRE_SMOLLM2(path);
  LoadedModel& m = model(3, -1);
  Scheduler scheduler(*m.model, *m.tokenizer, metrics, {});
  std::vector<std::string> alone;
  for (size_t i = 0; i < 5; ++i) {
    Collected c;
    scheduler.submit(collecting(chat_prompt_ids(*m.tokenizer, {{"user", questions()[i]}}), greedy(10), c));
    run_until_idle(scheduler);
    alone.push_back(c.outcome.result.text);
  }
  std::vector<Collected> together(5);
  for (size_t i = 0; i < 5; ++i)
    scheduler.submit(collecting(chat_prompt_ids(*m.tokenizer, {{"user", questions()[i]}}), greedy(10), together[i]));
  scheduler.step();
  EXPECT_EQ(scheduler.state().running, 3);
  EXPECT_EQ(scheduler.state().waiting, 2);
  EXPECT_GT(scheduler.state().kv_blocks_used, 0);
  run_until_idle(scheduler);
  for (size_t i = 0; i < 5; ++i) EXPECT_EQ(together[i].outcome.result.text, alone[i]);
  EXPECT_EQ(scheduler.state().kv_blocks_used, 0);
  EXPECT_EQ(scheduler.state().kv_blocks_total, m.model->kv_spec().pool_blocks());
}

TEST_F(SchedulerTest, SeededSamplingAndStopStringsArePerRequest) {
  OCTET_REQUIRE_SMOLLM2(path);
  LoadedModel& m = model(8, 0);
  const uint64_t seed = testing::test_seed("SchedulerTest.SeededSamplingAndStopStringsArePerRequest");
  auto sampled = [&](size_t i) {
    GenerationParams p;
    p.temperature = 0.9f;
    p.top_p = 0.95f;
    p.top_k = 40;
    p.seed = seed + i;
    p.max_tokens = 20;
    if (i % 2 == 1) p.stop = {" the", "."};
    return p;
  };
  std::vector<std::string> alone;
  Scheduler scheduler(*m.model, *m.tokenizer, metrics, {});
  for (size_t i = 0; i < 4; ++i) {
    Collected c;
    scheduler.submit(collecting(chat_prompt_ids(*m.tokenizer, {{"user", questions()[i]}}), sampled(i), c));
    run_until_idle(scheduler);
    alone.push_back(c.outcome.result.text);
  }
  std::vector<Collected> together(4);
  for (size_t i = 0; i < 4; ++i)
    scheduler.submit(collecting(chat_prompt_ids(*m.tokenizer, {{"user", questions()[i]}}), sampled(i), together[i]));
  run_until_idle(scheduler);
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_EQ(together[i].outcome.result.text, alone[i]);
    if (i % 2 == 1) {
      EXPECT_EQ(together[i].outcome.result.text.find(" the"), std::string::npos);
      EXPECT_EQ(together[i].outcome.result.text.find('.'), std::string::npos);
    }
  }
}

// Rows drawn by Backend::sample_rows (the device path; here the host implementation every backend
// inherits): greedy texts equal the host samplers' greedy texts, seeded sampling draws the same
// tokens together as alone (a draw depends on (seed, token index) only), a request with a repetition
// penalty (host Sampler over its copied row) sits in the same steps, and the blocks come back.
TEST_F(SchedulerTest, BackendSampledRowsGiveTheTextEachGivesAlone) {
  OCTET_REQUIRE_SMOLLM2(path);
  LoadedModel& m = model(8, 0);
  const uint64_t seed = testing::test_seed("SchedulerTest.BackendSampledRowsGiveTheTextEachGivesAlone");
  auto params = [&](size_t i) {
    GenerationParams p = greedy(16);
    if (i % 3 == 1) {
      p.temperature = 0.9f;
      p.top_k = 40;
      p.top_p = 0.95f;
      p.min_p = 0.02f;
      p.seed = seed + i;
    }
    if (i % 3 == 2) p.repetition_penalty = 1.3f;
    return p;
  };
  SchedulerOptions on_backend;
  on_backend.sample_on_backend = true;
  on_backend.step_token_budget = 48;
  std::vector<std::string> host_greedy, alone;
  {
    Scheduler host(*m.model, *m.tokenizer, metrics, {});
    for (size_t i = 0; i < 6; i += 3) {
      Collected c;
      host.submit(collecting(chat_prompt_ids(*m.tokenizer, {{"user", questions()[i]}}), params(i), c));
      run_until_idle(host);
      host_greedy.push_back(c.outcome.result.text);
    }
  }
  Scheduler scheduler(*m.model, *m.tokenizer, metrics, on_backend);
  for (size_t i = 0; i < 6; ++i) {
    Collected c;
    scheduler.submit(collecting(chat_prompt_ids(*m.tokenizer, {{"user", questions()[i]}}), params(i), c));
    run_until_idle(scheduler);
    ASSERT_TRUE(c.finished);
    alone.push_back(c.outcome.result.text);
  }
  EXPECT_EQ(alone[0], host_greedy[0]);
  EXPECT_EQ(alone[3], host_greedy[1]);
  std::vector<Collected> together(6);
  for (size_t i = 0; i < 6; ++i) {
    scheduler.submit(collecting(chat_prompt_ids(*m.tokenizer, {{"user", questions()[i]}}), params(i), together[i]));
    scheduler.step();
  }
  run_until_idle(scheduler);
  for (size_t i = 0; i < 6; ++i) {
    ASSERT_TRUE(together[i].finished);
    EXPECT_EQ(together[i].outcome.result.text, alone[i]) << questions()[i];
  }
  EXPECT_EQ(scheduler.state().kv_blocks_used, 0);
}

TEST_F(SchedulerTest, PrefillChunksInterleaveWithRunningStreams) {
  OCTET_REQUIRE_SMOLLM2(path);
  LoadedModel& m = model(8, 0);
  SchedulerOptions options;
  options.step_token_budget = 16;
  Scheduler scheduler(*m.model, *m.tokenizer, metrics, options);
  GenerationParams long_run = greedy(200);
  long_run.ignore_eos = true;
  Collected running;
  scheduler.submit(collecting(chat_prompt_ids(*m.tokenizer, {{"user", "Count from one to one hundred."}}), long_run, running));
  while (running.pieces_seen < 3) ASSERT_TRUE(scheduler.step());
  {  // latencies reach /metrics' histograms while the request runs, not when it ends
    const auto live = metrics.serving_snapshot();
    EXPECT_EQ(live.time_to_first_token.count, 1u);
    EXPECT_GE(live.inter_token_latency.count, 2u);
    EXPECT_EQ(live.generation_tokens, 0u);  // totals wait for the finish
  }
  // A prompt of ~160 tokens takes 10+ steps at 15 prompt tokens a step; the stream keeps going.
  std::string long_prompt;
  for (int i = 0; i < 20; ++i) long_prompt += "The quick brown fox jumps over the lazy dog. ";
  Collected late;
  const auto ids = chat_prompt_ids(*m.tokenizer, {{"user", long_prompt}});
  ASSERT_GT(ids.size(), 150u);
  scheduler.submit(collecting(ids, greedy(4), late));
  const int before = running.pieces_seen;
  int steps = 0;
  while (late.pieces_seen == 0 && !late.finished) {
    ASSERT_TRUE(scheduler.step());
    ++steps;
  }
  EXPECT_GE(steps, static_cast<int>(ids.size() / 15));
  // One token per step for the running stream (pieces may merge at UTF-8 boundaries: allow a few).
  EXPECT_GE(running.pieces_seen - before, steps - 3);
  scheduler.cancel(1);
  run_until_idle(scheduler);
  EXPECT_EQ(running.outcome.finish_reason, "abort");
  EXPECT_EQ(scheduler.state().kv_blocks_used, 0);
}

TEST_F(SchedulerTest, WaitsForBlocksAndRefusesWhatCanNeverFit) {
  OCTET_REQUIRE_SMOLLM2(path);
  // 12 blocks of 16 positions: room for two requests of ~40 prompt + 32 generated (5 blocks each).
  LoadedModel& m = model(4, 12);
  Scheduler scheduler(*m.model, *m.tokenizer, metrics, {});
  GenerationParams p = greedy(32);
  p.ignore_eos = true;
  std::vector<Collected> results(4);
  for (size_t i = 0; i < 4; ++i)
    scheduler.submit(collecting(chat_prompt_ids(*m.tokenizer, {{"user", questions()[i]}}), p, results[i]));
  scheduler.step();
  const auto busy = scheduler.state();
  EXPECT_EQ(busy.running, 2);
  EXPECT_EQ(busy.waiting, 2);
  EXPECT_LE(busy.kv_blocks_used, 12);
  int64_t peak_used = 0;
  while (scheduler.step()) peak_used = std::max(peak_used, scheduler.state().kv_blocks_used);
  EXPECT_LE(peak_used, 12);
  for (const auto& r : results) {
    EXPECT_EQ(r.outcome.finish_reason, "length");
    EXPECT_EQ(r.outcome.result.completion_tokens, 32);
  }
  EXPECT_EQ(scheduler.state().kv_blocks_used, 0);

  // Needs 13+ blocks: can never fit in 12.
  Collected never;
  GenerationParams big = greedy(200);
  EXPECT_THROW(scheduler.submit(collecting(chat_prompt_ids(*m.tokenizer, {{"user", "Hi"}}), big, never)), RequestRejected);
  // Longer than the context.
  std::vector<int32_t> too_long(kContext, 42);
  EXPECT_THROW(scheduler.submit(collecting(too_long, greedy(1), never)), RequestRejected);
  EXPECT_THROW(scheduler.submit(collecting({}, greedy(1), never)), RequestRejected);
  EXPECT_FALSE(never.finished);
}

TEST_F(SchedulerTest, CancelAndClientGoneFreeBlocksAtTheNextStep) {
  OCTET_REQUIRE_SMOLLM2(path);
  LoadedModel& m = model(8, 0);
  Scheduler scheduler(*m.model, *m.tokenizer, metrics, {});
  GenerationParams p = greedy(100);
  p.ignore_eos = true;
  Collected cancelled, gone, waiting_cancelled;
  const uint64_t a = scheduler.submit(collecting(chat_prompt_ids(*m.tokenizer, {{"user", "Hello"}}), p, cancelled));
  scheduler.submit(collecting(chat_prompt_ids(*m.tokenizer, {{"user", "Hi there"}}), p, gone, /*abort_after_pieces=*/5));
  for (int i = 0; i < 8; ++i) scheduler.step();
  EXPECT_GT(scheduler.state().kv_blocks_used, 0);
  EXPECT_TRUE(gone.finished);
  EXPECT_EQ(gone.outcome.finish_reason, "abort");
  scheduler.cancel(a);
  const uint64_t c = scheduler.submit(collecting(chat_prompt_ids(*m.tokenizer, {{"user", "Bye"}}), p, waiting_cancelled));
  scheduler.cancel(c);  // cancelled before it ever ran
  scheduler.step();
  EXPECT_TRUE(cancelled.finished);
  EXPECT_EQ(cancelled.outcome.finish_reason, "abort");
  EXPECT_EQ(waiting_cancelled.outcome.finish_reason, "abort");
  EXPECT_EQ(scheduler.state().kv_blocks_used, 0);
  EXPECT_EQ(scheduler.state().running, 0);
}

TEST_F(SchedulerTest, ThreadedSchedulerShutsDownAbortingWhatIsLeft) {
  OCTET_REQUIRE_SMOLLM2(path);
  LoadedModel& m = model(8, 0);
  Scheduler scheduler(*m.model, *m.tokenizer, metrics, {});
  scheduler.start();
  GenerationParams p = greedy(400);
  p.ignore_eos = true;
  std::mutex mutex;
  std::condition_variable cv;
  int finished = 0;
  std::vector<std::string> reasons;
  for (int i = 0; i < 3; ++i) {
    RequestSpec spec;
    spec.prompt = chat_prompt_ids(*m.tokenizer, {{"user", questions()[static_cast<size_t>(i)]}});
    spec.params = p;
    spec.on_finish = [&](const RequestOutcome& o) {
      std::lock_guard lock(mutex);
      reasons.push_back(o.finish_reason);
      ++finished;
      cv.notify_all();
    };
    scheduler.submit(std::move(spec));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  const auto start = std::chrono::steady_clock::now();
  scheduler.shutdown(std::chrono::milliseconds(200));
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  EXPECT_EQ(finished, 3);
  for (const auto& r : reasons) EXPECT_EQ(r, "abort");
  EXPECT_EQ(scheduler.state().kv_blocks_used, 0);
  RequestSpec late;
  late.prompt = {1, 2, 3};
  late.params = greedy(1);
  EXPECT_THROW(scheduler.submit(std::move(late)), RequestRejected);
}

}  // namespace
}  // namespace octet::engine
