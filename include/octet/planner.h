#pragma once
// The planner: asks an LLM how to reach a goal. Answers come from the local FP8 engine when it can
// run, and from a remote OpenAI-compatible API when it cannot (planner.mode: local | api | auto).
#include "octet/config.h"
#include "octet/manager.h"

#include <memory>
#include <string>

namespace octet {

struct PlanOptions {
  int max_tokens = -1;        // -1: planner.max_tokens
  float temperature = -1.0f;  // < 0: planner.temperature
  std::string system_prompt;  // "": planner.system_prompt
};

struct PlanResult {
  std::string text;
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;
  double latency_ms = 0;
  std::string route;            // "local-fp8" | "local-bf16" | "local-f32" | "api"
  std::string fallback_reason;  // why the local engine was not used (auto mode), else ""
};

class Planner {
 public:
  // manager: shared with the caller (its performance stats count planner queries); nullptr: the
  // planner makes its own when the mode allows local answers.
  explicit Planner(Config config, std::shared_ptr<FP8ModelManager> manager = nullptr);
  PlanResult query_llm(const std::string& prompt, const PlanOptions& options = {});
  FP8ModelManager* manager() const { return manager_.get(); }

 private:
  PlanResult ask_local(const std::string& prompt, const PlanOptions& options);
  PlanResult ask_api(const std::string& prompt, const PlanOptions& options);
  std::string system_prompt(const PlanOptions& options) const;  // the call's, else the configured, else the default

  Config config_;
  std::shared_ptr<FP8ModelManager> manager_;
};

}  // namespace octet
