#pragma once
// Everything `octet serve` runs, built from the configuration: the model with a paged KV pool of
// max_concurrency slots, the scheduler (not yet started) and the HTTP server (not yet bound).
// Shared by `octet serve` and `octet bench serve`'s in-process server.
#include "engine/model_loader.h"
#include "engine/scheduler.h"
#include "octet/config.h"
#include "runtime/metrics.h"
#include "server/api_server.h"

#include <memory>
#include <string>

namespace octet::server {

struct ServingStack {
  engine::LoadedModel model;
  runtime::MetricsRegistry metrics;
  std::unique_ptr<engine::Scheduler> scheduler;
  std::unique_ptr<ApiServer> http;
  ServerOptions options;
  int64_t kv_blocks = 0, kv_block_size = 0, context = 0;
};

// server.max_batch_tokens 0 ("auto"): the step budget for the backend. On the H200 a 1024-token
// prefill ran at 39.8k tok/s against 15.5k tok/s in the server's 256-token steps (docs/PERFORMANCE.md),
// while a CPU step of 2048 tokens would stall every running stream for seconds.
constexpr int64_t kGpuStepTokens = 2048, kCpuStepTokens = 256;
int64_t step_token_budget(int64_t configured, const std::string& backend_name);

// served_model_name "": the model file's name without its extension. dummy_config: a Hugging Face
// config.json served with random weights and a stand-in tokenizer (benchmarks), instead of the model file.
std::unique_ptr<ServingStack> build_serving_stack(const EngineOptions& engine, const ServerSettings& server,
                                                  const GenerationParams& defaults, const std::string& served_model_name,
                                                  const std::string& configured_model = {},
                                                  const std::string& dummy_config = {});

}  // namespace octet::server
