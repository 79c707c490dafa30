// Backend::sample_rows on the host: the rows come over with copy_rows_to_host and each is drawn by
// the engine's sampler with its counter-based uniform, so every backend can sample rows.
#include "backend/backend.h"
#include "common/counter_rng.h"
#include "common/error.h"
#include "engine/sampler.h"

#include <vector>

namespace octet::backend {

void check_sample_rows(const Activations& logits, std::span<const int64_t> rows, std::span<const RowSampling> per_row,
                       std::span<int32_t> tokens_out) {
  if (per_row.size() != rows.size() || tokens_out.size() != rows.size())
    fail("sample_rows: {} rows, {} sampling settings and {} outputs must match", rows.size(), per_row.size(),
         tokens_out.size());
  for (int64_t row : rows)
    if (row < 0 || row >= logits.rows) fail("sample_rows: row {} outside the {} logits rows", row, logits.rows);
}

void Backend::sample_rows(const Activations& logits, std::span<const int64_t> rows, std::span<const RowSampling> per_row,
                          std::span<int32_t> tokens_out) {
  check_sample_rows(logits, rows, per_row, tokens_out);
  if (rows.empty()) return;
  const auto vocab = static_cast<size_t>(logits.cols);
  std::vector<float> host(rows.size() * vocab);
  copy_rows_to_host(logits, rows, host.data());
  for (size_t r = 0; r < rows.size(); ++r) {
    const RowSampling& p = per_row[r];
    const engine::SamplingParams params{p.temperature, p.top_k, p.top_p, p.min_p, 1.0f, p.seed};
    tokens_out[r] = engine::sample_with_uniform(std::span<float>(host.data() + r * vocab, vocab), params, {},
                                                counter_uniform(p.seed, p.step));
  }
}

}  // namespace octet::backend
