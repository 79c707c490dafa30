// octet plan PROMPT: a planner query (local FP8 engine, or the OpenAI-compatible API as fallback).
#include "cli/commands.h"
#include "cli/config_flags.h"
#include "cli/json_output.h"
#include "octet/planner.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <memory>

namespace octet::cli {
namespace {

struct PlanFlags {
  ConfigFlags config;
  std::string prompt;
  bool json = false;
};

void run_plan(const PlanFlags& flags) {
  Planner planner(load_config(flags.config.request()));
  const PlanResult r = planner.query_llm(flags.prompt);
  if (flags.json) {
    fmt::print("{}\n", json_output(nlohmann::json{{"text", r.text}, {"route", r.route}, {"prompt_tokens", r.prompt_tokens},
                                      {"completion_tokens", r.completion_tokens}, {"latency_ms", r.latency_ms},
                                      {"fallback_reason", r.fallback_reason}}));
    return;
  }
  fmt::print("{}\n", r.text);
  fmt::print(stderr, "route {} · prompt tokens {} · generated {} · {:.0f} ms{}\n", r.route, r.prompt_tokens,
             r.completion_tokens, r.latency_ms, r.fallback_reason.empty() ? "" : " · " + r.fallback_reason);
}

}  // namespace

void register_plan(CLI::App& app, const std::vector<std::string>& overrides) {
  auto flags = std::make_shared<PlanFlags>();
  flags->config.overrides = overrides;
  auto* command = app.add_subcommand(
      "plan", "Ask the planner (planner.mode local|api|auto; the API fallback reads OCTET_API_KEY or OPENAI_API_KEY)");
  command->add_option("prompt", flags->prompt, "The goal to plan for")->required();
  flags->config.add_to(*command);
  command->add_flag("--json", flags->json, "Print JSON: text, route, tokens, latency");
  command->callback([flags] { run_plan(*flags); });
}

}  // namespace octet::cli
