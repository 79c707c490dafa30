#pragma once
// Tensor maps (the copy engine's description of a global tensor, CUtensorMap) that kernels take as
// __grid_constant__ parameters. The encoder is the driver's, reached through the runtime so that
// nothing links libcuda; encoding is host work only (no device call), cheap enough per launch.
#include <cuda.h>

#include <cstdint>

namespace octet::backend::cuda {

// One layer's K or V pool of an FP8 (or other one-byte) cache, rows [pool_rows, kv_heads, row_bytes]:
// a box is `box_rows` consecutive pool rows of one KV head (row_bytes each), 128-byte swizzled in
// shared memory (16-byte piece p of box row r lands at piece p ^ (r % 8); the box's destination must
// be 1024-byte aligned). row_bytes must be 128 (the swizzle's span). Fails naming the field on a
// shape the copy engine cannot take.
CUtensorMap kv_pool_tensor_map(const void* pool, int64_t pool_rows, int64_t kv_heads, int64_t row_bytes, int box_rows);

// A row-major matrix of one-byte elements, [rows, row_bytes] (an FP8 weight or activation): a box is
// 128 bytes of `box_rows` consecutive rows, 128-byte swizzled as above; rows past the end read as zeros.
// row_bytes must be a multiple of 16 (the copy engine's stride unit).
CUtensorMap byte_matrix_tensor_map(const void* matrix, int64_t rows, int64_t row_bytes, int box_rows);

}  // namespace octet::backend::cuda
