#include "server/serving_stack.h"

#include <filesystem>

namespace octet::server {

int64_t step_token_budget(int64_t configured, const std::string& backend_name) {
  if (configured > 0) return configured;
  return backend_name == "cuda" ? kGpuStepTokens : kCpuStepTokens;
}

std::unique_ptr<ServingStack> build_serving_stack(const EngineOptions& engine, const ServerSettings& server,
                                                  const GenerationParams& defaults, const std::string& served_model_name,
                                                  const std::string& configured_model, const std::string& dummy_config) {
  auto stack = std::make_unique<ServingStack>();
  engine::KvPoolRequest kv;
  kv.slots = server.max_concurrency + 1;  // one more for the padding tokens of padded steps (engine/scheduler.h)
  kv.paged = server.kv_cache_blocks >= 0;  // -1: per-slot contiguous blocks
  kv.kv_blocks = std::max<int64_t>(server.kv_cache_blocks, 0);
  kv.block_size = 16;  // the CUDA paged-attention block
  stack->model = dummy_config.empty() ? engine::load_model(engine, kv) : engine::load_dummy_model(dummy_config, engine, kv);
  stack->context = stack->model.model->options().max_context;
  stack->kv_blocks = stack->model.model->kv_spec().pool_blocks();
  stack->kv_block_size = kv.block_size;

  engine::SchedulerOptions scheduler_options;
  scheduler_options.step_token_budget =
      std::max<int64_t>(step_token_budget(server.max_batch_tokens, stack->model.backend->name()), server.max_concurrency);
  scheduler_options.stop_ids = stack->model.stop_ids;
  scheduler_options.max_running = server.max_concurrency;
  stack->scheduler = std::make_unique<engine::Scheduler>(*stack->model.model, *stack->model.tokenizer, stack->metrics,
                                                         scheduler_options);
  stack->scheduler->warm_up();

  ServerOptions& o = stack->options;
  o.host = server.host;
  o.port = server.port;
  o.api_key = server.api_key;
  o.max_body_bytes = server.max_body_bytes;
  o.http_threads = std::max(64, 4 * server.max_concurrency);
  const std::filesystem::path path(stack->model.path);
  o.model_id = served_model_name.empty() ? path.stem().string() : served_model_name;
  o.model_aliases = {stack->model.path, path.filename().string(), stack->model.config.name};
  if (!configured_model.empty()) o.model_aliases.push_back(configured_model);
  o.defaults = defaults;
  o.drain = std::chrono::milliseconds(static_cast<int64_t>(server.shutdown_timeout_s * 1000));
  stack->http = std::make_unique<ApiServer>(stack->model, *stack->scheduler, stack->metrics, o);
  return stack;
}

}  // namespace octet::server
