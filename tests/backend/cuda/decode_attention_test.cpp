// The decode attention kernels of attention.cu (the grouped one, v2, and v1 before it), called
// through launch_attention, against a slow double-precision reference written here: softmax(q·Kᵀ /
// sqrt(head_dim)) · V over each token's positions [0, position], K and V decoded from the very codes
// the kernel reads (FP8 E4M3/E5M2 codes times their per-(position, KV head) scale, or BF16 values),
// in a paged pool whose blocks are handed out shuffled. Shapes: GQA groups 1–8; head_dim 64 and 128;
// single tokens of 5,000 to 40,000 positions (up to 500 splits merged by the last block), tokens
// below one split, lengths around the tile and split boundaries, batches of 1, 3 and 64 with
// different lengths per row; q, K and V magnitudes from 1e-6 to 1e6 (the grouped kernel's FP16 range
// scaling); a token list (the mixed-step path); outputs poisoned with NaN. The grouped kernel's split counters must be zero again after every
// launch: checked directly, by a second launch with other positions, and by a CUDA graph captured
// once and replayed with other positions. Tolerance: 1e-4 of each output row's norm, in every row
// (the kernels' error is ~1e-6 to 1e-5: float32 sums, __expf, q and probabilities carried in two
// FP16 parts of ~22 bits (FP8 caches) or two BF16 parts of 16 bits (BF16); one part alone would be
// ~1e-4 to 1e-3; a wrong block, scale, head or split
// weight is off by O(1)). The backend's switch OCTET_CUDA_DECODE_ATTENTION takes v1 or v2 only;
// OCTET_CUDA_GROUPED_ATTENTION_BLOCKS retargets the grouped kernel's splits (one split: hundreds of
// tiles a warp). Skips without a GPU, but for the host-side check of that switch.
#include "backend/device.h"
#include "common/bf16.h"
#include "fp8/fp8.h"
#include "support/error_text.h"
#include "support/random.h"
#include "support/require_gpu.h"
#include "support/scoped_environment.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <memory>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#if OCTET_HAVE_CUDA
#include "backend/cuda/attention_grouped.cuh"
#include "backend/cuda/kernels.h"
#include "support/device_vector.h"

#include <cuda_runtime.h>

namespace octet::backend {
namespace {

using cuda::DecodeAttention;
using cuda::KvStorage;
template <typename T>
using Device = testing::DeviceVector<T>;

constexpr double kTolerance = 1e-4;

int device_major() {
  int device = 0, major = 0;
  if (cudaGetDevice(&device) != cudaSuccess ||
      cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) != cudaSuccess)
    return 0;
  return major;
}

struct Shape {
  int64_t kv_heads, group, head_dim;
  KvStorage storage;
  int64_t max_context;
  int64_t block_size = 16;
};

// Magnitudes of the cached values beyond the N(0, sigma) default: K times k_factor, V times v_factor,
// and each V cell (position, KV head) times 10^u, u uniform in [-v_cell_decades, v_cell_decades] (V
// scales that vary by orders of magnitude between positions).
struct Values {
  float k_factor = 1.0f;
  float v_factor = 1.0f;
  float v_cell_decades = 0.0f;
  // FP8: the cells of each slot's last block past its reach hold NaN codes and NaN scales (a block's
  // unused tail holds whatever it held before), which no kernel may carry into a result.
  bool poison_past_reach = false;
};

// A paged cache holding one slot per token (slot i for token i) filled up to `reach[i]` positions,
// on the host (codes, scales) and on the device.
class PagedCache {
 public:
  PagedCache(const Shape& shape, const std::vector<int64_t>& reach, std::mt19937_64& rng, const Values& magnitudes = {})
      : shape_(shape) {
    const int64_t blocks_per_slot = (shape.max_context + shape.block_size - 1) / shape.block_size;
    const auto slots = static_cast<int64_t>(reach.size());
    int64_t blocks = 0;
    for (int64_t r : reach) blocks += (r + shape.block_size - 1) / shape.block_size;
    blocks += 3;  // blocks no slot uses
    std::vector<int32_t> pool(static_cast<size_t>(blocks));
    std::iota(pool.begin(), pool.end(), 0);
    std::shuffle(pool.begin(), pool.end(), rng);
    table_.assign(static_cast<size_t>(slots * blocks_per_slot), -1);  // unmapped: never read
    auto next = pool.begin();
    for (int64_t s = 0; s < slots; ++s)
      for (int64_t b = 0; b < (reach[s] + shape.block_size - 1) / shape.block_size; ++b)
        table_[static_cast<size_t>(s * blocks_per_slot + b)] = *next++;
    const int64_t cells = blocks * shape.block_size * shape.kv_heads, dim = shape.head_dim;
    // Values N(0, sigma) (sigma drawn per cache: milder and sharper softmaxes), stored like kv_write
    // does: FP8 codes of value / (amax / max) per cell, or BF16.
    const float sigma = std::uniform_real_distribution<float>(0.5f, 3.0f)(rng);
    for (int which = 0; which < 2; ++which) {
      std::vector<float> values = testing::random_normal(rng, static_cast<size_t>(cells * dim), sigma);
      if (which == 0 && magnitudes.k_factor != 1.0f)
        for (float& x : values) x *= magnitudes.k_factor;
      if (which == 1 && (magnitudes.v_factor != 1.0f || magnitudes.v_cell_decades > 0.0f))
        for (int64_t c = 0; c < cells; ++c) {
          const float decades = std::uniform_real_distribution<float>(-magnitudes.v_cell_decades, magnitudes.v_cell_decades)(rng);
          const float factor = magnitudes.v_factor * std::pow(10.0f, decades);
          for (int64_t d = 0; d < dim; ++d) values[static_cast<size_t>(c * dim + d)] *= factor;
        }
      std::vector<float>& decoded = which == 0 ? k_ : v_;
      decoded.resize(values.size());
      if (shape.storage == KvStorage::bf16) {
        std::vector<uint16_t> stored(values.size());
        for (size_t i = 0; i < values.size(); ++i) {
          stored[i] = float_to_bf16(values[i]);
          decoded[i] = bf16_to_float(stored[i]);
        }
        (which == 0 ? k_bf16_ : v_bf16_) = std::make_unique<Device<uint16_t>>(stored.size(), &stored);
      } else {
        const fp8::Format format = shape.storage == KvStorage::e4m3 ? fp8::Format::e4m3 : fp8::Format::e5m2;
        std::vector<uint8_t> codes(values.size());
        std::vector<float> scales(static_cast<size_t>(cells));
        for (int64_t c = 0; c < cells; ++c) {
          float amax = 0.0f;
          for (int64_t d = 0; d < dim; ++d) amax = std::max(amax, std::abs(values[c * dim + d]));
          scales[c] = amax / fp8::max_value(format);
          for (int64_t d = 0; d < dim; ++d) {
            const size_t i = static_cast<size_t>(c * dim + d);
            codes[i] = fp8::encode(format, values[i] / scales[c]);
            decoded[i] = fp8::decode(format, codes[i]) * scales[c];
          }
        }
        if (magnitudes.poison_past_reach)
          for (int64_t s = 0; s < slots; ++s)
            for (int64_t p = reach[s]; p % shape.block_size != 0; ++p) {
              const int32_t block = table_[static_cast<size_t>(s * blocks_per_slot + p / shape.block_size)];
              const int64_t first_cell = (block * shape.block_size + p % shape.block_size) * shape.kv_heads;
              for (int64_t c = first_cell; c < first_cell + shape.kv_heads; ++c) {
                scales[static_cast<size_t>(c)] = std::nanf("");
                std::fill_n(codes.begin() + c * dim, dim, uint8_t{0x7F});  // NaN in E4M3 and in E5M2
              }
            }
        (which == 0 ? k_codes_ : v_codes_) = std::make_unique<Device<uint8_t>>(codes.size(), &codes);
        (which == 0 ? k_scales_ : v_scales_) = std::make_unique<Device<float>>(scales.size(), &scales);
      }
    }
    table_device_ = std::make_unique<Device<int32_t>>(table_.size(), &table_);
    layout_.block_table = table_device_->data;
    layout_.blocks_per_slot = blocks_per_slot;
    layout_.block_size = shape.block_size;
    layout_.kv_heads = shape.kv_heads;
    layout_.head_dim = dim;
    layout_.storage = shape.storage;
    layout_.block_shift = (shape.block_size & (shape.block_size - 1)) == 0 ? __builtin_ctzll(shape.block_size) : -1;
    layout_.pool_rows = blocks * shape.block_size;
  }

  const cuda::KvLayout& layout() const { return layout_; }
  const void* k() const { return k_codes_ ? static_cast<const void*>(k_codes_->data) : k_bf16_->data; }
  const void* v() const { return v_codes_ ? static_cast<const void*>(v_codes_->data) : v_bf16_->data; }
  const float* k_scales() const { return k_scales_ ? k_scales_->data : nullptr; }
  const float* v_scales() const { return v_scales_ ? v_scales_->data : nullptr; }

  // out rows (token, head) of softmax(q · Kᵀ / sqrt(head_dim)) · V over positions [0, position].
  std::vector<double> reference(const std::vector<float>& q, int64_t token, int64_t position) const {
    const int64_t dim = shape_.head_dim, heads = shape_.kv_heads * shape_.group;
    const int64_t blocks_per_slot = layout_.blocks_per_slot;
    std::vector<double> out(static_cast<size_t>(heads * dim), 0.0), scores(static_cast<size_t>(position + 1));
    for (int64_t h = 0; h < heads; ++h) {
      const int64_t kv_head = h / shape_.group;
      const float* qh = q.data() + (token * heads + h) * dim;
      auto cell = [&](int64_t p) {
        const int32_t block = table_[static_cast<size_t>(token * blocks_per_slot + p / shape_.block_size)];
        return (static_cast<int64_t>(block) * shape_.block_size + p % shape_.block_size) * shape_.kv_heads + kv_head;
      };
      double top = -INFINITY;
      for (int64_t p = 0; p <= position; ++p) {
        const float* k = k_.data() + cell(p) * dim;
        double dot = 0.0;
        for (int64_t d = 0; d < dim; ++d) dot += static_cast<double>(qh[d]) * k[d];
        scores[p] = dot / std::sqrt(static_cast<double>(dim));
        top = std::max(top, scores[p]);
      }
      double sum = 0.0;
      for (int64_t p = 0; p <= position; ++p) sum += scores[p] = std::exp(scores[p] - top);
      for (int64_t p = 0; p <= position; ++p) {
        const float* v = v_.data() + cell(p) * dim;
        for (int64_t d = 0; d < dim; ++d) out[h * dim + d] += scores[p] / sum * v[d];
      }
    }
    return out;
  }

 private:
  Shape shape_;
  cuda::KvLayout layout_;
  std::vector<int32_t> table_;
  std::vector<float> k_, v_;  // decoded, as the reference reads them
  std::unique_ptr<Device<uint8_t>> k_codes_, v_codes_;
  std::unique_ptr<Device<uint16_t>> k_bf16_, v_bf16_;
  std::unique_ptr<Device<float>> k_scales_, v_scales_;
  std::unique_ptr<Device<int32_t>> table_device_;
};

std::string describe(const Shape& shape, DecodeAttention kernel, int64_t tokens) {
  const char* storage = shape.storage == KvStorage::bf16 ? "bf16" : shape.storage == KvStorage::e4m3 ? "e4m3" : "e5m2";
  return std::string(kernel == DecodeAttention::grouped ? "grouped" : "v1") + " kv_heads " +
         std::to_string(shape.kv_heads) + " group " + std::to_string(shape.group) + " head_dim " +
         std::to_string(shape.head_dim) + " " + storage + " max_context " + std::to_string(shape.max_context) +
         " block " + std::to_string(shape.block_size) + " tokens " + std::to_string(tokens);
}

// Every listed token's rows within kTolerance of the reference (norm-relative per row), every
// other token's rows still poisoned.
void expect_matches(const PagedCache& cache, const Shape& shape, const std::vector<float>& q,
                    const std::vector<int64_t>& positions, const std::vector<float>& got,
                    const std::vector<bool>& computed, const std::string& what) {
  const int64_t row = shape.kv_heads * shape.group * shape.head_dim;
  double worst = 0.0;
  for (size_t token = 0; token < positions.size(); ++token) {
    const auto first = got.begin() + static_cast<int64_t>(token) * row;
    if (!computed[token]) {
      EXPECT_TRUE(std::all_of(first, first + row, [](float x) { return std::isnan(x); }))
          << what << ": token " << token << " is not listed but was written";
      continue;
    }
    const std::vector<double> want = cache.reference(q, static_cast<int64_t>(token), positions[token]);
    for (int64_t h = 0; h < shape.kv_heads * shape.group; ++h) {
      const std::vector<float> got_head(first + h * shape.head_dim, first + (h + 1) * shape.head_dim);
      const std::vector<double> want_head(want.begin() + h * shape.head_dim, want.begin() + (h + 1) * shape.head_dim);
      const double error = testing::relative_error(got_head, want_head);  // NaN (unwritten) fails too
      ASSERT_TRUE(error < kTolerance) << what << ": token " << token << " (position " << positions[token]
                                      << ") head " << h << " relative error " << error;
      worst = std::max(worst, error);
    }
  }
  std::cout << "  " << what << ": worst row error " << worst << "\n";
}

// One launch of `kernel` over tokens (slot i = token i) at `positions`, optionally for a token list;
// outputs and scratch poisoned first, counters zero. Returns the output.
struct Launch {
  const PagedCache& cache;
  const Shape& shape;
  DecodeAttention kernel;
  std::vector<float> q;
  std::unique_ptr<Device<float>> q_device, scratch, out;
  std::unique_ptr<Device<int64_t>> slots, positions;
  std::unique_ptr<Device<uint32_t>> counters;
  std::unique_ptr<Device<int32_t>> token_list;
  int64_t tokens, listed;

  Launch(const PagedCache& c, const Shape& s, DecodeAttention k, int64_t token_count, std::mt19937_64& rng,
         const std::vector<int32_t>* list = nullptr)
      : cache(c), shape(s), kernel(k), tokens(token_count), listed(list ? static_cast<int64_t>(list->size()) : token_count) {
    const int64_t heads = shape.kv_heads * shape.group;
    q = testing::random_normal(rng, static_cast<size_t>(tokens * heads * shape.head_dim));
    q_device = std::make_unique<Device<float>>(q.size(), &q);
    out = std::make_unique<Device<float>>(q.size());
    std::vector<int64_t> slot_ids(static_cast<size_t>(tokens));
    std::iota(slot_ids.begin(), slot_ids.end(), 0);
    slots = std::make_unique<Device<int64_t>>(slot_ids.size(), &slot_ids);
    positions = std::make_unique<Device<int64_t>>(slot_ids.size());
    const cuda::AttentionScratch need = cuda::attention_scratch(listed, heads, shape.max_context, cache.layout(), kernel);
    scratch = std::make_unique<Device<float>>(std::max<size_t>(1, need.floats));
    const std::vector<uint32_t> zeros(std::max<size_t>(1, need.counters), 0u);
    counters = std::make_unique<Device<uint32_t>>(zeros.size(), &zeros);
    if (list) token_list = std::make_unique<Device<int32_t>>(list->size(), list);
  }
  // q of head h times factors[h % factors.size()] (every token).
  void scale_q(const std::vector<float>& factors) {
    const int64_t heads = shape.kv_heads * shape.group;
    for (size_t i = 0; i < q.size(); ++i) q[i] *= factors[(i / static_cast<size_t>(shape.head_dim)) % static_cast<size_t>(heads) % factors.size()];
    testing::expect_cuda(cudaMemcpy(q_device->data, q.data(), q.size() * sizeof(float), cudaMemcpyHostToDevice), "q");
  }
  void set_positions(const std::vector<int64_t>& p) {
    testing::expect_cuda(cudaMemcpy(positions->data, p.data(), p.size() * sizeof(int64_t), cudaMemcpyHostToDevice), "positions");
  }
  void poison_out() { testing::expect_cuda(cudaMemset(out->data, 0xFF, out->count * sizeof(float)), "poison"); }
  void enqueue(cudaStream_t stream) {
    cuda::launch_attention(q_device->data, listed, shape.kv_heads * shape.group, slots->data, positions->data,
                           shape.max_context, cache.layout(), cache.k(), cache.v(), cache.k_scales(), cache.v_scales(),
                           scratch->data, counters->data, out->data, stream, kernel,
                           token_list ? token_list->data : nullptr);
  }
  // Poisons the output, launches at `p` and checks the result and that the counters are zero again.
  void check(const std::vector<int64_t>& p, const std::vector<bool>& computed, const std::string& what) {
    set_positions(p);
    poison_out();
    enqueue(nullptr);
    expect_matches(cache, shape, q, p, out->host(), computed, what);
    for (uint32_t c : counters->host()) ASSERT_EQ(c, 0u) << what << ": a split counter was left at " << c;
  }
};

// Lengths 1 .. max_length per token, the first token at max_length.
std::vector<int64_t> random_positions(std::mt19937_64& rng, int64_t tokens, int64_t max_length) {
  std::uniform_int_distribution<int64_t> pick(0, max_length - 1);
  std::vector<int64_t> positions(static_cast<size_t>(tokens));
  for (auto& p : positions) p = pick(rng);
  positions[0] = max_length - 1;
  return positions;
}

class CudaDecodeAttention : public ::testing::Test {
 protected:
  void SetUp() override {
    OCTET_REQUIRE_GPU();
    rng_.seed(testing::test_seed(::testing::UnitTest::GetInstance()->current_test_info()->name()));
  }
  // Each kernel over the same cache and positions: once, then again at other (shorter) positions;
  // q of head h times q_factors[h % size] where given.
  void check_both_kernels(const Shape& shape, const std::vector<int64_t>& positions, const Values& magnitudes = {},
                          const std::vector<float>& q_factors = {}) {
    const auto tokens = static_cast<int64_t>(positions.size());
    std::vector<int64_t> reach(positions.size());
    for (size_t i = 0; i < positions.size(); ++i) reach[i] = positions[i] + 1;
    PagedCache cache(shape, reach, rng_, magnitudes);
    std::vector<int64_t> shorter(positions.size());
    for (size_t i = 0; i < positions.size(); ++i) shorter[i] = positions[i] / 3;
    const std::vector<bool> all(positions.size(), true);
    for (DecodeAttention kernel : {DecodeAttention::grouped, DecodeAttention::v1}) {
      Launch launch(cache, shape, kernel, tokens, rng_);
      if (!q_factors.empty()) launch.scale_q(q_factors);
      launch.check(positions, all, describe(shape, kernel, tokens));
      launch.check(shorter, all, describe(shape, kernel, tokens) + ", second launch at a third of the positions");
    }
  }
  std::mt19937_64 rng_;
};

// One token of 5,000 positions: 79 splits of 64 positions (the grid has 128; with 8 KV heads 63 splits
// of 80 in a grid of 64), merged by the last block.
TEST_F(CudaDecodeAttention, LongContextManySplits) {
  check_both_kernels({2, 1, 64, KvStorage::e4m3, 8192}, {4999});
  check_both_kernels({1, 8, 128, KvStorage::bf16, 8192}, {4999});
  check_both_kernels({8, 4, 128, KvStorage::e4m3, 8192}, {4999});
}

// Tokens shorter than one split (64 positions): the block writes the output itself, no counter.
TEST_F(CudaDecodeAttention, BelowOneSplit) {
  check_both_kernels({8, 4, 128, KvStorage::e4m3, 8192}, {39});
  check_both_kernels({2, 8, 64, KvStorage::bf16, 8192}, {0});
  check_both_kernels({3, 1, 128, KvStorage::e5m2, 4096}, {63});
}

// 64 tokens of different lengths (1 .. 1,200): one split each for the Llama-3.1-8B shape (512 items
// fill the target), a few for the others, some tokens using one split only.
TEST_F(CudaDecodeAttention, BatchOf64DifferentLengths) {
  check_both_kernels({8, 4, 128, KvStorage::e4m3, 2048}, random_positions(rng_, 64, 1200));
  check_both_kernels({2, 8, 64, KvStorage::bf16, 2048}, random_positions(rng_, 64, 1200));
  check_both_kernels({2, 1, 128, KvStorage::e4m3, 2048}, random_positions(rng_, 64, 700));
}

// Groups that leave MMA columns unused (3, 5), E5M2, a block size that is not a power of two
// (pool_row divides), and a batch of 3.
TEST_F(CudaDecodeAttention, OddGroupsFormatsAndBlockSizes) {
  check_both_kernels({2, 3, 128, KvStorage::e5m2, 3000, 7}, {2999, 17, 400});
  check_both_kernels({1, 5, 64, KvStorage::e4m3, 3000, 7}, {1000, 2999, 64});
  check_both_kernels({4, 2, 64, KvStorage::bf16, 3000, 16}, {129, 1, 2500});
}

// Batch 1 at long contexts (the grouped kernel runs every batch size): 9,000 positions over 63 splits
// of 144 (the Llama-3.1-8B shape), and 40,000 over 500 splits of 80 (near the 512-split cap, one KV
// head: the merge's weights fill most of the shared memory).
TEST_F(CudaDecodeAttention, BatchOneLongContexts) {
  check_both_kernels({8, 4, 128, KvStorage::e4m3, 16384}, {8999});
  check_both_kernels({8, 8, 128, KvStorage::e5m2, 16384}, {9000});
  check_both_kernels({1, 8, 64, KvStorage::e4m3, 131072}, {39999});
  check_both_kernels({2, 4, 128, KvStorage::bf16, 16384}, {8191});
}

// Every group size 1–8 (the MMAs' unused columns), both head dims and all three cache formats, at
// lengths around the tile (16) and split (64) boundaries.
TEST_F(CudaDecodeAttention, EveryGroupSizeAndOddLengths) {
  const KvStorage storages[] = {KvStorage::e4m3, KvStorage::e5m2, KvStorage::bf16};
  for (int64_t group = 1; group <= 8; ++group)
    check_both_kernels({2, group, group % 2 == 0 ? 128 : 64, storages[group % 3], 2048}, {0, 14, 16, 62, 64, 1022, 1500});
}

// The FP16 range scaling of q: q times 1e-4 (FP16 subnormals unscaled) and 1e6 (past FP16's 65,504
// unscaled), K times the inverse so the scores keep their usual size (a softmax that is neither flat
// nor an argmax, so errors in q show); and heads of one group at different magnitudes (each head's
// own power of two, undone per score column).
TEST_F(CudaDecodeAttention, QueriesOfEveryMagnitude) {
  for (const float factor : {1e-4f, 1e6f}) {
    check_both_kernels({8, 4, 128, KvStorage::e4m3, 2048}, random_positions(rng_, 3, 2000), {1.0f / factor}, {factor});
    check_both_kernels({2, 5, 64, KvStorage::e5m2, 2048}, random_positions(rng_, 2, 2000), {1.0f / factor}, {factor});
  }
  const std::vector<float> factors = {1.0f / 64, 1.0f, 6.0f, 0.3f, 1.0f / 1024, 2.0f, 0.01f};
  check_both_kernels({8, 4, 128, KvStorage::e4m3, 2048}, random_positions(rng_, 3, 2000), {}, factors);
  check_both_kernels({2, 8, 64, KvStorage::e5m2, 2048}, random_positions(rng_, 2, 2000), {}, factors);
}

// The FP16 range scaling of P · v_scale: V scales near 1e-8 (E4M3) and 1e-10 (E5M2), near 100 (E4M3), and
// V scales that vary by up to 10^6 between positions (the per-warp exponent falls mid-split).
TEST_F(CudaDecodeAttention, ValueScalesOfEveryMagnitude) {
  for (const KvStorage storage : {KvStorage::e4m3, KvStorage::e5m2}) {
    check_both_kernels({8, 4, 128, storage, 4096}, random_positions(rng_, 2, 4000), {1.0f, 1e-6f, 0.0f});
    check_both_kernels({8, 4, 128, storage, 4096}, random_positions(rng_, 2, 4000), {1.0f, 1e4f, 0.0f});
    check_both_kernels({2, 8, 64, storage, 4096}, random_positions(rng_, 3, 4000), {1.0f, 1.0f, 3.0f});
  }
}

// OCTET_CUDA_GROUPED_ATTENTION_BLOCKS (tuning) sets the grouped kernel's split count: a single block
// per item then runs hundreds of tiles a warp through its ring of stages.
TEST_F(CudaDecodeAttention, FewSplitsLongWarpLoops) {
  const testing::ScopedEnvironment one_split("OCTET_CUDA_GROUPED_ATTENTION_BLOCKS", "8");
  check_both_kernels({8, 4, 128, KvStorage::e4m3, 16384}, {8999});
  check_both_kernels({2, 8, 64, KvStorage::bf16, 4096}, random_positions(rng_, 3, 4000));
  check_both_kernels({8, 1, 128, KvStorage::e5m2, 4096}, {4095, 17, 2222});
}

// The packed build (groups of up to 4 heads over FP8 caches: head and tail parts in one MMA's columns,
// 5 warps a block), which launches of 16 tokens or more take, at every batch size through
// OCTET_CUDA_ATTENTION_PACKED_TOKENS=1: groups 1–4 at both head dims, lengths around the tile and split
// boundaries, many splits, one split of hundreds of tiles a warp, and the FP16 range scaling of q and P.
TEST_F(CudaDecodeAttention, PackedGroupsMatchAtEveryShape) {
  const testing::ScopedEnvironment always("OCTET_CUDA_ATTENTION_PACKED_TOKENS", "1");
  for (int64_t group = 1; group <= 4; ++group)
    check_both_kernels({2, group, group % 2 == 0 ? 128 : 64, group % 2 == 0 ? KvStorage::e4m3 : KvStorage::e5m2, 2048},
                       {0, 14, 16, 62, 64, 1022, 1500});
  check_both_kernels({8, 4, 128, KvStorage::e4m3, 8192}, {4999});
  check_both_kernels({2, 3, 128, KvStorage::e5m2, 3000, 7}, {2999, 17, 400});
  for (const float factor : {1e-4f, 1e6f})
    check_both_kernels({8, 4, 128, KvStorage::e4m3, 2048}, random_positions(rng_, 3, 2000), {1.0f / factor}, {factor});
  check_both_kernels({8, 4, 128, KvStorage::e4m3, 2048}, random_positions(rng_, 3, 2000), {},
                     {1.0f / 64, 1.0f, 6.0f, 0.3f});
  check_both_kernels({8, 4, 128, KvStorage::e4m3, 4096}, random_positions(rng_, 2, 4000), {1.0f, 1e4f, 0.0f});
  check_both_kernels({8, 4, 128, KvStorage::e5m2, 4096}, random_positions(rng_, 2, 4000), {1.0f, 1e-6f, 0.0f});
  const testing::ScopedEnvironment one_split("OCTET_CUDA_GROUPED_ATTENTION_BLOCKS", "8");
  check_both_kernels({8, 4, 128, KvStorage::e4m3, 16384}, {8999});
  check_both_kernels({8, 1, 128, KvStorage::e5m2, 4096}, {4095, 17, 2222});
}

// 64 tokens (which take the packed build by default) through the plain one, and bad thresholds refused by name.
TEST_F(CudaDecodeAttention, PackedTokensSwitch) {
  {
    const testing::ScopedEnvironment never("OCTET_CUDA_ATTENTION_PACKED_TOKENS", "1000000");
    check_both_kernels({8, 4, 128, KvStorage::e4m3, 2048}, random_positions(rng_, 64, 1200));
  }
  for (const char* bad : {"0", "-1", "16x"}) {
    const testing::ScopedEnvironment target("OCTET_CUDA_ATTENTION_PACKED_TOKENS", bad);
    const Shape shape{8, 4, 128, KvStorage::e4m3, 2048};
    PagedCache cache(shape, {100}, rng_, {});
    Launch launch(cache, shape, DecodeAttention::grouped, 1, rng_);
    launch.set_positions({99});
    testing::expect_parts(testing::error_of([&] { launch.enqueue(nullptr); }),
                          {"OCTET_CUDA_ATTENTION_PACKED_TOKENS", std::string("'") + bad + "'"});
  }
}

// The copy engine's tiles (the default from 16 tokens on for FP8 caches at head_dim 128 in pool blocks
// of whole 16-position tiles, on sm_90 and later) against the cp.async
// build: the same products and sums in the same order, so the same bits, and both within the
// reference bound. Each slot's last block holds NaN codes and NaN scales past its length, which
// neither build may carry into a result (the TMA build copies whole pool blocks). Plain and packed
// builds, one and many splits, blocks of 16 to 64 positions, 3 to 12 KV heads, E4M3 and E5M2.
TEST_F(CudaDecodeAttention, TmaTilesMatchCopiedTilesBitForBit) {
  const std::vector<Shape> shapes = {{8, 4, 128, KvStorage::e4m3, 2048, 16}, {8, 8, 128, KvStorage::e4m3, 2048, 32},
                                     {4, 1, 128, KvStorage::e5m2, 2048, 48}, {8, 2, 128, KvStorage::e5m2, 4096, 16},
                                     {12, 3, 128, KvStorage::e4m3, 1024, 64}, {3, 4, 128, KvStorage::e4m3, 1024, 32}};
  struct Build {
    const char* name;
    const char* tma_tokens;
    bool tma;
  };
  const Build builds[] = {{"cp.async", "1000000", false}, {"TMA", "1", true}};
  const bool copy_engine = device_major() >= 9;
  for (const Shape& shape : shapes)
    for (const int64_t tokens : {1, 3, 17, 64}) {
      const std::vector<int64_t> positions = random_positions(rng_, tokens, shape.max_context - 1);
      std::vector<int64_t> reach(positions.size());
      for (size_t i = 0; i < positions.size(); ++i) reach[i] = positions[i] + 1;
      Values poisoned;
      poisoned.poison_past_reach = true;
      PagedCache cache(shape, reach, rng_, poisoned);
      Launch launch(cache, shape, DecodeAttention::grouped, tokens, rng_);
      const std::vector<bool> all(positions.size(), true);
      std::vector<float> first;
      for (const Build& build : builds) {
        const testing::ScopedEnvironment tma("OCTET_CUDA_ATTENTION_TMA_TOKENS", build.tma_tokens);
        const std::string what = describe(shape, DecodeAttention::grouped, tokens) + ", " + build.name;
        ASSERT_EQ(cuda::grouped_attention_tma(cache.layout(), tokens), build.tma && copy_engine) << what;
        launch.check(positions, all, what);
        const std::vector<float> got = launch.out->host();
        if (first.empty()) first = got;
        ASSERT_EQ(std::memcmp(first.data(), got.data(), got.size() * sizeof(float)), 0)
            << what << ": the bits differ from the cp.async build's";
      }
    }
  for (const char* bad : {"0", "-2", "16 "}) {
    const testing::ScopedEnvironment tma("OCTET_CUDA_ATTENTION_TMA_TOKENS", bad);
    const Shape shape{8, 4, 128, KvStorage::e4m3, 2048};
    PagedCache cache(shape, {100}, rng_, {});
    Launch launch(cache, shape, DecodeAttention::grouped, 1, rng_);
    launch.set_positions({99});
    testing::expect_parts(testing::error_of([&] { launch.enqueue(nullptr); }),
                          {"OCTET_CUDA_ATTENTION_TMA_TOKENS", std::string("'") + bad + "'"});
  }
}

// The same switch on the host: the split count behind the scratch size, and bad values refused by
// name. Runs without a GPU (attention_scratch touches no device).
TEST(CudaDecodeAttentionSwitches, GroupedBlocksTargetSetsTheSplits) {
  cuda::KvLayout layout;
  layout.kv_heads = 8;
  layout.head_dim = 128;
  layout.storage = KvStorage::e4m3;
  auto floats = [&] { return cuda::attention_scratch(1, 32, 8192, layout, DecodeAttention::grouped).floats; };
  EXPECT_EQ(floats(), 32u * 64 * 130);  // 512 blocks / 8 items (8192 / 64 positions would allow 128)
  {
    const testing::ScopedEnvironment target("OCTET_CUDA_GROUPED_ATTENTION_BLOCKS", "256");
    EXPECT_EQ(floats(), 32u * 32 * 130);
  }
  {
    const testing::ScopedEnvironment target("OCTET_CUDA_GROUPED_ATTENTION_BLOCKS", "16");
    EXPECT_EQ(floats(), 32u * 2 * 130);
  }
  {
    const testing::ScopedEnvironment target("OCTET_CUDA_GROUPED_ATTENTION_BLOCKS", "8");
    EXPECT_EQ(floats(), 0u);  // one split: no partials
  }
  {
    const testing::ScopedEnvironment target("OCTET_CUDA_GROUPED_ATTENTION_BLOCKS", "1000000");
    EXPECT_EQ(floats(), 32u * 128 * 130);  // the context's 128 spans of 64 bound it
  }
  for (const char* bad : {"0", "-3", "12abc", "2000000"}) {
    const testing::ScopedEnvironment target("OCTET_CUDA_GROUPED_ATTENTION_BLOCKS", bad);
    testing::expect_parts(testing::error_of([&] { floats(); }),
                          {"OCTET_CUDA_GROUPED_ATTENTION_BLOCKS", std::string("'") + bad + "'", "1 to 1048576"});
  }
}

// The mixed-step path: only the listed batch entries are computed, the others stay untouched.
TEST_F(CudaDecodeAttention, TokenListComputesOnlyListedEntries) {
  const Shape shape{8, 4, 128, KvStorage::e4m3, 4096};
  const std::vector<int64_t> positions = {3000, 40, 700, 5, 1999, 100};
  std::vector<int64_t> reach(positions.size());
  for (size_t i = 0; i < positions.size(); ++i) reach[i] = positions[i] + 1;
  PagedCache cache(shape, reach, rng_);
  const std::vector<int32_t> list = {4, 0, 3};
  std::vector<bool> computed(positions.size(), false);
  for (int32_t t : list) computed[static_cast<size_t>(t)] = true;
  for (DecodeAttention kernel : {DecodeAttention::grouped, DecodeAttention::v1}) {
    Launch launch(cache, shape, kernel, static_cast<int64_t>(positions.size()), rng_, &list);
    launch.check(positions, computed, describe(shape, kernel, 3) + " of 6 listed");
  }
}

// A graph captured once (as decode steps are) and replayed with other positions, twice.
TEST_F(CudaDecodeAttention, GraphReplayedWithOtherPositions) {
  const Shape shape{8, 4, 128, KvStorage::e4m3, 4096};
  const std::vector<int64_t> first = random_positions(rng_, 8, 4000);
  std::vector<int64_t> reach(first.size(), 4000);
  PagedCache cache(shape, reach, rng_);
  const std::vector<bool> all(first.size(), true);
  for (DecodeAttention kernel : {DecodeAttention::grouped, DecodeAttention::v1}) {
    Launch launch(cache, shape, kernel, static_cast<int64_t>(first.size()), rng_);
    cudaStream_t stream = nullptr;
    testing::expect_cuda(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "stream");
    cudaGraph_t graph = nullptr;
    cudaGraphExec_t exec = nullptr;
    testing::expect_cuda(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal), "begin capture");
    launch.enqueue(stream);
    testing::expect_cuda(cudaStreamEndCapture(stream, &graph), "end capture");
    testing::expect_cuda(cudaGraphInstantiate(&exec, graph, 0), "instantiate");
    for (int replay = 0; replay < 3; ++replay) {
      const std::vector<int64_t> positions = replay == 0 ? first : random_positions(rng_, 8, 4000);
      launch.set_positions(positions);
      launch.poison_out();
      testing::expect_cuda(cudaGraphLaunch(exec, stream), "replay");
      testing::expect_cuda(cudaStreamSynchronize(stream), "replayed graph");
      expect_matches(cache, shape, launch.q, positions, launch.out->host(), all,
                     describe(shape, kernel, 8) + ", replay " + std::to_string(replay));
      for (uint32_t c : launch.counters->host()) ASSERT_EQ(c, 0u) << "a split counter was left at " << c;
    }
    cudaGraphExecDestroy(exec);
    cudaGraphDestroy(graph);
    cudaStreamDestroy(stream);
  }
}

// The backend's A/B switch: v1 and v2 make a backend, anything else is refused, naming the variable.
TEST_F(CudaDecodeAttention, SwitchTakesAutoV1OrV2) {
  for (const char* value : {"auto", "v1", "v2"}) {
    const testing::ScopedEnvironment environment("OCTET_CUDA_DECODE_ATTENTION", value);
    EXPECT_EQ(testing::error_of([] { make_cuda_backend(0); }), "<no error>") << value;
  }
  const testing::ScopedEnvironment environment("OCTET_CUDA_DECODE_ATTENTION", "1");
  testing::expect_parts(testing::error_of([] { make_cuda_backend(0); }), {"OCTET_CUDA_DECODE_ATTENTION", "'1'", "auto, v1 or v2"});
}

}  // namespace
}  // namespace octet::backend

#endif  // OCTET_HAVE_CUDA
