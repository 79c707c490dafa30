#pragma once
// The FP8 tensor-core step shared by the GEMV (gemv_fp8.cu) and the skinny GEMM
// (skinny_gemm_fp8.cu): mma.sync m16n8k32 E4M3 × E4M3 → float32, A = 16 weight rows, B = 8 tokens.
//
// Both kernels permute k identically in A and B (the order over k does not change the sum): lane
// (group g = lane / 4, thread t = lane % 4) holds 16 contiguous bytes at t·16 of a 64-byte k step
// of weight row g (`lo`), row g + 8 (`hi`) and token g (`xv`); mma_step feeds them to two MMAs as
// logical columns {t·4 … t·4+3, 16+t·4 …} of each. Accumulators: c0, c1 are (row g, tokens 2t,
// 2t+1), c2, c3 the same for row g + 8.
#include <cstdint>

namespace octet::backend::cuda {

__device__ __forceinline__ void mma_e4m3(float c[4], uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3, uint32_t b0,
                                         uint32_t b1) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 890
  asm volatile(
      "mma.sync.aligned.m16n8k32.row.col.f32.e4m3.e4m3.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
#endif
}

// c += the 64-byte k step of rows g, g + 8 (lo, hi) times token g (xv), in the layout above.
__device__ __forceinline__ void mma_step(float c[4], const uint4& lo, const uint4& hi, const uint4& xv) {
  mma_e4m3(c, lo.x, hi.x, lo.y, hi.y, xv.x, xv.y);
  mma_e4m3(c, lo.z, hi.z, lo.w, hi.w, xv.z, xv.w);
}

}  // namespace octet::backend::cuda
