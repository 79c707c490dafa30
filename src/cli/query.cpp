// octet query PROMPT: one chat turn, streamed to stdout, stats on stderr (or one JSON object).
#include "cli/commands.h"
#include "cli/config_flags.h"
#include "cli/engine_flags.h"
#include "cli/json_output.h"
#include "octet/config.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <memory>

namespace octet::cli {
namespace {

struct QueryFlags {
  ConfigFlags config;
  std::string prompt;
  std::string system;
  bool json = false;
  EngineFlags engine;
  SamplingFlags sampling;
};

void run_query(const QueryFlags& flags) {
  // Configuration (defaults < files < environment < key=value overrides), then explicit flags on top.
  const Config config = load_config(flags.config.request());
  EngineOptions options = engine_options(config);
  flags.engine.apply_to(options);
  GenerationParams params = generation_params(config);
  flags.sampling.apply_to(params);
  auto engine = Engine::create(options);
  flags.sampling.apply_model_suggestions(engine->info(), config, params);
  std::vector<Message> messages;
  if (!flags.system.empty()) messages.push_back({"system", flags.system});
  messages.push_back({"user", flags.prompt});
  TokenCallback stream;
  if (!flags.json)
    stream = [](std::string_view piece) {
      std::fwrite(piece.data(), 1, piece.size(), stdout);
      std::fflush(stdout);
      return true;
    };
  GenerationResult r = engine->chat(messages, params, stream);
  const ModelInfo info = engine->info();
  if (flags.json) {
    nlohmann::json out = {{"text", r.text},
                          {"finish_reason", r.finish_reason},
                          {"prompt_tokens", r.prompt_tokens},
                          {"completion_tokens", r.completion_tokens},
                          {"prefill_tok_s", r.prefill_tok_s},
                          {"decode_tok_s", r.decode_tok_s},
                          {"time_to_first_token_ms", r.time_to_first_token_ms},
                          {"total_ms", r.total_ms},
                          {"peak_memory_bytes", r.peak_memory_bytes},
                          {"model", info.path},
                          {"precision", info.precision},
                          {"device", info.device},
                          {"numerics", info.numerics}};
    fmt::print("{}\n", json_output(out));
    return;
  }
  fmt::print("\n");
  std::fflush(stdout);
  fmt::print(stderr, "prompt tokens {} · generated {} · prefill {:.1f} tok/s · decode {:.1f} tok/s · TTFT {:.0f} ms · peak memory {}\n",
             r.prompt_tokens, r.completion_tokens, r.prefill_tok_s, r.decode_tok_s, r.time_to_first_token_ms,
             format_bytes(r.peak_memory_bytes));
}

}  // namespace

void register_query(CLI::App& app, const std::vector<std::string>& overrides) {
  auto flags = std::make_shared<QueryFlags>();
  flags->config.overrides = overrides;
  auto* command = app.add_subcommand("query", "Answer one prompt with the model, streaming the text to stdout");
  command->add_option("prompt", flags->prompt, "The user's message")->required();
  command->add_option("--system", flags->system, "System message (default: the model's own, if any)");
  command->add_flag("--json", flags->json, "Print one JSON object with the text and the statistics instead");
  flags->config.add_to(*command);
  flags->engine.add_to(*command);
  flags->sampling.add_to(*command);
  command->callback([flags] { run_query(*flags); });
}

}  // namespace octet::cli
