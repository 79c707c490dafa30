// The CUDA backend's whole-step op: every decoder layer of a one-token step in the persistent kernel
// (persistent_decode.cu), where it can take the model and the batch.
//
// OCTET_CUDA_PERSISTENT_DECODE (read at each step: a recorded step keeps the path it was recorded
// with): unset or "0" the layer-by-layer ops; "1" the kernel wherever it can run; "require" the kernel
// for every one-token step, failing with the reason where it cannot run (for tests). Off by default:
// slower than the layer-by-layer ops on the H200 (docs/PERFORMANCE.md version 10: Llama-3.1-8B b1
// 3.678 against 2.978 ms a step, Llama-3.3-70B 23.70 against 19.69).
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/integer_setting.h"
#include "backend/cuda/persistent_decode.h"

#include <fmt/core.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace octet::backend::cuda {
namespace {

enum class PersistentDecode { off, on, required };

PersistentDecode persistent_decode_mode() {
  const char* value = std::getenv("OCTET_CUDA_PERSISTENT_DECODE");
  if (value == nullptr || std::strcmp(value, "0") == 0) return PersistentDecode::off;
  if (std::strcmp(value, "1") == 0) return PersistentDecode::on;
  if (std::strcmp(value, "require") == 0) return PersistentDecode::required;
  fail("OCTET_CUDA_PERSISTENT_DECODE is '{}', expected 0, 1 or require", value);
}

// The FP8 linear the kernel streams, or nullptr with why not.
const CudaLinear* streamable(const LinearWeight* weight, int64_t out, int64_t in, const char*& why) {
  const auto* w = static_cast<const CudaLinear*>(weight);
  if (w == nullptr) return why = "a layer lacks a weight", nullptr;
  if (w->format != LinearFormat::fp8 || w->block_scales.size() != 0)
    return why = "a linear is not FP8 with per-channel scales", nullptr;
  if (w->static_input_scale > 0.0f) return why = "a linear has a static input scale", nullptr;
  if (w->out_features != out || w->in_features != in) return why = "a linear's shape is not the layer's", nullptr;
  return w;
}

// OCTET_CUDA_PERSISTENT_TRACE=1 (eager steps only: OCTET_CUDA_GRAPHS=0): each step waits for the kernel
// and prints to stderr where its time went (the means over blocks and layers of the intervals between
// persistent_decode.h's trace events, and the waits), for tuning the kernel.
void print_trace(const std::vector<unsigned long long>& t, int blocks, int layers) {
  static const char* const kIntervals[kTraceEvents] = {
      "layer",         "qkv input", "qkv tiles", "barrier",       "attention+merge", "barrier",    "o input",
      "o tiles",       "barrier",   "gate/up input", "gate/up tiles", "barrier",     "down input", "down tiles"};
  // Block b's events of layer l (the next layer's follow them).
  const auto events = [&](int b, int l) { return t.data() + (static_cast<int64_t>(b) * layers + l) * kTraceEvents; };
  double mean[kTraceEvents] = {};
  for (int b = 0; b < blocks; ++b)
    for (int l = 0; l < layers; ++l) {
      const unsigned long long* e = events(b, l);
      for (int i = 1; i < kTraceEvents; ++i) mean[i] += static_cast<double>(e[i] - e[i - 1]);
      if (l + 1 < layers) mean[0] += static_cast<double>(e[kTraceEvents] - e[0]);  // the next layer's start
    }
  std::string line = "persistent decode, µs a layer (mean over blocks):";
  line += fmt::format(" whole {:.2f}", mean[0] / blocks / std::max(1, layers - 1) / 1e3);
  for (int i = 1; i < kTraceEvents; ++i) line += fmt::format(" | {} {:.2f}", kIntervals[i], mean[i] / blocks / layers / 1e3);
  double producer = 0, consumer = 0;
  const unsigned long long* waits = t.data() + static_cast<int64_t>(blocks) * layers * kTraceEvents;
  for (int b = 0; b < blocks; ++b) producer += static_cast<double>(waits[2 * b]), consumer += static_cast<double>(waits[2 * b + 1]);
  // Each barrier's cost split: how far apart the blocks arrive (the last arrival minus the mean one) and
  // how long after the last arrival the blocks leave on average (the barrier's own latency).
  static constexpr int kBarrierEvents[][2] = {{2, 3}, {4, 5}, {7, 8}, {10, 11}};
  for (const auto& [before, after] : kBarrierEvents) {
    double spread = 0, release = 0;
    for (int l = 0; l < layers; ++l) {
      unsigned long long last = 0;
      double arrival = 0, leave = 0;
      for (int b = 0; b < blocks; ++b) {
        const unsigned long long* e = events(b, l);
        last = std::max(last, e[before]);
        arrival += static_cast<double>(e[before]);
        leave += static_cast<double>(e[after]);
      }
      spread += static_cast<double>(last) - arrival / blocks;
      release += leave / blocks - static_cast<double>(last);
    }
    line += fmt::format(" | barrier after {}: arrivals {:.2f} before the last, left {:.2f} after it", kIntervals[before],
                        spread / layers / 1e3, release / layers / 1e3);
  }
  line += fmt::format(" | waits: producer for a slot {:.2f}, warp 0 for a tile {:.2f}", producer / blocks / layers / 1e3,
                      consumer / blocks / layers / 1e3);
  std::fprintf(stderr, "%s\n", line.c_str());
}

// Tuning switches, read at each step (0 or unset: off): OCTET_CUDA_PERSISTENT_IN_FLIGHT=N at most N tiles'
// copies outstanding a block (else as many as the ring has slots); OCTET_CUDA_PERSISTENT_POLL_NS=N the
// grid barrier's poll sleeps N ns between reads. Version 10 measured both: 1–3 in flight slower, sleeps
// of 100 and 500 ns no change (docs/PERFORMANCE.md).
int tuning_value(const char* variable, const char* expected) {
  return static_cast<int>(integer_setting(variable, 0, 0, 1 << 20, expected));
}

}  // namespace

// The device copy of a model's layer pointers, one per model seen (they change only when weights or
// caches are made). A new one inside a recording would be uploaded while capturing: a model made
// since the step's eager pass, which the recording cannot hold. The oldest of kKeptLayerTables is
// dropped for a new one, with the recordings (they may hold its address).
const PersistentLayer* CudaBackend::persistent_layers(const std::vector<PersistentLayer>& host) {
  for (auto& table : persistent_layer_tables_)
    if (table.host.size() == host.size() && std::memcmp(table.host.data(), host.data(), host.size() * sizeof(PersistentLayer)) == 0)
      return table.device.data();
  if (graphs_.capturing()) fail("cuda backend: a model's persistent decode layers first seen while recording a step");
  constexpr size_t kKeptLayerTables = 8;
  if (persistent_layer_tables_.size() >= kKeptLayerTables) persistent_layer_tables_.erase(persistent_layer_tables_.begin());
  PersistentLayerTable table{host, DeviceBuffer<PersistentLayer>(host.size())};
  table.device.upload(host.data(), host.size(), stream_);
  ++*epoch_;
  persistent_layer_tables_.push_back(std::move(table));
  return persistent_layer_tables_.back().device.data();
}

bool CudaBackend::run_decoder_layers(std::span<const DecoderLayerWeights> layers, Activations& x, KvCache& cache,
                                     const TokenBatch& batch, std::span<const float> inverse_frequencies, float eps) {
  const PersistentDecode mode = persistent_decode_mode();
  if (reproducible_ || mode == PersistentDecode::off || batch.size() != 1 || layers.empty()) return false;
  auto& c = static_cast<CudaKvCache&>(cache);
  PersistentDecodeShape shape;
  shape.layers = static_cast<int>(layers.size());
  shape.hidden = static_cast<int>(x.cols);
  shape.kv_heads = static_cast<int>(c.spec.kv_heads);
  shape.head_dim = static_cast<int>(c.spec.head_dim);
  shape.heads = shape.head_dim > 0 ? static_cast<int>(layers[0].q ? layers[0].q->out_features / shape.head_dim : 0) : 0;
  shape.ffn = layers[0].gate ? static_cast<int>(layers[0].gate->out_features) : 0;
  shape.eps = eps;
  const char* why = persistent_decode_refusal(shape, c.layout().storage, compute_capability_);
  const int64_t q_dim = static_cast<int64_t>(shape.heads) * shape.head_dim, kv_dim = c.spec.kv_heads * c.spec.head_dim;
  if (why == nullptr && static_cast<int64_t>(inverse_frequencies.size()) * 2 != c.spec.head_dim)
    why = "the RoPE frequencies do not match head_dim";
  if (why == nullptr && c.spec.layers != shape.layers) why = "the cache's layers are not the model's";
  std::vector<PersistentLayer> host(layers.size());
  for (size_t i = 0; i < layers.size() && why == nullptr; ++i) {
    const DecoderLayerWeights& l = layers[i];
    const std::pair<const LinearWeight*, std::pair<int64_t, int64_t>> linears[PersistentLayer::kLinears] = {
        {l.q, {q_dim, x.cols}},     {l.k, {kv_dim, x.cols}},       {l.v, {kv_dim, x.cols}}, {l.o, {x.cols, q_dim}},
        {l.gate, {shape.ffn, x.cols}}, {l.up, {shape.ffn, x.cols}}, {l.down, {x.cols, shape.ffn}}};
    for (int j = 0; j < PersistentLayer::kLinears && why == nullptr; ++j) {
      const CudaLinear* w = streamable(linears[j].first, linears[j].second.first, linears[j].second.second, why);
      if (w == nullptr) break;
      host[i].codes[j] = w->e4m3_codes();
      host[i].scales[j] = w->channel_scales();
    }
    if (why != nullptr) break;
    if (l.attn_norm == nullptr || l.ffn_norm == nullptr || l.attn_norm->size != x.cols || l.ffn_norm->size != x.cols) {
      why = "a layer's norm weights are not hidden wide";
      break;
    }
    host[i].attn_norm = static_cast<const CudaVector*>(l.attn_norm)->values.data();
    host[i].ffn_norm = static_cast<const CudaVector*>(l.ffn_norm)->values.data();
    host[i].k_cache = c.k[i].data();
    host[i].v_cache = c.v[i].data();
    host[i].k_scales = c.k_scales[i].data();
    host[i].v_scales = c.v_scales[i].data();
    host[i].static_k_scale = c.static_k_scale(static_cast<int64_t>(i));
    host[i].static_v_scale = c.static_v_scale(static_cast<int64_t>(i));
  }
  const int blocks = why == nullptr ? persistent_decode_blocks(shape, device_) : 0;
  if (why == nullptr && blocks == 0) why = "its shared memory does not fit a SM";
  if (why != nullptr) {
    if (mode == PersistentDecode::required) fail("cuda backend: the persistent decode kernel cannot run this step: {}", why);
    return false;
  }

  expect_prepared(batch.size());
  c.check_batch(batch);
  graphs_.note_cache(&c);
  upload_frequencies(inverse_frequencies);
  const PersistentLayer* device_layers = persistent_layers(host);
  const int splits = persistent_decode_splits(shape, blocks);
  ensure_capacity(persistent_scratch_, static_cast<size_t>(q_dim + 2 * kv_dim + q_dim + shape.ffn + 2 * shape.layers +
                                                           persistent_decode_partial_floats(shape, splits)));
  // The grid barrier's two counters and one finished-splits counter per kv head: zero between launches.
  if (persistent_barrier_.size() < static_cast<size_t>(2 + shape.kv_heads)) {
    ensure_capacity(persistent_barrier_, static_cast<size_t>(2 + shape.kv_heads));
    OCTET_CUDA_CHECK(cudaMemsetAsync(persistent_barrier_.data(), 0, persistent_barrier_.bytes(), stream_));
  }
  PersistentDecodeBuffers buffers;
  buffers.x = cast(x).data.data();  // cast(): x's E4M3 codes no longer match
  buffers.qkv = persistent_scratch_.data();
  buffers.attn = buffers.qkv + q_dim + 2 * kv_dim;
  buffers.act = buffers.attn + q_dim;
  buffers.amax = buffers.act + shape.ffn;
  buffers.partial = buffers.amax + 2 * shape.layers;
  buffers.barrier = persistent_barrier_.data();
  const bool trace = switched_on_explicitly("OCTET_CUDA_PERSISTENT_TRACE") && !graphs_.capturing();
  if (trace) {
    ensure_capacity(persistent_trace_, static_cast<size_t>(persistent_decode_trace_words(blocks, shape.layers)));
    OCTET_CUDA_CHECK(cudaMemsetAsync(persistent_trace_.data(), 0, persistent_trace_.bytes(), stream_));
  }
  launch_persistent_decode(device_layers, shape, buffers, slots_.data(), positions_.data(), c.layout(),
                           frequencies_.data(), splits, blocks, stream_, trace ? persistent_trace_.data() : nullptr,
                           tuning_value("OCTET_CUDA_PERSISTENT_IN_FLIGHT", "a tile count"),
                           tuning_value("OCTET_CUDA_PERSISTENT_POLL_NS", "ns"));
  if (trace) {
    std::vector<unsigned long long> host_trace(persistent_trace_.size());
    OCTET_CUDA_CHECK(cudaMemcpyAsync(host_trace.data(), persistent_trace_.data(), persistent_trace_.bytes(),
                                     cudaMemcpyDeviceToHost, stream_));
    OCTET_CUDA_CHECK(cudaStreamSynchronize(stream_));
    print_trace(host_trace, blocks, shape.layers);
  }
  return true;
}

}  // namespace octet::backend::cuda
