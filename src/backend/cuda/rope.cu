// Rotary position embedding in place, rotate-half (NeoX) pairing as in Hugging Face's Llama:
// (x[i], x[i + half]) → (x[i]·cos − x[i+half]·sin, x[i+half]·cos + x[i]·sin), angle = float(position) ·
// inverse_frequencies[i] computed in float32 like the CPU path and the HF reference. Reads and writes
// 4 bytes per element once (8·tokens·heads·head_dim bytes); one sincos per (token, i), shared by all
// heads of the token.
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/kernels.h"

#include <algorithm>

namespace octet::backend::cuda {
namespace {

// One block per token; thread i handles pair i of every head.
__global__ void rope_kernel(float* __restrict__ x, int64_t heads, int64_t head_dim, const int64_t* __restrict__ positions,
                            const float* __restrict__ inverse_frequencies) {
  const int64_t token = blockIdx.x, half = head_dim / 2;
  const float position = static_cast<float>(positions[token]);
  float* row = x + token * heads * head_dim;
  for (int64_t i = threadIdx.x; i < half; i += blockDim.x) {
    float sine, cosine;
    sincosf(position * inverse_frequencies[i], &sine, &cosine);  // accurate sincosf: no fast-math here
    for (int64_t h = 0; h < heads; ++h) {
      float* head = row + h * head_dim;
      const float a = head[i], b = head[i + half];
      head[i] = a * cosine - b * sine;
      head[i + half] = b * cosine + a * sine;
    }
  }
}

}  // namespace

void launch_rope(float* x, int64_t tokens, int64_t heads, int64_t head_dim, const int64_t* positions,
                 const float* inverse_frequencies, cudaStream_t s) {
  if (tokens == 0 || heads == 0) return;
  if (head_dim % 2 != 0) fail("rope: head_dim {} is odd", head_dim);
  if (tokens > 0x7FFFFFFF) fail("rope: {} tokens exceed one launch", tokens);
  const int64_t half = head_dim / 2;
  const unsigned threads = static_cast<unsigned>(std::min<int64_t>(std::max<int64_t>((half + 31) / 32 * 32, 32), 256));
  rope_kernel<<<static_cast<unsigned>(tokens), threads, 0, s>>>(x, heads, head_dim, positions, inverse_frequencies);
  OCTET_CUDA_LAUNCH_CHECK();
}

}  // namespace octet::backend::cuda
