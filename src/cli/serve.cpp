// octet serve: the OpenAI-compatible HTTP server (continuous batching over the paged KV cache).
// SIGINT/SIGTERM stop it gracefully: new requests get 503, in-flight ones finish or are aborted
// within server.shutdown_timeout_s, and the process exits 0.
#include "cli/commands.h"
#include "cli/config_flags.h"
#include "cli/engine_flags.h"
#include "engine/model_loader.h"
#include "engine/scheduler.h"
#include "octet/config.h"
#include "runtime/metrics.h"
#include "server/api_server.h"

#include <fmt/format.h>
#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <thread>

namespace octet::cli {
namespace {

struct ServeFlags {
  ConfigFlags config;
  EngineFlags engine;
  std::vector<CLI::Option*> given;  // host, port, api_key, max_concurrency, served_model_name
  std::string host, api_key, served_model_name;
  int port = 0, max_concurrency = 0;
};

// Blocks SIGINT/SIGTERM in this thread and every thread started after it, so only the watcher sees them.
sigset_t block_shutdown_signals() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);  // a client that left must not kill the server
  return signals;
}

void run_serve(const ServeFlags& flags) {
  const sigset_t signals = block_shutdown_signals();
  const Config config = load_config(flags.config.request());
  EngineOptions options = engine_options(config);
  flags.engine.apply_to(options);
  ServerSettings settings = config.server;
  auto given = [&](size_t i) { return flags.given[i]->count() > 0; };
  if (given(0)) settings.host = flags.host;
  if (given(1)) settings.port = flags.port;
  if (given(2)) settings.api_key = flags.api_key;
  if (given(3)) settings.max_concurrency = flags.max_concurrency;

  // The pool's block size is the CUDA paged-attention block; max_concurrency full contexts unless
  // server.kv_cache_blocks says otherwise.
  engine::KvPoolRequest kv;
  kv.slots = settings.max_concurrency;
  kv.paged = true;
  kv.kv_blocks = settings.kv_cache_blocks;
  kv.block_size = 16;
  engine::LoadedModel model = engine::load_model(options, kv);
  const int64_t context = model.model->options().max_context;
  const int64_t blocks = model.model->kv_spec().num_blocks;

  runtime::MetricsRegistry metrics;
  engine::SchedulerOptions scheduler_options;
  scheduler_options.step_token_budget = std::max<int64_t>(settings.max_batch_tokens, settings.max_concurrency);
  engine::Scheduler scheduler(*model.model, *model.tokenizer, metrics, scheduler_options);

  server::ServerOptions server_options;
  server_options.host = settings.host;
  server_options.port = settings.port;
  server_options.api_key = settings.api_key;
  server_options.max_body_bytes = settings.max_body_bytes;
  server_options.http_threads = std::max(64, 4 * settings.max_concurrency);
  server_options.model_id = !flags.served_model_name.empty() ? flags.served_model_name
                                                             : std::filesystem::path(model.path).stem().string();
  server_options.model_aliases = {model.path, std::filesystem::path(model.path).filename().string(), model.config.name,
                                  config.llm.model};
  server_options.defaults = generation_params(config);
  server_options.drain = std::chrono::milliseconds(static_cast<int64_t>(settings.shutdown_timeout_s * 1000));
  server::ApiServer server(model, scheduler, metrics, server_options);
  const int port = server.bind();
  scheduler.start();

  std::atomic<bool> stopped{false};
  std::thread watcher([&] {
    const timespec poll{0, 200 * 1000 * 1000};
    while (!stopped) {
      const int signal_number = sigtimedwait(&signals, nullptr, &poll);
      if (signal_number == SIGINT || signal_number == SIGTERM) {
        fmt::print(stderr, "octet serve: {} received, shutting down\n", signal_number == SIGINT ? "SIGINT" : "SIGTERM");
        server.shutdown();
        return;
      }
    }
  });
  fmt::print("octet serve: listening on http://{}:{} (model {}, {} on {}, {} slots, {} KV blocks of {} positions, "
             "context {}){}\n",
             settings.host, port, server_options.model_id, precision_name(options.precision), model.backend->name(),
             settings.max_concurrency, blocks, kv.block_size, context, settings.api_key.empty() ? "" : ", API key required");
  std::fflush(stdout);
  try {
    server.serve();
  } catch (...) {
    stopped = true;
    watcher.join();
    throw;
  }
  stopped = true;
  watcher.join();
  scheduler.shutdown(std::chrono::milliseconds(0));
  fmt::print("octet serve: stopped\n");
  std::fflush(stdout);
}

}  // namespace

void register_serve(CLI::App& app, const std::vector<std::string>& overrides) {
  auto flags = std::make_shared<ServeFlags>();
  flags->config.overrides = overrides;
  auto* command = app.add_subcommand("serve", "OpenAI-compatible HTTP server: /v1/chat/completions, /v1/completions, "
                                              "/v1/models, /health, /metrics");
  flags->given.push_back(command->add_option("--host", flags->host, "Address to listen on (default server.host, 127.0.0.1)"));
  flags->given.push_back(command->add_option("--port", flags->port, "TCP port (default server.port, 8000; 0: any free port)")
                             ->check(CLI::Range(0, 65535)));
  flags->given.push_back(command->add_option("--api-key", flags->api_key,
                                             "Bearer token clients must send (default server.api_key; "
                                             "OCTET_SERVER_API_KEY keeps it off the command line)"));
  flags->given.push_back(command->add_option("--max-concurrency", flags->max_concurrency,
                                             "Requests generated at once; more wait (default server.max_concurrency, 8)")
                             ->check(CLI::PositiveNumber));
  command->add_option("--served-model-name", flags->served_model_name,
                      "Model id in /v1/models and responses (default: the model file's name without .gguf)");
  flags->config.add_to(*command);
  flags->engine.add_to(*command);
  command->callback([flags] { run_serve(*flags); });
}

}  // namespace octet::cli
