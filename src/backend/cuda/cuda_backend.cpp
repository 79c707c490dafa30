// The CUDA backend: weights in device memory in their precision, float32 activations, one stream.
// Linear layers dispatch on the number of rows: the FP8 GEMV kernel for decode-sized batches,
// cuBLASLt for the rest (see linear()). Forward steps of up to StepGraphs::kMaxTokens tokens are
// recorded as CUDA graphs and replayed (step_graphs.h); OCTET_CUDA_GRAPHS=0 runs every op eagerly.
// Attention sends runs of >= kMinPrefillRunTokens prompt tokens of one slot to the tensor-core
// kernel (attention_prefill.cu) in steps that are never recorded, the rest to the decode kernel
// (attention.cu: the grouped tensor-core kernel, or with OCTET_CUDA_DECODE_ATTENTION=v1 the one
// before it, a query head per block on CUDA cores); OCTET_CUDA_TC_ATTENTION=0 keeps every token on
// the decode kernel (for comparison).
// OCTET_CUDA_SKINNY_GEMM=1 sends FP8 linears of 17–128 rows to the skinny GEMM (skinny_gemm_fp8.cu)
// instead of cuBLASLt; off by default until it is measured faster.
// On sm_90 and later the backend's own kernels are programmatic dependent launches, each one's blocks
// scheduled while the kernel before it finishes (launch.cuh); OCTET_CUDA_PDL=0 launches them plainly.
// q/k/v and gate/up are fused into one allocation per group (fuse_linears) and, above the GEMV's rows,
// multiplied by one GEMM whose output one pass scales and splits (grouped_gemm());
// OCTET_CUDA_GROUPED_GEMM=0 runs one GEMM per member as before.
#include "backend/cuda/cublaslt_gemm.h"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/cuda_kv_cache.h"
#include "backend/cuda/device_buffer.h"
#include "backend/cuda/kernels.h"
#include "backend/cuda/programmatic_launch.h"
#include "backend/cuda/staged_upload.h"
#include "backend/cuda/stored_weights.h"
#include "backend/cuda/step_graphs.h"
#include "backend/device.h"
#include "common/bf16.h"
#include "fp8/scaling.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <memory>
#include <type_traits>
#include <vector>

namespace octet::backend {
namespace cuda {
namespace {

constexpr float kRandomWeightStddev = 0.02f;
constexpr float kRandomCodeStddev = 112.0f;  // random_weights.cu draws codes of N(0, 1) · 112

// Besides the float32 values, each buffer keeps their per-row E4M3 codes and scales when the op that
// wrote it (a norm, SwiGLU, or the first FP8 linear to read it) produced them: FP8 linears sharing
// an input, or fed by a fused norm/SwiGLU, then skip their quantize launch. Every op that writes the
// buffer goes through the non-const cast() below, which marks the codes stale.
struct CudaActivations final : Activations {
  CudaActivations(int64_t r, int64_t c, AllocationEpoch epoch)
      : data(static_cast<size_t>(r * c)), codes(static_cast<size_t>(r * c)), row_scales(static_cast<size_t>(r)),
        ticket(std::move(epoch)) {
    rows = r;
    cols = c;
  }
  DeviceBuffer<float> data;
  DeviceBuffer<uint8_t> codes;
  DeviceBuffer<float> row_scales;
  mutable bool codes_current = false;  // codes/row_scales hold the quantized rows of data
  EpochTicket ticket;
};

struct CudaVector final : VectorWeight {
  DeviceBuffer<float> values;
  EpochTicket ticket;
};

struct CudaEmbedding final : EmbeddingTable {
  EpochTicket ticket;
  EmbeddingFormat format = EmbeddingFormat::bf16;
  DeviceBuffer<uint16_t> bf16;
  DeviceBuffer<float> f32;
  DeviceBuffer<uint8_t> codes;  // fp8, owned: [vocab, hidden] E4M3
  DeviceBuffer<float> scales;   // fp8, owned: per row
  const uint8_t* fp8_codes = nullptr;  // fp8: codes.data(), or a tied LM head's codes
  const float* fp8_scales = nullptr;
  uint64_t bytes() const override { return bf16.bytes() + f32.bytes() + codes.bytes() + scales.bytes(); }
};

// The one allocation of a group of per-channel FP8 linears fused by fuse_linears: the members' codes
// one after another ([rows, in], a member's rows from its first_row on) and their channel scales
// likewise, owned jointly by the members and freed with the last of them. Each member starts at a
// multiple of kRowAlignment rows, so its codes and scales are as aligned as an allocation of their
// own (256 bytes: what cuBLASLt's heuristic assumes of every pointer unless told otherwise), and
// rows is a multiple of it too (the group's float32 product rows stay 16-byte aligned). Rows between
// members (none when every out_features is a multiple of 64, as in Llama) have zero codes and scales.
struct FusedLinears {
  static constexpr int64_t kRowAlignment = 64;
  DeviceBuffer<uint8_t> codes;
  DeviceBuffer<float> scales;
  int64_t rows = 0;
  int members = 0;
};

struct CudaLinear final : LinearWeight {
  EpochTicket ticket;
  LinearFormat format = LinearFormat::fp8;
  float static_input_scale = 0.0f;
  DeviceBuffer<uint8_t> codes;  // fp8: [out, in] E4M3 (empty once fused)
  DeviceBuffer<float> scales;   // fp8: per output channel (empty for block scales, and once fused)
  DeviceBuffer<float> block_scales;  // block-scaled fp8: [ceil(out/128), ceil(in/128)]
  DeviceBuffer<uint16_t> bf16;
  DeviceBuffer<float> f32;
  std::shared_ptr<const FusedLinears> fused;  // set: this is member fused_index of a fused group
  int fused_index = 0;
  int64_t first_row = 0;  // of this member among the group's rows
  // fp8 codes and channel scales: the weight's own buffers, or its rows of the fused group's.
  const uint8_t* e4m3_codes() const { return fused ? fused->codes.data() + first_row * in_features : codes.data(); }
  const float* channel_scales() const { return fused ? fused->scales.data() + first_row : scales.data(); }
  uint64_t bytes() const override {  // a fused member counts its own rows of the group (not the padding)
    const uint64_t fused_share = fused ? static_cast<uint64_t>(out_features * in_features + out_features * 4) : 0;
    return codes.bytes() + scales.bytes() + block_scales.bytes() + bf16.bytes() + f32.bytes() + fused_share;
  }
};

const CudaActivations& cast(const Activations& a) { return static_cast<const CudaActivations&>(a); }
CudaActivations& cast(Activations& a) {  // for writing: the codes no longer match
  auto& c = static_cast<CudaActivations&>(a);
  c.codes_current = false;
  return c;
}

void check_shape(const Activations& a, int64_t rows, int64_t cols, const char* what) {
  if (a.rows < rows || a.cols != cols)
    fail("cuda backend: {} has shape [{}, {}], expected [>= {}, {}]", what, a.rows, a.cols, rows, cols);
}

// An on-by-default environment switch: "0" turns it off.
bool switched_on(const char* variable) {
  const char* value = std::getenv(variable);
  return value == nullptr || std::strcmp(value, "0") != 0;
}

// An off-by-default environment switch: "1" turns it on.
bool switched_on_explicitly(const char* variable) {
  const char* value = std::getenv(variable);
  return value != nullptr && std::strcmp(value, "1") == 0;
}

// OCTET_CUDA_DECODE_ATTENTION: "v2" the grouped decode kernel for every batch, "v1" the one before
// it; unset or "auto": v1 below kMinGroupedDecodeTokens tokens, v2 from there.
std::optional<DecodeAttention> decode_attention_kernel() {
  const char* value = std::getenv("OCTET_CUDA_DECODE_ATTENTION");
  if (value == nullptr || *value == '\0' || std::strcmp(value, "auto") == 0) return std::nullopt;
  if (std::strcmp(value, "v2") == 0) return DecodeAttention::grouped;
  if (std::strcmp(value, "v1") == 0) return DecodeAttention::v1;
  fail("OCTET_CUDA_DECODE_ATTENTION is '{}', expected auto, v1 or v2", value);
}
// 8B fp8 at context 1024 on the H200 (2026-12-01), ms a step with v1 / v2 (the grouped kernel that
// streams K/V through cp.async stages on FP16 MMAs, branch attn3 at c33a4f2): batch 1 3.113 / 3.005,
// 2 3.596 / 3.444, 4 3.987 / 3.637, 8 4.629 / 3.983, 64 9.864 / 6.022: v2 from the first token.
constexpr int64_t kMinGroupedDecodeTokens = 1;

// Shortest run that goes to the tensor-core kernel: 16 tokens fill half of a 128-row tile at GQA
// ratio 4 (all of v1's 64) and an eighth of it at ratio 1; shorter runs are decode-like (few rows
// per K/V tile), where the CUDA-core kernel's split over the positions keeps more of the GPU busy.
constexpr int64_t kMinPrefillRunTokens = 16;

class CudaBackend final : public Backend {
 public:
  explicit CudaBackend(int device)
      : device_(device), epoch_(std::make_shared<uint64_t>(0)), graphs_(epoch_, switched_on("OCTET_CUDA_GRAPHS")),
        tc_attention_(switched_on("OCTET_CUDA_TC_ATTENTION")),
        skinny_gemm_(switched_on_explicitly("OCTET_CUDA_SKINNY_GEMM")) {
    OCTET_CUDA_CHECK(cudaSetDevice(device));
    cudaDeviceProp props{};
    OCTET_CUDA_CHECK(cudaGetDeviceProperties(&props, device));
    compute_capability_ = props.major * 10 + props.minor;
    device_name_ = props.name;
    OCTET_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    OCTET_CUDA_CHECK(cudaEventCreate(&step_start_));
    OCTET_CUDA_CHECK(cudaEventCreate(&step_stop_));
    set_programmatic_launches(stream_, switched_on("OCTET_CUDA_PDL"));
    gemm_ = std::make_unique<CublasLtGemm>();
  }
  ~CudaBackend() override {
    cudaStreamSynchronize(stream_);
    cudaEventDestroy(step_start_);
    cudaEventDestroy(step_stop_);
    gemm_.reset();
    forget_programmatic_launches(stream_);
    cudaStreamDestroy(stream_);
  }

  std::string name() const override { return "cuda"; }

  std::unique_ptr<LinearWeight> make_linear(const float* weights, int64_t out, int64_t in, const LinearSpec& spec) override {
    auto w = new_linear(out, in, spec);
    const size_t count = static_cast<size_t>(out * in);
    switch (spec.format) {
      case LinearFormat::fp8: {
        if (!spec.weight_scales.empty()) {  // a pre-quantized checkpoint's scales: its codes come back exactly
          auto codes = fp8::encode_rows(weights, static_cast<size_t>(out), static_cast<size_t>(in), spec.weight_scales);
          w->codes.upload(codes.data(), count, stream_);
          w->scales.upload(spec.weight_scales.data(), spec.weight_scales.size(), stream_);
          OCTET_CUDA_CHECK(cudaStreamSynchronize(stream_));
          break;
        }
        auto q = fp8::quantize(weights, static_cast<size_t>(out), static_cast<size_t>(in),
                               fp8::ScaleGranularity::per_output_channel);
        w->codes.upload(q.codes.data(), count, stream_);
        w->scales.upload(q.scales.data(), q.scales.size(), stream_);
        break;
      }
      case LinearFormat::bf16: {
        std::vector<uint16_t> values(count);
        for (size_t i = 0; i < count; ++i) values[i] = float_to_bf16(weights[i]);
        w->bf16.upload(values.data(), count, stream_);
        break;
      }
      case LinearFormat::f32: w->f32.upload(weights, count, stream_); break;
    }
    OCTET_CUDA_CHECK(cudaStreamSynchronize(stream_));  // the host arrays die with this call
    return w;
  }

  // Stored bytes go to the device through the pinned staging buffers and are converted there:
  // codes and bf16 in the right format straight into the weight, others via a scratch copy.
  std::unique_ptr<LinearWeight> make_linear_from_stored(const StoredTensor& stored, const LinearSpec& spec) override {
    const bool codes = stored.dtype == StoredDtype::e4m3;
    // Codes for another format, or float values with given scales: the host default.
    if (codes ? spec.format != LinearFormat::fp8 : !spec.weight_scales.empty())
      return Backend::make_linear_from_stored(stored, spec);
    auto w = new_linear(stored.rows, stored.cols, spec);
    switch (spec.format) {
      case LinearFormat::fp8:
        if (codes) {
          if (spec.weight_scales.size() != static_cast<size_t>(stored.rows))
            fail("cuda backend: E4M3 codes of {} rows need {} weight scales, got {}", stored.rows, stored.rows,
                 spec.weight_scales.size());
          staging().copy(stored.data, stored.bytes(), w->codes.data(), stream_);
          w->scales.upload(spec.weight_scales.data(), spec.weight_scales.size(), stream_);
        } else {
          DeviceBuffer<uint8_t> scratch = upload_to_scratch(stored);
          launch_quantize_stored_e4m3(scratch.data(), stored.dtype, stored.rows, stored.cols, w->codes.data(),
                                      w->scales.data(), stream_);
          check_row_scales(w->scales);  // synchronizes before the scratch is freed
        }
        break;
      case LinearFormat::bf16: convert_stored(stored, w->bf16.data()); break;
      case LinearFormat::f32: convert_stored(stored, w->f32.data()); break;
    }
    OCTET_CUDA_CHECK(cudaStreamSynchronize(stream_));  // the scratch and the host scales die with this call
    return w;
  }

  std::unique_ptr<LinearWeight> make_fp8_block_linear(const uint8_t* e4m3_codes, const float* block_scales, int64_t out,
                                                      int64_t in, const LinearSpec& spec) override {
    if (spec.format != LinearFormat::fp8) fail("cuda backend: block-scaled FP8 weights need the fp8 layer format");
    auto w = new_linear(out, in, spec);
    w->scales = DeviceBuffer<float>();
    const auto scale_count = static_cast<size_t>(fp8_scale_blocks(out) * fp8_scale_blocks(in));
    w->block_scales = DeviceBuffer<float>(scale_count);
    staging().copy(e4m3_codes, static_cast<uint64_t>(out * in), w->codes.data(), stream_);
    w->block_scales.upload(block_scales, scale_count, stream_);
    OCTET_CUDA_CHECK(cudaStreamSynchronize(stream_));  // the host scales die with this call
    return w;
  }

  std::unique_ptr<EmbeddingTable> make_embedding_from_stored(const StoredTensor& table, EmbeddingFormat format) override {
    if (table.dtype == StoredDtype::e4m3) return Backend::make_embedding_from_stored(table, format);
    auto e = new_embedding(table.rows, table.cols, format);
    switch (format) {
      case EmbeddingFormat::bf16: convert_stored(table, e->bf16.data()); break;
      case EmbeddingFormat::f32: convert_stored(table, e->f32.data()); break;
      case EmbeddingFormat::fp8: {  // per row, as an fp8 LM head of this table (make_linear_from_stored)
        DeviceBuffer<uint8_t> scratch = upload_to_scratch(table);
        launch_quantize_stored_e4m3(scratch.data(), table.dtype, table.rows, table.cols, e->codes.data(),
                                    e->scales.data(), stream_);
        check_row_scales(e->scales);  // synchronizes before the scratch is freed
        break;
      }
    }
    return e;
  }

  std::unique_ptr<LinearWeight> make_random_linear(int64_t out, int64_t in, const LinearSpec& spec, uint64_t seed) override {
    auto w = new_linear(out, in, spec);
    const int64_t count = out * in;
    switch (spec.format) {
      case LinearFormat::fp8: {
        launch_random_e4m3(w->codes.data(), count, seed, stream_);
        std::vector<float> scales(static_cast<size_t>(out), kRandomWeightStddev / kRandomCodeStddev);
        w->scales.upload(scales.data(), scales.size(), stream_);
        OCTET_CUDA_CHECK(cudaStreamSynchronize(stream_));
        break;
      }
      case LinearFormat::bf16: launch_random_bf16(w->bf16.data(), count, kRandomWeightStddev, seed, stream_); break;
      case LinearFormat::f32: launch_random_f32(w->f32.data(), count, 0.0f, kRandomWeightStddev, seed, stream_); break;
    }
    return w;
  }

  std::unique_ptr<VectorWeight> make_vector(const float* values, int64_t size) override {
    auto v = std::make_unique<CudaVector>();
    v->ticket = EpochTicket(epoch_);
    v->size = size;
    v->values = DeviceBuffer<float>(static_cast<size_t>(size));
    v->values.upload(values, static_cast<size_t>(size), stream_);
    OCTET_CUDA_CHECK(cudaStreamSynchronize(stream_));
    return v;
  }

  std::unique_ptr<VectorWeight> make_random_vector(int64_t size, uint64_t seed) override {
    auto v = std::make_unique<CudaVector>();
    v->ticket = EpochTicket(epoch_);
    v->size = size;
    v->values = DeviceBuffer<float>(static_cast<size_t>(size));
    launch_random_f32(v->values.data(), size, 1.0f, 0.05f, seed, stream_);
    return v;
  }

  std::unique_ptr<EmbeddingTable> make_embedding(const float* table, int64_t vocab, int64_t hidden,
                                                 EmbeddingFormat format) override {
    auto e = new_embedding(vocab, hidden, format);
    const size_t count = static_cast<size_t>(vocab * hidden);
    switch (format) {
      case EmbeddingFormat::bf16: {
        std::vector<uint16_t> values(count);
        for (size_t i = 0; i < count; ++i) values[i] = float_to_bf16(table[i]);
        e->bf16.upload(values.data(), count, stream_);
        OCTET_CUDA_CHECK(cudaStreamSynchronize(stream_));
        break;
      }
      case EmbeddingFormat::f32:
        e->f32.upload(table, count, stream_);
        OCTET_CUDA_CHECK(cudaStreamSynchronize(stream_));
        break;
      case EmbeddingFormat::fp8: {  // per row = per output channel, as an fp8 LM head of this table
        auto q = fp8::quantize(table, static_cast<size_t>(vocab), static_cast<size_t>(hidden),
                               fp8::ScaleGranularity::per_output_channel);
        e->codes.upload(q.codes.data(), count, stream_);
        e->scales.upload(q.scales.data(), q.scales.size(), stream_);
        OCTET_CUDA_CHECK(cudaStreamSynchronize(stream_));
        break;
      }
    }
    return e;
  }

  std::unique_ptr<EmbeddingTable> make_embedding_sharing(const LinearWeight& fp8_head) override {
    const auto& head = static_cast<const CudaLinear&>(fp8_head);
    if (head.format != LinearFormat::fp8) fail("cuda backend: an embedding can share only an fp8 LM head's storage");
    auto e = std::make_unique<CudaEmbedding>();
    e->ticket = EpochTicket(epoch_);
    e->format = EmbeddingFormat::fp8;
    e->vocab = head.out_features;
    e->hidden = head.in_features;
    e->fp8_codes = head.e4m3_codes();
    e->fp8_scales = head.channel_scales();
    return e;
  }

  std::unique_ptr<EmbeddingTable> make_random_embedding(int64_t vocab, int64_t hidden, EmbeddingFormat format,
                                                        uint64_t seed) override {
    auto e = new_embedding(vocab, hidden, format);
    switch (format) {
      case EmbeddingFormat::bf16: launch_random_bf16(e->bf16.data(), vocab * hidden, kRandomWeightStddev, seed, stream_); break;
      case EmbeddingFormat::f32:
        launch_random_f32(e->f32.data(), vocab * hidden, 0.0f, kRandomWeightStddev, seed, stream_);
        break;
      case EmbeddingFormat::fp8: {
        launch_random_e4m3(e->codes.data(), vocab * hidden, seed, stream_);
        std::vector<float> scales(static_cast<size_t>(vocab), kRandomWeightStddev / kRandomCodeStddev);
        e->scales.upload(scales.data(), scales.size(), stream_);
        OCTET_CUDA_CHECK(cudaStreamSynchronize(stream_));
        break;
      }
    }
    return e;
  }

  std::unique_ptr<Activations> make_activations(int64_t rows, int64_t cols) override {
    return std::make_unique<CudaActivations>(rows, cols, epoch_);
  }

  std::unique_ptr<KvCache> make_kv_cache(const KvCacheSpec& spec) override {
    auto cache = std::make_unique<CudaKvCache>(spec, stream_, live_caches_);
    cache->ticket = EpochTicket(epoch_);
    return cache;
  }

  int64_t kv_blocks_that_fit(const KvCacheSpec& spec) override { return cuda::kv_blocks_that_fit(spec); }

  void prepare_batch(const TokenBatch& batch) override {
    const size_t n = batch.size();
    ensure_capacity(tokens_, n);
    ensure_capacity(positions_, n);
    ensure_capacity(slots_, n);
    tokens_.upload(batch.tokens.data(), n, stream_);
    positions_.upload(batch.positions.data(), n, stream_);
    slots_.upload(batch.slots.data(), n, stream_);
    for (const CudaKvCache* cache : *live_caches_) cache->upload_block_table_changes();
    prepared_ = n;
    ++prepared_batches_;
  }

  bool begin_step(const void* caller, const TokenBatch& batch, std::span<const int64_t> logit_rows) override {
    step_timed_ = false;
    if (!graphs_.capturing()) OCTET_CUDA_CHECK(cudaEventRecord(step_start_, stream_));
    prepare_batch(batch);
    step_rows_host_.assign(logit_rows.begin(), logit_rows.end());
    ensure_capacity(step_rows_, std::max<size_t>(1, logit_rows.size()));
    if (!logit_rows.empty()) step_rows_.upload(step_rows_host_.data(), logit_rows.size(), stream_);
    step_action_ = graphs_.begin(caller, static_cast<int64_t>(batch.size()), static_cast<int64_t>(logit_rows.size()), stream_,
                                 [&](const std::vector<const CudaKvCache*>& caches, int64_t vocab) {
                                   // What the skipped ops would have checked.
                                   for (const CudaKvCache* cache : caches) cache->check_batch(batch);
                                   for (int32_t token : batch.tokens)
                                     if (vocab >= 0 && (token < 0 || token >= vocab))
                                       fail("token id {} outside the vocabulary [0, {})", token, vocab);
                                 });
    in_step_ = step_action_ != StepGraphs::Action::replayed;
    if (step_action_ == StepGraphs::Action::replayed) {
      ++replayed_steps_;
      record_step_stop();
    }
    return step_action_ == StepGraphs::Action::replayed;
  }
  int64_t replayed_steps() const override { return replayed_steps_; }
  int64_t max_recorded_step_tokens() const override { return graphs_.max_recorded_tokens(); }

  void end_step() override {
    in_step_ = false;
    graphs_.end(step_action_, stream_);
    record_step_stop();
  }

  void cancel_step() override {
    in_step_ = false;
    step_timed_ = false;
    graphs_.abandon_capture(stream_);
  }

  double last_step_device_ms() override {
    if (!step_timed_) return -1.0;
    OCTET_CUDA_CHECK(cudaEventSynchronize(step_stop_));
    float ms = 0.0f;
    OCTET_CUDA_CHECK(cudaEventElapsedTime(&ms, step_start_, step_stop_));
    return ms;
  }

  void synchronize() override { OCTET_CUDA_CHECK(cudaStreamSynchronize(stream_)); }

  void embed(const EmbeddingTable& table, std::span<const int32_t> tokens, Activations& out) override {
    const auto& t = static_cast<const CudaEmbedding&>(table);
    expect_prepared(tokens.size());
    for (int32_t token : tokens)
      if (token < 0 || token >= t.vocab) fail("token id {} outside the vocabulary [0, {})", token, t.vocab);
    check_shape(out, static_cast<int64_t>(tokens.size()), t.hidden, "embedding output");
    graphs_.note_vocab(t.vocab);
    const auto n = static_cast<int64_t>(tokens.size());
    float* dst = cast(out).data.data();
    switch (t.format) {
      case EmbeddingFormat::bf16: launch_embed_bf16(t.bf16.data(), tokens_.data(), n, t.hidden, dst, stream_); break;
      case EmbeddingFormat::f32: launch_embed_f32(t.f32.data(), tokens_.data(), n, t.hidden, dst, stream_); break;
      case EmbeddingFormat::fp8: launch_embed_e4m3(t.fp8_codes, t.fp8_scales, tokens_.data(), n, t.hidden, dst, stream_); break;
    }
  }

  void rmsnorm(const Activations& x, const VectorWeight& weight, float eps, Activations& out) override {
    check_shape(out, x.rows, x.cols, "rmsnorm output");
    auto& o = cast(out);
    launch_add_rmsnorm_quantize(const_cast<float*>(cast(x).data.data()), nullptr,
                                static_cast<const CudaVector&>(weight).values.data(), eps, x.rows, x.cols, o.data.data(),
                                fp8_linears_ ? o.codes.data() : nullptr, o.row_scales.data(), stream_);
    o.codes_current = fp8_linears_;
  }

  void add_rmsnorm(Activations& residual, const Activations& delta, const VectorWeight& weight, float eps,
                   Activations& out) override {
    check_shape(delta, residual.rows, residual.cols, "residual delta");
    check_shape(out, residual.rows, residual.cols, "rmsnorm output");
    float* r = cast(residual).data.data();
    auto& o = cast(out);
    launch_add_rmsnorm_quantize(r, cast(delta).data.data(), static_cast<const CudaVector&>(weight).values.data(), eps,
                                residual.rows, residual.cols, o.data.data(), fp8_linears_ ? o.codes.data() : nullptr,
                                o.row_scales.data(), stream_);
    o.codes_current = fp8_linears_;
  }

  // Moves a group of per-channel FP8 weights of one in_features (no static input scale, no block
  // scales) into one allocation, a group at a time: the extra device memory is one copy of this group
  // until the members' own buffers are freed below. Other groups are left as they are.
  void fuse_linears(std::span<LinearWeight* const> weights) override {
    if (weights.size() < 2 || weights.size() > static_cast<size_t>(ScaleSplit::kMaxMembers)) return;
    if (graphs_.capturing()) fail("cuda backend: weights fused while recording a step");
    const int64_t in = weights[0]->in_features;
    const auto aligned = [](int64_t rows) {
      return (rows + FusedLinears::kRowAlignment - 1) / FusedLinears::kRowAlignment * FusedLinears::kRowAlignment;
    };
    auto group = std::make_shared<FusedLinears>();
    std::vector<int64_t> first_rows;
    for (LinearWeight* weight : weights) {
      const auto& w = static_cast<const CudaLinear&>(*weight);
      // k a multiple of 16: cuBLASLt's FP8 leading dimensions.
      if (w.format != LinearFormat::fp8 || w.fused || w.block_scales.size() > 0 || w.static_input_scale > 0.0f ||
          w.in_features != in || in % 16 != 0)
        return;
      first_rows.push_back(group->rows);
      group->rows = aligned(group->rows + w.out_features);
    }
    group->members = static_cast<int>(weights.size());
    group->codes = DeviceBuffer<uint8_t>(static_cast<size_t>(group->rows * in));
    group->scales = DeviceBuffer<float>(static_cast<size_t>(group->rows));
    OCTET_CUDA_CHECK(cudaMemsetAsync(group->codes.data(), 0, group->codes.bytes(), stream_));  // the padding rows
    OCTET_CUDA_CHECK(cudaMemsetAsync(group->scales.data(), 0, group->scales.bytes(), stream_));
    for (size_t i = 0; i < weights.size(); ++i) {
      const auto& w = static_cast<const CudaLinear&>(*weights[i]);
      OCTET_CUDA_CHECK(cudaMemcpyAsync(group->codes.data() + first_rows[i] * in, w.codes.data(), w.codes.bytes(),
                                       cudaMemcpyDeviceToDevice, stream_));
      OCTET_CUDA_CHECK(cudaMemcpyAsync(group->scales.data() + first_rows[i], w.scales.data(), w.scales.bytes(),
                                       cudaMemcpyDeviceToDevice, stream_));
    }
    OCTET_CUDA_CHECK(cudaStreamSynchronize(stream_));  // the copies are done before the members' buffers go
    for (size_t i = 0; i < weights.size(); ++i) {
      auto& w = static_cast<CudaLinear&>(*weights[i]);
      w.codes = DeviceBuffer<uint8_t>();
      w.scales = DeviceBuffer<float>();
      w.fused = group;
      w.fused_index = static_cast<int>(i);
      w.first_row = first_rows[i];
    }
    ++*epoch_;  // recorded steps read the old buffers
  }

  // One GEMV launch for FP8 weights that share the input at decode sizes; above them one GEMM for a
  // fused group (grouped_gemm), else one linear each.
  void linear_group(const Activations& x, std::span<const LinearWeight* const> weights,
                    std::span<Activations* const> outs) override {
    const bool skinny = use_skinny_gemm(x.rows, x.cols);
    int64_t group_n = 0;  // the launch's matrix: the members' rows together
    for (const LinearWeight* weight : weights) group_n += weight->out_features;
    bool fused = weights.size() <= GemvGroup::kMaxMembers && weights.size() == outs.size() &&
                 (gemv_e4m3_preferred(x.rows, group_n, x.cols) || skinny);
    for (const LinearWeight* weight : weights) {
      const auto& w = static_cast<const CudaLinear&>(*weight);
      fused = fused && w.format == LinearFormat::fp8 && w.block_scales.size() == 0 && w.static_input_scale <= 0.0f &&
              w.in_features == x.cols;
    }
    if (!fused) {
      if (!grouped_gemm(x, weights, outs)) Backend::linear_group(x, weights, outs);
      return;
    }
    GemvGroup group;
    group.count = static_cast<int>(weights.size());
    for (size_t i = 0; i < weights.size(); ++i) {
      const auto& w = static_cast<const CudaLinear&>(*weights[i]);
      check_shape(*outs[i], x.rows, w.out_features, "linear output");
      group.w[i] = w.e4m3_codes();
      group.col_scales[i] = w.channel_scales();
      group.y[i] = cast(*outs[i]).data.data();
      group.n[i] = w.out_features;
    }
    const auto& input = quantized(x);
    if (skinny) launch_skinny_gemm(input.codes.data(), input.row_scales.data(), x.rows, group, x.cols);
    else launch_gemv_e4m3_group(input.codes.data(), input.row_scales.data(), x.rows, group, x.cols, stream_);
  }

  // Where the GEMV is not taken (gemv_e4m3_preferred: above 8 rows, and large weights at every row
  // count) an FP8 product is an unscaled cuBLASLt GEMM plus a scaling pass over its output
  // (gemm_e4m3, grouped_gemm). The two ops below leave out that pass where the product's only reader
  // follows at once: the norm and SwiGLU kernels apply the row and channel scales as they load it (the
  // same floats as the pass). OCTET_CUDA_FUSED_PRODUCTS=0 keeps the pass (for comparison).
  bool unscaled_gemm_rows(int64_t m, int64_t n, int64_t k) const {
    return fused_products_ && !gemv_e4m3_preferred(m, n, k) && !use_skinny_gemm(m, k) &&
           !(epilogue_scales_ && m > kMinEpilogueScaledRows);
  }
  static bool plain_fp8(const CudaLinear& w) {
    return w.format == LinearFormat::fp8 && w.static_input_scale <= 0.0f && w.block_scales.size() == 0;
  }

  void linear_add_rmsnorm(const Activations& x, const LinearWeight& weight, Activations& proj, Activations& residual,
                          const VectorWeight& norm, float eps, Activations& out) override {
    const auto& w = static_cast<const CudaLinear&>(weight);
    const int64_t m = x.rows, n = w.out_features, k = w.in_features;
    if (!plain_fp8(w) || x.cols != k || !unscaled_gemm_rows(m, n, k)) return Backend::linear_add_rmsnorm(x, weight, proj, residual, norm, eps, out);
    check_shape(proj, m, n, "linear output");
    check_shape(residual, m, n, "residual");
    check_shape(out, m, n, "rmsnorm output");
    float* product = cast(proj).data.data();
    float* r = cast(residual).data.data();
    auto& o = cast(out);
    const float* norm_weights = static_cast<const CudaVector&>(norm).values.data();
    // Where the fused norm does not fit (rows too wide, unaligned), the default: GEMM, scaling pass, norm.
    if (!add_product_rmsnorm_quantize_fits(r, product, w.channel_scales(), norm_weights, m, n, o.data.data(), o.codes.data()))
      return Backend::linear_add_rmsnorm(x, weight, proj, residual, norm, eps, out);
    const auto& input = quantized(x);
    if (!gemm_->run(GemmType::e4m3, input.codes.data(), w.e4m3_codes(), product, m, n, k, stream_))
      return Backend::linear_add_rmsnorm(x, weight, proj, residual, norm, eps, out);
    if (!try_launch_add_product_rmsnorm_quantize_in_registers(r, product, input.row_scales.data(), w.channel_scales(),
                                                              norm_weights, eps, m, n, o.data.data(), o.codes.data(),
                                                              o.row_scales.data(), stream_))
      fail("cuda backend: the fused norm refused a product it was checked to fit");
    o.codes_current = true;
  }

  void linear_swiglu(const Activations& x, const LinearWeight& gate, const LinearWeight& up, Activations& gate_out,
                     Activations& up_out, Activations& out) override {
    const auto& g = static_cast<const CudaLinear&>(gate);
    const auto& u = static_cast<const CudaLinear&>(up);
    const int64_t m = x.rows, n = g.out_features, k = g.in_features;
    // One fused allocation holding gate then up (fuse_linears), so one GEMM gives both.
    const FusedLinears* group = g.fused.get();
    const bool fits = group && group == u.fused.get() && group->members == 2 && g.fused_index == 0 && u.fused_index == 1 &&
                      plain_fp8(g) && plain_fp8(u) && u.out_features == n && u.in_features == k && x.cols == k &&
                      grouped_gemm_ != GroupedGemm::off && unscaled_gemm_rows(m, n + u.out_features, k);
    if (!fits) return Backend::linear_swiglu(x, gate, up, gate_out, up_out, out);
    check_shape(out, m, n, "swiglu output");
    ensure_capacity(group_product_, static_cast<size_t>(m * group->rows));
    auto& o = cast(out);
    // Where the fused SwiGLU does not fit (rows not whole float4s), the default: GEMM, split pass, SwiGLU.
    if (!swiglu_quantize_product_fits(group_product_.data(), group->rows, g.first_row, u.first_row, group->scales.data(),
                                      m, n, o.data.data(), o.codes.data()))
      return Backend::linear_swiglu(x, gate, up, gate_out, up_out, out);
    const auto& input = quantized(x);
    if (!gemm_->run(GemmType::e4m3, input.codes.data(), group->codes.data(), group_product_.data(), m, group->rows, k, stream_))
      return Backend::linear_swiglu(x, gate, up, gate_out, up_out, out);
    if (!try_launch_swiglu_quantize_product_in_registers(group_product_.data(), group->rows, g.first_row, u.first_row,
                                                         input.row_scales.data(), group->scales.data(), m, n, o.data.data(),
                                                         o.codes.data(), o.row_scales.data(), stream_))
      fail("cuda backend: the fused SwiGLU refused a product it was checked to fit");
    o.codes_current = true;
  }

  void linear(const Activations& x, const LinearWeight& weight, Activations& out) override {
    const auto& w = static_cast<const CudaLinear&>(weight);
    const int64_t m = x.rows, n = w.out_features, k = w.in_features;
    check_shape(x, m, k, "linear input");
    check_shape(out, m, n, "linear output");
    float* y = cast(out).data.data();
    switch (w.format) {
      case LinearFormat::fp8: {
        const uint8_t* codes = nullptr;
        const float* scales = nullptr;
        if (w.static_input_scale > 0.0f) {  // the checkpoint's scale: quantized for this weight alone
          ensure_capacity(codes_, static_cast<size_t>(m * k));
          ensure_capacity(row_scales_, static_cast<size_t>(m));
          launch_quantize_rows_e4m3(cast(x).data.data(), m, k, w.static_input_scale, codes_.data(), row_scales_.data(), stream_);
          codes = codes_.data();
          scales = row_scales_.data();
        } else {
          const auto& input = quantized(x);
          codes = input.codes.data();
          scales = input.row_scales.data();
        }
        if (w.block_scales.size() > 0) {  // 128×128 block scales: their own kernel, every batch size
          launch_linear_e4m3_block128(codes, scales, m, w.codes.data(), w.block_scales.data(), n, k, y, stream_);
          return;
        }
        // Decode-sized batches read each weight once through the GEMV; larger ones go to tensor cores.
        if (gemv_e4m3_preferred(m, n, k)) {
          launch_gemv_e4m3(codes, scales, m, w.e4m3_codes(), w.channel_scales(), n, k, y, stream_);
        } else if (use_skinny_gemm(m, k)) {
          GemvGroup group;
          group.count = 1;
          group.w[0] = w.e4m3_codes();
          group.col_scales[0] = w.channel_scales();
          group.y[0] = y;
          group.n[0] = n;
          launch_skinny_gemm(codes, scales, m, group, k);
        } else if (!gemm_e4m3(codes, scales, w, m, y)) {
          launch_matmul_e4m3_simple(codes, scales, m, w.e4m3_codes(), w.channel_scales(), n, k, y, stream_);
        }
        return;
      }
      case LinearFormat::bf16:
        ensure_capacity(bf16_, static_cast<size_t>(m * k));
        launch_to_bf16(cast(x).data.data(), m * k, bf16_.data(), stream_);
        if (!gemm_->run(GemmType::bf16, bf16_.data(), w.bf16.data(), y, m, n, k, stream_))
          fail("cuBLASLt has no BF16 algorithm for [{}, {}] x [{}, {}]", m, k, n, k);
        return;
      case LinearFormat::f32:
        if (!gemm_->run(GemmType::f32, cast(x).data.data(), w.f32.data(), y, m, n, k, stream_))
          fail("cuBLASLt has no float32 algorithm for [{}, {}] x [{}, {}]", m, k, n, k);
        return;
    }
  }

  void rope(Activations& x, int64_t head_dim, std::span<const int64_t> positions,
            std::span<const float> inverse_frequencies) override {
    expect_prepared(positions.size());
    if (static_cast<int64_t>(inverse_frequencies.size()) * 2 != head_dim || x.cols % head_dim != 0)
      fail("rope: head_dim {} does not match {} frequencies / {} columns", head_dim, inverse_frequencies.size(), x.cols);
    upload_frequencies(inverse_frequencies);
    launch_rope(cast(x).data.data(), static_cast<int64_t>(positions.size()), x.cols / head_dim, head_dim, positions_.data(),
                frequencies_.data(), stream_);
  }

  void kv_write(KvCache& cache, int64_t layer, const TokenBatch& batch, const Activations& k, const Activations& v) override {
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

  void rope_kv_write(KvCache& cache, int64_t layer, const TokenBatch& batch, Activations& q, Activations& k,
                     const Activations& v, std::span<const float> inverse_frequencies) override {
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
    launch_rope_kv_write(cast(q).data.data(), cast(k).data.data(), cast(v).data.data(), tokens, q.cols / head_dim,
                         slots_.data(), positions_.data(), frequencies_.data(), c.layout(), c.static_k_scale(layer),
                         c.static_v_scale(layer), c.k[layer].data(), c.v[layer].data(),
                         c.fp8() ? c.k_scales[layer].data() : nullptr, c.fp8() ? c.v_scales[layer].data() : nullptr,
                         stream_);
  }

  void attention(const KvCache& cache, int64_t layer, const TokenBatch& batch, const Activations& q, Activations& out) override {
    const auto& c = static_cast<const CudaKvCache&>(cache);
    expect_prepared(batch.size());
    check_shape(out, q.rows, q.cols, "attention output");
    c.check_batch(batch);
    graphs_.note_cache(&c);
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

  void swiglu(const Activations& gate, const Activations& up, Activations& out) override {
    check_shape(up, gate.rows, gate.cols, "swiglu up");
    check_shape(out, gate.rows, gate.cols, "swiglu output");
    auto& o = cast(out);
    if (fp8_linears_) {
      launch_swiglu_quantize(cast(gate).data.data(), cast(up).data.data(), gate.rows, gate.cols, o.data.data(),
                             o.codes.data(), o.row_scales.data(), stream_);
      o.codes_current = true;
    } else {
      launch_swiglu(cast(gate).data.data(), cast(up).data.data(), gate.rows * gate.cols, o.data.data(), stream_);
    }
  }

  void add(Activations& x, const Activations& y) override {
    check_shape(y, x.rows, x.cols, "residual");
    launch_add(cast(x).data.data(), cast(y).data.data(), x.rows * x.cols, stream_);
  }

  void copy_rows_to_host(const Activations& x, std::span<const int64_t> rows, float* out) override {
    const float* src = cast(x).data.data();
    for (size_t i = 0; i < rows.size(); ++i)
      OCTET_CUDA_CHECK(cudaMemcpyAsync(out + i * x.cols, src + rows[i] * x.cols, static_cast<size_t>(x.cols) * 4,
                                       cudaMemcpyDeviceToHost, stream_));
    OCTET_CUDA_CHECK(cudaStreamSynchronize(stream_));
  }

  void sample_rows(const Activations& logits, std::span<const int64_t> rows, std::span<const RowSampling> per_row,
                   std::span<int32_t> tokens_out) override {
    check_sample_rows(logits, rows, per_row, tokens_out);
    if (rows.empty()) return;
    const size_t n = rows.size();
    sample_specs_host_.resize(n);
    for (size_t i = 0; i < n; ++i) {
      const RowSampling& p = per_row[i];
      sample_specs_host_[i] = SampleRowSpec{rows[i], p.temperature, p.top_k, p.top_p, p.min_p, p.seed, p.step};
    }
    ensure_capacity(sample_specs_, n);
    ensure_capacity(sampled_tokens_, n);
    sample_specs_.upload(sample_specs_host_.data(), n, stream_);
    launch_sample_rows(cast(logits).data.data(), logits.cols, sample_specs_.data(), static_cast<int64_t>(n),
                       sampled_tokens_.data(), stream_);
    OCTET_CUDA_CHECK(cudaMemcpyAsync(tokens_out.data(), sampled_tokens_.data(), n * sizeof(int32_t),
                                     cudaMemcpyDeviceToHost, stream_));
    OCTET_CUDA_CHECK(cudaStreamSynchronize(stream_));
  }
  bool samples_on_device() const override { return device_sampling_; }

  void gather_rows(const Activations& x, std::span<const int64_t> rows, Activations& out) override {
    check_shape(out, static_cast<int64_t>(rows.size()), x.cols, "gather output");
    // Inside a step, the step's logit rows are already on the device (a recording cannot upload).
    const bool step_rows = in_step_ && std::equal(rows.begin(), rows.end(), step_rows_host_.begin(), step_rows_host_.end());
    if (!step_rows) {
      if (graphs_.capturing()) fail("cuda backend: gather_rows inside a recorded step must gather the step's logit rows");
      ensure_capacity(gather_rows_, rows.size());
      gather_rows_.upload(rows.data(), rows.size(), stream_);
    }
    launch_gather_rows(cast(x).data.data(), step_rows ? step_rows_.data() : gather_rows_.data(),
                       static_cast<int64_t>(rows.size()), x.cols, cast(out).data.data(), stream_);
  }

 private:
  StagedUpload& staging() {
    if (!staging_) staging_ = std::make_unique<StagedUpload>();
    return *staging_;
  }

  // The stored bytes in a device buffer of their own (freed once the caller has synchronized).
  DeviceBuffer<uint8_t> upload_to_scratch(const StoredTensor& stored) {
    DeviceBuffer<uint8_t> scratch(stored.bytes());
    staging().copy(stored.data, stored.bytes(), scratch.data(), stream_);
    return scratch;
  }

  // Widening or rounding of a float tensor into out: bf16 (uint16_t) or f32 (synchronized before returning).
  template <typename T>
  void convert_stored(const StoredTensor& stored, T* out) {
    constexpr StoredDtype as_stored = std::is_same_v<T, float> ? StoredDtype::f32 : StoredDtype::bf16;
    DeviceBuffer<uint8_t> scratch;  // outlives the conversion kernel (synchronized below)
    if (stored.dtype == as_stored) {
      staging().copy(stored.data, stored.bytes(), out, stream_);
    } else {
      scratch = upload_to_scratch(stored);
      launch_convert_stored(scratch.data(), stored.dtype, stored.rows * stored.cols, out, stream_);
    }
    OCTET_CUDA_CHECK(cudaStreamSynchronize(stream_));
  }

  // The CPU backend refuses rows whose amax is infinite (fp8::scale_from_amax); so does this one.
  void check_row_scales(const DeviceBuffer<float>& scales) {
    std::vector<float> host(scales.size());
    OCTET_CUDA_CHECK(cudaMemcpyAsync(host.data(), scales.data(), scales.bytes(), cudaMemcpyDeviceToHost, stream_));
    OCTET_CUDA_CHECK(cudaStreamSynchronize(stream_));
    for (float scale : host)
      if (!std::isfinite(scale)) fail("cannot choose an FP8 scale for a tensor whose amax is {}", scale);
  }

  // An FP8 product on cuBLASLt with the scales applied in its epilogue or, where it has no such
  // algorithm for the shape (or OCTET_CUDA_GEMM_EPILOGUE_SCALES=0), unscaled and then scaled by a
  // pass over the output. False when cuBLASLt has no FP8 algorithm for the shape at all.
  // Only above 128 rows: on the H200 the epilogue-scaled algorithms made prefill faster (8B 4096 tokens
  // 126.5 → 108.5 ms, 70B 855.6 → 797.6 ms) but decode batches slower (8B b64 10.49 → 11.66 ms, 70B b32
  // 37.7 → 49.7 ms), where the unscaled GEMM and the scaling pass stay.
  static constexpr int64_t kMinEpilogueScaledRows = 128;
  bool gemm_e4m3(const uint8_t* codes, const float* row_scales, const CudaLinear& w, int64_t m, float* y) {
    const int64_t n = w.out_features, k = w.in_features;
    if (epilogue_scales_ && m > kMinEpilogueScaledRows &&
        gemm_->run_e4m3_scaled(codes, row_scales, w.e4m3_codes(), w.channel_scales(), y, m, n, k, stream_))
      return true;
    if (!gemm_->run(GemmType::e4m3, codes, w.e4m3_codes(), y, m, n, k, stream_)) return false;
    launch_scale_rows_cols(y, m, n, row_scales, w.channel_scales(), stream_);
    return true;
  }

  // The members of one fused group, all of them in its order: one cuBLASLt GEMM with n = the group's
  // rows (Σ members' out_features, plus padding) into scratch, then one pass that scales each element and writes it to its member
  // (scale_split.cu), instead of a GEMM and a scaling pass per member; the narrow members (k, v) then
  // ride on the wide one's weight stream. Above kMinEpilogueScaledRows the separate GEMMs apply the
  // scales in their epilogue, so a group's pass would only copy: an extra read and write of the whole
  // output, and at those (prefill) sizes the GEMMs are compute-bound and gain little from one launch.
  // There the members stay separate unless OCTET_CUDA_GROUPED_GEMM=all (an experiment). False: not such
  // a group or no cuBLASLt algorithm (the caller runs the members one by one).
  bool grouped_gemm(const Activations& x, std::span<const LinearWeight* const> weights, std::span<Activations* const> outs) {
    if (grouped_gemm_ == GroupedGemm::off || weights.empty() || weights.size() != outs.size()) return false;
    const FusedLinears* group = static_cast<const CudaLinear&>(*weights[0]).fused.get();
    if (!group || group->members != static_cast<int>(weights.size())) return false;
    ScaleSplit split;
    split.count = group->members;
    split.product_cols = group->rows;
    for (size_t i = 0; i < weights.size(); ++i) {
      const auto& w = static_cast<const CudaLinear&>(*weights[i]);
      if (w.fused.get() != group || w.fused_index != static_cast<int>(i) || w.in_features != x.cols) return false;
      check_shape(*outs[i], x.rows, w.out_features, "linear output");
      split.out[i] = cast(*outs[i]).data.data();
      split.first_col[i] = w.first_row;
      split.cols[i] = w.out_features;
    }
    const int64_t m = x.rows, n = group->rows, k = x.cols;
    const bool epilogue = epilogue_scales_ && m > kMinEpilogueScaledRows;
    if (epilogue && grouped_gemm_ != GroupedGemm::all) return false;
    const auto& input = quantized(x);
    ensure_capacity(group_product_, static_cast<size_t>(m * n));
    const bool scaled = epilogue && gemm_->run_e4m3_scaled(input.codes.data(), input.row_scales.data(), group->codes.data(),
                                                           group->scales.data(), group_product_.data(), m, n, k, stream_);
    if (!scaled && !gemm_->run(GemmType::e4m3, input.codes.data(), group->codes.data(), group_product_.data(), m, n, k, stream_))
      return false;
    launch_scale_split(group_product_.data(), m, scaled ? nullptr : input.row_scales.data(),
                       scaled ? nullptr : group->scales.data(), split, stream_);
    return true;
  }

  std::unique_ptr<CudaLinear> new_linear(int64_t out, int64_t in, const LinearSpec& spec) {
    if (spec.format == LinearFormat::fp8 && compute_capability_ < 89)
      fail("FP8 needs an NVIDIA GPU of compute capability 8.9 or newer (Ada, Hopper, Blackwell); {} is {}.{}: "
           "use --precision bf16", device_name_, compute_capability_ / 10, compute_capability_ % 10);
    auto w = std::make_unique<CudaLinear>();
    w->ticket = EpochTicket(epoch_);
    if (spec.format == LinearFormat::fp8) fp8_linears_ = true;
    w->out_features = out;
    w->in_features = in;
    w->format = spec.format;
    w->static_input_scale = spec.static_input_scale;
    const size_t count = static_cast<size_t>(out * in);
    switch (spec.format) {
      case LinearFormat::fp8:
        w->codes = DeviceBuffer<uint8_t>(count);
        w->scales = DeviceBuffer<float>(static_cast<size_t>(out));
        break;
      case LinearFormat::bf16: w->bf16 = DeviceBuffer<uint16_t>(count); break;
      case LinearFormat::f32: w->f32 = DeviceBuffer<float>(count); break;
    }
    return w;
  }

  std::unique_ptr<CudaEmbedding> new_embedding(int64_t vocab, int64_t hidden, EmbeddingFormat format) {
    auto e = std::make_unique<CudaEmbedding>();
    e->ticket = EpochTicket(epoch_);
    e->format = format;
    e->vocab = vocab;
    e->hidden = hidden;
    const size_t count = static_cast<size_t>(vocab * hidden);
    switch (format) {
      case EmbeddingFormat::bf16: e->bf16 = DeviceBuffer<uint16_t>(count); break;
      case EmbeddingFormat::f32: e->f32 = DeviceBuffer<float>(count); break;
      case EmbeddingFormat::fp8:
        e->codes = DeviceBuffer<uint8_t>(count);
        e->scales = DeviceBuffer<float>(static_cast<size_t>(vocab));
        e->fp8_codes = e->codes.data();
        e->fp8_scales = e->scales.data();
        break;
    }
    return e;
  }

  // Scratch grows, never shrinks; growth frees the old buffer, so recorded steps are dropped.
  template <typename T>
  void ensure_capacity(DeviceBuffer<T>& buffer, size_t count) {
    if (buffer.size() >= count) return;
    if (graphs_.capturing()) fail("cuda backend: scratch of {} elements grew while recording a step", count);
    buffer = DeviceBuffer<T>(std::max(count, buffer.size() * 2));
    ++*epoch_;
  }

  // launch_attention for `tokens` batch entries (all of them, or those of token_list) with the scratch
  // and split counters it needs; new counters start at zero (launches leave them so).
  void decode_attention(const CudaKvCache& c, int64_t layer, const Activations& q, int64_t tokens, Activations& out,
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

  // Rows 17–128 (the GEMV takes fewer) on the skinny GEMM when OCTET_CUDA_SKINNY_GEMM=1.
  bool use_skinny_gemm(int64_t rows, int64_t k) const {
    return skinny_gemm_ && rows > 16 && skinny_gemm_e4m3_fits(rows, k);
  }
  void launch_skinny_gemm(const uint8_t* codes, const float* row_scales, int64_t rows, const GemvGroup& group, int64_t k) {
    const size_t scratch_floats = skinny_gemm_e4m3_scratch_floats(rows, group, k);
    ensure_capacity(skinny_scratch_, std::max<size_t>(1, scratch_floats));
    launch_skinny_gemm_e4m3_group(codes, row_scales, rows, group, k, skinny_scratch_.data(), skinny_scratch_.size(), stream_);
  }

  // The device copy of the RoPE frequencies, uploaded when they change (eagerly: a recorded step
  // always sees the same model's frequencies, or the epoch has dropped it).
  void upload_frequencies(std::span<const float> inverse_frequencies) {
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
  const PrefillPlan& prefill_plan(const TokenBatch& batch, int64_t group) {
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

  // x with its per-row dynamic E4M3 codes current (quantized now unless the writer already did).
  const CudaActivations& quantized(const Activations& x) {
    const auto& a = cast(x);
    if (!a.codes_current) {
      launch_quantize_rows_e4m3(a.data.data(), x.rows, x.cols, 0.0f, a.codes.data(), a.row_scales.data(), stream_);
      a.codes_current = true;
    }
    return a;
  }

  void expect_prepared(size_t tokens) const {
    if (prepared_ != tokens) fail("cuda backend: prepare_batch() was given {} tokens, the op has {}", prepared_, tokens);
  }

  int device_;
  // OCTET_CUDA_SAMPLING=0: callers copy logits to the host and sample there, as before device sampling
  // (an A/B switch; sample_rows itself still runs on the device).
  bool device_sampling_ = switched_on("OCTET_CUDA_SAMPLING");
  bool epilogue_scales_ = switched_on("OCTET_CUDA_GEMM_EPILOGUE_SCALES");  // see gemm_e4m3()
  bool fused_products_ = switched_on("OCTET_CUDA_FUSED_PRODUCTS");        // see linear_add_rmsnorm()
  // OCTET_CUDA_GROUPED_GEMM=0: fused groups run one GEMM per member (for comparison); =all: one GEMM
  // at every row count (see grouped_gemm()).
  enum class GroupedGemm { off, on, all };
  GroupedGemm grouped_gemm_ = [] {
    const char* value = std::getenv("OCTET_CUDA_GROUPED_GEMM");
    if (value != nullptr && std::strcmp(value, "all") == 0) return GroupedGemm::all;
    return switched_on("OCTET_CUDA_GROUPED_GEMM") ? GroupedGemm::on : GroupedGemm::off;
  }();
  LiveKvCaches live_caches_ = std::make_shared<std::vector<CudaKvCache*>>();
  std::vector<SampleRowSpec> sample_specs_host_;
  DeviceBuffer<SampleRowSpec> sample_specs_;
  DeviceBuffer<int32_t> sampled_tokens_;
  AllocationEpoch epoch_;
  StepGraphs graphs_;
  bool tc_attention_;

  std::optional<DecodeAttention> decode_attention_ = decode_attention_kernel();  // nullopt: by batch size
  bool skinny_gemm_;
  StepGraphs::Action step_action_ = StepGraphs::Action::eager;
  // Bracket the last step on the stream (last_step_device_ms); none while a capture is open.
  cudaEvent_t step_start_ = nullptr, step_stop_ = nullptr;
  bool step_timed_ = false;
  void record_step_stop() {
    if (graphs_.capturing()) return;
    OCTET_CUDA_CHECK(cudaEventRecord(step_stop_, stream_));
    step_timed_ = true;
  }
  bool in_step_ = false;
  bool fp8_linears_ = false;  // an FP8 weight exists: norms and SwiGLU also write E4M3 codes
  int64_t replayed_steps_ = 0;
  std::vector<int64_t> step_rows_host_;
  DeviceBuffer<int64_t> step_rows_;
  int compute_capability_ = 0;
  std::string device_name_;
  cudaStream_t stream_ = nullptr;
  std::unique_ptr<CublasLtGemm> gemm_;
  std::unique_ptr<StagedUpload> staging_;  // made by the first upload of stored weights
  DeviceBuffer<int32_t> tokens_;
  DeviceBuffer<int64_t> positions_, slots_, gather_rows_;
  size_t prepared_ = 0;
  uint64_t prepared_batches_ = 0;  // prepare_batch calls so far
  PrefillPlan plan_;
  uint64_t plan_batch_ = 0;  // plan_ is of the prepared_batches_-th batch (0: none yet)
  int64_t plan_group_ = 0;
  DeviceBuffer<PrefillTile> prefill_tiles_;
  DeviceBuffer<int32_t> other_tokens_;
  DeviceBuffer<uint8_t> codes_;
  DeviceBuffer<float> row_scales_;
  DeviceBuffer<uint16_t> bf16_;
  DeviceBuffer<float> frequencies_;
  DeviceBuffer<float> attention_scratch_;
  DeviceBuffer<uint32_t> attention_counters_;  // the grouped attention's finished splits per item, zero between launches
  DeviceBuffer<float> skinny_scratch_;  // the skinny GEMM's split-k partial sums
  DeviceBuffer<float> group_product_;   // a fused group's [rows, group rows] product before scale_split
  std::vector<float> frequencies_host_;
};

}  // namespace
}  // namespace cuda

CudaStatus probe_cuda() {
  CudaStatus status;
  status.compiled = true;
  cudaDriverGetVersion(&status.driver_version);
  cudaRuntimeGetVersion(&status.runtime_version);
  int count = 0;
  const cudaError_t error = cudaGetDeviceCount(&count);
  if (error != cudaSuccess || count == 0) {
    status.reason = error != cudaSuccess ? std::string("no usable NVIDIA GPU: ") + cudaGetErrorString(error)
                                         : "no NVIDIA GPU found";
    cudaGetLastError();  // clear the sticky error so later calls start clean
    return status;
  }
  for (int i = 0; i < count; ++i) {
    cudaDeviceProp props{};
    if (cudaGetDeviceProperties(&props, i) != cudaSuccess) continue;
    GpuInfo gpu;
    gpu.index = i;
    gpu.name = props.name;
    gpu.compute_major = props.major;
    gpu.compute_minor = props.minor;
    gpu.multiprocessors = props.multiProcessorCount;
    gpu.total_memory_bytes = props.totalGlobalMem;
    size_t free_bytes = 0, total_bytes = 0;
    if (cudaSetDevice(i) == cudaSuccess && cudaMemGetInfo(&free_bytes, &total_bytes) == cudaSuccess)
      gpu.free_memory_bytes = free_bytes;
    status.gpus.push_back(gpu);
  }
  status.available = !status.gpus.empty();
  if (!status.available) status.reason = "no NVIDIA GPU could be queried";
  return status;
}

std::unique_ptr<Backend> make_cuda_backend(int device_index) {
  CudaStatus status = probe_cuda();
  if (!status.available) fail("--device cuda: {}", status.reason);
  if (device_index < 0 || device_index >= static_cast<int>(status.gpus.size()))
    fail("--device cuda: GPU {} does not exist ({} found)", device_index, status.gpus.size());
  return std::make_unique<cuda::CudaBackend>(device_index);
}

}  // namespace octet::backend
