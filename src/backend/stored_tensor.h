#pragma once
// A weight tensor as a checkpoint stores it: a [rows, cols] view of the file's bytes (the mmap) in
// its stored dtype, handed to the backend so that it converts (widens, rounds, quantizes) where it
// keeps the weights, without a float32 copy on the host. The bytes stay valid for the duration of
// the Backend call that receives the view; the caller releases the file pages afterwards.
#include <cstddef>
#include <cstdint>

namespace octet::backend {

enum class StoredDtype { f32, f16, bf16, e4m3 };

struct StoredTensor {
  const void* data = nullptr;  // rows · cols little-endian elements of dtype, row-major
  StoredDtype dtype = StoredDtype::f32;
  int64_t rows = 0;  // output features of a linear, vocabulary of a table
  int64_t cols = 0;

  uint64_t element_bytes() const { return dtype == StoredDtype::f32 ? 4 : dtype == StoredDtype::e4m3 ? 1 : 2; }
  uint64_t bytes() const { return static_cast<uint64_t>(rows * cols) * element_bytes(); }
  const uint8_t* row(int64_t r) const { return static_cast<const uint8_t*>(data) + static_cast<uint64_t>(r * cols) * element_bytes(); }
};

// Widens rows [row_begin, row_end) to float32 (e4m3: the bare code values, no scale) into out,
// (row_end - row_begin) · cols floats; the same arithmetic as the safetensors reader.
void widen_stored_rows(const StoredTensor& tensor, int64_t row_begin, int64_t row_end, float* out);

}  // namespace octet::backend
