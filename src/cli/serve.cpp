// octet serve: the OpenAI-compatible HTTP server (continuous batching over the paged KV cache).
// SIGINT/SIGTERM stop it gracefully: new requests get 503, in-flight ones finish or are aborted
// within server.shutdown_timeout_s, and the process exits 0.
#include "cli/commands.h"
#include "cli/config_flags.h"
#include "cli/engine_flags.h"
#include "octet/config.h"
#include "server/serving_stack.h"

#include <fmt/format.h>
#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <cstdio>
#include <memory>
#include <thread>

namespace octet::cli {
namespace {

struct ServeFlags {
  ConfigFlags config;
  EngineFlags engine;
  std::vector<CLI::Option*> given;  // host, port, api_key, max_concurrency, served_model_name
  std::string host, api_key, served_model_name;
  std::string dummy_weights;  // config.json: serve random weights of that shape (load tests of big shapes)
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

  auto stack = server::build_serving_stack(options, settings, generation_params(config), flags.served_model_name,
                                          config.llm.model, flags.dummy_weights);
  server::ApiServer& server = *stack->http;
  engine::Scheduler& scheduler = *stack->scheduler;
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
             settings.host, port, stack->options.model_id, precision_name(options.precision), stack->model.backend->name(),
             settings.max_concurrency, stack->kv_blocks, stack->kv_block_size, stack->context,
             settings.api_key.empty() ? "" : ", API key required");
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
  command->add_option("--dummy-weights", flags->dummy_weights,
                      "Serve the shape in this Hugging Face config.json with random weights (configs/models/*.json) "
                      "instead of the model file: for load tests; the text is meaningless");
  flags->config.add_to(*command);
  flags->engine.add_to(*command);
  command->callback([flags] { run_serve(*flags); });
}

}  // namespace octet::cli
