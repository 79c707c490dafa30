#include "backend/cpu/cpu_tensors.h"

#include "backend/cpu/dot_kernels.h"
#include "common/bf16.h"
#include "common/error.h"
#include "fp8/scaling.h"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace octet::backend::cpu {

CpuLinear::CpuLinear(const float* weights, int64_t out, int64_t in, const LinearSpec& spec)
    : format(spec.format), static_input_scale(spec.static_input_scale) {
  out_features = out;
  in_features = in;
  const size_t count = static_cast<size_t>(out * in);
  switch (format) {
    case LinearFormat::f32:
      f32.assign(weights, weights + count);
      break;
    case LinearFormat::bf16:
      bf16.resize(count);
      for (size_t i = 0; i < count; ++i) bf16[i] = float_to_bf16(weights[i]);
      break;
    case LinearFormat::fp8: {
      auto q = fp8::quantize(weights, static_cast<size_t>(out), static_cast<size_t>(in),
                             fp8::ScaleGranularity::per_output_channel);
      codes = std::move(q.codes);
      scales = std::move(q.scales);
      for (float& s : scales) s *= kE4M3WidenFactor;
      break;
    }
  }
}

uint64_t CpuLinear::bytes() const {
  return f32.size() * 4 + bf16.size() * 2 + codes.size() + scales.size() * 4;
}

const float* CpuLinear::widen_row(int64_t row, float* scratch) const {
  switch (format) {
    case LinearFormat::f32: return f32.data() + row * in_features;
    case LinearFormat::bf16: widen_bf16_row(bf16.data() + row * in_features, in_features, scratch); return scratch;
    case LinearFormat::fp8: widen_e4m3_row(codes.data() + row * in_features, in_features, scratch); return scratch;
  }
  return nullptr;
}

CpuEmbedding::CpuEmbedding(const float* table, int64_t v, int64_t h, bool as_bf16) {
  vocab = v;
  hidden = h;
  const size_t count = static_cast<size_t>(v * h);
  if (as_bf16) {
    bf16.resize(count);
    for (size_t i = 0; i < count; ++i) bf16[i] = float_to_bf16(table[i]);
  } else {
    f32.assign(table, table + count);
  }
}

uint64_t CpuEmbedding::bytes() const { return f32.size() * 4 + bf16.size() * 2; }

void CpuEmbedding::row(int32_t token, float* out) const {
  if (!f32.empty()) {
    std::copy_n(f32.data() + static_cast<int64_t>(token) * hidden, hidden, out);
  } else {
    widen_bf16_row(bf16.data() + static_cast<int64_t>(token) * hidden, hidden, out);
  }
}

namespace {
int64_t storage_bytes(KvCacheSpec::Storage storage) {
  switch (storage) {
    case KvCacheSpec::Storage::f32: return 4;
    case KvCacheSpec::Storage::bf16: return 2;
    case KvCacheSpec::Storage::fp8: return 1;
  }
  return 4;
}
}  // namespace

CpuKvCache::CpuKvCache(const KvCacheSpec& s)
    : element_bytes_(storage_bytes(s.storage)),
      lanes_(static_cast<size_t>(2 * s.layers * s.slots)),
      lengths_(static_cast<size_t>(s.slots), 0) {
  spec = s;
  if (!spec.static_k_scales.empty() && static_cast<int64_t>(spec.static_k_scales.size()) != spec.layers)
    fail("kv cache: {} static K scales for {} layers", spec.static_k_scales.size(), spec.layers);
  if (!spec.static_v_scales.empty() && static_cast<int64_t>(spec.static_v_scales.size()) != spec.layers)
    fail("kv cache: {} static V scales for {} layers", spec.static_v_scales.size(), spec.layers);
}

uint64_t CpuKvCache::bytes_per_position() const {
  uint64_t per_lane = static_cast<uint64_t>(spec.kv_heads * spec.head_dim * element_bytes_);
  if (spec.storage == KvCacheSpec::Storage::fp8) per_lane += static_cast<uint64_t>(spec.kv_heads) * 4;
  return 2 * per_lane * static_cast<uint64_t>(spec.layers);
}

void CpuKvCache::clear_slot(int64_t slot) {
  for (int64_t layer = 0; layer < spec.layers; ++layer)
    for (bool is_v : {false, true}) {
      Lane& l = lane(is_v, layer, slot);
      l.bytes.clear();
      l.bytes.shrink_to_fit();
      l.scales.clear();
      l.scales.shrink_to_fit();
    }
  lengths_[slot] = 0;
}

CpuKvCache::Lane& CpuKvCache::lane(bool is_v, int64_t layer, int64_t slot) {
  return lanes_[static_cast<size_t>(((is_v ? 1 : 0) * spec.layers + layer) * spec.slots + slot)];
}
const CpuKvCache::Lane& CpuKvCache::lane(bool is_v, int64_t layer, int64_t slot) const {
  return lanes_[static_cast<size_t>(((is_v ? 1 : 0) * spec.layers + layer) * spec.slots + slot)];
}

void CpuKvCache::write(int64_t layer, const TokenBatch& batch, const float* k, const float* v) {
  const int64_t width = spec.kv_heads * spec.head_dim;
  for (size_t t = 0; t < batch.size(); ++t) {
    const int64_t slot = batch.slots[t], position = batch.positions[t];
    if (slot < 0 || slot >= spec.slots) fail("kv cache: slot {} outside [0, {})", slot, spec.slots);
    if (position < 0 || position >= spec.max_positions)
      fail("kv cache: position {} outside the context of {} tokens", position, spec.max_positions);
    store(lane(false, layer, slot), position, k + t * width,
          spec.static_k_scales.empty() ? 0.0f : spec.static_k_scales[layer]);
    store(lane(true, layer, slot), position, v + t * width,
          spec.static_v_scales.empty() ? 0.0f : spec.static_v_scales[layer]);
    if (layer == spec.layers - 1) lengths_[slot] = std::max(lengths_[slot], position + 1);
  }
}

void CpuKvCache::store(Lane& l, int64_t position, const float* values, float static_scale) {
  const int64_t width = spec.kv_heads * spec.head_dim;
  const size_t needed = static_cast<size_t>((position + 1) * width * element_bytes_);
  if (l.bytes.size() < needed) {
    l.bytes.reserve(std::max(needed, l.bytes.size() * 2));
    l.bytes.resize(needed);
    if (spec.storage == KvCacheSpec::Storage::fp8) l.scales.resize(static_cast<size_t>((position + 1) * spec.kv_heads));
  }
  uint8_t* dst = l.bytes.data() + position * width * element_bytes_;
  switch (spec.storage) {
    case KvCacheSpec::Storage::f32:
      std::memcpy(dst, values, static_cast<size_t>(width) * 4);
      break;
    case KvCacheSpec::Storage::bf16:
      for (int64_t i = 0; i < width; ++i) {
        uint16_t b = float_to_bf16(values[i]);
        std::memcpy(dst + i * 2, &b, 2);
      }
      break;
    case KvCacheSpec::Storage::fp8:
      for (int64_t h = 0; h < spec.kv_heads; ++h) {
        const float* head = values + h * spec.head_dim;
        // Without a calibrated scale, each (token, head) vector gets its own amax scale.
        float scale = static_scale > 0 ? static_scale
                                       : fp8::scale_from_amax(fp8::amax(head, static_cast<size_t>(spec.head_dim)),
                                                              spec.fp8_format);
        l.scales[static_cast<size_t>(position * spec.kv_heads + h)] = scale;
        fp8::encode_scaled(spec.fp8_format, head, 1.0f / scale, dst + h * spec.head_dim,
                           static_cast<size_t>(spec.head_dim));
      }
      break;
  }
}

void CpuKvCache::load(const Lane& l, int64_t position, int64_t head, float* out) const {
  const int64_t offset = position * spec.kv_heads * spec.head_dim + head * spec.head_dim;
  const uint8_t* src = l.bytes.data() + offset * element_bytes_;
  switch (spec.storage) {
    case KvCacheSpec::Storage::f32: std::memcpy(out, src, static_cast<size_t>(spec.head_dim) * 4); break;
    case KvCacheSpec::Storage::bf16:
      widen_bf16_row(reinterpret_cast<const uint16_t*>(src), spec.head_dim, out);
      break;
    case KvCacheSpec::Storage::fp8:
      fp8::decode_scaled(spec.fp8_format, src, l.scales[static_cast<size_t>(position * spec.kv_heads + head)], out,
                         static_cast<size_t>(spec.head_dim));
      break;
  }
}

void CpuKvCache::read_k(int64_t layer, int64_t slot, int64_t position, int64_t head, float* out) const {
  load(lane(false, layer, slot), position, head, out);
}
void CpuKvCache::read_v(int64_t layer, int64_t slot, int64_t position, int64_t head, float* out) const {
  load(lane(true, layer, slot), position, head, out);
}

}  // namespace octet::backend::cpu
