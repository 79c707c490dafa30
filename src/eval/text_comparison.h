#pragma once
// Compares two precisions of one model on real text: perplexity of each, top-1 agreement of the
// next-token predictions, and the mean KL divergence KL(baseline ‖ candidate) over all positions.
#include "octet/engine.h"

#include <string>

namespace octet::eval {

struct TextComparisonOptions {
  std::string model_path;
  std::string text;
  Precision candidate = Precision::fp8;
  Precision baseline = Precision::bf16;
  // The candidate's embedding table and LM head when it is fp8 (the baseline keeps its precision's).
  VocabPrecision candidate_lm_head = VocabPrecision::auto_select;
  VocabPrecision candidate_embedding = VocabPrecision::auto_select;
  int64_t window_tokens = 512;  // the text is scored in independent windows of this many tokens
  int threads = 0;
  Numerics candidate_numerics = Numerics::fast;  // the baseline runs the fast ops
};

struct TextComparison {
  int64_t positions = 0;  // next-token predictions compared
  double candidate_perplexity = 0;
  double baseline_perplexity = 0;
  double top1_agreement = 0;  // fraction in [0, 1]
  double mean_kl = 0;         // nats
};

TextComparison compare_on_text(const TextComparisonOptions& options);

}  // namespace octet::eval
