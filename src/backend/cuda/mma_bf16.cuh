#pragma once
// The 16-bit tensor-core steps of the grouped decode attention (attention_grouped.cu): mma.sync
// m16n8k16 with BF16 or FP16 inputs and float32 accumulators, and the packing of float pairs into
// such operands. Fragment
// layouts of the PTX ISA ("Matrix Fragments for mma.m16n8k16 with floating point type"),
// g = lane / 4, t = lane % 4:
//   A (16×16, row-major): a[0] = (g, 2t..2t+1), a[1] = (g+8, 2t..), a[2] = (g, 2t+8..), a[3] = (g+8, 2t+8..)
//   B (16×8, k × n):      b0 = (k 2t..2t+1, n g), b1 = (k 2t+8..2t+9, n g)
//   C/D (16×8):           c[0..1] = (g, 2t..2t+1), c[2..3] = (g+8, 2t..2t+1)
// The lower index of each pair sits in the low 16 bits.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

namespace octet::backend::cuda {

__device__ __forceinline__ void mma_bf16_step(float c[4], const uint32_t a[4], uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__device__ __forceinline__ uint32_t bf16_pair(float low, float high) {
  const __nv_bfloat162 v = __floats2bfloat162_rn(low, high);
  return *reinterpret_cast<const uint32_t*>(&v);
}

// (low, high) as two BF16 pairs whose sum carries 16 significant bits: `head` rounded to BF16, `tail`
// the rounded remainder (relative error <= 2^-17 of the float, against 2^-9 for BF16 alone). Two MMAs,
// one per part, give float32-grade products with operands that are exact in BF16 (FP8 and BF16 codes).
__device__ __forceinline__ void split_bf16_pair(float low, float high, uint32_t& head, uint32_t& tail) {
  const __nv_bfloat162 rounded = __floats2bfloat162_rn(low, high);
  head = *reinterpret_cast<const uint32_t*>(&rounded);
  tail = bf16_pair(low - __low2float(rounded), high - __high2float(rounded));
}

// The same step on FP16 inputs: FP8 codes (E4M3 and E5M2) are exact in FP16 and widen to it in one
// instruction a pair, where BF16 takes four.
__device__ __forceinline__ void mma_f16_step(float c[4], const uint32_t a[4], uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// (low, high) as two FP16 pairs, head + tail, as split_bf16_pair does: 22 significant bits while
// both parts are normal FP16 numbers, so callers scale their values into FP16's range first (|x| up
// to 2^15 and, for full precision, at least 2^-3).
__device__ __forceinline__ void split_f16_pair(float low, float high, uint32_t& head, uint32_t& tail) {
  const __half2 rounded = __floats2half2_rn(low, high);
  head = *reinterpret_cast<const uint32_t*>(&rounded);
  const float2 back = __half22float2(rounded);
  const __half2 rest = __floats2half2_rn(low - back.x, high - back.y);
  tail = *reinterpret_cast<const uint32_t*>(&rest);
}

}  // namespace octet::backend::cuda
