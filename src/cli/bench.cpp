// octet bench: prefill and decode speed of a model at each precision (median of repeats).
#include "cli/commands.h"
#include "cli/config_flags.h"
#include "cli/engine_flags.h"
#include "cli/json_output.h"
#include "octet/config.h"
#include "engine/model_bench.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <memory>
#include <sstream>

namespace octet::cli {
namespace {

struct BenchFlags {
  ConfigFlags config;
  EngineFlags engine;
  std::string dummy_weights;  // config.json: random weights of that shape
  std::vector<int64_t> prefill_tokens = {128, 1024, 4096};
  std::vector<int64_t> batches = {1, 8, 32, 64, 128};
  int64_t context = 1024;
  int decode_steps = 32;
  bool sync_each_step = false;
  std::vector<std::string> precisions = {"fp8", "bf16"};
  int prompt_tokens = 128;
  int decode_tokens = 64;
  int repeats = 3;
  bool json = false;
};

struct BenchRow {
  std::string precision;
  std::string device;
  std::string numerics;
  int64_t prompt_tokens = 0, decode_tokens = 0;
  double prefill_tok_s = 0, decode_tok_s = 0, ms_per_token = 0, ttft_ms = 0;
  uint64_t peak_memory_bytes = 0;
};

// English filler; the engine reports how many tokens it became.
std::string synthetic_prompt(int approx_tokens) {
  static const std::string sentence = "The quick brown fox jumps over the lazy dog while the farmer watches from the hill. ";
  std::string text;
  while (static_cast<int>(text.size()) < approx_tokens * 4) text += sentence;  // about 4 bytes per token
  return text.substr(0, static_cast<size_t>(approx_tokens) * 4);
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

EngineOptions configured_options(const BenchFlags& flags) {
  EngineOptions options = engine_options(load_config(flags.config.request()));
  flags.engine.apply_to(options);
  return options;
}

BenchRow bench_precision(const BenchFlags& flags, const std::string& precision) {
  EngineOptions options = configured_options(flags);
  options.precision = parse_precision(precision);
  if (options.precision != Precision::fp8)  // the vocabulary settings are fp8's; other precisions keep theirs
    options.lm_head_precision = options.embedding_precision = VocabPrecision::auto_select;
  auto engine = Engine::create(options);
  GenerationParams params;
  params.temperature = 0;
  params.ignore_eos = true;
  params.max_tokens = flags.decode_tokens;
  const std::string prompt = synthetic_prompt(flags.prompt_tokens);
  engine->complete(prompt.substr(0, 64), GenerationParams{.max_tokens = 4, .temperature = 0});  // warm-up
  std::vector<double> prefill, decode, ttft;
  BenchRow row;
  row.precision = precision;
  row.device = engine->info().device;
  row.numerics = engine->info().numerics;
  for (int i = 0; i < flags.repeats; ++i) {
    GenerationResult r = engine->complete(prompt, params);
    prefill.push_back(r.prefill_tok_s);
    decode.push_back(r.decode_tok_s);
    ttft.push_back(r.time_to_first_token_ms);
    row.prompt_tokens = r.prompt_tokens;
    row.decode_tokens = r.completion_tokens;
    row.peak_memory_bytes = r.peak_memory_bytes;
  }
  row.prefill_tok_s = median(prefill);
  row.decode_tok_s = median(decode);
  row.ms_per_token = row.decode_tok_s > 0 ? 1000.0 / row.decode_tok_s : 0;
  row.ttft_ms = median(ttft);
  return row;
}

void run_model_bench(const BenchFlags& flags) {
  std::vector<engine::ModelBenchReport> reports;
  for (const auto& p : flags.precisions) {
    engine::ModelBenchOptions o;
    o.config_json = flags.dummy_weights;
    o.precision = parse_precision(p);
    const EngineOptions configured = configured_options(flags);
    o.device = configured.device;
    if (o.precision == Precision::fp8) {
      o.lm_head_precision = configured.lm_head_precision;
      o.embedding_precision = configured.embedding_precision;
    }
    o.prefill_tokens = flags.prefill_tokens;
    o.decode_batches = flags.batches;
    o.context = flags.context;
    o.decode_steps = flags.decode_steps;
    o.sync_each_step = flags.sync_each_step;
    o.threads = flags.engine.threads;
    o.numerics = configured.numerics;
    reports.push_back(engine::run_model_bench(o));
  }
  if (flags.json) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& r : reports) {
      nlohmann::json j = {{"device", r.device}, {"model", r.model}, {"precision", r.precision}, {"numerics", r.numerics},
                          {"parameters", r.parameters}, {"weight_bytes", r.weight_bytes},
                          {"copy_bandwidth_gb_s", r.copy_bandwidth_bytes_per_s / 1e9},
                          {"fp8_gemm_tflops", r.fp8_gemm_flops / 1e12},
                          {"peak_device_memory_bytes", r.peak_device_memory_bytes}};
      for (const auto& p : r.prefill)
        j["prefill"].push_back({{"tokens", p.tokens}, {"ms", p.ms}, {"time_to_first_token_ms", p.ms},
                                {"tokens_per_s", p.tokens_per_s}, {"tflops", p.tflops}, {"percent_of_fp8_peak", p.percent_of_peak}});
      for (const auto& d : r.decode)
        j["decode"].push_back({{"batch", d.batch}, {"context", flags.context}, {"sync_each_step", flags.sync_each_step},
                               {"ms_per_step", d.ms_per_step},
                               {"tokens_per_s", d.tokens_per_s}, {"gb_per_step", d.bytes_per_step / 1e9},
                               {"gb_s", d.bytes_per_s / 1e9}, {"percent_of_roofline", d.percent_of_roofline}});
      out.push_back(j);
    }
    fmt::print("{}\n", json_output(out));
    return;
  }
  for (const auto& r : reports) {
    fmt::print("{} · {}{} · {} parameters · weights {} · device {}\n", r.model, r.precision,
               r.numerics == "reproducible" ? " (reproducible numerics)" : "", format_count(r.parameters),
               format_bytes(r.weight_bytes), r.device);
    if (r.copy_bandwidth_bytes_per_s > 0)
      fmt::print("measured ceilings: copy {:.0f} GB/s (read + write), FP8 GEMM 8192³ {:.0f} TFLOP/s\n",
                 r.copy_bandwidth_bytes_per_s / 1e9, r.fp8_gemm_flops / 1e12);
    fmt::print("{:>14} {:>10} {:>12} {:>10} {:>8}\n", "prefill tokens", "TTFT ms", "tokens/s", "TFLOP/s", "% peak");
    for (const auto& p : r.prefill)
      fmt::print("{:>14} {:>10.2f} {:>12.0f} {:>10.1f} {:>8.1f}\n", p.tokens, p.ms, p.tokens_per_s, p.tflops, p.percent_of_peak);
    if (flags.sync_each_step && !r.decode.empty()) fmt::print("decode steps waited for one at a time (--sync-each-step)\n");
    fmt::print("{:>14} {:>10} {:>12} {:>10} {:>10} {:>8}\n", "decode batch", "ms/step", "tokens/s", "GB/step", "GB/s", "% roof");
    for (const auto& d : r.decode)
      fmt::print("{:>14} {:>10.3f} {:>12.1f} {:>10.3f} {:>10.0f} {:>8.1f}\n", d.batch, d.ms_per_step, d.tokens_per_s,
                 d.bytes_per_step / 1e9, d.bytes_per_s / 1e9, d.percent_of_roofline);
    if (r.peak_device_memory_bytes > 0) fmt::print("device memory in use at the end: {}\n", format_bytes(r.peak_device_memory_bytes));
  }
}

void run_bench(const BenchFlags& flags) {
  if (!flags.dummy_weights.empty()) {
    run_model_bench(flags);
    return;
  }
  std::vector<BenchRow> rows;
  for (const auto& p : flags.precisions) rows.push_back(bench_precision(flags, p));
  const ModelInfo info = inspect_model(configured_options(flags));
  if (flags.json) {
    nlohmann::json out = {{"model", info.path}, {"threads", flags.engine.threads}, {"results", nlohmann::json::array()}};
    for (const auto& r : rows)
      out["results"].push_back({{"precision", r.precision}, {"device", r.device}, {"numerics", r.numerics},
                                {"prompt_tokens", r.prompt_tokens},
                                {"decode_tokens", r.decode_tokens}, {"prefill_tok_s", r.prefill_tok_s},
                                {"decode_tok_s", r.decode_tok_s}, {"ms_per_token", r.ms_per_token},
                                {"time_to_first_token_ms", r.ttft_ms}, {"peak_memory_bytes", r.peak_memory_bytes}});
    fmt::print("{}\n", json_output(out));
    return;
  }
  fmt::print("model: {} ({} parameters), device: {}{}, median of {} runs\n", info.path, format_count(info.parameters),
             rows.empty() ? "-" : rows.front().device,
             !rows.empty() && rows.front().numerics == "reproducible" ? " (reproducible numerics)" : "", flags.repeats);
  fmt::print("{:<9} {:>8} {:>8} {:>14} {:>13} {:>10} {:>10} {:>12}\n", "precision", "prompt", "decoded", "prefill tok/s",
             "decode tok/s", "ms/token", "TTFT ms", "peak memory");
  for (const auto& r : rows)
    fmt::print("{:<9} {:>8} {:>8} {:>14.1f} {:>13.1f} {:>10.2f} {:>10.1f} {:>12}\n", r.precision, r.prompt_tokens,
               r.decode_tokens, r.prefill_tok_s, r.decode_tok_s, r.ms_per_token, r.ttft_ms, format_bytes(r.peak_memory_bytes));
}

}  // namespace

void register_bench(CLI::App& app, const std::vector<std::string>& overrides) {
  auto flags = std::make_shared<BenchFlags>();
  flags->config.overrides = overrides;
  auto* command = app.add_subcommand("bench", "Measure prefill and decode speed at each precision");
  flags->config.add_to(*command);
  flags->engine.add_to(*command, /*with_precision=*/false);
  command->add_option("--precision", flags->precisions, "Precisions to measure (default: fp8 bf16)")
      ->check(CLI::IsMember({"fp8", "bf16", "f32"}))
      ->delimiter(',');
  command->add_option("--prompt-tokens", flags->prompt_tokens, "Approximate prompt length (default 128)")->check(CLI::PositiveNumber);
  command->add_option("--decode-tokens", flags->decode_tokens, "Tokens to generate (default 64)")->check(CLI::PositiveNumber);
  command->add_option("--repeats", flags->repeats, "Timed runs per precision; the median is reported (default 3)")
      ->check(CLI::PositiveNumber);
  command->add_option("--dummy-weights", flags->dummy_weights,
                      "Benchmark the shape in this Hugging Face config.json with random weights made on the device "
                      "(configs/models/*.json); reports prefill and decode against measured ceilings");
  command->add_option("--prefill", flags->prefill_tokens, "With --dummy-weights: prompt lengths (default 128,1024,4096)")->delimiter(',');
  command->add_option("--batch", flags->batches, "With --dummy-weights: decode batch sizes (default 1,8,32,64,128)")->delimiter(',');
  command->add_option("--context", flags->context, "With --dummy-weights: tokens already cached per sequence (default 1024)");
  command->add_option("--steps", flags->decode_steps, "With --dummy-weights: timed decode steps (default 32)");
  command->add_flag("--sync-each-step", flags->sync_each_step,
                    "With --dummy-weights: wait for every decode step before queueing the next (as a server does)");
  command->add_flag("--json", flags->json, "Print JSON");
  register_bench_serve(*command, overrides);
  command->callback([flags, command] {
    if (!command->got_subcommand("serve")) run_bench(*flags);
  });
}

}  // namespace octet::cli
