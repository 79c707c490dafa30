// The CUDA backend's kernels and ops against the CPU backend (itself checked against slow references) on
// fresh random inputs, odd shapes and poisoned outputs; whole model steps are in cuda_model_steps_test.cpp.
// Skips, saying so, where no GPU can be used.
#include "backend/backend.h"
#include "backend/cpu/cpu_tensors.h"
#include "backend/device.h"
#include "support/cuda_vs_cpu.h"
#include "support/error_text.h"
#include "support/random.h"
#include "support/rope_frequencies.h"
#include "support/scoped_environment.h"
#include "support/token_segments.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <random>
#include <string>

namespace octet::backend {
namespace {

TEST_F(CudaVsCpu, LinearAllFormatsAndShapes) {
  struct Shape { int64_t rows, in, out; };
  // k a multiple of 64 and ≤ 8 rows: tensor-core GEMV (16 rows with OCTET_CUDA_GEMV_MAX_ROWS=16,
  // the second pass); k = 1040 (16 · 65) and ≤ 8 rows: CUDA-core GEMV; k = 1000 or 40: the plain
  // fallback; else cuBLASLt.
  const Shape shapes[] = {{1, 576, 192}, {3, 1000, 257}, {8, 1024, 513}, {17, 64, 33}, {64, 512, 384}, {5, 40, 9},
                          {2, 1040, 77}, {7, 4096, 1030}, {4, 64, 15}, {13, 1088, 100}, {40, 1024, 257},
                          {65, 512, 384}, {12, 1040, 50}};
  for (const char* max_rows : {"8", "16"})
  for (LinearFormat format : {LinearFormat::fp8, LinearFormat::bf16, LinearFormat::f32}) {
    const testing::ScopedEnvironment gemv_rows("OCTET_CUDA_GEMV_MAX_ROWS", max_rows);
    // FP8 on tensor cores (cuBLASLt above the GEMV's rows, the mma.sync GEMV for k % 64 == 0) accumulates
    // narrower than float32 (about 1e-4 relative); the CUDA-core GEMV and the CPU in float32.
    const double tolerance = format == LinearFormat::bf16 ? 1e-3 : format == LinearFormat::fp8 ? 1e-3 : 1e-5;
    for (Shape s : shapes) {
      auto x = testing::random_normal(rng_, static_cast<size_t>(s.rows * s.in));
      auto w = testing::random_normal(rng_, static_cast<size_t>(s.out * s.in), 0.05f);
      auto wc = cpu_->make_linear(w.data(), s.out, s.in, LinearSpec{format, 0.0f});
      auto wg = gpu_->make_linear(w.data(), s.out, s.in, LinearSpec{format, 0.0f});
      Pair in = pair(s.rows, s.in, x), out = poisoned(s.rows, s.out);
      cpu_->linear(*in.cpu, *wc, *out.cpu);
      gpu_->linear(*in.gpu, *wg, *out.gpu);
      EXPECT_LT(error(out), tolerance) << "format " << int(format) << " rows " << s.rows << " in " << s.in << " out " << s.out
                                       << " GEMV up to " << max_rows << " rows";
    }
  }
}

// The GEMV's bounds, read at each linear, refuse a value they cannot use, naming the variable.
TEST_F(CudaVsCpu, BadGemvBoundsAreRefusedByName) {
  auto x = testing::random_normal(rng_, 2 * 64);
  auto w = testing::random_normal(rng_, 16 * 64, 0.05f);
  auto wg = gpu_->make_linear(w.data(), 16, 64, LinearSpec{});
  Pair in = pair(2, 64, x), out = poisoned(2, 16);
  for (const char* rows : {"17", "-1", "8x"}) {
    const testing::ScopedEnvironment bad("OCTET_CUDA_GEMV_MAX_ROWS", rows);
    testing::expect_parts(testing::error_of([&] { gpu_->linear(*in.gpu, *wg, *out.gpu); }),
                          {"OCTET_CUDA_GEMV_MAX_ROWS", rows, "from 0 to 16"});
  }
  for (const char* large : {"64", "64,0", "64,64,"}) {
    const testing::ScopedEnvironment bad("OCTET_CUDA_GEMV_LARGE", large);
    testing::expect_parts(testing::error_of([&] { gpu_->linear(*in.gpu, *wg, *out.gpu); }), {"OCTET_CUDA_GEMV_LARGE", large});
  }
}

// The tensor-core GEMV built for five resident blocks a SM (the default for 1–8 rows) and the compiler's
// build (OCTET_CUDA_TENSOR_GEMV_BLOCKS=1) do the same sums: the same bits, and
// within the FP8 1e-3 of the CPU. 2–8 rows (the tensor-core kernel from two rows) and one row of an
// 8192 × 8192 weight (one row goes there from n, k >= 8192), odd n.
TEST_F(CudaVsCpu, TensorCoreGemvBuiltForFiveBlocksASmGivesTheSameBits) {
  struct Shape { int64_t rows, in, out; };
  const testing::ScopedEnvironment gemv_for_large("OCTET_CUDA_GEMV_LARGE", "0");  // else 8192 × 8192 takes cuBLASLt
  for (Shape s : {Shape{2, 1024, 513}, Shape{5, 4096, 1030}, Shape{8, 2048, 777}, Shape{1, 8192, 8192}}) {
    auto x = testing::random_normal(rng_, static_cast<size_t>(s.rows * s.in));
    auto w = testing::random_normal(rng_, static_cast<size_t>(s.out * s.in), 0.05f);
    auto wc = cpu_->make_linear(w.data(), s.out, s.in, LinearSpec{LinearFormat::fp8, 0.0f});
    auto wg = gpu_->make_linear(w.data(), s.out, s.in, LinearSpec{LinearFormat::fp8, 0.0f});
    Pair in = pair(s.rows, s.in, x), out = poisoned(s.rows, s.out);
    cpu_->linear(*in.cpu, *wc, *out.cpu);
    {
      const testing::ScopedEnvironment blocks("OCTET_CUDA_TENSOR_GEMV_BLOCKS", "1");
      gpu_->linear(*in.gpu, *wg, *out.gpu);
    }
    const auto compiler_build = download(*out.gpu);
    Pair five = poisoned(s.rows, s.out);
    gpu_->linear(*in.gpu, *wg, *five.gpu);
    const auto five_blocks = download(*five.gpu);
    EXPECT_EQ(std::memcmp(compiler_build.data(), five_blocks.data(), compiler_build.size() * sizeof(float)), 0)
        << "rows " << s.rows << " in " << s.in << " out " << s.out;
    cpu_->linear(*in.cpu, *wc, *five.cpu);
    EXPECT_LT(error(five), 1e-3) << "rows " << s.rows << " in " << s.in << " out " << s.out;
  }
}

// Pre-quantized FP8 layers (a checkpoint's E4M3 codes with per-channel scales, a per-tensor scale
// repeated, and a static input scale) load bit for bit on both backends, so the two compute the same
// W8A8 product: the bound is the FP8 linears' 1e-3 (summation order only). Random codes over the
// whole finite E4M3 range (NaN codes 0x7F/0xFF excluded), odd shapes, poisoned outputs.
TEST_F(CudaVsCpu, PrequantizedFp8LinearMatchesCpu) {
  struct Shape { int64_t rows, in, out; };
  const Shape shapes[] = {{1, 576, 192}, {3, 1000, 257}, {8, 1024, 513}, {17, 64, 33}, {2, 1040, 77}, {40, 1024, 257}};
  std::uniform_int_distribution<int> code(0, 253);
  std::uniform_real_distribution<float> scale(1e-4f, 4e-3f);
  for (bool per_tensor : {false, true})
    for (float input_scale : {0.0f, 0.02f})
      for (Shape s : shapes) {
        std::vector<uint8_t> codes(static_cast<size_t>(s.out * s.in));
        for (auto& c : codes) {
          const int v = code(rng_);
          c = static_cast<uint8_t>(v < 127 ? v : v + 1);  // skip 0x7F; 254 → 0xFF never drawn
        }
        std::vector<float> scales(static_cast<size_t>(s.out), scale(rng_));
        if (!per_tensor)
          for (auto& v : scales) v = scale(rng_);
        const LinearSpec spec{LinearFormat::fp8, input_scale};
        auto wc = cpu_->make_fp8_linear(codes.data(), scales.data(), s.out, s.in, spec);
        auto wg = gpu_->make_fp8_linear(codes.data(), scales.data(), s.out, s.in, spec);
        Pair in = pair(s.rows, s.in, testing::random_normal(rng_, static_cast<size_t>(s.rows * s.in))),
             out = poisoned(s.rows, s.out);
        cpu_->linear(*in.cpu, *wc, *out.cpu);
        gpu_->linear(*in.gpu, *wg, *out.gpu);
        EXPECT_LT(error(out), 1e-3) << (per_tensor ? "per-tensor" : "per-channel") << " input scale " << input_scale
                                    << " rows " << s.rows << " in " << s.in << " out " << s.out;
      }
}

// FP8 linears above the GEMV's rows on cuBLASLt, the per-row and per-channel scales applied in its
// epilogue (the default) and, with OCTET_CUDA_GEMM_EPILOGUE_SCALES=0, by a pass after it: both
// against the CPU and against each other, within the FP8 linears' 1e-3 (the same codes meet the same
// weights; only summation order and where the scales are multiplied in differ). Dynamic per-row
// input scales and a checkpoint's static input scale; prefill-sized rows, output sizes off the tiles, poisoned
// outputs.
TEST_F(CudaVsCpu, Fp8LinearsScaledInOrAfterTheGemmMatchCpu) {
  struct Case {
    int64_t rows, in, out;
    float input_scale;
    std::vector<uint8_t> codes;
    std::vector<float> scales, x, expected;
  };
  std::vector<Case> cases;
  std::uniform_int_distribution<int> code(0, 253);
  std::uniform_real_distribution<float> scale(1e-4f, 4e-3f);
  for (auto [rows, in, out] : {std::tuple<int64_t, int64_t, int64_t>{17, 1024, 1036}, {40, 1040, 260},
                               {128, 4096, 1024}, {300, 1024, 2056}})
    for (float input_scale : {0.0f, 0.02f}) {
      Case c{rows, in, out, input_scale, std::vector<uint8_t>(static_cast<size_t>(out * in)),
             std::vector<float>(static_cast<size_t>(out)), testing::random_normal(rng_, static_cast<size_t>(rows * in)), {}};
      for (auto& v : c.codes) {
        const int drawn = code(rng_);
        v = static_cast<uint8_t>(drawn < 127 ? drawn : drawn + 1);  // no NaN codes 0x7F / 0xFF
      }
      for (auto& v : c.scales) v = scale(rng_);
      auto w = cpu_->make_fp8_linear(c.codes.data(), c.scales.data(), out, in, LinearSpec{LinearFormat::fp8, input_scale});
      auto x = cpu_->make_activations(rows, in), y = cpu_->make_activations(rows, out);
      host(*x) = c.x;
      cpu_->linear(*x, *w, *y);
      c.expected = host(*y);
      cases.push_back(std::move(c));
    }
  std::vector<std::vector<float>> in_epilogue;
  for (bool epilogue : {true, false}) {
    if (!epilogue) use_backend_with("OCTET_CUDA_GEMM_EPILOGUE_SCALES", "0");
    for (size_t i = 0; i < cases.size(); ++i) {
      const Case& c = cases[i];
      auto w = gpu_->make_fp8_linear(c.codes.data(), c.scales.data(), c.out, c.in, LinearSpec{LinearFormat::fp8, c.input_scale});
      auto x = gpu_->make_activations(c.rows, c.in), y = gpu_->make_activations(c.rows, c.out);
      upload(*x, c.x);
      upload(*y, std::vector<float>(c.expected.size(), std::numeric_limits<float>::quiet_NaN()));
      gpu_->linear(*x, *w, *y);
      const auto got = download(*y);
      const std::string where = std::string(epilogue ? "scales in the epilogue" : "scaling pass") + ", rows " +
                                std::to_string(c.rows) + " in " + std::to_string(c.in) + " out " + std::to_string(c.out) +
                                " input scale " + std::to_string(c.input_scale);
      ASSERT_TRUE(std::none_of(got.begin(), got.end(), [](float v) { return std::isnan(v); })) << "unwritten output, " << where;
      EXPECT_LT(testing::relative_error(got, std::vector<double>(c.expected.begin(), c.expected.end())), 1e-3) << where;
      if (epilogue) in_epilogue.push_back(got);
      else
        EXPECT_LT(testing::relative_error(got, std::vector<double>(in_epilogue[i].begin(), in_epilogue[i].end())), 1e-3)
            << "the two paths differ, " << where;
    }
  }
}

// FP8 layers with 128×128 block scales (make_fp8_block_linear) against the CPU backend (itself checked
// against a double reference, block_scaled_linear_test.cpp): both keep the codes and block scales as
// given and sum exact code products in float32, so the bound is the FP8 linears' 1e-3 (summation
// order and activation codes that round apart). Rows 1, 5, 16, 17, 64; k not a multiple of 16 (the
// kernel's byte loads) and of 16 (its 16-byte loads); partial last blocks; poisoned outputs; a
// static input scale; and linear_group, which must not take block layers into the fused GEMV.
TEST_F(CudaVsCpu, BlockScaledFp8LinearMatchesCpu) {
  struct Shape { int64_t in, out; };
  const Shape shapes[] = {{300, 200}, {256, 384}, {520, 130}, {1000, 257}, {64, 33}};
  std::uniform_int_distribution<int> code(0, 253);
  std::uniform_real_distribution<float> scale(1e-4f, 4e-3f);
  for (float input_scale : {0.0f, 0.05f})
    for (int64_t rows : {1, 5, 16, 17, 64})
      for (Shape s : shapes) {
        std::vector<uint8_t> codes(static_cast<size_t>(s.out * s.in));
        for (auto& c : codes) {
          const int v = code(rng_);
          c = static_cast<uint8_t>(v < 127 ? v : v + 1);  // skip 0x7F; 254 → 0xFF never drawn
        }
        std::vector<float> scales(static_cast<size_t>(fp8_scale_blocks(s.out) * fp8_scale_blocks(s.in)));
        for (auto& v : scales) v = scale(rng_);
        const LinearSpec spec{LinearFormat::fp8, input_scale};
        auto wc = cpu_->make_fp8_block_linear(codes.data(), scales.data(), s.out, s.in, spec);
        auto wg = gpu_->make_fp8_block_linear(codes.data(), scales.data(), s.out, s.in, spec);
        EXPECT_EQ(wg->bytes(), codes.size() + scales.size() * 4);
        Pair in = pair(rows, s.in, testing::random_normal(rng_, static_cast<size_t>(rows * s.in))),
             out = poisoned(rows, s.out), grouped = poisoned(rows, s.out);
        cpu_->linear(*in.cpu, *wc, *out.cpu);
        gpu_->linear(*in.gpu, *wg, *out.gpu);
        EXPECT_LT(error(out), 1e-3) << "input scale " << input_scale << " rows " << rows << " in " << s.in << " out "
                                    << s.out;
        cpu_->linear(*in.cpu, *wc, *grouped.cpu);
        const LinearWeight* members[] = {wg.get()};
        Activations* outs[] = {grouped.gpu.get()};
        gpu_->linear_group(*in.gpu, members, outs);
        EXPECT_LT(error(grouped), 1e-3) << "linear_group rows " << rows << " in " << s.in << " out " << s.out;
      }
}

// q/k/v- and gate/up-like groups through linear_group (one GEMV launch for FP8 where it fits), fed by
// the fused norm + quantize and SwiGLU + quantize kernels, against the CPU's separate ops. Odd
// output sizes (blocks split unevenly between members), 1 to 64 rows (both tiles of the tensor-core
// GEMV, then cuBLASLt; cuBLASLt above 8 rows when k is not a multiple of 64), poisoned outputs. Tolerance 1e-3 as for single FP8 linears: the same E4M3 codes meet the same
// weights, and only summation order differs (tensor cores above 8 rows accumulate narrower).
TEST_F(CudaVsCpu, GroupedLinearsAfterFusedQuantizeMatchCpu) {
  const int64_t outs[] = {1000, 257, 33};
  // in = 1040 (16 · 65) takes the CUDA-core GEMV, 1088 (64 · 17) the tensor-core one.
  for (auto [format, in, ffn] : {std::tuple{LinearFormat::fp8, int64_t{1040}, int64_t{528}},
                                 std::tuple{LinearFormat::fp8, int64_t{1088}, int64_t{576}},
                                 std::tuple{LinearFormat::bf16, int64_t{1040}, int64_t{528}}}) {
    for (int64_t rows : {1, 3, 8, 13, 29, 64}) {
      auto x = testing::random_normal(rng_, rows * in), y = testing::random_normal(rng_, rows * in);
      auto norm = testing::random_normal(rng_, in, 0.1f);
      for (auto& v : norm) v += 1.0f;
      auto nc = cpu_->make_vector(norm.data(), in);
      auto ng = gpu_->make_vector(norm.data(), in);
      std::vector<std::unique_ptr<LinearWeight>> wc, wg;
      std::vector<Pair> results;
      for (int64_t n : outs) {
        auto w = testing::random_normal(rng_, static_cast<size_t>(n * in), 0.05f);
        wc.push_back(cpu_->make_linear(w.data(), n, in, LinearSpec{format, 0.0f}));
        wg.push_back(gpu_->make_linear(w.data(), n, in, LinearSpec{format, 0.0f}));
        results.push_back(poisoned(rows, n));
      }
      Pair residual = pair(rows, in, x), delta = pair(rows, in, y), normed = poisoned(rows, in);
      cpu_->add_rmsnorm(*residual.cpu, *delta.cpu, *nc, 1e-5f, *normed.cpu);
      gpu_->add_rmsnorm(*residual.gpu, *delta.gpu, *ng, 1e-5f, *normed.gpu);
      std::vector<const LinearWeight*> group_c, group_g;
      std::vector<Activations*> out_c, out_g;
      for (size_t i = 0; i < results.size(); ++i) {
        group_c.push_back(wc[i].get());
        group_g.push_back(wg[i].get());
        out_c.push_back(results[i].cpu.get());
        out_g.push_back(results[i].gpu.get());
      }
      cpu_->linear_group(*normed.cpu, group_c, out_c);
      gpu_->linear_group(*normed.gpu, group_g, out_g);
      for (size_t i = 0; i < results.size(); ++i)
        EXPECT_LT(error(results[i]), 1e-3) << "format " << int(format) << " rows " << rows << " member " << i;

      // Writing the normed rows again (in place) must not leave the codes of the old values in use.
      cpu_->add(*normed.cpu, *delta.cpu);
      gpu_->add(*normed.gpu, *delta.gpu);
      // The CPU multiplies the GPU's own rows: their rmsnorm sums in another order, and one value an ulp
      // away can move its E4M3 code across a rounding boundary, ~1e-3 of error by itself (seed 3420012063,
      // the same with every GPU kernel variant). Stale codes would be off by far more.
      host(*normed.cpu) = download(*normed.gpu);
      Pair again = poisoned(rows, outs[1]);
      cpu_->linear(*normed.cpu, *wc[1], *again.cpu);
      gpu_->linear(*normed.gpu, *wg[1], *again.gpu);
      EXPECT_LT(error(again), 1e-3) << "after an in-place add, rows " << rows;

      // SwiGLU (+ quantize on FP8) feeding a down-projection-like linear.
      auto g = testing::random_normal(rng_, rows * ffn), u = testing::random_normal(rng_, rows * ffn);
      auto wd = testing::random_normal(rng_, static_cast<size_t>(in * ffn), 0.05f);
      auto dc = cpu_->make_linear(wd.data(), in, ffn, LinearSpec{format, 0.0f});
      auto dg = gpu_->make_linear(wd.data(), in, ffn, LinearSpec{format, 0.0f});
      Pair gate = pair(rows, ffn, g), up = pair(rows, ffn, u), act = poisoned(rows, ffn), down = poisoned(rows, in);
      cpu_->swiglu(*gate.cpu, *up.cpu, *act.cpu);
      gpu_->swiglu(*gate.gpu, *up.gpu, *act.gpu);
      EXPECT_LT(error(act), 1e-6);
      cpu_->linear(*act.cpu, *dc, *down.cpu);
      gpu_->linear(*act.gpu, *dg, *down.gpu);
      EXPECT_LT(error(down), 1e-3) << "down after swiglu, rows " << rows;
    }
  }
}

TEST_F(CudaVsCpu, NormsRopeSwigluAdd) {
  const int64_t rows = 5, cols = 192, head_dim = 64;
  auto x = testing::random_normal(rng_, rows * cols), y = testing::random_normal(rng_, rows * cols);
  auto w = testing::random_normal(rng_, cols);
  auto wc = cpu_->make_vector(w.data(), cols);
  auto wg = gpu_->make_vector(w.data(), cols);
  Pair a = pair(rows, cols, x), b = pair(rows, cols, y), out = poisoned(rows, cols);
  cpu_->rmsnorm(*a.cpu, *wc, 1e-5f, *out.cpu);
  gpu_->rmsnorm(*a.gpu, *wg, 1e-5f, *out.gpu);
  EXPECT_LT(error(out), 1e-6);
  cpu_->add_rmsnorm(*a.cpu, *b.cpu, *wc, 1e-5f, *out.cpu);
  gpu_->add_rmsnorm(*a.gpu, *b.gpu, *wg, 1e-5f, *out.gpu);
  EXPECT_LT(error(out), 1e-6);
  EXPECT_LT(error(a), 1e-7);  // the residual was updated in place
  cpu_->swiglu(*a.cpu, *b.cpu, *out.cpu);
  gpu_->swiglu(*a.gpu, *b.gpu, *out.gpu);
  EXPECT_LT(error(out), 1e-6);

  const std::vector<float> freqs = testing::rope_inverse_frequencies(head_dim, 500000.0f);
  TokenBatch batch{{0, 0, 0, 0, 0}, {0, 1, 17, 1000, 8191}, {0, 0, 0, 0, 0}};
  gpu_->prepare_batch(batch);
  cpu_->rope(*a.cpu, head_dim, batch.positions, freqs);
  gpu_->rope(*a.gpu, head_dim, batch.positions, freqs);
  EXPECT_LT(error(a), 1e-5);
}

// OCTET_CUDA_PROBE_SKIP (timing only) leaves the named kernels out of steps of up to 8 rows, or of up
// to OCTET_CUDA_PROBE_ROWS: the outputs stay poisoned there and are computed above; an unknown name or
// a bad row count is refused, naming it.
TEST_F(CudaVsCpu, ProbeSkipLeavesNamedKernelsOutOfSmallStepsOnly) {
  struct Case { const char* limit; int64_t largest_skipped; };
  for (const Case c : {Case{nullptr, 8}, Case{"64", 64}}) {
    {
      const testing::ScopedEnvironment rows_limit("OCTET_CUDA_PROBE_ROWS", c.limit);
      use_backend_with("OCTET_CUDA_PROBE_SKIP", "norm,swiglu");
    }
    for (const int64_t rows : {c.largest_skipped, c.largest_skipped + 1}) {
      const int64_t cols = 128;
      auto x = testing::random_normal(rng_, rows * cols), y = testing::random_normal(rng_, rows * cols);
      auto w = testing::random_normal(rng_, cols);
      auto wc = cpu_->make_vector(w.data(), cols);
      auto wg = gpu_->make_vector(w.data(), cols);
      Pair a = pair(rows, cols, x), b = pair(rows, cols, y), normed = poisoned(rows, cols), act = poisoned(rows, cols);
      cpu_->rmsnorm(*a.cpu, *wc, 1e-5f, *normed.cpu);
      gpu_->rmsnorm(*a.gpu, *wg, 1e-5f, *normed.gpu);
      cpu_->swiglu(*a.cpu, *b.cpu, *act.cpu);
      gpu_->swiglu(*a.gpu, *b.gpu, *act.gpu);
      if (rows <= c.largest_skipped) {
        EXPECT_EQ(error(normed), INFINITY) << "the norm ran at " << rows << " rows";  // still poisoned
        EXPECT_EQ(error(act), INFINITY) << "SwiGLU ran at " << rows << " rows";
      } else {
        EXPECT_LT(error(normed), 1e-6) << rows << " rows";
        EXPECT_LT(error(act), 1e-6) << rows << " rows";
      }
    }
  }
  for (const char* bad : {"nrom", "norm,,attn", "attn,"}) {
    const testing::ScopedEnvironment environment("OCTET_CUDA_PROBE_SKIP", bad);
    testing::expect_parts(testing::error_of([] { make_cuda_backend(0); }),
                          {"OCTET_CUDA_PROBE_SKIP", std::string("'") + bad + "'", "norm, quant, rope, attn, swiglu, linears"});
  }
  for (const char* bad : {"0", "4097", "8x", "-1"}) {
    const testing::ScopedEnvironment environment("OCTET_CUDA_PROBE_ROWS", bad);
    testing::expect_parts(testing::error_of([] { make_cuda_backend(0); }),
                          {"OCTET_CUDA_PROBE_ROWS", std::string("'") + bad + "'", "1 to 4096"});
  }
}

// The CUDA-core kernel (also for the 37-token prefill; the tensor-core one has its own test below).
TEST_F(CudaVsCpu, AttentionOverCacheEveryStorage) {
  use_cuda_core_attention();
  const int64_t heads = 8, kv_heads = 2, head_dim = 128, max_positions = 1100;
  for (auto storage : {KvCacheSpec::Storage::f32, KvCacheSpec::Storage::bf16, KvCacheSpec::Storage::fp8}) {
    KvCacheSpec spec{1, kv_heads, head_dim, max_positions, 2, storage};
    auto cache_cpu = cpu_->make_kv_cache(spec);
    auto cache_gpu = gpu_->make_kv_cache(spec);
    // A 37-token prefill in slot 1, then 3 decode tokens in slot 0 after a 1000-token prefill (the
    // decode is split over the positions and merged).
    for (auto [slot, begin, count] : {std::tuple{int64_t{1}, int64_t{0}, int64_t{37}}, std::tuple{int64_t{0}, int64_t{0}, int64_t{1000}},
                                      std::tuple{int64_t{0}, int64_t{1000}, int64_t{3}}}) {
      TokenBatch batch;
      for (int64_t i = 0; i < count; ++i) {
        batch.tokens.push_back(0);
        batch.slots.push_back(slot);
        batch.positions.push_back(begin + i);
      }
      auto q = testing::random_normal(rng_, count * heads * head_dim);
      auto k = testing::random_normal(rng_, count * kv_heads * head_dim), v = testing::random_normal(rng_, count * kv_heads * head_dim);
      Pair qp = pair(count, heads * head_dim, q), kp = pair(count, kv_heads * head_dim, k), vp = pair(count, kv_heads * head_dim, v);
      Pair out = poisoned(count, heads * head_dim);
      gpu_->prepare_batch(batch);
      cpu_->kv_write(*cache_cpu, 0, batch, *kp.cpu, *vp.cpu);
      gpu_->kv_write(*cache_gpu, 0, batch, *kp.gpu, *vp.gpu);
      cpu_->attention(*cache_cpu, 0, batch, *qp.cpu, *out.cpu);
      gpu_->attention(*cache_gpu, 0, batch, *qp.gpu, *out.gpu);
      EXPECT_LT(error(out), storage == KvCacheSpec::Storage::f32 ? 1e-5 : 1e-3)
          << "storage " << int(storage) << " slot " << slot << " tokens " << count;
    }
  }
}

// A pool smaller than slots × blocks_per_slot, handed out in a shuffled order, with a block size that
// divides nothing; prefill of several slots in one batch, then decode steps. Layer 1 of 2, so a wrong
// layer offset or a static scale taken from the wrong layer shows up. K/V enter through the fused
// RoPE + cache write (the CPU's default: rope, rope, kv_write); head_dim 32 has fewer rotation
// pairs than lanes (the general kernel), 64 and 128 keep each row in registers (128 with static scales too).
// Attention on the CUDA-core kernel, whose bounds are tighter than the tensor-core one's.
TEST_F(CudaVsCpu, PagedCacheShuffledBlockTablesMatchCpu) {
  use_cuda_core_attention();
  const int64_t heads = 6, kv_heads = 3, max_positions = 150, block_size = 7, layer = 1;
  const KvVariant variants[] = {{KvCacheSpec::Storage::f32, fp8::Format::e4m3, false, 64},
                              {KvCacheSpec::Storage::bf16, fp8::Format::e4m3, false, 64},
                              {KvCacheSpec::Storage::fp8, fp8::Format::e4m3, false, 64},
                              {KvCacheSpec::Storage::fp8, fp8::Format::e5m2, false, 128},
                              {KvCacheSpec::Storage::fp8, fp8::Format::e4m3, true, 32},
                              {KvCacheSpec::Storage::fp8, fp8::Format::e4m3, true, 128},
                              {KvCacheSpec::Storage::f32, fp8::Format::e4m3, false, 32}};
  for (const KvVariant& variant : variants) {
    const int64_t head_dim = variant.head_dim;
    const std::vector<float> freqs = testing::rope_inverse_frequencies(head_dim, 10000.0f);
    // 3 slots × 22 blocks would be 66.
    const KvCacheSpec spec = paged_spec(variant, kv_heads, max_positions, block_size, 50);
    auto cache_cpu = cpu_->make_kv_cache(spec);
    auto cache_gpu = gpu_->make_kv_cache(spec);
    set_shuffled_block_tables(*cache_cpu, *cache_gpu, 50, {20, 9, 15});
    for (const TokenBatch& batch : three_slot_batches(131)) {
      const auto count = static_cast<int64_t>(batch.size());
      auto q = testing::random_normal(rng_, count * heads * head_dim);
      auto k = testing::random_normal(rng_, count * kv_heads * head_dim, 1.5f);
      auto v = testing::random_normal(rng_, count * kv_heads * head_dim, 1.5f);
      Pair qp = pair(count, heads * head_dim, q), kp = pair(count, kv_heads * head_dim, k), vp = pair(count, kv_heads * head_dim, v);
      Pair out = poisoned(count, heads * head_dim);
      gpu_->prepare_batch(batch);
      cpu_->rope_kv_write(*cache_cpu, layer, batch, *qp.cpu, *kp.cpu, *vp.cpu, freqs);
      gpu_->rope_kv_write(*cache_gpu, layer, batch, *qp.gpu, *kp.gpu, *vp.gpu, freqs);
      EXPECT_LT(error(qp), 1e-5) << "rotated q, head_dim " << head_dim;
      EXPECT_LT(error(kp), 1e-5) << "rotated k, head_dim " << head_dim;
      cpu_->attention(*cache_cpu, layer, batch, *qp.cpu, *out.cpu);
      gpu_->attention(*cache_gpu, layer, batch, *qp.gpu, *out.gpu);
      // f32: summation order only. bf16/fp8: the stored values are the same codes (the rotated k
      // differs by an ulp, which moves a code only at a rounding boundary), widened exactly, so the
      // difference is again the order of float32 sums, loosened for the GPU's fast exp and a rare
      // boundary code. A wrong block mapping or scale is off by O(1).
      EXPECT_LT(error(out), variant.storage == KvCacheSpec::Storage::f32 ? 1e-5 : 3e-4)
          << "storage " << int(variant.storage) << " format " << int(variant.format) << " static " << variant.static_scales
          << " head_dim " << head_dim << " tokens " << count;
    }
    // A block outside the pool, and a position past the slot's table, are refused with a message.
    EXPECT_THROW(cache_gpu->set_block_table(0, std::vector<int32_t>{3, 50}), std::exception);
    TokenBatch unmapped{{0}, {9 * block_size}, {1}};  // slot 1 holds 9 blocks
    Pair kp = pair(1, kv_heads * head_dim, testing::random_normal(rng_, kv_heads * head_dim));
    gpu_->prepare_batch(unmapped);
    EXPECT_THROW(gpu_->kv_write(*cache_gpu, layer, unmapped, *kp.gpu, *kp.gpu), std::exception);
  }
}

// The fused RoPE + cache write (rows in registers at head_dim 64 and 128, the general kernel at 32) against
// rope(q), rope(k) and kv_write on the same GPU: the same bits in q, k and the cache (read back through the
// attention, which is deterministic), over a prefill of two slots and a decode step, dynamic and static scales.
TEST_F(CudaVsCpu, FusedRopeKvWriteHasTheBitsOfRopeThenKvWrite) {
  const int64_t heads = 8, kv_heads = 2, layer = 0;
  const KvVariant variants[] = {{KvCacheSpec::Storage::fp8, fp8::Format::e4m3, false, 128},
                              {KvCacheSpec::Storage::fp8, fp8::Format::e5m2, true, 128},
                              {KvCacheSpec::Storage::fp8, fp8::Format::e4m3, false, 64},
                              {KvCacheSpec::Storage::bf16, fp8::Format::e4m3, false, 64},
                              {KvCacheSpec::Storage::f32, fp8::Format::e4m3, false, 128},
                              {KvCacheSpec::Storage::fp8, fp8::Format::e4m3, false, 32}};
  auto same_bits = [&](const Activations& a, const Activations& b) -> ::testing::AssertionResult {
    const std::vector<float> x = download(a), y = download(b);
    for (size_t i = 0; i < x.size(); ++i)
      if (std::memcmp(&x[i], &y[i], sizeof(float)) != 0)
        return ::testing::AssertionFailure() << "element " << i << " of " << x.size() << ": " << x[i] << " against " << y[i];
    return ::testing::AssertionSuccess();
  };
  for (const KvVariant& variant : variants) {
    const int64_t head_dim = variant.head_dim;
    const std::vector<float> freqs = testing::rope_inverse_frequencies(head_dim, 500000.0f);
    KvCacheSpec spec{1, kv_heads, head_dim, 300, 2, variant.storage, variant.format};
    if (variant.static_scales) {
      spec.static_k_scales = {3.0f / 57344.0f};
      spec.static_v_scales = {2.0f / 57344.0f};
    }
    auto fused = gpu_->make_kv_cache(spec), apart = gpu_->make_kv_cache(spec);
    std::vector<TokenBatch> batches(2);
    for (int64_t slot = 0; slot < 2; ++slot)
      for (int64_t i = 0; i < (slot == 0 ? 37 : 203); ++i) batches[0].positions.push_back(i), batches[0].slots.push_back(slot);
    batches[1].slots = {1, 0};
    batches[1].positions = {203, 37};
    for (TokenBatch& batch : batches) {
      batch.tokens.assign(batch.positions.size(), 0);
      const auto count = static_cast<int64_t>(batch.size());
      const auto q = testing::random_normal(rng_, count * heads * head_dim, 2.0f);
      const auto k = testing::random_normal(rng_, count * kv_heads * head_dim, 1.5f);
      const auto v = testing::random_normal(rng_, count * kv_heads * head_dim, 1.5f);
      auto make = [&](int64_t cols, const std::vector<float>& values) {
        auto a = gpu_->make_activations(count, cols);
        upload(*a, values);
        return a;
      };
      auto q1 = make(heads * head_dim, q), k1 = make(kv_heads * head_dim, k), v1 = make(kv_heads * head_dim, v);
      auto q2 = make(heads * head_dim, q), k2 = make(kv_heads * head_dim, k), v2 = make(kv_heads * head_dim, v);
      gpu_->prepare_batch(batch);
      gpu_->rope_kv_write(*fused, layer, batch, *q1, *k1, *v1, freqs);
      gpu_->rope(*q2, head_dim, batch.positions, freqs);
      gpu_->rope(*k2, head_dim, batch.positions, freqs);
      gpu_->kv_write(*apart, layer, batch, *k2, *v2);
      const std::string where = " head_dim " + std::to_string(head_dim) + " storage " + std::to_string(int(variant.storage)) +
                                " static " + std::to_string(variant.static_scales) + " tokens " + std::to_string(count);
      EXPECT_TRUE(same_bits(*q1, *q2)) << "rotated q," << where;
      EXPECT_TRUE(same_bits(*k1, *k2)) << "rotated k," << where;
      auto out1 = make(heads * head_dim, std::vector<float>(static_cast<size_t>(count * heads * head_dim), NAN));
      auto out2 = make(heads * head_dim, std::vector<float>(static_cast<size_t>(count * heads * head_dim), NAN));
      gpu_->attention(*fused, layer, batch, *q1, *out1);
      gpu_->attention(*apart, layer, batch, *q2, *out2);
      EXPECT_TRUE(same_bits(*out1, *out2)) << "attention over the cache," << where;
    }
  }
}

// The tensor-core prefill attention (runs of >= 16 tokens of one slot at consecutive positions) and
// the CUDA-core kernel (the rest of the same batch, through its token list) against the CPU: prompts
// of 1, 17, 100, 300 and 1000 tokens (none a multiple of the 64-row tile), the 1000 as a 300-token
// prefill then a 700-token chunk over the filled cache, several prompts and decode tokens of other
// slots in one batch, a 15-token run (below the threshold), shuffled block tables of a pool smaller
// than the slots' reach, GQA ratios 1 and 4, head_dim 64 and 128, every KV storage (FP8 with dynamic
// and static scales), outputs poisoned with NaN. Tolerance of the tensor-core rows 1e-2 (norm-
// relative): q and the probabilities are rounded to BF16 (2^-9 relative each; f32-stored K/V too),
// ~2e-3 expected, while a wrong mask, block, row or scale is off by O(1). The other rows keep the
// CUDA-core kernel's bounds (1e-5 f32, 1e-3 otherwise).
TEST_F(CudaVsCpu, TensorCorePrefillAttentionMatchesCpu) {
  struct Variant {
    KvCacheSpec::Storage storage;
    fp8::Format format;
    bool static_scales;
  };
  const Variant storages[] = {{KvCacheSpec::Storage::f32, fp8::Format::e4m3, false},
                              {KvCacheSpec::Storage::bf16, fp8::Format::e4m3, false},
                              {KvCacheSpec::Storage::fp8, fp8::Format::e4m3, false},
                              {KvCacheSpec::Storage::fp8, fp8::Format::e5m2, false},
                              {KvCacheSpec::Storage::fp8, fp8::Format::e4m3, true}};
  // Slot 0: 300 + 700 + 1 decode; slot 1: 17, 1, then a 40-token chunk; slot 2: 1 + 1; slot 3: 100,
  // a 15-token run, 1.
  const std::vector<std::vector<testing::TokenSegment>> batches = {{{0, 0, 300}, {1, 0, 17}, {2, 0, 1}, {3, 0, 100}},
                                                                   {{2, 1, 1}, {0, 300, 700}, {1, 17, 1}, {3, 100, 15}},
                                                                   {{1, 18, 40}, {3, 115, 1}, {0, 1000, 1}}};
  constexpr int64_t slots = 4, max_positions = 1008;
  const int64_t reach[slots] = {1001, 58, 2, 116};  // positions each slot fills
  for (int64_t head_dim : {64, 128})
    for (auto [heads, kv_heads] : {std::pair{int64_t{4}, int64_t{4}}, std::pair{int64_t{8}, int64_t{2}}})
      for (const Variant& variant : storages) {
        const int64_t block_size = head_dim == 64 ? 7 : 16;  // division and shift in pool_row
        KvCacheSpec spec{1, kv_heads, head_dim, max_positions, slots, variant.storage, variant.format};
        spec.block_size = block_size;
        std::vector<int64_t> needed(slots);
        int64_t total = 0;
        for (int64_t slot = 0; slot < slots; ++slot) total += needed[slot] = (reach[slot] + block_size - 1) / block_size;
        spec.num_blocks = total + 3;
        if (variant.static_scales) {
          spec.static_k_scales = {4.0f / 448.0f};  // values of |x| > 4 saturate, on both backends
          spec.static_v_scales = {3.0f / 448.0f};
        }
        auto cache_cpu = cpu_->make_kv_cache(spec);
        auto cache_gpu = gpu_->make_kv_cache(spec);
        std::vector<int32_t> pool(static_cast<size_t>(spec.num_blocks));
        for (size_t b = 0; b < pool.size(); ++b) pool[b] = static_cast<int32_t>(b);
        std::shuffle(pool.begin(), pool.end(), rng_);
        auto next = pool.begin();
        for (int64_t slot = 0; slot < slots; ++slot) {
          const std::vector<int32_t> table(next, next + needed[slot]);
          next += needed[slot];
          cache_cpu->set_block_table(slot, table);
          cache_gpu->set_block_table(slot, table);
        }
        for (const auto& segments : batches) {
          std::vector<bool> tensor_core;  // per token: in a run the tensor-core kernel takes
          const TokenBatch batch = testing::batch_of_segments(segments, 16, tensor_core);
          const auto count = static_cast<int64_t>(batch.size());
          const int64_t q_cols = heads * head_dim, kv_cols = kv_heads * head_dim;
          Pair qp = pair(count, q_cols, testing::random_normal(rng_, count * q_cols));
          Pair kp = pair(count, kv_cols, testing::random_normal(rng_, count * kv_cols));
          Pair vp = pair(count, kv_cols, testing::random_normal(rng_, count * kv_cols));
          Pair out = poisoned(count, q_cols);
          gpu_->prepare_batch(batch);
          cpu_->kv_write(*cache_cpu, 0, batch, *kp.cpu, *vp.cpu);
          gpu_->kv_write(*cache_gpu, 0, batch, *kp.gpu, *vp.gpu);
          cpu_->attention(*cache_cpu, 0, batch, *qp.cpu, *out.cpu);
          gpu_->attention(*cache_gpu, 0, batch, *qp.gpu, *out.gpu);
          const std::vector<float> got = download(*out.gpu);
          const std::vector<float>& want = host(*out.cpu);
          std::vector<float> got_rows[2];
          std::vector<double> want_rows[2];
          for (int64_t token = 0; token < count; ++token)
            for (int64_t i = token * q_cols; i < (token + 1) * q_cols; ++i) {
              ASSERT_FALSE(std::isnan(got[i])) << "token " << token << " element " << i - token * q_cols << " unwritten";
              got_rows[tensor_core[token]].push_back(got[i]);
              want_rows[tensor_core[token]].push_back(want[i]);
            }
          const std::string what = "storage " + std::to_string(int(variant.storage)) + " format " +
                                   std::to_string(int(variant.format)) + " static " + std::to_string(variant.static_scales) +
                                   " head_dim " + std::to_string(head_dim) + " heads " + std::to_string(heads) + "/" +
                                   std::to_string(kv_heads) + " tokens " + std::to_string(count);
          ASSERT_FALSE(got_rows[1].empty()) << what;
          EXPECT_LT(testing::relative_error(got_rows[1], want_rows[1]), 1e-2) << "tensor-core rows, " << what;
          if (!got_rows[0].empty()) {
            EXPECT_LT(testing::relative_error(got_rows[0], want_rows[0]),
                      variant.storage == KvCacheSpec::Storage::f32 ? 1e-5 : 1e-3)
                << "CUDA-core rows, " << what;
          }
        }
      }
}

TEST_F(CudaVsCpu, KvCacheRefusesBadStaticScales) {
  KvCacheSpec spec{2, 2, 64, 32, 1, KvCacheSpec::Storage::fp8};
  spec.static_k_scales = {0.1f};  // one for two layers
  EXPECT_THROW(gpu_->make_kv_cache(spec), std::exception);
  spec.static_k_scales = {0.1f, -1.0f};
  EXPECT_THROW(gpu_->make_kv_cache(spec), std::exception);
}

// A cache larger than the device's budget is refused before allocating, naming the largest context
// that fits; the capacity query shrinks with the utilization and rejects values outside (0, 1].
TEST_F(CudaVsCpu, KvCacheBeyondMemoryBudgetIsRefusedWithTheContextThatFits) {
  KvCacheSpec spec{80, 8, 128, int64_t{1} << 24, 1, KvCacheSpec::Storage::fp8};  // 70B-shaped, 16M positions: ~2.8 TB
  try {
    gpu_->make_kv_cache(spec);
    ADD_FAILURE() << "a 2.8 TB cache was accepted";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("largest context that fits"), std::string::npos) << e.what();
  }
  const int64_t at_90 = gpu_->kv_blocks_that_fit(spec);
  spec.gpu_memory_utilization = 0.5;
  const int64_t at_50 = gpu_->kv_blocks_that_fit(spec);
  EXPECT_GT(at_90, 0);
  EXPECT_LT(at_50, at_90);
  spec.gpu_memory_utilization = 1.5;
  EXPECT_THROW(gpu_->kv_blocks_that_fit(spec), std::exception);
  EXPECT_EQ(cpu_->kv_blocks_that_fit(spec), -1);
}

TEST(CudaDevice, ProbeReportsAReasonWhenNoGpu) {
  const CudaStatus status = probe_cuda();
  if (status.available) {
    EXPECT_FALSE(status.gpus.empty());
    EXPECT_GT(status.gpus.front().total_memory_bytes, 0u);
  } else {
    EXPECT_FALSE(status.reason.empty());
    EXPECT_THROW(make_cuda_backend(0), std::exception);
  }
}

}  // namespace
}  // namespace octet::backend
