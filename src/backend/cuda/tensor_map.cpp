#include "backend/cuda/tensor_map.h"

#include "common/error.h"

#include <cuda_runtime.h>
#include <cudaTypedefs.h>

#include <algorithm>
#include <cstdint>

namespace octet::backend::cuda {
namespace {

PFN_cuTensorMapEncodeTiled_v12000 encoder() {
  static const PFN_cuTensorMapEncodeTiled_v12000 function = [] {
    void* entry = nullptr;
    cudaDriverEntryPointQueryResult found = cudaDriverEntryPointSymbolNotFound;
    const cudaError_t status = cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &entry, 12000, cudaEnableDefault, &found);
    if (status != cudaSuccess || found != cudaDriverEntryPointSuccess || entry == nullptr)
      fail("cuda: the driver offers no cuTensorMapEncodeTiled ({}): it needs a CUDA 12 driver or later",
           cudaGetErrorString(status));
    return reinterpret_cast<PFN_cuTensorMapEncodeTiled_v12000>(entry);
  }();
  return function;
}

// A map of one-byte elements, 128-byte swizzled: the checks both maps share (the copy engine's
// coordinates are 32-bit, its boxes at most 256 rows, its addresses 16-byte aligned), then the encoding.
CUtensorMap encode_bytes(const char* what, const void* address, int rank, const cuuint64_t* dims, const cuuint64_t* strides,
                         const cuuint32_t* box) {
  if (reinterpret_cast<uintptr_t>(address) % 16 != 0) fail("tensor map: {}'s address is not 16-byte aligned", what);
  if (dims[rank - 1] < 1 || dims[rank - 1] >= (cuuint64_t{1} << 31))
    fail("tensor map: {} of {} rows (1 to 2^31 - 1)", what, static_cast<uint64_t>(dims[rank - 1]));
  if (box[rank - 1] < 1 || box[rank - 1] > 256) fail("tensor map: a box of {} rows (1 to 256)", box[rank - 1]);
  const cuuint32_t element_strides[3] = {1, 1, 1};
  CUtensorMap map{};
  const CUresult result = encoder()(&map, CU_TENSOR_MAP_DATA_TYPE_UINT8, static_cast<cuuint32_t>(rank), const_cast<void*>(address),
                                    dims, strides, box, element_strides, CU_TENSOR_MAP_INTERLEAVE_NONE,
                                    CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
                                    CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  if (result != CUDA_SUCCESS) fail("tensor map: cuTensorMapEncodeTiled refused {} (CUresult {})", what, static_cast<int>(result));
  return map;
}

}  // namespace

CUtensorMap kv_pool_tensor_map(const void* pool, int64_t pool_rows, int64_t kv_heads, int64_t row_bytes, int box_rows) {
  if (row_bytes != 128) fail("tensor map: KV rows of {} bytes (the 128-byte swizzle needs 128)", row_bytes);
  if (kv_heads < 1 || kv_heads > 65536) fail("tensor map: {} KV heads (1 to 65536)", kv_heads);
  if (box_rows < 1) fail("tensor map: a box of {} rows (1 to 256)", box_rows);
  // Innermost first: the row's bytes, the KV heads of a pool row, the pool rows.
  const cuuint64_t dims[3] = {static_cast<cuuint64_t>(row_bytes), static_cast<cuuint64_t>(kv_heads),
                              static_cast<cuuint64_t>(std::max<int64_t>(pool_rows, 0))};
  const cuuint64_t strides[2] = {static_cast<cuuint64_t>(row_bytes), static_cast<cuuint64_t>(kv_heads * row_bytes)};
  const cuuint32_t box[3] = {static_cast<cuuint32_t>(row_bytes), 1, static_cast<cuuint32_t>(box_rows)};
  return encode_bytes("a KV pool", pool, 3, dims, strides, box);
}

CUtensorMap byte_matrix_tensor_map(const void* matrix, int64_t rows, int64_t row_bytes, int box_rows) {
  if (row_bytes < 128 || row_bytes % 16 != 0 || row_bytes >= (int64_t{1} << 31))
    fail("tensor map: rows of {} bytes (a multiple of 16, at least 128)", row_bytes);
  if (box_rows < 1) fail("tensor map: a box of {} rows (1 to 256)", box_rows);
  const cuuint64_t dims[2] = {static_cast<cuuint64_t>(row_bytes), static_cast<cuuint64_t>(std::max<int64_t>(rows, 0))};
  const cuuint64_t strides[1] = {static_cast<cuuint64_t>(row_bytes)};
  const cuuint32_t box[2] = {128, static_cast<cuuint32_t>(box_rows)};
  return encode_bytes("a byte matrix", matrix, 2, dims, strides, box);
}

}  // namespace octet::backend::cuda
