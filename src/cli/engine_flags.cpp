#include "cli/engine_flags.h"

#include <fmt/format.h>

namespace octet::cli {

void EngineFlags::add_to(CLI::App& command, bool with_precision) {
  given_.push_back(command.add_option("--model", model, "Model: a GGUF file or a Hugging Face directory; default: engine.engine_dir, llm.model, else " + default_model_path()));
  given_.push_back(with_precision ? command.add_option("--precision", precision, "Arithmetic: fp8 (E4M3 W8A8, default), bf16 or f32")
                                        ->check(CLI::IsMember({"fp8", "bf16", "f32"}))
                                  : nullptr);
  given_.push_back(command.add_option("--device", device, "Where to run: auto (default), cpu or cuda")
                       ->check(CLI::IsMember({"auto", "cpu", "cuda"})));
  given_.push_back(command.add_option("--threads", threads, "CPU threads (0: all cores)")->check(CLI::NonNegativeNumber));
  given_.push_back(command.add_option("--max-context", max_context, "Context length in tokens (0: the model's, at most 8192)")
                       ->check(CLI::NonNegativeNumber));
  given_.push_back(command.add_option("--kv-cache-dtype", kv_cache_dtype, "FP8 KV-cache format: float8_e4m3fn or float8_e5m2")
                       ->check(CLI::IsMember({"float8_e4m3fn", "float8_e5m2"})));
  given_.push_back(command.add_option("--numerics", numerics,
                                      "fast (default) or reproducible: the same bits on the CPU and the GPU, slower")
                       ->check(CLI::IsMember({"fast", "reproducible"})));
}

void EngineFlags::apply_to(EngineOptions& o) const {
  auto given = [&](size_t i) { return given_.size() > i && given_[i] && given_[i]->count() > 0; };
  if (given(0)) {
    o.model_path = model;
    o.prepared_engine = false;
  }
  if (given(1)) o.precision = parse_precision(precision);
  if (given(2)) o.device = parse_device(device);
  if (given(3)) o.threads = threads;
  if (given(4)) o.max_context = max_context;
  if (given(5)) o.kv_cache_dtype = kv_cache_dtype;
  if (given(6)) o.numerics = parse_numerics(numerics);
}


void SamplingFlags::add_to(CLI::App& command) {
  given_.push_back(command.add_option("--max-tokens", max_tokens, "Most tokens to generate (default llm.max_tokens, 256)")
                       ->check(CLI::NonNegativeNumber));
  given_.push_back(command.add_option("--temperature", temperature, "Sampling temperature; 0 is greedy (default 0.7)")
                       ->check(CLI::Range(0.0f, 100.0f)));
  given_.push_back(command.add_option("--top-p", top_p, "Nucleus sampling mass (default 1: off)")->check(CLI::Range(0.0f, 1.0f)));
  given_.push_back(command.add_option("--top-k", top_k, "Keep the k most likely tokens (default 0: off)")->check(CLI::NonNegativeNumber));
  given_.push_back(command.add_option("--min-p", min_p, "Drop tokens below min-p times the top probability (default 0: off)")
                       ->check(CLI::Range(0.0f, 1.0f)));
  given_.push_back(command.add_option("--repetition-penalty", repetition_penalty, "Penalty for tokens already seen (default 1: off)")
                       ->check(CLI::PositiveNumber));
  given_.push_back(command.add_option("--seed", seed, "Random seed: the same seed gives the same output (default 0)"));
  given_.push_back(command.add_option("--stop", stop, "Stop string (repeatable); not included in the output"));
}

void SamplingFlags::apply_to(GenerationParams& p) const {
  auto given = [&](size_t i) { return given_.size() > i && given_[i]->count() > 0; };
  if (given(0)) p.max_tokens = max_tokens;
  if (given(1)) p.temperature = temperature;
  if (given(2)) p.top_p = top_p;
  if (given(3)) p.top_k = top_k;
  if (given(4)) p.min_p = min_p;
  if (given(5)) p.repetition_penalty = repetition_penalty;
  if (given(6)) p.seed = seed;
  if (given(7)) p.stop = stop;
}

void SamplingFlags::apply_model_suggestions(const ModelInfo& info, const Config& config, GenerationParams& p) const {
  auto open = [&](size_t flag, const char* key) {
    if (given_.size() > flag && given_[flag]->count() > 0) return false;
    const auto source = config.resolved.at(key).provenance.source;
    return source == Provenance::Source::built_in || source == Provenance::Source::defaults_file;
  };
  if (info.suggested_temperature && open(1, "llm.temperature")) p.temperature = *info.suggested_temperature;
  if (info.suggested_top_p && open(2, "llm.top_p")) p.top_p = *info.suggested_top_p;
  if (info.suggested_top_k && open(3, "llm.top_k")) p.top_k = *info.suggested_top_k;
}

std::string format_bytes(uint64_t bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double value = static_cast<double>(bytes);
  int unit = 0;
  while (value >= 1024 && unit < 4) {
    value /= 1024;
    ++unit;
  }
  return unit == 0 ? fmt::format("{} B", bytes) : fmt::format("{:.2f} {}", value, units[unit]);
}

std::string format_count(int64_t count) {
  const double v = static_cast<double>(count);
  if (v >= 1e9) return fmt::format("{:.2f}B", v / 1e9);
  if (v >= 1e6) return fmt::format("{:.1f}M", v / 1e6);
  if (v >= 1e3) return fmt::format("{:.1f}K", v / 1e3);
  return std::to_string(count);
}

}  // namespace octet::cli
