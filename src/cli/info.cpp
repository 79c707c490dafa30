// octet info: what a model is and what FP8 saves, from its shapes (no weights loaded).
#include "cli/commands.h"
#include "cli/config_flags.h"
#include "cli/engine_flags.h"
#include "cli/json_output.h"
#include "octet/config.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <memory>

namespace octet::cli {
namespace {

struct InfoFlags {
  ConfigFlags config;
  EngineFlags engine;
  bool json = false;
};

void run_info(const InfoFlags& flags) {
  EngineOptions options = engine_options(load_config(flags.config.request()));
  flags.engine.apply_to(options);
  const ModelInfo m = inspect_model(options);
  if (flags.json) {
    nlohmann::json out = {{"name", m.name}, {"architecture", m.architecture}, {"path", m.path},
                          {"parameters", m.parameters}, {"layers", m.layers}, {"hidden_size", m.hidden},
                          {"attention_heads", m.heads}, {"kv_heads", m.kv_heads}, {"head_dim", m.head_dim},
                          {"intermediate_size", m.ffn}, {"vocab_size", m.vocab}, {"context_length", m.context_length},
                          {"tied_embeddings", m.tied_embeddings}, {"precision", m.precision},
                          {"weight_bytes_bf16", m.weight_bytes_bf16}, {"weight_bytes_fp8", m.weight_bytes_fp8},
                          {"savings_percentage", m.savings_percentage}};
    fmt::print("{}\n", json_output(out));
    return;
  }
  fmt::print("model            {}\n", m.name.empty() ? m.path : m.name);
  fmt::print("file             {}\n", m.path);
  fmt::print("architecture     {}\n", m.architecture);
  fmt::print("parameters       {} ({})\n", format_count(m.parameters), m.parameters);
  fmt::print("layers           {}\n", m.layers);
  fmt::print("hidden size      {}\n", m.hidden);
  fmt::print("attention heads  {} ({} key/value heads, head dim {})\n", m.heads, m.kv_heads, m.head_dim);
  fmt::print("ffn size         {}\n", m.ffn);
  fmt::print("vocabulary       {}\n", m.vocab);
  fmt::print("context length   {}\n", m.context_length);
  fmt::print("tied embeddings  {}\n", m.tied_embeddings ? "yes" : "no");
  fmt::print("precision        {}\n", m.precision);
  fmt::print("weights in BF16  {}\n", format_bytes(m.weight_bytes_bf16));
  fmt::print("weights in FP8   {} (linear layers E4M3 + per-channel scales; embeddings, norms, head BF16)\n",
             format_bytes(m.weight_bytes_fp8));
  fmt::print("FP8 saves        {:.1f}%\n", m.savings_percentage);
}

}  // namespace

void register_info(CLI::App& app, const std::vector<std::string>& overrides) {
  auto flags = std::make_shared<InfoFlags>();
  flags->config.overrides = overrides;
  auto* command = app.add_subcommand("info", "Describe a model: shapes, parameters, BF16 vs FP8 weight memory");
  flags->config.add_to(*command);
  flags->engine.add_to(*command);
  command->add_flag("--json", flags->json, "Print JSON");
  command->callback([flags] { run_info(*flags); });
}

}  // namespace octet::cli
