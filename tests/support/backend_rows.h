#pragma once
// Rows between the host and a backend's activations through the backend's own interface, so GPU tests
// need no access to device memory: an embedding table gathered in row order goes up, copy_rows_to_host
// of every row comes back.
#include "backend/backend.h"

#include <cstdint>
#include <vector>

namespace octet::testing {

// out[r] = table[r] for every row r of out.
inline void embed_rows_in_order(backend::Backend& on, const backend::EmbeddingTable& table, backend::Activations& out) {
  backend::TokenBatch batch;
  for (int64_t r = 0; r < out.rows; ++r) {
    batch.tokens.push_back(static_cast<int32_t>(r));
    batch.positions.push_back(0);
    batch.slots.push_back(0);
  }
  on.prepare_batch(batch);
  on.embed(table, batch.tokens, out);
}

// out's rows become values (row-major, out.rows × out.cols), through a float32 table.
inline void upload_rows(backend::Backend& on, const std::vector<float>& values, backend::Activations& out) {
  auto table = on.make_embedding(values.data(), out.rows, out.cols, backend::EmbeddingFormat::f32);
  embed_rows_in_order(on, *table, out);
}

inline std::vector<float> download_rows(backend::Backend& on, const backend::Activations& a) {
  std::vector<int64_t> rows(static_cast<size_t>(a.rows));
  for (int64_t r = 0; r < a.rows; ++r) rows[static_cast<size_t>(r)] = r;
  std::vector<float> out(static_cast<size_t>(a.rows * a.cols));
  on.copy_rows_to_host(a, rows, out.data());
  return out;
}

}  // namespace octet::testing
