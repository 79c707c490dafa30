#include "octet/planner.h"

#include "common/error.h"
#include "planner/chat_completions_client.h"

#include <spdlog/spdlog.h>

#include <chrono>

namespace octet {
namespace {

constexpr const char* kDefaultSystemPrompt =
    "You are a helpful AI assistant. Explain the steps to reach the goal.";

double elapsed_ms(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

Planner::Planner(Config config, std::shared_ptr<FP8ModelManager> manager)
    : config_(std::move(config)), manager_(std::move(manager)) {
  const std::string& mode = config_.planner.mode;
  if (mode != "local" && mode != "api" && mode != "auto")
    fail("planner.mode is '{}': expected local, api or auto", mode);
  if (!manager_ && mode != "api") manager_ = create_fp8_manager(config_);
}

PlanResult Planner::query_llm(const std::string& prompt, const PlanOptions& options) {
  const std::string& mode = config_.planner.mode;
  if (mode == "api") return ask_api(prompt, options);
  if (mode == "local") return ask_local(prompt, options);
  // auto: the local engine when it can answer, the API when it cannot or fails.
  std::string reason;
  if (manager_->loaded()) {
    try {
      return ask_local(prompt, options);
    } catch (const std::exception& e) {
      reason = std::string("the local engine failed: ") + e.what();
    }
  } else {
    reason = "the local engine is not available: " + manager_->model_info().not_loaded_reason;
  }
  spdlog::info("planner: using the API ({})", reason);
  PlanResult r = ask_api(prompt, options);
  r.fallback_reason = reason;
  return r;
}

std::string Planner::system_prompt(const PlanOptions& options) const {
  if (!options.system_prompt.empty()) return options.system_prompt;
  return !config_.planner.system_prompt.empty() ? config_.planner.system_prompt : kDefaultSystemPrompt;
}

PlanResult Planner::ask_local(const std::string& prompt, const PlanOptions& options) {
  const auto start = std::chrono::steady_clock::now();
  GenerationParams params = generation_params(config_);
  params.max_tokens = options.max_tokens >= 0 ? options.max_tokens : config_.planner.max_tokens;
  params.temperature = options.temperature >= 0 ? options.temperature : config_.planner.temperature;
  GenerationResult g = manager_->generate({{"system", system_prompt(options)}, {"user", prompt}}, params);
  PlanResult r;
  r.text = g.text;
  r.prompt_tokens = g.prompt_tokens;
  r.completion_tokens = g.completion_tokens;
  r.latency_ms = elapsed_ms(start);
  r.route = "local-" + std::string(precision_name(config_.llm.precision));
  return r;
}

PlanResult Planner::ask_api(const std::string& prompt, const PlanOptions& options) {
  const auto start = std::chrono::steady_clock::now();
  planner::ChatRequest request;
  request.messages = {{"system", system_prompt(options)}, {"user", prompt}};
  request.max_tokens = options.max_tokens >= 0 ? options.max_tokens : config_.planner.max_tokens;
  request.temperature = options.temperature >= 0 ? options.temperature : config_.planner.temperature;
  planner::ChatCompletion c = planner::request_chat_completion(config_.api, request);
  PlanResult r;
  r.text = c.text;
  r.prompt_tokens = c.prompt_tokens;
  r.completion_tokens = c.completion_tokens;
  r.latency_ms = elapsed_ms(start);
  r.route = "api";
  return r;
}

}  // namespace octet
