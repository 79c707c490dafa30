#include "eval/text_comparison.h"

#include "backend/backend.h"
#include "common/error.h"
#include "model/model_files.h"
#include "model/llama_model.h"
#include "model/weight_source.h"
#include "tokenizer/tokenizer.h"

#include <algorithm>
#include <cmath>

namespace octet::eval {
namespace {

// log-softmax of one row, in double.
std::vector<double> log_softmax(const float* logits, int64_t vocab) {
  double max_logit = *std::max_element(logits, logits + vocab);
  double total = 0;
  for (int64_t i = 0; i < vocab; ++i) total += std::exp(logits[i] - max_logit);
  const double log_total = std::log(total) + max_logit;
  std::vector<double> out(static_cast<size_t>(vocab));
  for (int64_t i = 0; i < vocab; ++i) out[i] = logits[i] - log_total;
  return out;
}

// One precision of the model, loaded once and run over many windows.
class ScoredModel {
 public:
  ScoredModel(const model::WeightSource& weights, const model::LlamaConfig& config, const model::ModelOptions& options,
              int threads, Numerics numerics = Numerics::fast)
      : backend_(backend::make_cpu_backend(threads, numerics)), model_(config, &weights, *backend_, options) {}

  static model::ModelOptions options(Precision precision, int64_t window, VocabPrecision lm_head = VocabPrecision::auto_select,
                                     VocabPrecision embedding = VocabPrecision::auto_select) {
    model::ModelOptions o;
    o.precision = precision;
    o.max_context = window;
    o.lm_head_precision = lm_head;
    o.embedding_precision = embedding;
    return o;
  }

  // Logits of every position of ids[begin, begin + count): [count, vocab].
  std::vector<float> logits(const std::vector<int32_t>& ids, int64_t begin, int64_t count) {
    backend::TokenBatch batch;
    std::vector<int64_t> rows;
    for (int64_t i = 0; i < count; ++i) {
      batch.tokens.push_back(ids[begin + i]);
      batch.positions.push_back(i);
      batch.slots.push_back(0);
      rows.push_back(i);
    }
    std::vector<float> out(static_cast<size_t>(count * model_.config().vocab));
    model_.clear_slot(0);
    model_.forward(batch, rows, out.data());
    return out;
  }

 private:
  std::unique_ptr<backend::Backend> backend_;
  model::LlamaModel model_;
};

}  // namespace

TextComparison compare_on_text(const TextComparisonOptions& options) {
  model::ModelFiles files = model::open_model_files(options.model_path);  // a GGUF file or an HF directory
  const model::LlamaConfig& config = files.config;
  std::vector<int32_t> ids = files.tokenizer->encode(options.text, /*allow_special=*/false);
  if (ids.size() < 2) fail("eval: the text has {} tokens; at least 2 are needed", ids.size());

  TextComparison result;
  double candidate_nll = 0, baseline_nll = 0, kl_total = 0;
  int64_t agree = 0;
  const int64_t vocab = config.vocab;
  const auto& weights = files.weights;
  ScoredModel candidate_model(*weights, config,
                              ScoredModel::options(options.candidate, options.window_tokens, options.candidate_lm_head,
                                                   options.candidate_embedding),
                              options.threads, options.candidate_numerics);
  ScoredModel baseline_model(*weights, config, ScoredModel::options(options.baseline, options.window_tokens),
                             options.threads);
  for (int64_t begin = 0; begin + 1 < static_cast<int64_t>(ids.size()); begin += options.window_tokens) {
    const int64_t count = std::min<int64_t>(options.window_tokens, static_cast<int64_t>(ids.size()) - begin);
    if (count < 2) break;
    auto candidate = candidate_model.logits(ids, begin, count);
    auto baseline = baseline_model.logits(ids, begin, count);
    for (int64_t i = 0; i + 1 < count; ++i) {
      auto lc = log_softmax(candidate.data() + i * vocab, vocab);
      auto lb = log_softmax(baseline.data() + i * vocab, vocab);
      const int32_t next = ids[begin + i + 1];
      candidate_nll -= lc[next];
      baseline_nll -= lb[next];
      double kl = 0;
      for (int64_t v = 0; v < vocab; ++v) kl += std::exp(lb[v]) * (lb[v] - lc[v]);
      kl_total += kl;
      agree += std::max_element(lc.begin(), lc.end()) - lc.begin() == std::max_element(lb.begin(), lb.end()) - lb.begin();
      ++result.positions;
    }
  }
  const double n = static_cast<double>(result.positions);
  result.candidate_perplexity = std::exp(candidate_nll / n);
  result.baseline_perplexity = std::exp(baseline_nll / n);
  result.top1_agreement = static_cast<double>(agree) / n;
  result.mean_kl = kl_total / n;
  return result;
}

}  // namespace octet::eval
