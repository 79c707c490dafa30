// Sampling on the device: one block per logits row, only the token ids leave the GPU.
//
// Every kept set of the pipeline (top-k, top-p, min-p) is a prefix of one total order of the row —
// value descending, then index ascending, as engine::Sampler sorts — so each cut is a threshold on a
// 64-bit key (order-preserving float bits << 32 | ~index), found by a radix search over the key's
// bytes (a histogram of the remaining candidates per pass) instead of a sort. Probabilities are
// exp(x - max) in 2^-40 fixed point so that sums are exact integers: the same row, seed and step
// give the same token whatever order the threads add in.
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/kernels.h"
#include "backend/cuda/launch.cuh"
#include "common/counter_rng.h"

#include <cstdint>

namespace octet::backend::cuda {
namespace {

constexpr int kThreads = 1024;
constexpr int kWarps = kThreads / 32;
constexpr int kBins = 256;
constexpr float kFixedOne = 1099511627776.0f;        // 2^40: a weight of 1 (the row's best token)
constexpr uint64_t kFiniteKeys = 0x0080000000000000ull;  // keys of finite values and +inf (not -inf)

__device__ float processed(const float* row, int64_t i, float temperature, bool greedy) {
  const float logit = row[i];
  if (logit != logit) return -__int_as_float(0x7f800000);  // NaN counts as -inf
  return greedy ? logit : logit / temperature;
}

__device__ uint64_t order_key(float x, int64_t i) {
  const uint32_t bits = __float_as_uint(x);
  const uint32_t ordered = (bits & 0x80000000u) ? ~bits : (bits | 0x80000000u);
  return (static_cast<uint64_t>(ordered) << 32) | (0xFFFFFFFFu - static_cast<uint32_t>(i));
}

__device__ uint64_t fixed_weight(float x, float max_x) {
  return static_cast<uint64_t>(expf(x - max_x) * kFixedOne);
}

struct Best {
  float value;
  int64_t index;
};
// The larger value wins; the lower index on ties (engine::Sampler's argmax).
__device__ Best better(Best a, Best b) {
  if (b.value > a.value || (b.value == a.value && b.index < a.index)) return b;
  return a;
}

struct Shared {
  uint32_t counts[kBins];
  unsigned long long masses[kBins];
  Best warp_best[kWarps];
  unsigned long long warp_sums[kWarps];
  uint64_t threshold;
  uint64_t need;
  int done;
  int64_t token;
};

__device__ unsigned long long block_sum(unsigned long long value, Shared& sh) {
  for (int offset = 16; offset > 0; offset /= 2) value += __shfl_xor_sync(0xffffffffu, value, offset);
  __syncthreads();
  if (threadIdx.x % 32 == 0) sh.warp_sums[threadIdx.x / 32] = value;
  __syncthreads();
  unsigned long long total = 0;
  for (int w = 0; w < kWarps; ++w) total += sh.warp_sums[w];
  __syncthreads();
  return total;
}

// The threshold T >= lower such that {key >= T} is the shortest prefix of the candidates
// {key >= lower} holding `need` elements (by_mass false; need < their count) or at least `need` of
// their fixed-point mass (by_mass true; need <= their mass).
__device__ uint64_t select_prefix(const float* row, int64_t vocab, float temperature, float max_x, uint64_t lower,
                                  bool by_mass, uint64_t need, Shared& sh) {
  uint64_t prefix = 0;
  if (threadIdx.x == 0) {
    sh.need = need;
    sh.done = 0;
  }
  for (int shift = 56; shift >= 0; shift -= 8) {
    for (int b = threadIdx.x; b < kBins; b += kThreads) {
      sh.counts[b] = 0;
      sh.masses[b] = 0;
    }
    __syncthreads();
    const uint64_t high_mask = shift == 56 ? 0 : (~0ull << (shift + 8));
    for (int64_t i = threadIdx.x; i < vocab; i += kThreads) {
      const float x = processed(row, i, temperature, false);
      const uint64_t key = order_key(x, i);
      if (key < lower || (key & high_mask) != prefix) continue;
      const uint32_t bin = static_cast<uint32_t>(key >> shift) & 0xFFu;
      atomicAdd(&sh.counts[bin], 1u);
      if (by_mass) {
        const uint64_t w = fixed_weight(x, max_x);
        if (w) atomicAdd(&sh.masses[bin], static_cast<unsigned long long>(w));
      }
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      uint64_t above = 0, remaining = sh.need;
      int bin = 0;
      for (int b = kBins - 1; b >= 0; --b) {
        const uint64_t amount = by_mass ? sh.masses[b] : sh.counts[b];
        if (above + amount >= remaining || b == 0) {
          bin = b;
          break;
        }
        above += amount;
      }
      remaining -= above;
      const uint64_t chosen = prefix | (static_cast<uint64_t>(bin) << shift);
      // The whole bin is the prefix's end when the count is met exactly or the bin is one element.
      const bool whole_bin = by_mass ? sh.counts[bin] <= 1 : sh.counts[bin] == remaining;
      sh.threshold = chosen;
      sh.need = remaining;
      sh.done = whole_bin || shift == 0;
    }
    __syncthreads();
    prefix = sh.threshold;
    if (sh.done) break;
    __syncthreads();
  }
  return prefix > lower ? prefix : lower;
}

__global__ void __launch_bounds__(kThreads) sample_rows_kernel(const float* logits, int64_t vocab, const SampleRowSpec* specs, int32_t* tokens_out) {
  await_earlier_kernels();
  __shared__ Shared sh;
  const SampleRowSpec spec = specs[blockIdx.x];
  const float* row = logits + spec.row * vocab;
  const bool greedy = !(spec.temperature > 0.0f);

  // Pass 1: argmax of the processed row and how many of its values are above -inf.
  Best best{-__int_as_float(0x7f800000), threadIdx.x < vocab ? static_cast<int64_t>(threadIdx.x) : vocab};
  unsigned long long finite = 0;
  for (int64_t i = threadIdx.x; i < vocab; i += kThreads) {
    const float x = processed(row, i, spec.temperature, greedy);
    if (x > best.value) best = Best{x, i};
    finite += x > -__int_as_float(0x7f800000);
  }
  for (int offset = 16; offset > 0; offset /= 2) {
    Best other{__shfl_xor_sync(0xffffffffu, best.value, offset), __shfl_xor_sync(0xffffffffu, best.index, offset)};
    best = better(best, other);
  }
  if (threadIdx.x % 32 == 0) sh.warp_best[threadIdx.x / 32] = best;
  __syncthreads();
  best = sh.warp_best[0];
  for (int w = 1; w < kWarps; ++w) best = better(best, sh.warp_best[w]);
  const unsigned long long finite_count = block_sum(finite, sh);
  const float max_x = best.value;
  // Greedy, nothing finite to draw from, or +inf holding all the mass: the argmax (as the CPU).
  if (greedy || finite_count == 0 || isinf(max_x)) {
    if (threadIdx.x == 0) tokens_out[blockIdx.x] = static_cast<int32_t>(best.index);
    return;
  }

  uint64_t lower = kFiniteKeys;
  if (spec.top_k > 0 && static_cast<unsigned long long>(spec.top_k) < finite_count)
    lower = select_prefix(row, vocab, spec.temperature, max_x, lower, false, static_cast<uint64_t>(spec.top_k), sh);
  if (spec.top_p < 1.0f) {
    unsigned long long mass = 0;
    for (int64_t i = threadIdx.x; i < vocab; i += kThreads) {
      const float x = processed(row, i, spec.temperature, false);
      if (order_key(x, i) >= lower) mass += fixed_weight(x, max_x);
    }
    const unsigned long long total = block_sum(mass, sh);
    double target = static_cast<double>(spec.top_p) * static_cast<double>(total);
    uint64_t need = target < 1.0 ? 1 : static_cast<uint64_t>(target);
    if (need > total) need = total;
    lower = select_prefix(row, vocab, spec.temperature, max_x, lower, true, need, sh);
  }
  const float min_weight = spec.min_p > 0.0f ? fminf(spec.min_p, 1.0f) : 0.0f;

  // Inverse CDF in index order: each thread owns a contiguous chunk; an exclusive scan of the
  // chunks' kept mass finds the chunk holding the target, whose thread walks it.
  const int64_t chunk = (vocab + kThreads - 1) / kThreads;
  const int64_t begin = static_cast<int64_t>(threadIdx.x) * chunk;
  const int64_t end = begin + chunk < vocab ? begin + chunk : vocab;
  auto kept_weight = [&](int64_t i) -> uint64_t {
    const float x = processed(row, i, spec.temperature, false);
    if (order_key(x, i) < lower) return 0;
    if (expf(x - max_x) < min_weight) return 0;
    return fixed_weight(x, max_x);
  };
  unsigned long long own = 0;
  for (int64_t i = begin; i < end; ++i) own += kept_weight(i);
  unsigned long long inclusive = own;
  for (int offset = 1; offset < 32; offset *= 2) {
    const unsigned long long from = __shfl_up_sync(0xffffffffu, inclusive, offset);
    if (threadIdx.x % 32 >= offset) inclusive += from;
  }
  __syncthreads();
  if (threadIdx.x % 32 == 31) sh.warp_sums[threadIdx.x / 32] = inclusive;
  if (threadIdx.x == 0) sh.token = best.index;
  __syncthreads();
  unsigned long long warp_offset = 0, total = 0;
  for (int w = 0; w < kWarps; ++w) {
    if (w < static_cast<int>(threadIdx.x / 32)) warp_offset += sh.warp_sums[w];
    total += sh.warp_sums[w];
  }
  const unsigned long long exclusive = warp_offset + inclusive - own;
  if (total > 0) {
    unsigned long long target = static_cast<unsigned long long>(counter_uniform(spec.seed, spec.step) * static_cast<double>(total));
    if (target >= total) target = total - 1;
    if (own > 0 && target >= exclusive && target < exclusive + own) {
      unsigned long long cumulative = exclusive;
      for (int64_t i = begin; i < end; ++i) {
        cumulative += kept_weight(i);
        if (target < cumulative) {
          sh.token = i;
          break;
        }
      }
    }
  }
  __syncthreads();
  if (threadIdx.x == 0) tokens_out[blockIdx.x] = static_cast<int32_t>(sh.token);
}

}  // namespace

void launch_sample_rows(const float* logits, int64_t vocab, const SampleRowSpec* specs, int64_t count, int32_t* tokens_out,
                        cudaStream_t s) {
  if (count == 0) return;
  launch_kernel(sample_rows_kernel, LaunchShape{dim3(static_cast<unsigned>(count)), dim3(kThreads)}, s,
                logits, vocab, specs,
                tokens_out);
  OCTET_CUDA_CHECK(cudaGetLastError());
}

}  // namespace octet::backend::cuda
