// Loading for serving: the stand-in model for benchmarks (random weights of a config.json's shape,
// a tokenizer whose ids 0-255 are bytes) runs through the scheduler to exactly the requested length.
#include "engine/model_loader.h"
#include "engine/scheduler.h"
#include "model/llama_model.h"
#include "runtime/metrics.h"

#include <gtest/gtest.h>

namespace octet::engine {
namespace {

TEST(ModelLoader, DummyModelHasTheConfigShapeAndAStandInTokenizer) {
  EngineOptions options;
  options.device = Device::cpu;
  options.max_context = 128;
  KvPoolRequest kv;
  kv.slots = 2;
  kv.paged = true;
  LoadedModel m = load_dummy_model(std::string(OCTET_SOURCE_DIR) + "/configs/models/SmolLM2-135M-Instruct.json", options, kv);
  EXPECT_EQ(m.config.vocab, 49152);
  EXPECT_EQ(m.tokenizer->vocab_size(), 49152);
  EXPECT_EQ(m.model->options().max_context, 128);
  EXPECT_EQ(m.model->kv_spec().num_blocks, 2 * 128 / 16);
  EXPECT_EQ(m.tokenizer->token_bytes(300), "t300");
  EXPECT_EQ(m.tokenizer->token_bytes('A'), "A");
  EXPECT_EQ(m.tokenizer->decode(m.tokenizer->encode("Hello, world", false)), "Hello, world");

  runtime::MetricsRegistry metrics;
  Scheduler scheduler(*m.model, *m.tokenizer, metrics, {});
  RequestOutcome outcome;
  RequestSpec spec;
  spec.prompt = {300, 301, 302, 303, 304};
  spec.params.max_tokens = 12;
  spec.params.temperature = 0;
  spec.params.ignore_eos = true;
  spec.on_finish = [&](const RequestOutcome& o) { outcome = o; };
  scheduler.submit(std::move(spec));
  while (scheduler.step()) {
  }
  EXPECT_EQ(outcome.finish_reason, "length");
  EXPECT_EQ(outcome.result.completion_tokens, 12);
  EXPECT_FALSE(outcome.result.text.empty());
  EXPECT_EQ(scheduler.state().kv_blocks_used, 0);
  EXPECT_THROW(load_dummy_model("/nonexistent/config.json", options, kv), Error);
}

}  // namespace
}  // namespace octet::engine
