// The pass after one GEMM over a group of linears sharing their input (q/k/v, gate/up fused into one
// allocation): each column of the [rows, product_cols] float32 product goes, multiplied by its row's
// and its channel's scale, to the member that owns it (columns between members, padding, are
// skipped). One launch instead of a scaling pass per member. Reads 4 and writes 4 bytes per element:
// the same traffic as the per-member passes it replaces.
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/kernels.h"
#include "backend/cuda/launch.cuh"

#include <algorithm>

namespace octet::backend::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxGridRows = 65535;  // gridDim.y's limit; further rows are looped over

// Width 4: every member's first column and width and the product's width are multiples of 4, so a
// float4 of the product never straddles two members (or a member and padding), and every row of the
// product and of each output starts 16-byte aligned.
template <int Width>
__global__ void scale_split_kernel(const float* __restrict__ product, int64_t rows, const float* __restrict__ row_scales,
                                   const float* __restrict__ col_scales, ScaleSplit split) {
  await_earlier_kernels();
  const int64_t cols = split.product_cols;
  const int64_t c = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) * Width;
  if (c >= cols) return;
  // The member owning column c, chosen without indexing the parameter arrays by a variable (which
  // would copy them to local memory).
  float* out = split.out[0];
  int64_t width = split.cols[0], first = split.first_col[0];
#pragma unroll
  for (int i = 1; i < ScaleSplit::kMaxMembers; ++i)
    if (i < split.count && c >= split.first_col[i]) {
      out = split.out[i];
      width = split.cols[i];
      first = split.first_col[i];
    }
  const int64_t local = c - first;
  if (local < 0 || local >= width) return;  // padding between members
  float channel[Width];
#pragma unroll
  for (int j = 0; j < Width; ++j) channel[j] = col_scales ? col_scales[c + j] : 1.0f;
  for (int64_t r = blockIdx.y; r < rows; r += gridDim.y) {
    const float* src = product + r * cols + c;
    float* dst = out + r * width + local;
    float v[Width];
    if constexpr (Width == 4) {
      const float4 loaded = __ldcs(reinterpret_cast<const float4*>(src));  // read once
      v[0] = loaded.x;
      v[1] = loaded.y;
      v[2] = loaded.z;
      v[3] = loaded.w;
    } else {
      v[0] = __ldcs(src);
    }
    // The same product as launch_scale_rows_cols (value · (row scale · channel scale)), so a member
    // gets the bits its own scaling pass would give it from the same sums.
    if (row_scales) {
      const float row = row_scales[r];
#pragma unroll
      for (int j = 0; j < Width; ++j) v[j] *= row * channel[j];
    }
    if constexpr (Width == 4) *reinterpret_cast<float4*>(dst) = make_float4(v[0], v[1], v[2], v[3]);
    else dst[0] = v[0];
  }
}

}  // namespace

void launch_scale_split(const float* product, int64_t rows, const float* row_scales, const float* col_scales,
                        const ScaleSplit& split, cudaStream_t s) {
  if (split.count < 1 || split.count > ScaleSplit::kMaxMembers)
    fail("scale_split: a group of {} members (1 to {})", split.count, ScaleSplit::kMaxMembers);
  if ((row_scales == nullptr) != (col_scales == nullptr))
    fail("scale_split: row and channel scales go together (both or neither)");
  const int64_t cols = split.product_cols;
  bool vector = cols % 4 == 0 && reinterpret_cast<uintptr_t>(product) % 16 == 0;
  int64_t end = 0;  // of the previous member
  for (int i = 0; i < split.count; ++i) {
    if (split.cols[i] < 1) fail("scale_split: member {} has {} columns", i, split.cols[i]);
    if (split.first_col[i] < end || split.first_col[i] + split.cols[i] > cols)
      fail("scale_split: member {} has columns [{}, {}), expected them after column {} and inside the product's {}", i,
           split.first_col[i], split.first_col[i] + split.cols[i], end, cols);
    end = split.first_col[i] + split.cols[i];
    vector = vector && split.first_col[i] % 4 == 0 && split.cols[i] % 4 == 0 &&
             reinterpret_cast<uintptr_t>(split.out[i]) % 16 == 0;
  }
  if (rows == 0) return;
  const int width = vector ? 4 : 1;
  const int64_t threads_per_row = (cols + width - 1) / width;
  const dim3 grid(static_cast<unsigned>((threads_per_row + kThreads - 1) / kThreads),
                  static_cast<unsigned>(std::min(rows, kMaxGridRows)));
  const LaunchShape shape{grid, dim3(kThreads)};
  if (vector) launch_kernel(scale_split_kernel<4>, shape, s, product, rows, row_scales, col_scales, split);
  else launch_kernel(scale_split_kernel<1>, shape, s, product, rows, row_scales, col_scales, split);
}

}  // namespace octet::backend::cuda
