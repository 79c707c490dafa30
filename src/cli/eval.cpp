// octet eval: one precision against another on a text file (perplexity, top-1 agreement, KL).
#include "cli/commands.h"
#include "cli/engine_flags.h"
#include "cli/json_output.h"
#include "common/error.h"
#include "eval/text_comparison.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <fstream>
#include <memory>
#include <sstream>

namespace octet::cli {
namespace {

struct EvalFlags {
  std::string model;
  std::string text_file;
  std::string precision = "fp8";
  std::string baseline = "bf16";
  std::string lm_head = "auto";
  std::string embedding = "auto";
  int64_t window = 512;
  int threads = 0;
  std::string numerics = "fast";
  bool json = false;
};

void run_eval(const EvalFlags& flags) {
  std::ifstream in(flags.text_file);
  if (!in) fail("cannot open text file {}", flags.text_file);
  std::stringstream text;
  text << in.rdbuf();
  eval::TextComparisonOptions options;
  options.model_path = flags.model.empty() ? default_model_path() : flags.model;
  options.text = text.str();
  options.candidate = parse_precision(flags.precision);
  options.baseline = parse_precision(flags.baseline);
  options.candidate_lm_head = parse_vocab_precision(flags.lm_head);
  options.candidate_embedding = parse_vocab_precision(flags.embedding);
  options.window_tokens = flags.window;
  options.threads = flags.threads;
  options.candidate_numerics = parse_numerics(flags.numerics);
  const eval::TextComparison r = eval::compare_on_text(options);
  if (flags.json) {
    nlohmann::json out = {{"model", options.model_path}, {"text", flags.text_file}, {"positions", r.positions},
                          {"precision", flags.precision}, {"baseline", flags.baseline},
                          {"lm_head_precision", flags.lm_head}, {"embedding_precision", flags.embedding}, {"numerics", flags.numerics},
                          {"perplexity", r.candidate_perplexity}, {"baseline_perplexity", r.baseline_perplexity},
                          {"top1_agreement", r.top1_agreement}, {"mean_kl", r.mean_kl}};
    fmt::print("{}\n", json_output(out));
    return;
  }
  fmt::print("{} positions of {} (windows of {} tokens)\n", r.positions, flags.text_file, flags.window);
  fmt::print("perplexity {:<5} {:.4f}\n", flags.precision, r.candidate_perplexity);
  fmt::print("perplexity {:<5} {:.4f}\n", flags.baseline, r.baseline_perplexity);
  fmt::print("top-1 agreement  {:.2f}%\n", 100 * r.top1_agreement);
  fmt::print("mean KL({} ‖ {})  {:.5f} nats\n", flags.baseline, flags.precision, r.mean_kl);
}

}  // namespace

void register_eval(CLI::App& app, const std::vector<std::string>& overrides) {
  auto flags = std::make_shared<EvalFlags>();
  auto* command = app.add_subcommand("eval", "Compare a precision with a baseline on text: perplexity, top-1 agreement, KL");
  command->add_option("--text", flags->text_file, "UTF-8 text file to score")->required();
  command->add_option("--model", flags->model, "Model file (GGUF); default: " + default_model_path());
  command->add_option("--precision", flags->precision, "Precision under test (default fp8)")->check(CLI::IsMember({"fp8", "bf16", "f32"}));
  command->add_option("--baseline", flags->baseline, "Reference precision (default bf16)")->check(CLI::IsMember({"fp8", "bf16", "f32"}));
  command->add_option("--lm-head-precision", flags->lm_head, "fp8 candidate's LM head: auto (default), bf16 or fp8")
      ->check(CLI::IsMember({"auto", "bf16", "fp8"}));
  command->add_option("--embedding-precision", flags->embedding, "fp8 candidate's embedding table: auto (default), bf16 or fp8")
      ->check(CLI::IsMember({"auto", "bf16", "fp8"}));
  command->add_option("--window", flags->window, "Tokens per scoring window (default 512)")->check(CLI::Range(2, 8192));
  command->add_option("--threads", flags->threads, "CPU threads (0: all cores)");
  command->add_option("--numerics", flags->numerics, "The candidate's numerics: fast (default) or reproducible")
      ->check(CLI::IsMember({"fast", "reproducible"}));
  command->add_flag("--json", flags->json, "Print JSON");
  command->callback([flags, overrides] {
    if (!overrides.empty()) fail("octet eval takes its settings as flags, not key=value overrides ({})", overrides.front());
    run_eval(*flags);
  });
}

}  // namespace octet::cli
