// The CUDA backend's attention side: RoPE, writes into the paged KV cache, and attention, split
// between the decode kernel and the tensor-core prefill kernel by a plan made once per batch.
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_check.h"

#include <algorithm>
#include <optional>
#include <span>

namespace octet::backend::cuda {
namespace {

// 8B fp8 at context 1024 on the H200 (2026-12-01), ms a step with v1 / v2 (the grouped kernel that
// streams K/V through cp.async stages on FP16 MMAs, branch attn3 at c33a4f2): batch 1 3.113 / 3.005,
// 2 3.596 / 3.444, 4 3.987 / 3.637, 8 4.629 / 3.983, 64 9.864 / 6.022: v2 from the first token.
constexpr int64_t kMinGroupedDecodeTokens = 1;

// Shortest run that goes to the tensor-core kernel: 16 tokens fill half of a 128-row tile at GQA
// ratio 4 (all of v1's 64) and an eighth of it at ratio 1; shorter runs are decode-like (few rows
// per K/V tile), where the CUDA-core kernel's split over the positions keeps more of the GPU busy.
constexpr int64_t kMinPrefillRunTokens = 16;

}  // namespace

void CudaBackend::rope(Activations& x, int64_t head_dim, std::span<const int64_t> positions,
                       std::span<const float> inverse_frequencies) {
  expect_prepared(positions.size());
  if (static_cast<int64_t>(inverse_frequencies.size()) * 2 != head_dim || x.cols % head_dim != 0)
    fail("rope: head_dim {} does not match {} frequencies / {} columns", head_dim, inverse_frequencies.size(), x.cols);
  upload_frequencies(inverse_frequencies);
  if (reproducible_)
    return reproducible::launch_rope(cast(x).data.data(), static_cast<int64_t>(positions.size()), x.cols / head_dim,
                                     head_dim, positions_.data(), frequencies_.data(), stream_);
  launch_rope(cast(x).data.data(), static_cast<int64_t>(positions.size()), x.cols / head_dim, head_dim, positions_.data(),
              frequencies_.data(), stream_);
}

void CudaBackend::kv_write(KvCache& cache, int64_t layer, const TokenBatch& batch, const Activations& k, const Activations& v) {
  auto& c = static_cast<CudaKvCache&>(cache);
  expect_prepared(batch.size());
  c.check_batch(batch);
  graphs_.note_cache(&c);
  const int64_t width = c.spec.kv_heads * c.spec.head_dim;
  check_shape(k, static_cast<int64_t>(batch.size()), width, "kv_write keys");
  check_shape(v, static_cast<int64_t>(batch.size()), width, "kv_write values");
  launch_kv_write(cast(k).data.data(), cast(v).data.data(), static_cast<int64_t>(batch.size()), slots_.data(),
                  positions_.data(), c.layout(), c.static_k_scale(layer), c.static_v_scale(layer), c.k[layer].data(),
                  c.v[layer].data(), c.fp8() ? c.k_scales[layer].data() : nullptr,
                  c.fp8() ? c.v_scales[layer].data() : nullptr, stream_);
}

void CudaBackend::rope_kv_write(KvCache& cache, int64_t layer, const TokenBatch& batch, Activations& q, Activations& k,
                                const Activations& v, std::span<const float> inverse_frequencies) {
  if (reproducible_) return Backend::rope_kv_write(cache, layer, batch, q, k, v, inverse_frequencies);
  rope_kv_write_from(cache, layer, batch, q, k, v, inverse_frequencies, nullptr);
}

void CudaBackend::rope_kv_write_from(KvCache& cache, int64_t layer, const TokenBatch& batch, Activations& q,
                                     Activations& k, const Activations& v, std::span<const float> inverse_frequencies,
                                     const QkvProduct* source) {
  auto& c = static_cast<CudaKvCache&>(cache);
  expect_prepared(batch.size());
  c.check_batch(batch);
  graphs_.note_cache(&c);
  const auto tokens = static_cast<int64_t>(batch.size());
  const int64_t head_dim = c.spec.head_dim, width = c.spec.kv_heads * head_dim;
  if (static_cast<int64_t>(inverse_frequencies.size()) * 2 != head_dim || q.cols % head_dim != 0)
    fail("rope: head_dim {} does not match {} frequencies / {} columns", head_dim, inverse_frequencies.size(), q.cols);
  check_shape(k, tokens, width, "kv_write keys");
  check_shape(v, tokens, width, "kv_write values");
  check_shape(q, tokens, q.cols, "rope queries");
  upload_frequencies(inverse_frequencies);
  if (probe_skips("rope", tokens)) return;
  launch_rope_kv_write(cast(q).data.data(), cast(k).data.data(), cast(v).data.data(), tokens, q.cols / head_dim,
                       slots_.data(), positions_.data(), frequencies_.data(), c.layout(), c.static_k_scale(layer),
                       c.static_v_scale(layer), c.k[layer].data(), c.v[layer].data(),
                       c.fp8() ? c.k_scales[layer].data() : nullptr, c.fp8() ? c.v_scales[layer].data() : nullptr,
                       stream_, source);
}

void CudaBackend::attention(const KvCache& cache, int64_t layer, const TokenBatch& batch, const Activations& q, Activations& out) {
  const auto& c = static_cast<const CudaKvCache&>(cache);
  expect_prepared(batch.size());
  check_shape(out, q.rows, q.cols, "attention output");
  c.check_batch(batch);
  if (probe_skips("attn", q.rows)) return;
  graphs_.note_cache(&c);
  if (reproducible_) return reproducible_attention(c, layer, batch, q, out);
  const auto tokens = static_cast<int64_t>(batch.size());
  const int64_t heads = q.cols / c.spec.head_dim;
  const KvLayout layout = c.layout();
  const float* k_scales = c.fp8() ? c.k_scales[layer].data() : nullptr;
  const float* v_scales = c.fp8() ? c.v_scales[layer].data() : nullptr;
  // A step that may be recorded replays with other slots and positions, so its kernels must not
  // depend on them: only steps that are never recorded split the batch into runs.
  const bool recordable = in_step_ && graphs_.may_record(tokens);
  if (tc_attention_ && !recordable && !graphs_.capturing() && prefill_attention_fits(c.spec.head_dim) &&
      heads % c.spec.kv_heads == 0) {
    const PrefillPlan& plan = prefill_plan(batch, heads / c.spec.kv_heads);
    if (!plan.tiles.empty()) {
      const auto others = static_cast<int64_t>(plan.other_tokens.size());
      if (others > 0) decode_attention(c, layer, q, others, out, other_tokens_.data());
      launch_prefill_attention(cast(q).data.data(), heads, slots_.data(), positions_.data(), prefill_tiles_.data(),
                               static_cast<int64_t>(plan.tiles.size()), layout, c.k[layer].data(), c.v[layer].data(),
                               k_scales, v_scales, cast(out).data.data(), stream_);
      return;
    }
  }
  decode_attention(c, layer, q, tokens, out, nullptr);
}

// launch_attention for `tokens` batch entries (all of them, or those of token_list) with the scratch
// and split counters it needs; new counters start at zero (launches leave them so).
void CudaBackend::decode_attention(const CudaKvCache& c, int64_t layer, const Activations& q, int64_t tokens, Activations& out,
                                   const int32_t* token_list) {
  const int64_t heads = q.cols / c.spec.head_dim, context = c.spec.max_positions;
  const KvLayout layout = c.layout();
  const DecodeAttention kernel =
      decode_attention_.value_or(tokens < kMinGroupedDecodeTokens ? DecodeAttention::v1 : DecodeAttention::grouped);
  const AttentionScratch need = attention_scratch(tokens, heads, context, layout, kernel);
  ensure_capacity(attention_scratch_, std::max<size_t>(1, need.floats));
  if (attention_counters_.size() < need.counters) {
    ensure_capacity(attention_counters_, need.counters);
    OCTET_CUDA_CHECK(cudaMemsetAsync(attention_counters_.data(), 0, attention_counters_.bytes(), stream_));
  }
  launch_attention(cast(q).data.data(), tokens, heads, slots_.data(), positions_.data(), context, layout,
                   c.k[layer].data(), c.v[layer].data(), c.fp8() ? c.k_scales[layer].data() : nullptr,
                   c.fp8() ? c.v_scales[layer].data() : nullptr, attention_scratch_.data(), attention_counters_.data(),
                   cast(out).data.data(), stream_, kernel, token_list);
}

// The device copy of the RoPE frequencies, uploaded when they change (eagerly: a recorded step
// always sees the same model's frequencies, or the epoch has dropped it).
void CudaBackend::upload_frequencies(std::span<const float> inverse_frequencies) {
  if (frequencies_.size() == inverse_frequencies.size() &&
      std::equal(inverse_frequencies.begin(), inverse_frequencies.end(), frequencies_host_.begin()))
    return;
  if (graphs_.capturing()) fail("cuda backend: RoPE frequencies changed while recording a step");
  frequencies_host_.assign(inverse_frequencies.begin(), inverse_frequencies.end());
  frequencies_ = DeviceBuffer<float>(frequencies_host_.size());
  frequencies_.upload(frequencies_host_.data(), frequencies_host_.size(), stream_);
  ++*epoch_;
}

// The prepared batch's runs for the tensor-core attention, planned and uploaded once per batch
// (every layer's attention shares them).
const PrefillPlan& CudaBackend::prefill_plan(const TokenBatch& batch, int64_t group) {
  if (plan_batch_ == prepared_batches_ && plan_group_ == group) return plan_;
  plan_ = plan_prefill_attention(batch.slots.data(), batch.positions.data(), static_cast<int64_t>(batch.size()), group,
                                 kMinPrefillRunTokens);
  ensure_capacity(prefill_tiles_, std::max<size_t>(1, plan_.tiles.size()));
  ensure_capacity(other_tokens_, std::max<size_t>(1, plan_.other_tokens.size()));
  if (!plan_.tiles.empty()) prefill_tiles_.upload(plan_.tiles.data(), plan_.tiles.size(), stream_);
  if (!plan_.other_tokens.empty()) other_tokens_.upload(plan_.other_tokens.data(), plan_.other_tokens.size(), stream_);
  plan_batch_ = prepared_batches_;
  plan_group_ = group;
  return plan_;
}

}  // namespace octet::backend::cuda
