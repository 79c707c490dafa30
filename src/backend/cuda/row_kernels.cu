// The per-row kernels of a decode step (SwiGLU + quantize, add + rmsnorm + quantize, quantize) with
// each row held in the registers of one thread block. Every thread issues the 16-byte loads of all
// its float4s before using any, keeps the values for the amax pass and encodes the E4M3 codes from
// them, so a row is read once and its loads overlap. The loop kernels they replace (elementwise.cu,
// quantize.cu) ran each row as dependent load-use iterations and re-read it for the codes: a 14336-
// wide SwiGLU row took 15 µs on one SM of the H200 (docs/PERFORMANCE.md, version 4 profile).
// Outputs are those of the loop kernels: the same float expressions per element, the same amax
// (a max does not depend on order) and the same encoding; only the rmsnorm sum is added in another
// order.
//
// A batch of few rows would leave most SMs idle (one row, one SM), so on GPUs with thread-block
// clusters (sm_90) a row is split over a cluster of 2–8 blocks: each block holds its span of the
// row, and the row's sum / amax are combined through distributed shared memory (every block adds
// the cluster's partials in rank order, so all get the same value) — one launch, no workspace, no
// second pass over the row. OCTET_CUDA_ROW_KERNELS=0 keeps the loop kernels, =noclusters one block
// per row (both for comparison). Each kernel waits for the kernel before it (launch.cuh) before reading
// the row; the norm weights are loaded in the same burst as the row, so nothing is read before.
#include "backend/cuda/block_reduce.cuh"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/e4m3_encode.cuh"
#include "backend/cuda/kernels.h"
#include "backend/cuda/launch.cuh"

#include <cooperative_groups.h>
#include <cuda_fp8.h>

#include <cstdlib>
#include <string_view>
#include <type_traits>

namespace octet::backend::cuda {
namespace {

constexpr int kMaxThreads = 1024;

__device__ __forceinline__ float amax4(float amax, const float4& v) {
  return fmaxf(fmaxf(fmaxf(fmaxf(amax, fabsf(v.x)), fabsf(v.y)), fabsf(v.z)), fabsf(v.w));
}

// The part of a row this block holds: float4s [begin, end) of row `row`. A row is split into
// `parts` spans of `chunk` float4s (the last one shorter), one per block of its cluster.
struct RowSpan {
  int64_t row, begin, end;
  // Thread t holds float4s begin + t, begin + t + blockDim.x, …: element j of its registers.
  __device__ int64_t index(int j) const { return begin + threadIdx.x + static_cast<int64_t>(j) * blockDim.x; }
  __device__ bool holds(int j) const { return index(j) < end; }
};

__device__ __forceinline__ unsigned cluster_rank() {
#if __CUDA_ARCH__ >= 900
  return cooperative_groups::this_cluster().block_rank();
#else
  return 0;  // the host launches clusters only where the device has them
#endif
}

template <bool kCluster>
__device__ __forceinline__ RowSpan row_span(int64_t vectors, unsigned parts, int64_t chunk) {
  if constexpr (!kCluster) return {blockIdx.x, 0, vectors};
  const int64_t begin = cluster_rank() * chunk;
  return {blockIdx.x / parts, begin, min(vectors, begin + chunk)};
}

// The block's sum (or max) of value, then, in a cluster, the cluster's: each block publishes its
// partial in shared memory, and every block reads all of them in rank order (the same result in
// each). The second barrier keeps every block's slot alive and unchanged until all have read it.
template <bool kCluster>
__device__ float row_reduce(float value, bool take_max, float* shared, unsigned parts) {
  value = take_max ? block_max(value, shared) : block_sum(value, shared);
  if constexpr (kCluster) {
#if __CUDA_ARCH__ >= 900
    __shared__ float slot;
    cooperative_groups::cluster_group cluster = cooperative_groups::this_cluster();
    if (threadIdx.x == 0) slot = value;
    cluster.sync();
    float total = 0.0f;  // the identity of both: amax and sums of squares are ≥ 0 here
    for (unsigned rank = 0; rank < parts; ++rank) {
      const float partial = *cluster.map_shared_rank(&slot, static_cast<int>(rank));
      total = take_max ? fmaxf(total, partial) : total + partial;
    }
    cluster.sync();
    value = total;
#endif
  }
  return value;
}

// Scale (amax / 448, or static_scale when > 0) and codes of the row whose values the block holds.
// codes and row_scale are the row's (not the span's).
template <int V, bool kCluster>
__device__ void encode_row(const float4 (&value)[V], const RowSpan& span, float amax, float static_scale, float* shared,
                           unsigned parts, uint8_t* codes, float* row_scale) {
  float scale = static_scale;
  if (scale <= 0.0f) {
    amax = row_reduce<kCluster>(amax, true, shared, parts);
    scale = e4m3_row_scale(amax);
  }
  if (threadIdx.x == 0 && span.begin == 0) *row_scale = scale;
  const float inverse = 1.0f / scale;
  uint32_t* packed = reinterpret_cast<uint32_t*>(codes);
#pragma unroll
  for (int j = 0; j < V; ++j)
    if (span.holds(j)) packed[span.index(j)] = encode4_e4m3(value[j], inverse);
}

// Each kernel: grid = rows · parts blocks; parts > 1 only with kCluster (a cluster per row).
// The inputs of a kernel with kScaled are a GEMM's unscaled product (ProductInput): element (r, c) of
// an input is value · (row_scales[r] · col_scales[c]), the product launch_scale_split applies, so the
// fused kernel computes the same floats as the scaling pass followed by the plain kernel.
struct ProductInput {
  int64_t row_stride = 0;              // floats between rows of the inputs
  const float* row_scales = nullptr;   // per row (the GEMM input's quantization scales)
  const float* col_scales = nullptr;   // per column of the first input (gate; delta)
  const float* col_scales2 = nullptr;  // per column of the second input (up)
};

template <bool kScaled>
__device__ __forceinline__ float4 load_input(const float4* row, const float* col_scales, float row_scale, int64_t index) {
  float4 v = row[index];
  if constexpr (kScaled) {
    const float4 c = reinterpret_cast<const float4*>(col_scales)[index];
    v = make_float4(v.x * (row_scale * c.x), v.y * (row_scale * c.y), v.z * (row_scale * c.z), v.w * (row_scale * c.w));
  }
  return v;
}

template <int V, bool kCluster, bool kScaled>
__global__ void __launch_bounds__(kMaxThreads) swiglu_quantize_rows_kernel(const float* gate, const float* up, int64_t cols,
                                                                          unsigned parts, int64_t chunk, float* out,
                                                                          uint8_t* codes, float* row_scales,
                                                                          ProductInput input) {
  __shared__ float shared[32];
  await_earlier_kernels();
  const RowSpan span = row_span<kCluster>(cols / 4, parts, chunk);
  const int64_t offset = span.row * cols;
  const int64_t in_offset = kScaled ? span.row * input.row_stride : offset;
  const float row_scale = kScaled ? input.row_scales[span.row] : 1.0f;
  const float4* g = reinterpret_cast<const float4*>(gate + in_offset);
  const float4* u = reinterpret_cast<const float4*>(up + in_offset);
  float4* y = reinterpret_cast<float4*>(out + offset);
  const float4 zero = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
  float4 value[V], up_value[V];
#pragma unroll
  for (int j = 0; j < V; ++j) {
    value[j] = span.holds(j) ? load_input<kScaled>(g, input.col_scales, row_scale, span.index(j)) : zero;
    up_value[j] = span.holds(j) ? load_input<kScaled>(u, input.col_scales2, row_scale, span.index(j)) : zero;
  }
  const auto swiglu = [](float g, float u) { return g / (1.0f + __expf(-g)) * u; };
  float amax = 0.0f;
#pragma unroll
  for (int j = 0; j < V; ++j) {
    value[j] = make_float4(swiglu(value[j].x, up_value[j].x), swiglu(value[j].y, up_value[j].y),
                           swiglu(value[j].z, up_value[j].z), swiglu(value[j].w, up_value[j].w));
    if (span.holds(j)) {
      y[span.index(j)] = value[j];
      amax = amax4(amax, value[j]);
    }
  }
  encode_row<V, kCluster>(value, span, amax, 0.0f, shared, parts, codes + offset, row_scales + span.row);
}

// With kScaled, delta is a GEMM's unscaled product (ProductInput: row stride = cols).
template <int V, bool kCluster, bool kScaled>
__global__ void __launch_bounds__(kMaxThreads) add_rmsnorm_rows_kernel(float* residual, const float* delta, const float* weight,
                                                                      float eps, int64_t cols, unsigned parts, int64_t chunk,
                                                                      float* out, uint8_t* codes, float* row_scales,
                                                                      ProductInput input) {
  __shared__ float shared[32];
  await_earlier_kernels();
  const RowSpan span = row_span<kCluster>(cols / 4, parts, chunk);
  const int64_t offset = span.row * cols;
  float4* x = reinterpret_cast<float4*>(residual + offset);
  const float4* d = delta ? reinterpret_cast<const float4*>(delta + offset) : nullptr;
  const float4* w = reinterpret_cast<const float4*>(weight);
  const float row_scale = kScaled ? input.row_scales[span.row] : 1.0f;
  const float4 zero = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
  float4 value[V], added[V], scale[V];
#pragma unroll
  for (int j = 0; j < V; ++j) {
    value[j] = span.holds(j) ? x[span.index(j)] : zero;
    added[j] = span.holds(j) && d ? load_input<kScaled>(d, input.col_scales, row_scale, span.index(j)) : zero;
    scale[j] = span.holds(j) ? w[span.index(j)] : zero;
  }
  float sum = 0.0f;
#pragma unroll
  for (int j = 0; j < V; ++j) {
    if (d) {
      value[j] = make_float4(value[j].x + added[j].x, value[j].y + added[j].y, value[j].z + added[j].z, value[j].w + added[j].w);
      if (span.holds(j)) x[span.index(j)] = value[j];
    }
    sum += value[j].x * value[j].x + value[j].y * value[j].y + value[j].z * value[j].z + value[j].w * value[j].w;
  }
  const float inv_rms = rsqrtf(row_reduce<kCluster>(sum, false, shared, parts) / static_cast<float>(cols) + eps);
  float4* y = reinterpret_cast<float4*>(out + offset);
  float amax = 0.0f;
#pragma unroll
  for (int j = 0; j < V; ++j) {
    value[j] = make_float4(value[j].x * inv_rms * scale[j].x, value[j].y * inv_rms * scale[j].y,
                           value[j].z * inv_rms * scale[j].z, value[j].w * inv_rms * scale[j].w);
    if (span.holds(j)) {
      y[span.index(j)] = value[j];
      amax = amax4(amax, value[j]);
    }
  }
  if (codes) encode_row<V, kCluster>(value, span, amax, 0.0f, shared, parts, codes + offset, row_scales + span.row);
}

template <int V, bool kCluster>
__global__ void __launch_bounds__(kMaxThreads) quantize_rows_kernel(const float* x, int64_t cols, unsigned parts, int64_t chunk,
                                                                   float static_scale, uint8_t* codes, float* row_scales) {
  __shared__ float shared[32];
  await_earlier_kernels();
  const RowSpan span = row_span<kCluster>(cols / 4, parts, chunk);
  const int64_t offset = span.row * cols;
  const float4* row = reinterpret_cast<const float4*>(x + offset);
  float4 value[V];
  float amax = 0.0f;
#pragma unroll
  for (int j = 0; j < V; ++j) value[j] = span.holds(j) ? row[span.index(j)] : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
#pragma unroll
  for (int j = 0; j < V; ++j)
    if (span.holds(j)) amax = amax4(amax, value[j]);
  encode_row<V, kCluster>(value, span, amax, static_scale, shared, parts, codes + offset, row_scales + span.row);
}

enum class RowKernels { off, one_block_per_row, clusters };

RowKernels row_kernels_mode() {
  static const RowKernels mode = [] {
    const char* value = std::getenv("OCTET_CUDA_ROW_KERNELS");
    if (value != nullptr && std::string_view(value) == "0") return RowKernels::off;
    if (value != nullptr && std::string_view(value) == "noclusters") return RowKernels::one_block_per_row;
    return RowKernels::clusters;
  }();
  return mode;
}

bool device_has_clusters() {
  int device = 0, clusters = 0;
  OCTET_CUDA_CHECK(cudaGetDevice(&device));
  OCTET_CUDA_CHECK(cudaDeviceGetAttribute(&clusters, cudaDevAttrClusterLaunch, device));
  return clusters != 0;
}

// How a batch of rows × cols floats is laid out on blocks: `parts` blocks per row (a cluster when
// > 1), each holding `chunk` float4s with `threads` threads of vectors_per_thread float4s.
// vectors_per_thread 0 where a row does not fit (cols not a multiple of 4, or a span of more than
// max_vectors · 1024 float4s).
struct RowPlan {
  unsigned threads = 0;
  int vectors_per_thread = 0;
  unsigned parts = 1;
  int64_t chunk = 0;
};

constexpr unsigned kMaxParts = 8;              // the portable cluster size
constexpr int64_t kBlockBudget = 2 * 132;      // blocks worth splitting rows into (two per SM of an H100/H200)
constexpr int64_t kMinSpanVectors = 256;       // 4 KiB of floats: below that a block is mostly latency

RowPlan plan_row(int64_t rows, int64_t cols, int max_vectors) {
  if (row_kernels_mode() == RowKernels::off || rows <= 0 || cols <= 0 || cols % 4 != 0) return {};
  const int64_t vectors = cols / 4;
  RowPlan plan;
  if (row_kernels_mode() == RowKernels::clusters && device_has_clusters())
    while (plan.parts < kMaxParts && rows * plan.parts * 2 <= kBlockBudget &&
           vectors >= static_cast<int64_t>(plan.parts) * 2 * kMinSpanVectors)
      plan.parts *= 2;
  plan.chunk = (vectors + plan.parts - 1) / plan.parts;
  if (plan.chunk <= kMaxThreads) {
    plan.threads = static_cast<unsigned>((plan.chunk + 31) / 32 * 32);
    plan.vectors_per_thread = 1;
    return plan;
  }
  plan.threads = kMaxThreads;
  for (int v = 2; v <= max_vectors; v *= 2)
    if (plan.chunk <= int64_t{v} * kMaxThreads) {
      plan.vectors_per_thread = v;
      return plan;
    }
  return {};
}

bool aligned(const void* p, uintptr_t bytes) { return reinterpret_cast<uintptr_t>(p) % bytes == 0; }

// Launches kernel<V, kCluster> for the plan (V at most MaxV: plan_row(…, MaxV)), as clusters of
// plan.parts blocks when parts > 1.
template <int MaxV, typename Kernels, typename... Args>
void launch_planned(const RowPlan& plan, int64_t rows, cudaStream_t s, Kernels kernels, Args... args) {
  const LaunchShape shape{dim3(static_cast<unsigned>(rows) * plan.parts), dim3(plan.threads), 0, plan.parts};
  const auto run = [&](auto v) {
    constexpr int kV = decltype(v)::value;
    if (plan.parts > 1) launch_kernel(kernels.template get<kV, true>(), shape, s, args...);
    else launch_kernel(kernels.template get<kV, false>(), shape, s, args...);
  };
  switch (plan.vectors_per_thread) {
    case 1: run(std::integral_constant<int, 1>{}); break;
    case 2: run(std::integral_constant<int, 2>{}); break;
    case 4: run(std::integral_constant<int, 4>{}); break;
    default:
      if constexpr (MaxV >= 8) run(std::integral_constant<int, 8>{});
      break;
  }
  OCTET_CUDA_LAUNCH_CHECK();
}

// The instantiations of each kernel, for launch_planned.
template <bool kScaled>
struct SwigluKernels {
  template <int V, bool C>
  static auto get() { return &swiglu_quantize_rows_kernel<V, C, kScaled>; }
};
template <bool kScaled>
struct RmsnormKernels {
  template <int V, bool C>
  static auto get() { return &add_rmsnorm_rows_kernel<V, C, kScaled>; }
};
struct QuantizeKernels {
  template <int V, bool C>
  static auto get() { return &quantize_rows_kernel<V, C>; }
};

}  // namespace

bool try_launch_swiglu_quantize_in_registers(const float* gate, const float* up, int64_t rows, int64_t cols, float* out,
                                             uint8_t* codes, float* row_scales, cudaStream_t s) {
  // 8 float4s per thread (spans of 16385–32768 floats: Llama-3.3-70B's 28672 in one block) spill
  // ~100 bytes per thread to local memory under the 64-register bound of 1024-thread blocks; 4 do not.
  const RowPlan plan = plan_row(rows, cols, 8);
  if (plan.vectors_per_thread == 0 || !aligned(gate, 16) || !aligned(up, 16) || !aligned(out, 16) || !aligned(codes, 4))
    return false;
  launch_planned<8>(plan, rows, s, SwigluKernels<false>{}, gate, up, cols, plan.parts, plan.chunk, out, codes, row_scales,
                    ProductInput{});
  return true;
}

bool swiglu_quantize_product_fits(const float* product, int64_t product_cols, int64_t gate_col, int64_t up_col,
                                  const float* product_col_scales, int64_t rows, int64_t cols, const float* out,
                                  const uint8_t* codes) {
  // At most 4 float4s a thread: the column scales' loads double the registers of the inputs.
  return plan_row(rows, cols, 4).vectors_per_thread != 0 && product_cols % 4 == 0 && aligned(product + gate_col, 16) &&
         aligned(product + up_col, 16) && aligned(product_col_scales + gate_col, 16) &&
         aligned(product_col_scales + up_col, 16) && aligned(out, 16) && aligned(codes, 4);
}

bool try_launch_swiglu_quantize_product_in_registers(const float* product, int64_t product_cols, int64_t gate_col,
                                                     int64_t up_col, const float* product_row_scales,
                                                     const float* product_col_scales, int64_t rows, int64_t cols,
                                                     float* out, uint8_t* codes, float* row_scales, cudaStream_t s) {
  if (!swiglu_quantize_product_fits(product, product_cols, gate_col, up_col, product_col_scales, rows, cols, out, codes))
    return false;
  const RowPlan plan = plan_row(rows, cols, 4);
  const float* gate = product + gate_col;
  const float* up = product + up_col;
  const ProductInput input{product_cols, product_row_scales, product_col_scales + gate_col, product_col_scales + up_col};
  launch_planned<4>(plan, rows, s, SwigluKernels<true>{}, gate, up, cols, plan.parts, plan.chunk, out, codes, row_scales,
                    input);
  return true;
}

bool try_launch_add_rmsnorm_quantize_in_registers(float* residual, const float* delta, const float* weight, float eps,
                                                  int64_t rows, int64_t cols, float* out, uint8_t* codes,
                                                  float* row_scales, cudaStream_t s) {
  const RowPlan plan = plan_row(rows, cols, 4);
  if (plan.vectors_per_thread == 0 || !aligned(residual, 16) || !aligned(delta, 16) || !aligned(weight, 16) ||
      !aligned(out, 16) || !aligned(codes, 4))
    return false;
  launch_planned<4>(plan, rows, s, RmsnormKernels<false>{}, residual, delta, weight, eps, cols, plan.parts, plan.chunk, out,
                    codes, row_scales, ProductInput{});
  return true;
}

bool add_product_rmsnorm_quantize_fits(const float* residual, const float* product, const float* product_col_scales,
                                       const float* weight, int64_t rows, int64_t cols, const float* out,
                                       const uint8_t* codes) {
  return plan_row(rows, cols, 4).vectors_per_thread != 0 && aligned(residual, 16) && aligned(product, 16) &&
         aligned(product_col_scales, 16) && aligned(weight, 16) && aligned(out, 16) && aligned(codes, 4);
}

bool try_launch_add_product_rmsnorm_quantize_in_registers(float* residual, const float* product,
                                                          const float* product_row_scales, const float* product_col_scales,
                                                          const float* weight, float eps, int64_t rows, int64_t cols,
                                                          float* out, uint8_t* codes, float* row_scales, cudaStream_t s) {
  if (!add_product_rmsnorm_quantize_fits(residual, product, product_col_scales, weight, rows, cols, out, codes))
    return false;
  const RowPlan plan = plan_row(rows, cols, 4);
  const ProductInput input{cols, product_row_scales, product_col_scales, nullptr};
  launch_planned<4>(plan, rows, s, RmsnormKernels<true>{}, residual, product, weight, eps, cols, plan.parts, plan.chunk, out,
                    codes, row_scales, input);
  return true;
}

bool try_launch_quantize_rows_e4m3_in_registers(const float* x, int64_t rows, int64_t cols, float static_scale,
                                                uint8_t* codes, float* row_scales, cudaStream_t s) {
  const RowPlan plan = plan_row(rows, cols, 8);
  if (plan.vectors_per_thread == 0 || !aligned(x, 16) || !aligned(codes, 4)) return false;
  launch_planned<8>(plan, rows, s, QuantizeKernels{}, x, cols, plan.parts, plan.chunk, static_scale, codes, row_scales);
  return true;
}

}  // namespace octet::backend::cuda
