// The CUDA backend: weights in device memory in their precision, float32 activations, one stream.
// Linear layers dispatch on the number of rows: the FP8 GEMV kernel for decode-sized batches,
// cuBLASLt for the rest (see linear()). Forward steps of up to StepGraphs::kMaxTokens tokens are
// recorded as CUDA graphs and replayed (step_graphs.h); OCTET_CUDA_GRAPHS=0 runs every op eagerly.
#include "backend/cuda/cublaslt_gemm.h"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/cuda_kv_cache.h"
#include "backend/cuda/device_buffer.h"
#include "backend/cuda/kernels.h"
#include "backend/cuda/step_graphs.h"
#include "backend/device.h"
#include "common/bf16.h"
#include "fp8/scaling.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
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

struct CudaLinear final : LinearWeight {
  EpochTicket ticket;
  LinearFormat format = LinearFormat::fp8;
  float static_input_scale = 0.0f;
  DeviceBuffer<uint8_t> codes;  // fp8: [out, in] E4M3
  DeviceBuffer<float> scales;   // fp8: per output channel
  DeviceBuffer<uint16_t> bf16;
  DeviceBuffer<float> f32;
  uint64_t bytes() const override { return codes.bytes() + scales.bytes() + bf16.bytes() + f32.bytes(); }
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

bool graphs_enabled() {
  const char* value = std::getenv("OCTET_CUDA_GRAPHS");
  return value == nullptr || std::strcmp(value, "0") != 0;
}

class CudaBackend final : public Backend {
 public:
  explicit CudaBackend(int device)
      : device_(device), epoch_(std::make_shared<uint64_t>(0)), graphs_(epoch_, graphs_enabled()) {
    OCTET_CUDA_CHECK(cudaSetDevice(device));
    cudaDeviceProp props{};
    OCTET_CUDA_CHECK(cudaGetDeviceProperties(&props, device));
    compute_capability_ = props.major * 10 + props.minor;
    device_name_ = props.name;
    OCTET_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    gemm_ = std::make_unique<CublasLtGemm>();
  }
  ~CudaBackend() override {
    cudaStreamSynchronize(stream_);
    gemm_.reset();
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
    e->fp8_codes = head.codes.data();
    e->fp8_scales = head.scales.data();
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
    auto cache = std::make_unique<CudaKvCache>(spec, stream_);
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
    prepared_ = n;
  }

  bool begin_step(const void* caller, const TokenBatch& batch, std::span<const int64_t> logit_rows) override {
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
    if (step_action_ == StepGraphs::Action::replayed) ++replayed_steps_;
    return step_action_ == StepGraphs::Action::replayed;
  }
  int64_t replayed_steps() const override { return replayed_steps_; }

  void end_step() override {
    in_step_ = false;
    graphs_.end(step_action_, stream_);
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

  // One GEMV launch for FP8 weights that share the input at decode sizes; otherwise one linear each.
  void linear_group(const Activations& x, std::span<const LinearWeight* const> weights,
                    std::span<Activations* const> outs) override {
    bool fused = weights.size() <= GemvGroup::kMaxMembers && weights.size() == outs.size() &&
                 gemv_e4m3_fits(x.rows, x.cols);
    for (const LinearWeight* weight : weights) {
      const auto& w = static_cast<const CudaLinear&>(*weight);
      fused = fused && w.format == LinearFormat::fp8 && w.static_input_scale <= 0.0f && w.in_features == x.cols;
    }
    if (!fused) {
      Backend::linear_group(x, weights, outs);
      return;
    }
    GemvGroup group;
    group.count = static_cast<int>(weights.size());
    for (size_t i = 0; i < weights.size(); ++i) {
      const auto& w = static_cast<const CudaLinear&>(*weights[i]);
      check_shape(*outs[i], x.rows, w.out_features, "linear output");
      group.w[i] = w.codes.data();
      group.col_scales[i] = w.scales.data();
      group.y[i] = cast(*outs[i]).data.data();
      group.n[i] = w.out_features;
    }
    const auto& input = quantized(x);
    launch_gemv_e4m3_group(input.codes.data(), input.row_scales.data(), x.rows, group, x.cols, stream_);
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
        // Decode-sized batches read each weight once through the GEMV; larger ones go to tensor cores.
        if (gemv_e4m3_fits(m, k)) {
          launch_gemv_e4m3(codes, scales, m, w.codes.data(), w.scales.data(), n, k, y, stream_);
        } else if (gemm_->run(GemmType::e4m3, codes, w.codes.data(), y, m, n, k, stream_)) {
          launch_scale_rows_cols(y, m, n, scales, w.scales.data(), stream_);
        } else {
          launch_matmul_e4m3_simple(codes, scales, m, w.codes.data(), w.scales.data(), n, k, y, stream_);
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
    const int64_t context = c.spec.max_positions;
    ensure_capacity(attention_scratch_, std::max<size_t>(1, attention_scratch_floats(tokens, heads, c.spec.head_dim,
                                                                                   attention_splits(tokens, heads, context))));
    launch_attention(cast(q).data.data(), tokens, heads, slots_.data(), positions_.data(), context, c.layout(),
                     c.k[layer].data(), c.v[layer].data(), c.fp8() ? c.k_scales[layer].data() : nullptr,
                     c.fp8() ? c.v_scales[layer].data() : nullptr, attention_scratch_.data(), cast(out).data.data(),
                     stream_);
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
  AllocationEpoch epoch_;
  StepGraphs graphs_;
  StepGraphs::Action step_action_ = StepGraphs::Action::eager;
  bool in_step_ = false;
  bool fp8_linears_ = false;  // an FP8 weight exists: norms and SwiGLU also write E4M3 codes
  int64_t replayed_steps_ = 0;
  std::vector<int64_t> step_rows_host_;
  DeviceBuffer<int64_t> step_rows_;
  int compute_capability_ = 0;
  std::string device_name_;
  cudaStream_t stream_ = nullptr;
  std::unique_ptr<CublasLtGemm> gemm_;
  DeviceBuffer<int32_t> tokens_;
  DeviceBuffer<int64_t> positions_, slots_, gather_rows_;
  size_t prepared_ = 0;
  DeviceBuffer<uint8_t> codes_;
  DeviceBuffer<float> row_scales_;
  DeviceBuffer<uint16_t> bf16_;
  DeviceBuffer<float> frequencies_;
  DeviceBuffer<float> attention_scratch_;
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
