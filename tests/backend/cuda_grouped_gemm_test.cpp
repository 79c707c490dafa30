// FP8 linears fused into one allocation per group (Backend::fuse_linears) on the CUDA backend: the
// scale-and-split kernel against a host reference (bit for bit), fused groups through linear_group
// and linear against the CPU backend and against the same weights left unfused, in every mode of
// OCTET_CUDA_GROUPED_GEMM, and the shared allocation's lifetime (old buffers freed by fusion, the
// group freed once, with its last member). Skips, saying so, where no GPU can be used.
#include "backend/backend.h"
#include "backend/device.h"
#include "support/backend_rows.h"
#include "support/cuda_vs_cpu.h"
#include "support/random.h"
#include "support/scoped_environment.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <vector>

#if OCTET_HAVE_CUDA
#include "backend/cuda/kernels.h"
#include "support/device_vector.h"

#include <cuda_runtime.h>

namespace octet::backend {
namespace {

using testing::DeviceVector;

using testing::any_nan;
using testing::relative_error;

// The CUDA-against-CPU fixture (a CPU and a CUDA backend, a per-test seeded generator).
class CudaGroupedGemm : public CudaVsCpu {
 protected:
  // A GPU backend made with the environment variable set to value (restored afterwards).
  static std::unique_ptr<Backend> cuda_backend_with(const char* variable, const char* value) {
    const testing::ScopedEnvironment environment(variable, value);
    return make_cuda_backend(0);
  }
};

// ---- the kernel ------------------------------------------------------------------------------------

// launch_scale_split against value · (row scale · channel scale) computed on the host in float32 (the
// same two products, so equal bits), and as a plain copy without scales. Member widths that are all
// multiples of 4 (the float4 path) and odd ones (one float per thread); padding columns after each
// member (skipped); more rows than a grid's y dimension holds (the row loop).
TEST_F(CudaGroupedGemm, ScaleSplitMatchesTheHostBitForBit) {
  struct Case {
    int64_t rows;
    std::vector<int64_t> widths;
    int64_t padding;  // columns after each member
  };
  for (const Case& c : {Case{3, {1000, 257, 33}, 0}, Case{3, {1001, 259, 33}, 7}, Case{17, {512, 128, 128}, 0},
                        Case{9, {1000, 260, 36}, 24}, Case{64, {1036, 1036}, 0}, Case{70000, {8, 4}, 4},
                        Case{5, {7}, 0}, Case{2, {4, 4, 4, 12}, 4}}) {
    int64_t cols = 0;
    for (int64_t w : c.widths) cols += w + c.padding;
    const auto product = testing::random_normal(rng_, static_cast<size_t>(c.rows * cols));
    const auto row_scales = testing::random_fp8_scales(rng_, static_cast<size_t>(c.rows));
    const auto col_scales = testing::random_fp8_scales(rng_, static_cast<size_t>(cols));
    DeviceVector<float> d_product(product.size(), &product), d_rows(row_scales.size(), &row_scales),
        d_cols(col_scales.size(), &col_scales);
    for (bool scaled : {true, false}) {
      std::vector<std::unique_ptr<DeviceVector<float>>> outs;
      cuda::ScaleSplit split;
      split.count = static_cast<int>(c.widths.size());
      split.product_cols = cols;
      int64_t first = 0;
      for (size_t i = 0; i < c.widths.size(); ++i) {
        outs.push_back(std::make_unique<DeviceVector<float>>(static_cast<size_t>(c.rows * c.widths[i])));  // NaN
        split.out[i] = outs.back()->data;
        split.first_col[i] = first;
        split.cols[i] = c.widths[i];
        first += c.widths[i] + c.padding;
      }
      cuda::launch_scale_split(d_product.data, c.rows, scaled ? d_rows.data : nullptr, scaled ? d_cols.data : nullptr,
                               split, nullptr);
      first = 0;
      for (size_t i = 0; i < c.widths.size(); ++i) {
        const auto got = outs[i]->host();
        const int64_t width = c.widths[i];
        size_t mismatches = 0;
        for (int64_t r = 0; r < c.rows; ++r)
          for (int64_t j = 0; j < width; ++j) {
            const float value = product[static_cast<size_t>(r * cols + first + j)];
            const float want = scaled ? value * (row_scales[static_cast<size_t>(r)] * col_scales[static_cast<size_t>(first + j)])
                                      : value;
            const float have = got[static_cast<size_t>(r * width + j)];
            if (std::memcmp(&want, &have, sizeof want) != 0) ++mismatches;
          }
        EXPECT_EQ(mismatches, 0u) << "member " << i << " of width " << width << ", " << c.rows << " rows, "
                                  << (scaled ? "scaled" : "copied") << ", padding " << c.padding;
        first += width + c.padding;
      }
    }
  }
}

TEST_F(CudaGroupedGemm, ScaleSplitRefusesInconsistentGroups) {
  DeviceVector<float> product(64), out(64), scales(64);
  cuda::ScaleSplit split;
  split.count = 2;
  split.product_cols = 12;
  split.out[0] = split.out[1] = out.data;
  split.cols[0] = split.cols[1] = 4;
  split.first_col[1] = 3;  // overlaps member 0
  EXPECT_THROW(cuda::launch_scale_split(product.data, 2, scales.data, scales.data, split, nullptr), std::exception);
  split.first_col[1] = 9;  // past the product's 12 columns
  EXPECT_THROW(cuda::launch_scale_split(product.data, 2, scales.data, scales.data, split, nullptr), std::exception);
  split.first_col[1] = 8;
  EXPECT_THROW(cuda::launch_scale_split(product.data, 2, scales.data, nullptr, split, nullptr), std::exception);
  split.count = cuda::ScaleSplit::kMaxMembers + 1;
  EXPECT_THROW(cuda::launch_scale_split(product.data, 2, scales.data, scales.data, split, nullptr), std::exception);
}

// ---- fused groups on the backend ---------------------------------------------------------------------

// A group of pre-quantized FP8 members: random codes (no NaN codes) and channel scales.
struct MemberData {
  int64_t out = 0, in = 0;
  std::vector<uint8_t> codes;
  std::vector<float> scales;
};

std::vector<std::unique_ptr<LinearWeight>> make_members(Backend& on, const std::vector<MemberData>& members) {
  std::vector<std::unique_ptr<LinearWeight>> weights;
  for (const MemberData& m : members)
    weights.push_back(on.make_fp8_linear(m.codes.data(), m.scales.data(), m.out, m.in, LinearSpec{LinearFormat::fp8, 0.0f}));
  return weights;
}

std::vector<const LinearWeight*> pointers(const std::vector<std::unique_ptr<LinearWeight>>& weights) {
  std::vector<const LinearWeight*> out;
  for (const auto& w : weights) out.push_back(w.get());
  return out;
}

void fuse(Backend& on, const std::vector<std::unique_ptr<LinearWeight>>& weights) {
  std::vector<LinearWeight*> members;
  for (const auto& w : weights) members.push_back(w.get());
  on.fuse_linears(members);
}

// linear_group of x ([rows, in] host values) on `on`, every member's output downloaded (poisoned first).
std::vector<std::vector<float>> run_group(Backend& on, const std::vector<const LinearWeight*>& weights,
                                          const std::vector<float>& x, int64_t rows) {
  auto input = on.make_activations(rows, weights[0]->in_features);
  testing::upload_rows(on, x, *input);
  std::vector<std::unique_ptr<Activations>> outs;
  std::vector<Activations*> out_ptrs;
  for (const LinearWeight* w : weights) {
    outs.push_back(on.make_activations(rows, w->out_features));
    testing::upload_rows(on, std::vector<float>(static_cast<size_t>(rows * w->out_features),
                                                std::numeric_limits<float>::quiet_NaN()), *outs.back());
    out_ptrs.push_back(outs.back().get());
  }
  on.linear_group(*input, weights, out_ptrs);
  std::vector<std::vector<float>> results;
  for (const auto& out : outs) results.push_back(testing::download_rows(on, *out));
  return results;
}

// Fused q/k/v- and gate/up-like groups against the CPU and against the same weights unfused on the
// same GPU backend, at 1 and 16 rows (the GEMV on the members' views of the shared allocation), 17–128
// (one GEMM and the scale-and-split pass), 129 and 300 (separate epilogue-scaled GEMMs on the views,
// or with =all one epilogue-scaled GEMM and a copying split), in every mode: the default,
// OCTET_CUDA_GROUPED_GEMM=0 and =all, and epilogue scales off (one GEMM at every size). Member widths
// odd, multiples of 4 and of 64 (below); k a multiple of 64 and of 16 only. Tolerance 1e-3 as for
// every FP8 linear (the same codes meet the same weights; summation order differs), poisoned outputs;
// a member's own linear() on its view; groups passed out of order or in part, which must not be taken
// for the fused group.
TEST_F(CudaGroupedGemm, FusedGroupsMatchCpuAndUnfusedWeights) {
  struct Shape {
    int64_t in;
    std::vector<int64_t> outs;
  };
  // Members not multiples of 64 rows start at padded rows of the group (their product columns apart):
  // odd ones (the split's one-float path), multiples of 4 with padding (its float4 path with gaps), and
  // multiples of 64 (no padding, as in Llama).
  const Shape shapes[] = {{1088, {1001, 259, 33}}, {1088, {1000, 260, 36}}, {1024, {512, 128, 128}}, {1040, {517, 519}}};
  const int64_t row_counts[] = {1, 16, 17, 64, 100, 128, 129, 300};
  struct Mode {
    const char* variable;
    const char* value;
  };
  for (Mode mode : {Mode{"OCTET_CUDA_GROUPED_GEMM", "1"}, Mode{"OCTET_CUDA_GROUPED_GEMM", "0"},
                    Mode{"OCTET_CUDA_GROUPED_GEMM", "all"}, Mode{"OCTET_CUDA_GEMM_EPILOGUE_SCALES", "0"}}) {
    auto gpu = cuda_backend_with(mode.variable, mode.value);
    for (const Shape& shape : shapes) {
      std::vector<MemberData> data;
      for (int64_t out : shape.outs)
        data.push_back(MemberData{out, shape.in, testing::random_e4m3_codes(rng_, static_cast<size_t>(out * shape.in)),
                                  testing::random_fp8_scales(rng_, static_cast<size_t>(out))});
      auto on_cpu = make_members(*cpu_, data);
      auto fused = make_members(*gpu, data);
      auto unfused = make_members(*gpu, data);
      fuse(*gpu, fused);
      for (size_t i = 0; i < fused.size(); ++i) EXPECT_EQ(fused[i]->bytes(), unfused[i]->bytes()) << "member " << i;
      for (int64_t rows : row_counts) {
        const std::string where = std::string(mode.variable) + "=" + mode.value + ", k " + std::to_string(shape.in) +
                                  ", " + std::to_string(rows) + " rows";
        const auto x = testing::random_normal(rng_, static_cast<size_t>(rows * shape.in));
        const auto want = run_group(*cpu_, pointers(on_cpu), x, rows);
        const auto got = run_group(*gpu, pointers(fused), x, rows);
        const auto separate = run_group(*gpu, pointers(unfused), x, rows);
        for (size_t i = 0; i < fused.size(); ++i) {
          const std::string member = where + ", member " + std::to_string(i) + " (n " + std::to_string(shape.outs[i]) + ")";
          ASSERT_FALSE(any_nan(got[i])) << "unwritten output, " << member;
          EXPECT_LT(relative_error(got[i], want[i]), 1e-3) << "fused against the CPU, " << member;
          EXPECT_LT(relative_error(got[i], separate[i]), 1e-3) << "fused against unfused, " << member;
        }
        // Each member alone (linear on its view), the group reversed, and its first members only.
        for (size_t i = 0; i < fused.size(); ++i) {
          const auto single = run_group(*gpu, {fused[i].get()}, x, rows);
          EXPECT_LT(relative_error(single[0], want[i]), 1e-3) << "linear of member " << i << ", " << where;
        }
        auto reversed = pointers(fused);
        std::reverse(reversed.begin(), reversed.end());
        const auto backwards = run_group(*gpu, reversed, x, rows);
        for (size_t i = 0; i < fused.size(); ++i)
          EXPECT_LT(relative_error(backwards[fused.size() - 1 - i], want[i]), 1e-3) << "reversed group, member " << i << ", " << where;
        auto first_two = pointers(fused);
        first_two.pop_back();
        const auto partial = run_group(*gpu, first_two, x, rows);
        for (size_t i = 0; i < first_two.size(); ++i)
          EXPECT_LT(relative_error(partial[i], want[i]), 1e-3) << "part of the group, member " << i << ", " << where;
      }
    }
  }
}

// Members the backend must not fuse are left as they are and still compute: another format (bf16), a
// static input scale, in_features that differ, k not a multiple of 16: results against the CPU at 64
// rows (1e-3, as for every FP8 or BF16 linear here).
TEST_F(CudaGroupedGemm, GroupsThatCannotBeFusedStayCorrect) {
  const int64_t rows = 64;
  struct Case {
    const char* what;
    std::vector<int64_t> ins;
    LinearSpec spec;
  };
  for (const Case& c : {Case{"bf16", {256, 256}, LinearSpec{LinearFormat::bf16, 0.0f}},
                        Case{"static input scale", {256, 256}, LinearSpec{LinearFormat::fp8, 0.05f}},
                        Case{"k not a multiple of 16", {200, 200}, LinearSpec{LinearFormat::fp8, 0.0f}}}) {
    std::vector<std::unique_ptr<LinearWeight>> on_cpu, on_gpu;
    for (int64_t in : c.ins) {
      const auto w = testing::random_normal(rng_, static_cast<size_t>(96 * in), 0.05f);
      on_cpu.push_back(cpu_->make_linear(w.data(), 96, in, c.spec));
      on_gpu.push_back(gpu_->make_linear(w.data(), 96, in, c.spec));
    }
    fuse(*gpu_, on_gpu);
    const auto x = testing::random_normal(rng_, static_cast<size_t>(rows * c.ins[0]));
    const auto want = run_group(*cpu_, pointers(on_cpu), x, rows);
    const auto got = run_group(*gpu_, pointers(on_gpu), x, rows);
    for (size_t i = 0; i < got.size(); ++i) {
      ASSERT_FALSE(any_nan(got[i])) << c.what;
      EXPECT_LT(relative_error(got[i], want[i]), 1e-3) << c.what << ", member " << i;
    }
  }
  // Different in_features (linear_group needs one input, so each member runs alone).
  std::vector<std::unique_ptr<LinearWeight>> mixed_cpu, mixed_gpu;
  for (int64_t in : {256, 512}) {
    const auto w = testing::random_normal(rng_, static_cast<size_t>(96 * in), 0.05f);
    mixed_cpu.push_back(cpu_->make_linear(w.data(), 96, in, LinearSpec{LinearFormat::fp8, 0.0f}));
    mixed_gpu.push_back(gpu_->make_linear(w.data(), 96, in, LinearSpec{LinearFormat::fp8, 0.0f}));
  }
  fuse(*gpu_, mixed_gpu);
  for (size_t i = 0; i < mixed_gpu.size(); ++i) {
    const auto x = testing::random_normal(rng_, static_cast<size_t>(rows * mixed_gpu[i]->in_features));
    const auto got = run_group(*gpu_, {mixed_gpu[i].get()}, x, rows);
    EXPECT_LT(relative_error(got[0], run_group(*cpu_, {mixed_cpu[i].get()}, x, rows)[0]), 1e-3)
        << "different in_features, member " << i;
  }
}

size_t free_device_bytes() {
  size_t free_bytes = 0, total_bytes = 0;
  EXPECT_EQ(cudaMemGetInfo(&free_bytes, &total_bytes), cudaSuccess);
  return free_bytes;
}

// Fusion frees the members' old buffers (device memory in use is unchanged by it), the group's
// allocation lives while any member does (the last member still computes what it did before fusion)
// and is freed once with the last one. Memory is read with cudaMemGetInfo, whose figures move in
// pages: a margin of 8 MiB against a group of 48 MiB. compute-sanitizer (tools/gpu_session.sh) would
// report a use after free or a second free of the shared buffers.
TEST_F(CudaGroupedGemm, FusedMembersShareOneAllocationFreedWithTheLast) {
  constexpr int64_t in = 4096, rows = 64;
  const int64_t outs[] = {8192, 2048, 2048};
  const double margin = 8 << 20;
  std::vector<std::unique_ptr<LinearWeight>> weights;
  uint64_t seed = 11;
  uint64_t group_bytes = 0;
  for (int64_t out : outs) {
    weights.push_back(gpu_->make_random_linear(out, in, LinearSpec{LinearFormat::fp8, 0.0f}, seed++));
    group_bytes += weights.back()->bytes();
  }
  const auto x = testing::random_normal(rng_, static_cast<size_t>(rows * in));
  const auto before = run_group(*gpu_, pointers(weights), x, rows);
  const auto last_alone_before = run_group(*gpu_, {weights[2].get()}, x, rows);
  gpu_->synchronize();

  const double free_unfused = static_cast<double>(free_device_bytes());
  fuse(*gpu_, weights);
  gpu_->synchronize();
  EXPECT_NEAR(static_cast<double>(free_device_bytes()), free_unfused, margin) << "fusion should free the members' own buffers";
  uint64_t fused_bytes = 0;
  for (const auto& w : weights) fused_bytes += w->bytes();
  EXPECT_EQ(fused_bytes, group_bytes);

  const auto after = run_group(*gpu_, pointers(weights), x, rows);
  for (size_t i = 0; i < after.size(); ++i) EXPECT_LT(relative_error(after[i], before[i]), 1e-3) << "member " << i;
  gpu_->synchronize();
  const double free_fused = static_cast<double>(free_device_bytes());

  weights[0].reset();
  weights[1].reset();
  gpu_->synchronize();
  EXPECT_NEAR(static_cast<double>(free_device_bytes()), free_fused, margin) << "the group went with its first members";
  const auto last_alone = run_group(*gpu_, {weights[2].get()}, x, rows);
  EXPECT_LT(relative_error(last_alone[0], last_alone_before[0]), 1e-6) << "the last member after the others were freed";

  weights[2].reset();
  gpu_->synchronize();
  EXPECT_NEAR(static_cast<double>(free_device_bytes()) - free_fused, static_cast<double>(group_bytes), margin)
      << "the group should be freed with its last member";
}

}  // namespace
}  // namespace octet::backend

#endif  // OCTET_HAVE_CUDA
