// octet quantize SRC DST: a BF16 Hugging Face directory or a GGUF file → a ModelOpt-layout FP8 directory.
#include "cli/commands.h"
#include "cli/engine_flags.h"
#include "quantize/quantize.h"

#include <fmt/format.h>

#include <memory>

namespace octet::cli {
namespace {

struct QuantizeFlags {
  quantize::QuantizeOptions options;
  double max_shard_gb = 5.0;
  std::string lm_head = "bf16";
  bool quiet = false;
};

void run_quantize(QuantizeFlags& flags) {
  flags.options.max_shard_bytes = static_cast<uint64_t>(flags.max_shard_gb * 1e9);
  flags.options.fp8_lm_head = flags.lm_head == "fp8";
  flags.options.show_progress = !flags.quiet;
  const quantize::QuantizeReport r = quantize::quantize_checkpoint(flags.options);
  fmt::print("{}: {} ({} FP8 layers, {} kept BF16{}), {} in {} file(s), {:.1f} s ({:.2f} GB/s)\n",
             flags.options.destination, r.algorithm, r.fp8_layers, r.bf16_layers,
             r.calibration_tokens > 0 ? fmt::format(", calibrated on {} tokens", r.calibration_tokens) : "",
             format_bytes(r.bytes_written), r.shard_files.size(), r.seconds,
             r.seconds > 0 ? static_cast<double>(r.bytes_written) / 1e9 / r.seconds : 0.0);
}

}  // namespace

void register_quantize(CLI::App& app, const std::vector<std::string>& overrides) {
  auto flags = std::make_shared<QuantizeFlags>();
  auto* command = app.add_subcommand(
      "quantize", "Write an FP8 checkpoint (ModelOpt layout) from a BF16 Hugging Face directory or a GGUF file");
  command->add_option("source", flags->options.source, "A Hugging Face directory (BF16/F16/F32) or a GGUF file")->required();
  command->add_option("destination", flags->options.destination, "The directory to create")->required();
  command->add_option("--exclude", flags->options.exclude,
                      "Keep matching layers in BF16 (repeatable; wildcards, e.g. 'model.layers.0.*'); lm_head is unless "
                      "--lm-head-precision fp8")
      ->expected(1)
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  command->add_option("--calib", flags->options.calibration_text_path,
                      "Text to calibrate static activation and KV-cache scales on (the model runs in BF16); "
                      "without it: per-channel weight scales, dynamic activations");
  command->add_option("--calib-tokens", flags->options.calibration_max_tokens, "Most calibration tokens (default 4096)")
      ->check(CLI::PositiveNumber);
  command->add_option("--max-shard-gb", flags->max_shard_gb, "Largest safetensors shard in GB (default 5)")
      ->check(CLI::PositiveNumber);
  command->add_option("--threads", flags->options.threads, "CPU threads for calibration (0: all cores)")
      ->check(CLI::NonNegativeNumber);
  command->add_option("--lm-head-precision", flags->lm_head,
                      "bf16 (default: lm_head excluded, as ModelOpt does) or fp8 (E4M3, a scale per vocabulary row)")
      ->check(CLI::IsMember({"bf16", "fp8"}));
  command->add_flag("--quiet", flags->quiet, "No progress bar");
  (void)overrides;
  command->callback([flags] { run_quantize(*flags); });
}

}  // namespace octet::cli
