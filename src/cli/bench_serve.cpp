// octet bench serve: a load generator against the OpenAI-compatible server — N concurrent streaming
// clients with fixed prompt and output lengths; requests/s, output tokens/s, TTFT and ITL p50/p99.
// Without --url it starts `octet serve`'s stack in this process on a free loopback port
// (max_concurrency = --clients) and measures that.
#include "cli/commands.h"
#include "cli/config_flags.h"
#include "cli/engine_flags.h"
#include "cli/json_output.h"
#include "common/error.h"
#include "octet/config.h"
#include "server/load_generator.h"
#include "server/serving_stack.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <signal.h>

#include <memory>
#include <thread>

namespace octet::cli {
namespace {

struct BenchServeFlags {
  ConfigFlags config;
  EngineFlags engine;
  std::string url;  // host:port of a running server; "": start one here
  std::string api_key;
  std::string dummy_weights;  // config.json: random weights of that shape in the in-process server
  int clients = 8, requests = 0, input_tokens = 128, output_tokens = 64;
  bool json = false;
};

void print_report(const BenchServeFlags& f, const server::LoadReport& r, const std::string& target) {
  if (f.json) {
    fmt::print("{}\n", json_output(nlohmann::json{{"target", target}, {"clients", f.clients}, {"requests", r.requests},
                                      {"failed", r.failed}, {"input_tokens", f.input_tokens},
                                      {"output_tokens", f.output_tokens}, {"seconds", r.seconds},
                                      {"requests_per_s", r.requests_per_s}, {"output_tokens_per_s", r.output_tokens_per_s},
                                      {"ttft_p50_ms", r.ttft_p50_ms}, {"ttft_p99_ms", r.ttft_p99_ms},
                                      {"itl_p50_ms", r.itl_p50_ms}, {"itl_p99_ms", r.itl_p99_ms}}));
  } else {
    fmt::print("server: {} · {} clients · {} requests of {} in / {} out\n", target, f.clients, r.requests,
               f.input_tokens, f.output_tokens);
    fmt::print("{:>10} {:>12} {:>16} {:>10} {:>10} {:>10} {:>10} {:>8}\n", "seconds", "requests/s", "output tok/s",
               "TTFT p50", "TTFT p99", "ITL p50", "ITL p99", "failed");
    fmt::print("{:>10.2f} {:>12.2f} {:>16.1f} {:>8.0f}ms {:>8.0f}ms {:>8.1f}ms {:>8.1f}ms {:>8}\n", r.seconds,
               r.requests_per_s, r.output_tokens_per_s, r.ttft_p50_ms, r.ttft_p99_ms, r.itl_p50_ms, r.itl_p99_ms, r.failed);
  }
  if (r.failed > 0) fail("{} of {} requests failed; the first: {}", r.failed, r.requests, r.first_error);
}

void run_bench_serve(const BenchServeFlags& f) {
  server::LoadOptions load;
  load.clients = f.clients;
  load.requests = f.requests > 0 ? f.requests : 4 * f.clients;
  load.input_tokens = f.input_tokens;
  load.output_tokens = f.output_tokens;
  load.api_key = f.api_key;
  if (!f.url.empty()) {
    const auto colon = f.url.rfind(':');
    if (colon == std::string::npos) fail("--url: expected HOST:PORT, got '{}'", f.url);
    load.host = f.url.substr(0, colon);
    load.port = std::stoi(f.url.substr(colon + 1));
    print_report(f, server::run_load(load), f.url);
    return;
  }
  signal(SIGPIPE, SIG_IGN);
  const Config config = load_config(f.config.request());
  EngineOptions options = engine_options(config);
  f.engine.apply_to(options);
  ServerSettings settings = config.server;
  settings.host = "127.0.0.1";
  settings.port = 0;
  settings.api_key.clear();
  settings.max_concurrency = f.clients;
  auto stack = server::build_serving_stack(options, settings, generation_params(config), "bench", config.llm.model,
                                          f.dummy_weights);
  if (f.input_tokens + f.output_tokens > stack->context)
    fail("--input-tokens {} + --output-tokens {} exceed the context of {} (--max-context)", f.input_tokens,
         f.output_tokens, stack->context);
  load.port = stack->http->bind();
  load.vocab = stack->model.config.vocab;
  stack->scheduler->start();
  std::thread serving([&] { stack->http->serve(); });
  server::LoadReport report;
  try {
    report = server::run_load(load);
  } catch (...) {
    stack->http->shutdown();
    serving.join();
    throw;
  }
  stack->http->shutdown();
  serving.join();
  print_report(f, report, fmt::format("in-process ({}, {} on {})", stack->model.path,
                                      precision_name(options.precision), stack->model.backend->name()));
}

}  // namespace

void register_bench_serve(CLI::App& bench, const std::vector<std::string>& overrides) {
  auto flags = std::make_shared<BenchServeFlags>();
  flags->config.overrides = overrides;
  auto* command = bench.add_subcommand("serve", "Load-test the OpenAI-compatible server: N concurrent streaming clients, "
                                                "fixed input/output lengths; requests/s, output tokens/s, TTFT, ITL");
  command->add_option("--url", flags->url, "HOST:PORT of a running octet serve (default: start one in this process)");
  command->add_option("--api-key", flags->api_key, "Bearer token for --url");
  command->add_option("--clients", flags->clients, "Concurrent clients (default 8); the in-process server gets as many slots")
      ->check(CLI::PositiveNumber);
  command->add_option("--requests", flags->requests, "Requests in all (default 4 x clients)")->check(CLI::PositiveNumber);
  command->add_option("--input-tokens", flags->input_tokens, "Prompt length in tokens (default 128)")->check(CLI::PositiveNumber);
  command->add_option("--output-tokens", flags->output_tokens, "Tokens generated per request (default 64, EOS ignored)")
      ->check(CLI::PositiveNumber);
  command->add_option("--dummy-weights", flags->dummy_weights,
                      "Serve the shape in this Hugging Face config.json with random weights (configs/models/*.json) "
                      "instead of the model file");
  command->add_flag("--json", flags->json, "Print JSON");
  flags->config.add_to(*command);
  flags->engine.add_to(*command);
  command->callback([flags] { run_bench_serve(*flags); });
}

}  // namespace octet::cli
