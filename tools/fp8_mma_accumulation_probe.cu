// How exactly mma.sync m16n8k32 E4M3 × E4M3 → float32 adds its 32 products (an experiment for the decode
// attention's q·Kᵀ on E4M3 MMAs; docs/PERFORMANCE.md version 16). Every product of two E4M3 values is exact in
// float32, so any error is the tensor core's summation: one warp runs single MMAs on chosen operands and the host
// compares each output with the exact sum (double). Cases:
//   spread  A row of one large product (2^8 · 2^6) and 31 small ones (2^-e each, e = 0 … 20): up to how many bits
//           below the largest product the small ones survive (float32 would keep 2^-9 · 2^14 = 2^5 … all of them
//           until 2^-10 below its 24 bits);
//   random  E4M3 codes of N(0, 1) · 2^u (u uniform in [-6, 6]): the largest error over 4,096 rows, in units of the
//           sum of |products| (float32 order-of-addition error is ~2^-24 · 32 of it);
//   chain   the same rows, the accumulator C = the large sum of another MMA: whether C enters at full precision.
// The FP16 m16n8k16 step (the kernel's present score MMA) runs the random case too, for comparison.
// On sm_90 the two agree because they are the same: ptxas lowers the E4M3 mma.sync to F2FP conversions of both
// operands and two HMMA.16816 (cuobjdump -sass; only wgmma runs FP8 natively there), so this measures FP16 MMAs.
//   nvcc -O3 -arch=sm_90a -o fp8_mma_accumulation_probe tools/fp8_mma_accumulation_probe.cu && ./fp8_mma_accumulation_probe
#include <cuda_fp16.h>
#include <cuda_fp8.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <random>
#include <vector>

// A: 16 rows × 32 k (row-major bytes), B: 32 k × 8 columns (column-major bytes: column n's 32 k contiguous), C, D:
// 16 × 8 floats. The fragment layouts of the PTX ISA for m16n8k32 .e4m3 (g = lane / 4, t = lane % 4).
__global__ void mma_e4m3_once(const uint8_t* a, const uint8_t* b, const float* c, float* d) {
  const int lane = threadIdx.x, g = lane / 4, t = lane % 4;
  auto word = [](const uint8_t* p) { return *reinterpret_cast<const uint32_t*>(p); };
  const uint32_t a0 = word(a + g * 32 + 4 * t), a1 = word(a + (g + 8) * 32 + 4 * t);
  const uint32_t a2 = word(a + g * 32 + 16 + 4 * t), a3 = word(a + (g + 8) * 32 + 16 + 4 * t);
  const uint32_t b0 = word(b + g * 32 + 4 * t), b1 = word(b + g * 32 + 16 + 4 * t);
  float acc[4] = {c[g * 8 + 2 * t], c[g * 8 + 2 * t + 1], c[(g + 8) * 8 + 2 * t], c[(g + 8) * 8 + 2 * t + 1]};
  asm volatile(
      "mma.sync.aligned.m16n8k32.row.col.f32.e4m3.e4m3.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(acc[0]), "+f"(acc[1]), "+f"(acc[2]), "+f"(acc[3])
      : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
  d[g * 8 + 2 * t] = acc[0];
  d[g * 8 + 2 * t + 1] = acc[1];
  d[(g + 8) * 8 + 2 * t] = acc[2];
  d[(g + 8) * 8 + 2 * t + 1] = acc[3];
}

// The same product in FP16, k = 16: A 16 × 16 halves row-major, B 16 × 8 column-major.
__global__ void mma_f16_once(const __half* a, const __half* b, float* d) {
  const int lane = threadIdx.x, g = lane / 4, t = lane % 4;
  auto pair = [](const __half* p) { return *reinterpret_cast<const uint32_t*>(p); };
  const uint32_t a0 = pair(a + g * 16 + 2 * t), a1 = pair(a + (g + 8) * 16 + 2 * t);
  const uint32_t a2 = pair(a + g * 16 + 8 + 2 * t), a3 = pair(a + (g + 8) * 16 + 8 + 2 * t);
  const uint32_t b0 = pair(b + g * 16 + 2 * t), b1 = pair(b + g * 16 + 8 + 2 * t);
  float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(acc[0]), "+f"(acc[1]), "+f"(acc[2]), "+f"(acc[3])
      : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
  d[g * 8 + 2 * t] = acc[0];
  d[g * 8 + 2 * t + 1] = acc[1];
  d[(g + 8) * 8 + 2 * t] = acc[2];
  d[(g + 8) * 8 + 2 * t + 1] = acc[3];
}

namespace {

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) {
    std::printf("%s: %s\n", what, cudaGetErrorString(e));
    std::exit(1);
  }
}

uint8_t e4m3(float x) { return __nv_cvt_float_to_fp8(x, __NV_SATFINITE, __NV_E4M3); }
float from_e4m3(uint8_t code) {
  __half_raw raw = __nv_cvt_fp8_to_halfraw(code, __NV_E4M3);
  return __half2float(__half(raw));
}

// One MMA on the device: d = a·b + c.
std::vector<float> run_e4m3(const std::vector<uint8_t>& a, const std::vector<uint8_t>& b, const std::vector<float>& c) {
  uint8_t *da, *db;
  float *dc, *dd;
  check(cudaMalloc(&da, 512), "malloc");
  check(cudaMalloc(&db, 256), "malloc");
  check(cudaMalloc(&dc, 512), "malloc");
  check(cudaMalloc(&dd, 512), "malloc");
  check(cudaMemcpy(da, a.data(), 512, cudaMemcpyHostToDevice), "copy");
  check(cudaMemcpy(db, b.data(), 256, cudaMemcpyHostToDevice), "copy");
  check(cudaMemcpy(dc, c.data(), 512, cudaMemcpyHostToDevice), "copy");
  mma_e4m3_once<<<1, 32>>>(da, db, dc, dd);
  check(cudaDeviceSynchronize(), "mma_e4m3_once");
  std::vector<float> d(128);
  check(cudaMemcpy(d.data(), dd, 512, cudaMemcpyDeviceToHost), "copy");
  cudaFree(da), cudaFree(db), cudaFree(dc), cudaFree(dd);
  return d;
}

}  // namespace

int main() {
  std::mt19937_64 rng(20261202);
  // spread: row r has one product 2^14 and 31 products 2^-e (e = r + 0 … r + 4 over columns), B = 1.
  {
    std::printf("spread: one product 2^14 and 31 of 2^(14-s) each; exact sum vs device, per shift s\n");
    std::vector<uint8_t> b(256, e4m3(1.0f));
    for (int s = 6; s <= 30; s += 2) {  // from 6: 2^(14-4) = 1024 is past E4M3's 448
      std::vector<uint8_t> a(512);
      std::vector<float> c(128, 0.0f);
      const int small_exponent = 14 - s;  // the small product 2^(14 - s) = a · 1 with a = 2^(14-s): E4M3 reaches 2^-9
      if (small_exponent < -9) break;
      for (int r = 0; r < 16; ++r) {
        a[r * 32] = e4m3(256.0f);  // times b = 1: 2^8; B column 0 times 64 below
        for (int k = 1; k < 32; ++k) a[r * 32 + k] = e4m3(std::ldexp(1.0f, small_exponent));
      }
      std::vector<uint8_t> bb = b;
      for (int n = 0; n < 8; ++n) bb[n * 32] = e4m3(64.0f);  // the large product: 256 · 64 = 2^14
      const std::vector<float> d = run_e4m3(a, bb, c);
      const double exact = std::ldexp(1.0, 14) + 31.0 * std::ldexp(1.0, small_exponent);
      std::printf("  s = %2d: exact %.10g, device %.10g, lost %.3g of the small products' %.3g\n", s, exact, d[0],
                  exact - d[0], 31.0 * std::ldexp(1.0, small_exponent));
    }
  }
  // random rows, C = 0 and C = a large float.
  for (int chain = 0; chain < 2; ++chain) {
    double worst = 0.0, worst_f32 = 0.0;
    for (int trial = 0; trial < 256; ++trial) {
      std::vector<uint8_t> a(512), b(256);
      std::normal_distribution<float> normal(0.0f, 1.0f);
      std::uniform_int_distribution<int> spread(-6, 6);
      for (auto& x : a) x = e4m3(std::ldexp(normal(rng), spread(rng)));
      for (auto& x : b) x = e4m3(std::ldexp(normal(rng), spread(rng)));
      std::vector<float> c(128, 0.0f);
      if (chain) for (auto& x : c) x = std::ldexp(normal(rng), 10);
      const std::vector<float> d = run_e4m3(a, b, c);
      for (int m = 0; m < 16; ++m)
        for (int n = 0; n < 8; ++n) {
          double exact = c[m * 8 + n], magnitude = std::fabs(c[m * 8 + n]);
          float in_order = c[m * 8 + n];
          for (int k = 0; k < 32; ++k) {
            const double p = static_cast<double>(from_e4m3(a[m * 32 + k])) * from_e4m3(b[n * 32 + k]);
            exact += p;
            magnitude += std::fabs(p);
            in_order += static_cast<float>(p);
          }
          if (magnitude == 0.0) continue;
          worst = std::max(worst, std::fabs(d[m * 8 + n] - exact) / magnitude);
          worst_f32 = std::max(worst_f32, std::fabs(in_order - exact) / magnitude);
        }
    }
    std::printf("%s: largest |device - exact| / sum|terms| over 32,768 outputs: %.3g (2^%.1f); float32 in order: %.3g\n",
                chain ? "random, C = N(0, 2^10)" : "random, C = 0", worst, std::log2(worst), worst_f32);
  }
  // FP16 m16n8k16 on E4M3 values widened (what the kernel runs now), C = 0.
  {
    double worst = 0.0;
    __half *da, *db;
    float* dd;
    check(cudaMalloc(&da, 512), "malloc");
    check(cudaMalloc(&db, 256), "malloc");
    check(cudaMalloc(&dd, 512), "malloc");
    for (int trial = 0; trial < 256; ++trial) {
      std::vector<__half> a(256), b(128);
      std::vector<float> af(256), bf(128);
      std::normal_distribution<float> normal(0.0f, 1.0f);
      std::uniform_int_distribution<int> spread(-6, 6);
      for (int i = 0; i < 256; ++i) af[i] = from_e4m3(e4m3(std::ldexp(normal(rng), spread(rng)))), a[i] = __float2half(af[i]);
      for (int i = 0; i < 128; ++i) bf[i] = from_e4m3(e4m3(std::ldexp(normal(rng), spread(rng)))), b[i] = __float2half(bf[i]);
      check(cudaMemcpy(da, a.data(), 512, cudaMemcpyHostToDevice), "copy");
      check(cudaMemcpy(db, b.data(), 256, cudaMemcpyHostToDevice), "copy");
      mma_f16_once<<<1, 32>>>(da, db, dd);
      check(cudaDeviceSynchronize(), "mma_f16_once");
      std::vector<float> d(128);
      check(cudaMemcpy(d.data(), dd, 512, cudaMemcpyDeviceToHost), "copy");
      for (int m = 0; m < 16; ++m)
        for (int n = 0; n < 8; ++n) {
          double exact = 0.0, magnitude = 0.0;
          for (int k = 0; k < 16; ++k) {
            const double p = static_cast<double>(af[m * 16 + k]) * bf[n * 16 + k];
            exact += p;
            magnitude += std::fabs(p);
          }
          if (magnitude > 0.0) worst = std::max(worst, std::fabs(d[m * 8 + n] - exact) / magnitude);
        }
    }
    std::printf("FP16 m16n8k16, C = 0: largest |device - exact| / sum|terms|: %.3g (2^%.1f)\n", worst, std::log2(worst));
  }
  return 0;
}
