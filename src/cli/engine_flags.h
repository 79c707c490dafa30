#pragma once
// The engine and sampling flags shared by the subcommands that run a model.
#include "octet/config.h"
#include "octet/engine.h"

#include <CLI/CLI.hpp>

#include <string>
#include <vector>

namespace octet::cli {

struct EngineFlags {
  std::string model;
  std::string precision = "fp8";
  std::string device = "auto";
  int threads = 0;
  int64_t max_context = 0;
  std::string kv_cache_dtype = "float8_e4m3fn";
  std::string numerics = "fast";

  void add_to(CLI::App& command, bool with_precision = true);
  // Flags given on the command line override what the configuration resolved.
  void apply_to(EngineOptions& options) const;

 private:
  std::vector<CLI::Option*> given_;  // model, precision, device, threads, max_context, kv_cache_dtype, numerics
};

struct SamplingFlags {
  int max_tokens = 256;
  float temperature = 0.7f;
  float top_p = 1.0f;
  int top_k = 0;
  float min_p = 0.0f;
  float repetition_penalty = 1.0f;
  uint64_t seed = 0;
  std::vector<std::string> stop;

  void add_to(CLI::App& command);
  void apply_to(GenerationParams& params) const;
  // Uses the model's suggested sampling (generation_config.json) for the fields that neither a flag
  // nor the configuration (files, environment, overrides) set.
  void apply_model_suggestions(const ModelInfo& info, const Config& config, GenerationParams& params) const;

 private:
  std::vector<CLI::Option*> given_;  // in the order of the fields above
};

std::string format_bytes(uint64_t bytes);   // "1.23 GiB"
std::string format_count(int64_t count);    // "134.5M"

}  // namespace octet::cli
