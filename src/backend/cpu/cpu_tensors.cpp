#include "backend/cpu/cpu_tensors.h"

#include "backend/cpu/dot_kernels.h"
#include "common/bf16.h"
#include "common/error.h"
#include "common/thread_pool.h"
#include "fp8/scaling.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <mutex>

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
      if (!spec.weight_scales.empty()) {
        codes = fp8::encode_rows(weights, static_cast<size_t>(out), static_cast<size_t>(in), spec.weight_scales);
        scales.assign(spec.weight_scales.begin(), spec.weight_scales.end());
      } else {
        auto q = fp8::quantize(weights, static_cast<size_t>(out), static_cast<size_t>(in),
                               fp8::ScaleGranularity::per_output_channel);
        codes = std::move(q.codes);
        scales = std::move(q.scales);
      }
      for (float& s : scales) s *= kE4M3WidenFactor;
      break;
    }
  }
}

CpuLinear::CpuLinear(const uint8_t* e4m3_codes, const float* channel_scales, int64_t out, int64_t in,
                     const LinearSpec& spec)
    : format(LinearFormat::fp8), static_input_scale(spec.static_input_scale) {
  if (spec.format != LinearFormat::fp8) fail("cpu backend: pre-quantized FP8 weights need the fp8 layer format");
  out_features = out;
  in_features = in;
  codes.assign(e4m3_codes, e4m3_codes + out * in);
  scales.assign(channel_scales, channel_scales + out);
  for (float& s : scales) s *= kE4M3WidenFactor;
}

CpuLinear::CpuLinear(const uint8_t* e4m3_codes, std::span<const float> block_scales_128, int64_t out, int64_t in,
                     const LinearSpec& spec)
    : format(LinearFormat::fp8), static_input_scale(spec.static_input_scale) {
  if (spec.format != LinearFormat::fp8) fail("cpu backend: block-scaled FP8 weights need the fp8 layer format");
  const auto expected = static_cast<size_t>(fp8_scale_blocks(out) * fp8_scale_blocks(in));
  if (block_scales_128.size() != expected)
    fail("cpu backend: a [{}, {}] block-scaled FP8 weight needs {} x {} block scales, got {}", out, in,
         fp8_scale_blocks(out), fp8_scale_blocks(in), block_scales_128.size());
  out_features = out;
  in_features = in;
  codes.assign(e4m3_codes, e4m3_codes + out * in);
  block_scales.assign(block_scales_128.begin(), block_scales_128.end());
  for (float& s : block_scales) s *= kE4M3WidenFactor;
}

namespace {

// Rows per parallel_for chunk: enough work per chunk (~256 K elements) to amortize the hand-off.
size_t min_rows_per_chunk(int64_t cols) { return std::max<size_t>(1, (size_t{1} << 18) / static_cast<size_t>(std::max<int64_t>(cols, 1))); }

// Widens each row of a stored float tensor into a per-chunk scratch row and hands it to row_done.
// The pool does not carry exceptions across threads, so the first error (an infinite row amax) is
// kept and rethrown on the calling thread once every chunk has finished.
template <typename RowDone>
void for_each_widened_row(const StoredTensor& t, ThreadPool& pool, RowDone row_done) {
  std::mutex error_mutex;
  std::exception_ptr error;
  pool.parallel_for(
      static_cast<size_t>(t.rows),
      [&](size_t begin, size_t end) {
        try {
          std::vector<float> row(static_cast<size_t>(t.cols));
          for (size_t r = begin; r < end; ++r) {
            widen_stored_rows(t, static_cast<int64_t>(r), static_cast<int64_t>(r + 1), row.data());
            row_done(r, row.data());
          }
        } catch (...) {
          std::lock_guard lock(error_mutex);
          if (!error) error = std::current_exception();
        }
      },
      min_rows_per_chunk(t.cols));
  if (error) std::rethrow_exception(error);
}

void round_rows_to_bf16(const StoredTensor& t, ThreadPool& pool, std::vector<uint16_t>& out) {
  out.resize(static_cast<size_t>(t.rows * t.cols));
  const auto cols = static_cast<size_t>(t.cols);
  for_each_widened_row(t, pool, [&](size_t r, const float* row) {
    for (size_t i = 0; i < cols; ++i) out[r * cols + i] = float_to_bf16(row[i]);
  });
}

void widen_rows_to_f32(const StoredTensor& t, ThreadPool& pool, std::vector<float>& out) {
  out.resize(static_cast<size_t>(t.rows * t.cols));
  pool.parallel_for(
      static_cast<size_t>(t.rows),
      [&](size_t begin, size_t end) {
        widen_stored_rows(t, static_cast<int64_t>(begin), static_cast<int64_t>(end), out.data() + begin * t.cols);
      },
      min_rows_per_chunk(t.cols));
}

// Row by row as fp8::quantize does for per-output-channel scales, so the codes are the same; the
// scales come times kE4M3WidenFactor (as CpuLinear and CpuEmbedding keep them).
void quantize_rows_to_e4m3(const StoredTensor& t, ThreadPool& pool, std::vector<uint8_t>& codes, std::vector<float>& scales) {
  const auto cols = static_cast<size_t>(t.cols);
  codes.resize(static_cast<size_t>(t.rows) * cols);
  scales.resize(static_cast<size_t>(t.rows));
  for_each_widened_row(t, pool, [&](size_t r, const float* row) {
    scales[r] = fp8::quantize_row(row, cols, codes.data() + r * cols) * kE4M3WidenFactor;
  });
}

}  // namespace

CpuLinear::CpuLinear(const StoredTensor& weights, const LinearSpec& spec, ThreadPool& pool)
    : format(spec.format), static_input_scale(spec.static_input_scale) {
  if (weights.dtype == StoredDtype::e4m3 || !spec.weight_scales.empty())
    fail("cpu backend: stored E4M3 codes or given weight scales take make_fp8_linear / make_linear");
  out_features = weights.rows;
  in_features = weights.cols;
  switch (format) {
    case LinearFormat::f32: widen_rows_to_f32(weights, pool, f32); break;
    case LinearFormat::bf16: round_rows_to_bf16(weights, pool, bf16); break;
    case LinearFormat::fp8: quantize_rows_to_e4m3(weights, pool, codes, scales); break;
  }
}

uint64_t CpuLinear::bytes() const {
  return f32.size() * 4 + bf16.size() * 2 + codes.size() + (scales.size() + block_scales.size()) * 4;
}

void CpuLinear::dot_rows(int64_t row, int64_t first, int64_t count, const float* x, int64_t x_stride, int64_t tokens,
                         float* out, int64_t out_stride) const {
  const int64_t at = row * in_features + first;
  switch (format) {
    case LinearFormat::f32: cpu::dot_rows(x, x_stride, tokens, f32.data() + at, count, out, out_stride); return;
    case LinearFormat::bf16: dot_rows_bf16(x, x_stride, tokens, bf16.data() + at, count, out, out_stride); return;
    case LinearFormat::fp8: dot_rows_e4m3(x, x_stride, tokens, codes.data() + at, count, out, out_stride); return;
  }
}

CpuEmbedding::CpuEmbedding(const float* table, int64_t v, int64_t h, EmbeddingFormat f) : format(f) {
  vocab = v;
  hidden = h;
  const size_t count = static_cast<size_t>(v * h);
  switch (format) {
    case EmbeddingFormat::f32: f32.assign(table, table + count); break;
    case EmbeddingFormat::bf16:
      bf16.resize(count);
      for (size_t i = 0; i < count; ++i) bf16[i] = float_to_bf16(table[i]);
      break;
    case EmbeddingFormat::fp8: {
      // Per row = per output channel: the codes and scales an fp8 LM head of the same table holds.
      auto q = fp8::quantize(table, static_cast<size_t>(v), static_cast<size_t>(h),
                             fp8::ScaleGranularity::per_output_channel);
      codes = std::move(q.codes);
      scales = std::move(q.scales);
      for (float& s : scales) s *= kE4M3WidenFactor;
      fp8_codes = codes.data();
      fp8_scales = scales.data();
      break;
    }
  }
}

CpuEmbedding::CpuEmbedding(const StoredTensor& table, EmbeddingFormat f, ThreadPool& pool) : format(f) {
  if (table.dtype == StoredDtype::e4m3) fail("cpu backend: an embedding table needs float values, not E4M3 codes");
  vocab = table.rows;
  hidden = table.cols;
  switch (format) {
    case EmbeddingFormat::f32: widen_rows_to_f32(table, pool, f32); break;
    case EmbeddingFormat::bf16: round_rows_to_bf16(table, pool, bf16); break;
    case EmbeddingFormat::fp8:
      quantize_rows_to_e4m3(table, pool, codes, scales);
      fp8_codes = codes.data();
      fp8_scales = scales.data();
      break;
  }
}

CpuEmbedding::CpuEmbedding(const CpuLinear& head) : format(EmbeddingFormat::fp8) {
  if (head.format != LinearFormat::fp8) fail("cpu backend: an embedding can share only an fp8 LM head's storage");
  vocab = head.out_features;
  hidden = head.in_features;
  fp8_codes = head.codes.data();
  fp8_scales = head.scales.data();
}

uint64_t CpuEmbedding::bytes() const { return f32.size() * 4 + bf16.size() * 2 + codes.size() + scales.size() * 4; }

void CpuEmbedding::row(int32_t token, float* out) const {
  const int64_t offset = static_cast<int64_t>(token) * hidden;
  switch (format) {
    case EmbeddingFormat::f32: std::copy_n(f32.data() + offset, hidden, out); break;
    case EmbeddingFormat::bf16: widen_bf16_row(bf16.data() + offset, hidden, out); break;
    case EmbeddingFormat::fp8: {
      // decode / kE4M3WidenFactor times scale · kE4M3WidenFactor: both factors are powers of two, so
      // this is decode(code) · scale exactly.
      widen_e4m3_row(fp8_codes + offset, hidden, out);
      const float scale = fp8_scales[token];
      for (int64_t i = 0; i < hidden; ++i) out[i] *= scale;
      break;
    }
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
    : element_bytes_(storage_bytes(s.storage)), block_tables_(static_cast<size_t>(s.slots)),
      lengths_(static_cast<size_t>(s.slots), 0) {
  spec = s;
  if (spec.layers <= 0 || spec.kv_heads <= 0 || spec.head_dim <= 0 || spec.slots <= 0 || spec.max_positions <= 0 ||
      spec.block_size <= 0 || spec.num_blocks < 0)
    fail("kv cache: layers, kv_heads, head_dim, slots, max_positions and block_size must be positive");
  if (!spec.static_k_scales.empty() && static_cast<int64_t>(spec.static_k_scales.size()) != spec.layers)
    fail("kv cache: {} static K scales for {} layers", spec.static_k_scales.size(), spec.layers);
  if (!spec.static_v_scales.empty() && static_cast<int64_t>(spec.static_v_scales.size()) != spec.layers)
    fail("kv cache: {} static V scales for {} layers", spec.static_v_scales.size(), spec.layers);
  const int64_t pool_rows = spec.pool_blocks() * spec.block_size;
  // calloc: zeros that cost no resident memory until written (a large pool is fresh zero pages from the
  // kernel, mapped when a position is first written), and positions never written (a benchmark's
  // context) read as 0, as on the GPU, never as stale heap bytes.
  lanes_.resize(static_cast<size_t>(2 * spec.layers));
  const auto zeros = [](size_t count, size_t size, const char* what) {
    void* p = std::calloc(count, size);
    if (p == nullptr) fail("kv cache: no host memory for its {} ({} bytes)", what, count * size);
    return p;
  };
  for (Lane& l : lanes_) {
    l.bytes.reset(static_cast<uint8_t*>(
        zeros(static_cast<size_t>(pool_rows * spec.kv_heads * spec.head_dim), static_cast<size_t>(element_bytes_), "K/V rows")));
    if (spec.storage == KvCacheSpec::Storage::fp8)
      l.scales.reset(static_cast<float*>(zeros(static_cast<size_t>(pool_rows * spec.kv_heads), sizeof(float), "scales")));
  }
  if (spec.num_blocks == 0) {
    const int64_t per_slot = spec.blocks_per_slot();
    for (int64_t slot = 0; slot < spec.slots; ++slot)
      for (int64_t b = 0; b < per_slot; ++b) block_tables_[slot].push_back(static_cast<int32_t>(slot * per_slot + b));
  }
}

uint64_t CpuKvCache::bytes_per_position() const {
  uint64_t per_lane = static_cast<uint64_t>(spec.kv_heads * spec.head_dim * element_bytes_);
  if (spec.storage == KvCacheSpec::Storage::fp8) per_lane += static_cast<uint64_t>(spec.kv_heads) * 4;
  return 2 * per_lane * static_cast<uint64_t>(spec.layers);
}

void CpuKvCache::check_slot(int64_t slot) const {
  if (slot < 0 || slot >= spec.slots) fail("kv cache: slot {} outside [0, {})", slot, spec.slots);
}

void CpuKvCache::clear_slot(int64_t slot) {
  check_slot(slot);
  lengths_[slot] = 0;
}

void CpuKvCache::set_block_table(int64_t slot, std::span<const int32_t> blocks) {
  check_slot(slot);
  if (static_cast<int64_t>(blocks.size()) > spec.blocks_per_slot())
    fail("kv cache: {} blocks for slot {}; a slot holds at most {} ({} positions)", blocks.size(), slot,
         spec.blocks_per_slot(), spec.max_positions);
  for (int32_t b : blocks)
    if (b < 0 || b >= spec.pool_blocks()) fail("kv cache: block {} outside the pool of {}", b, spec.pool_blocks());
  block_tables_[slot].assign(blocks.begin(), blocks.end());
}

int64_t CpuKvCache::row_of(int64_t slot, int64_t position) const {
  const auto& table = block_tables_[static_cast<size_t>(slot)];
  const int64_t block = position / spec.block_size;
  if (block >= static_cast<int64_t>(table.size()))
    fail("kv cache: position {} of slot {} has no block (the slot holds {} blocks of {} positions)", position, slot,
         table.size(), spec.block_size);
  return static_cast<int64_t>(table[static_cast<size_t>(block)]) * spec.block_size + position % spec.block_size;
}

void CpuKvCache::write(int64_t layer, const TokenBatch& batch, const float* k, const float* v) {
  const int64_t width = spec.kv_heads * spec.head_dim;
  for (size_t t = 0; t < batch.size(); ++t) {
    const int64_t slot = batch.slots[t], position = batch.positions[t];
    check_slot(slot);
    if (position < 0 || position >= spec.max_positions)
      fail("kv cache: position {} outside the context of {} tokens", position, spec.max_positions);
    const int64_t row = row_of(slot, position);
    store(lanes_[static_cast<size_t>(layer)], row, k + t * width,
          spec.static_k_scales.empty() ? 0.0f : spec.static_k_scales[layer]);
    store(lanes_[static_cast<size_t>(spec.layers + layer)], row, v + t * width,
          spec.static_v_scales.empty() ? 0.0f : spec.static_v_scales[layer]);
    if (layer == spec.layers - 1) lengths_[slot] = std::max(lengths_[slot], position + 1);
  }
}

void CpuKvCache::store(Lane& l, int64_t row, const float* values, float static_scale) {
  const int64_t width = spec.kv_heads * spec.head_dim;
  uint8_t* dst = l.bytes.get() + row * width * element_bytes_;
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
        l.scales[static_cast<size_t>(row * spec.kv_heads + h)] = scale;
        fp8::encode_scaled(spec.fp8_format, head, 1.0f / scale, dst + h * spec.head_dim,
                           static_cast<size_t>(spec.head_dim));
      }
      break;
  }
}

void CpuKvCache::load(const Lane& l, int64_t row, int64_t head, float* out) const {
  const int64_t offset = row * spec.kv_heads * spec.head_dim + head * spec.head_dim;
  const uint8_t* src = l.bytes.get() + offset * element_bytes_;
  switch (spec.storage) {
    case KvCacheSpec::Storage::f32: std::memcpy(out, src, static_cast<size_t>(spec.head_dim) * 4); break;
    case KvCacheSpec::Storage::bf16:
      widen_bf16_row(reinterpret_cast<const uint16_t*>(src), spec.head_dim, out);
      break;
    case KvCacheSpec::Storage::fp8:
      fp8::decode_scaled(spec.fp8_format, src, l.scales[static_cast<size_t>(row * spec.kv_heads + head)], out,
                         static_cast<size_t>(spec.head_dim));
      break;
  }
}

void CpuKvCache::load_exact(const Lane& l, int64_t row, int64_t head, double* out) const {
  const int64_t offset = row * spec.kv_heads * spec.head_dim + head * spec.head_dim;
  const uint8_t* src = l.bytes.get() + offset * element_bytes_;
  if (spec.storage == KvCacheSpec::Storage::f32) {  // read per position by the attention: no allocation
    for (int64_t i = 0; i < spec.head_dim; ++i) {
      float value;
      std::memcpy(&value, src + i * 4, 4);
      out[i] = value;
    }
    return;
  }
  if (spec.storage == KvCacheSpec::Storage::bf16) {
    for (int64_t i = 0; i < spec.head_dim; ++i) {
      uint16_t bits;
      std::memcpy(&bits, src + i * 2, 2);
      out[i] = bf16_to_float(bits);
    }
    return;
  }
  // Every code's value, once per format (the decode functions are not inlined here).
  static const auto tables = [] {
    std::array<std::array<double, 256>, 2> t{};
    for (int c = 0; c < 256; ++c) {
      t[0][c] = fp8::decode_e4m3(static_cast<uint8_t>(c));
      t[1][c] = fp8::decode_e5m2(static_cast<uint8_t>(c));
    }
    return t;
  }();
  const auto& table = tables[spec.fp8_format == fp8::Format::e4m3 ? 0 : 1];
  const double scale = l.scales[static_cast<size_t>(row * spec.kv_heads + head)];
  for (int64_t i = 0; i < spec.head_dim; ++i) out[i] = table[src[i]] * scale;
}

void CpuKvCache::read_k_exact(int64_t layer, int64_t slot, int64_t position, int64_t head, double* out) const {
  load_exact(lanes_[static_cast<size_t>(layer)], row_of(slot, position), head, out);
}
void CpuKvCache::read_v_exact(int64_t layer, int64_t slot, int64_t position, int64_t head, double* out) const {
  load_exact(lanes_[static_cast<size_t>(spec.layers + layer)], row_of(slot, position), head, out);
}

void CpuKvCache::read_k(int64_t layer, int64_t slot, int64_t position, int64_t head, float* out) const {
  load(lanes_[static_cast<size_t>(layer)], row_of(slot, position), head, out);
}
void CpuKvCache::read_v(int64_t layer, int64_t slot, int64_t position, int64_t head, float* out) const {
  load(lanes_[static_cast<size_t>(spec.layers + layer)], row_of(slot, position), head, out);
}

}  // namespace octet::backend::cpu
