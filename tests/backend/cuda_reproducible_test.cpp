// numerics reproducible: every op of the CUDA backend gives the CPU backend's bits (tolerance 0) on
// fresh random inputs, odd shapes and NaN-poisoned outputs; whole model steps are in
// cuda_model_steps_test.cpp. Skips, saying so, where no GPU can be used.
#include "backend/backend.h"
#include "backend/device.h"
#include "support/cuda_vs_cpu.h"
#include "support/random.h"
#include "support/rope_frequencies.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

namespace octet::backend {
namespace {

class CudaReproducibleVsCpu : public CudaVsCpu {
 protected:
  void SetUp() override {
    CudaVsCpu::SetUp();
    if (IsSkipped()) return;
    cpu_ = make_cpu_backend(2, Numerics::reproducible);
    gpu_ = make_cuda_backend(0, Numerics::reproducible);
  }
  // The elements whose bits differ (an unwritten, poisoned element differs too).
  ::testing::AssertionResult same_bits(const Pair& p) {
    const std::vector<float> g = download(*p.gpu);
    const std::vector<float>& c = host(*p.cpu);
    size_t differ = 0, first = 0;
    for (size_t i = 0; i < c.size(); ++i)
      if (std::memcmp(&g[i], &c[i], sizeof(float)) != 0 && differ++ == 0) first = i;
    if (differ == 0) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << differ << " of " << c.size() << " elements differ; the first, " << first
                                         << ": GPU " << g[first] << ", CPU " << c[first];
  }
};

TEST_F(CudaReproducibleVsCpu, BackendsSayTheirNumerics) {
  EXPECT_EQ(cpu_->name(), "cpu");
  EXPECT_EQ(gpu_->name(), "cuda");
  EXPECT_EQ(cpu_->numerics(), Numerics::reproducible);
  EXPECT_EQ(gpu_->numerics(), Numerics::reproducible);
  EXPECT_EQ(make_cuda_backend(0)->numerics(), Numerics::fast);
}

// Every weight format (FP8 per channel with dynamic and static input scales, 128×128 block scales,
// bf16, f32), rows and sizes that are no multiple of 32 or 128, and inputs with a wide range.
TEST_F(CudaReproducibleVsCpu, LinearsGiveTheCpuBits) {
  struct Shape { int64_t rows, in, out; };
  const Shape shapes[] = {{1, 576, 192}, {3, 1000, 257}, {9, 40, 9}, {17, 1536, 130}, {64, 300, 77}};
  for (Shape s : shapes) {
    auto x = testing::random_normal(rng_, static_cast<size_t>(s.rows * s.in));
    for (size_t i = 0; i < x.size(); i += 7) x[i] *= 50.0f;
    auto w = testing::random_normal(rng_, static_cast<size_t>(s.out * s.in), 0.05f);
    for (LinearFormat format : {LinearFormat::fp8, LinearFormat::bf16, LinearFormat::f32})
      for (float static_scale : {0.0f, 0.02f}) {
        if (format != LinearFormat::fp8 && static_scale > 0) continue;
        const LinearSpec spec{format, static_scale};
        auto wc = cpu_->make_linear(w.data(), s.out, s.in, spec);
        auto wg = gpu_->make_linear(w.data(), s.out, s.in, spec);
        Pair in = pair(s.rows, s.in, x), out = poisoned(s.rows, s.out);
        cpu_->linear(*in.cpu, *wc, *out.cpu);
        gpu_->linear(*in.gpu, *wg, *out.gpu);
        EXPECT_TRUE(same_bits(out)) << "format " << int(format) << " static scale " << static_scale << " rows " << s.rows
                                    << " in " << s.in << " out " << s.out;
      }
    const auto codes = testing::random_e4m3_codes(rng_, static_cast<size_t>(s.out * s.in));
    const auto block_scales = testing::random_fp8_scales(rng_, static_cast<size_t>(fp8_scale_blocks(s.out) * fp8_scale_blocks(s.in)));
    const LinearSpec spec{LinearFormat::fp8, 0.0f};
    auto bc = cpu_->make_fp8_block_linear(codes.data(), block_scales.data(), s.out, s.in, spec);
    auto bg = gpu_->make_fp8_block_linear(codes.data(), block_scales.data(), s.out, s.in, spec);
    Pair in = pair(s.rows, s.in, x), out = poisoned(s.rows, s.out);
    cpu_->linear(*in.cpu, *bc, *out.cpu);
    gpu_->linear(*in.gpu, *bg, *out.gpu);
    EXPECT_TRUE(same_bits(out)) << "block-scaled, rows " << s.rows << " in " << s.in << " out " << s.out;
  }
}

// q/k/v and gate/up as the model gives them (fused on load), through the grouped ops.
TEST_F(CudaReproducibleVsCpu, GroupedLinearsGiveTheCpuBits) {
  const int64_t rows = 5, in = 576, outs[] = {576, 192, 192};
  auto x = testing::random_normal(rng_, rows * in);
  std::vector<std::unique_ptr<LinearWeight>> wc, wg;
  for (int64_t out : outs) {
    auto w = testing::random_normal(rng_, static_cast<size_t>(out * in), 0.05f);
    wc.push_back(cpu_->make_linear(w.data(), out, in, LinearSpec{}));
    wg.push_back(gpu_->make_linear(w.data(), out, in, LinearSpec{}));
  }
  LinearWeight* gpu_members[] = {wg[0].get(), wg[1].get(), wg[2].get()};
  gpu_->fuse_linears(gpu_members);
  Pair in_pair = pair(rows, in, x);
  std::vector<Pair> out_pairs;
  for (int64_t out : outs) out_pairs.push_back(poisoned(rows, out));
  const LinearWeight* cpu_weights[] = {wc[0].get(), wc[1].get(), wc[2].get()};
  const LinearWeight* gpu_weights[] = {wg[0].get(), wg[1].get(), wg[2].get()};
  Activations* cpu_outs[] = {out_pairs[0].cpu.get(), out_pairs[1].cpu.get(), out_pairs[2].cpu.get()};
  Activations* gpu_outs[] = {out_pairs[0].gpu.get(), out_pairs[1].gpu.get(), out_pairs[2].gpu.get()};
  cpu_->linear_group(*in_pair.cpu, cpu_weights, cpu_outs);
  gpu_->linear_group(*in_pair.gpu, gpu_weights, gpu_outs);
  for (size_t i = 0; i < out_pairs.size(); ++i) EXPECT_TRUE(same_bits(out_pairs[i])) << "member " << i;
}

TEST_F(CudaReproducibleVsCpu, NormsSwigluAndRopeGiveTheCpuBits) {
  for (int64_t cols : {576, 1000, 37}) {
    const int64_t rows = 11;
    auto x = testing::random_normal(rng_, rows * cols), y = testing::random_normal(rng_, rows * cols, 3.0f);
    auto w = testing::random_normal(rng_, cols);
    auto wc = cpu_->make_vector(w.data(), cols);
    auto wg = gpu_->make_vector(w.data(), cols);
    Pair a = pair(rows, cols, x), b = pair(rows, cols, y), out = poisoned(rows, cols);
    cpu_->rmsnorm(*a.cpu, *wc, 1e-5f, *out.cpu);
    gpu_->rmsnorm(*a.gpu, *wg, 1e-5f, *out.gpu);
    EXPECT_TRUE(same_bits(out)) << "rmsnorm, cols " << cols;
    cpu_->add_rmsnorm(*a.cpu, *b.cpu, *wc, 1e-5f, *out.cpu);
    gpu_->add_rmsnorm(*a.gpu, *b.gpu, *wg, 1e-5f, *out.gpu);
    EXPECT_TRUE(same_bits(out)) << "add_rmsnorm, cols " << cols;
    EXPECT_TRUE(same_bits(a)) << "the residual, cols " << cols;
    cpu_->rmsnorm(*a.cpu, *wc, 1e-5f, *a.cpu);  // in place, as the model's final norm
    gpu_->rmsnorm(*a.gpu, *wg, 1e-5f, *a.gpu);
    EXPECT_TRUE(same_bits(a)) << "rmsnorm in place, cols " << cols;
    Pair s = poisoned(rows, cols);
    cpu_->swiglu(*b.cpu, *a.cpu, *s.cpu);  // b spans ±10: exp far from 1
    gpu_->swiglu(*b.gpu, *a.gpu, *s.gpu);
    EXPECT_TRUE(same_bits(s)) << "swiglu, cols " << cols;
  }
  for (int64_t head_dim : {64, 128, 32}) {
    const int64_t tokens = 6, heads = 3;
    const std::vector<float> freqs = testing::rope_inverse_frequencies(head_dim, 500000.0f);
    TokenBatch batch{{0, 0, 0, 0, 0, 0}, {0, 1, 17, 1000, 8191, 131071}, {0, 0, 0, 0, 0, 0}};
    Pair q = pair(tokens, heads * head_dim, testing::random_normal(rng_, tokens * heads * head_dim));
    gpu_->prepare_batch(batch);
    cpu_->rope(*q.cpu, head_dim, batch.positions, freqs);
    gpu_->rope(*q.gpu, head_dim, batch.positions, freqs);
    EXPECT_TRUE(same_bits(q)) << "rope, head_dim " << head_dim;
  }
}

// The cache write and the attention over it: every storage (FP8 E4M3 and E5M2, dynamic and static
// scales), paged through shuffled block tables of a pool smaller than the slots' reach, a block size
// that divides nothing, GQA, prefill runs and decode tokens of several slots in one batch, and a
// context past the kernel's 1024-position chunk.
TEST_F(CudaReproducibleVsCpu, CacheAndAttentionGiveTheCpuBits) {
  const KvVariant variants[] = {{KvCacheSpec::Storage::fp8, fp8::Format::e4m3, false, 64},
                              {KvCacheSpec::Storage::fp8, fp8::Format::e5m2, false, 128},
                              {KvCacheSpec::Storage::fp8, fp8::Format::e4m3, true, 32},
                              {KvCacheSpec::Storage::bf16, fp8::Format::e4m3, false, 64},
                              {KvCacheSpec::Storage::f32, fp8::Format::e4m3, false, 128}};
  const int64_t heads = 6, kv_heads = 3, max_positions = 1300, block_size = 7, layer = 1;
  const int32_t pool_blocks = 400;
  for (const KvVariant& variant : variants) {
    const int64_t head_dim = variant.head_dim;
    const std::vector<float> freqs = testing::rope_inverse_frequencies(head_dim, 10000.0f);
    const KvCacheSpec spec = paged_spec(variant, kv_heads, max_positions, block_size, pool_blocks);
    auto cache_cpu = cpu_->make_kv_cache(spec);
    auto cache_gpu = gpu_->make_kv_cache(spec);
    set_shuffled_block_tables(*cache_cpu, *cache_gpu, pool_blocks, {170, 10, 10});
    // Slot 0's 1100 prompt tokens run past one 1024-position chunk.
    for (const TokenBatch& batch : three_slot_batches(1100)) {
      const auto count = static_cast<int64_t>(batch.size());
      auto q = testing::random_normal(rng_, count * heads * head_dim, 2.0f);
      auto k = testing::random_normal(rng_, count * kv_heads * head_dim, 1.5f);
      auto v = testing::random_normal(rng_, count * kv_heads * head_dim, 1.5f);
      Pair qp = pair(count, heads * head_dim, q), kp = pair(count, kv_heads * head_dim, k), vp = pair(count, kv_heads * head_dim, v);
      Pair out = poisoned(count, heads * head_dim);
      gpu_->prepare_batch(batch);
      cpu_->rope_kv_write(*cache_cpu, layer, batch, *qp.cpu, *kp.cpu, *vp.cpu, freqs);
      gpu_->rope_kv_write(*cache_gpu, layer, batch, *qp.gpu, *kp.gpu, *vp.gpu, freqs);
      EXPECT_TRUE(same_bits(qp)) << "rotated q, head_dim " << head_dim;
      cpu_->attention(*cache_cpu, layer, batch, *qp.cpu, *out.cpu);
      gpu_->attention(*cache_gpu, layer, batch, *qp.gpu, *out.gpu);
      EXPECT_TRUE(same_bits(out)) << "storage " << int(variant.storage) << " format " << int(variant.format) << " static "
                                  << variant.static_scales << " head_dim " << head_dim << " tokens " << count;
    }
  }
}

}  // namespace
}  // namespace octet::backend
