// The CUDA backend: weights in device memory in their precision, float32 activations, one stream,
// a paged KV cache. Every op only queues work; copy_rows_to_host and synchronize() wait for it.
// linear() is the one place that dispatches on shape (see there).
#include "backend/cuda/cuda_backend.h"

#include "backend/cuda/cuda_kv_cache.h"
#include "backend/cuda/cuda_tensors.h"
#include "backend/cuda/gemm_cublaslt.h"
#include "backend/cuda/kernels.h"
#include "backend/device.h"
#include "common/bf16.h"
#include "fp8/scaling.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstring>
#include <set>
#include <tuple>
#include <vector>

namespace octet::backend {
namespace cuda {
namespace {

constexpr float kRandomWeightStddev = 0.02f;  // typical of trained Llama linear layers
constexpr float kRandomCodeStddev = 112.0f;   // random_weights.cu draws E4M3 codes of N(0, 1) · 112

const CudaActivations& cast(const Activations& a) { return static_cast<const CudaActivations&>(a); }
CudaActivations& cast(Activations& a) { return static_cast<CudaActivations&>(a); }
const float* read(const Activations& a) { return cast(a).data.data(); }
// The output of an op: stamped as new content for the quantization cache.
float* written(Activations& a) { return cast(a).mark_written(); }

void check_shape(const Activations& a, int64_t rows, int64_t cols, const char* what) {
  if (a.rows < rows || a.cols != cols)
    fail("cuda backend: {} has shape [{}, {}], expected [>= {}, {}]", what, a.rows, a.cols, rows, cols);
  if (static_cast<int64_t>(cast(a).data.size()) < a.rows * a.cols)
    fail("cuda backend: {} claims {} rows but holds {} elements", what, a.rows, cast(a).data.size());
}

template <typename T>
void ensure_capacity(DeviceBuffer<T>& buffer, size_t count) {
  if (buffer.size() < count) buffer = DeviceBuffer<T>(std::max(count, buffer.size() * 3 / 2));
}

// A host vector mirrored in a device buffer: uploads only when the contents change, so ops that take
// the batch's positions or slots reuse what prepare_batch() (or an earlier op) uploaded.
template <typename T>
class DeviceMirror {
 public:
  const T* get(std::span<const T> values, cudaStream_t stream) {
    if (values.size() == host_.size() && (values.empty() || std::memcmp(values.data(), host_.data(), values.size_bytes()) == 0))
      return device_.data();
    host_.assign(values.begin(), values.end());
    ensure_capacity(device_, host_.size());
    device_.upload(host_.data(), host_.size(), stream);
    return device_.data();
  }

 private:
  std::vector<T> host_;
  DeviceBuffer<T> device_;
};

class CudaBackend final : public Backend {
 public:
  explicit CudaBackend(int device) : device_(device) {
    OCTET_CUDA_CHECK(cudaSetDevice(device));
    cudaDeviceProp props{};
    OCTET_CUDA_CHECK(cudaGetDeviceProperties(&props, device));
    compute_capability_ = props.major * 10 + props.minor;
    multiprocessors_ = props.multiProcessorCount;
    device_name_ = props.name;
    if (compute_capability_ < 89)
      fail("--device cuda: {} has compute capability {}.{}; this build's kernels target 8.9 and 9.0 (FP8 tensor "
           "cores). Rebuild with -DCMAKE_CUDA_ARCHITECTURES=<yours> for BF16/F32 only, or use --device cpu",
           device_name_, props.major, props.minor);
    OCTET_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    gemm_ = std::make_unique<CublasLtGemm>();
  }

  ~CudaBackend() override {
    cudaStreamSynchronize(stream_);
    gemm_.reset();
    cudaStreamDestroy(stream_);
  }

  std::string name() const override { return "cuda"; }
  LinearPathCounts path_counts() const { return paths_; }

  std::unique_ptr<LinearWeight> make_linear(const float* weights, int64_t out, int64_t in,
                                            const LinearSpec& spec) override {
    auto w = new_linear(out, in, spec);
    const auto rows = static_cast<size_t>(out), cols = static_cast<size_t>(in), stride = static_cast<size_t>(w->k_stride);
    switch (spec.format) {
      case LinearFormat::fp8: {
        auto q = fp8::quantize(weights, rows, cols, fp8::ScaleGranularity::per_output_channel);
        std::vector<uint8_t> padded(rows * stride, 0);
        for (size_t r = 0; r < rows; ++r) std::memcpy(padded.data() + r * stride, q.codes.data() + r * cols, cols);
        w->codes.upload(padded.data(), padded.size(), stream_);
        w->scales.upload(q.scales.data(), q.scales.size(), stream_);
        break;
      }
      case LinearFormat::bf16: {
        std::vector<uint16_t> padded(rows * stride, 0);
        for (size_t r = 0; r < rows; ++r)
          for (size_t c = 0; c < cols; ++c) padded[r * stride + c] = float_to_bf16(weights[r * cols + c]);
        w->bf16.upload(padded.data(), padded.size(), stream_);
        break;
      }
      case LinearFormat::f32: w->f32.upload(weights, rows * cols, stream_); break;
    }
    synchronize();  // upload errors surface here, with the weight
    return w;
  }

  std::unique_ptr<LinearWeight> make_random_linear(int64_t out, int64_t in, const LinearSpec& spec,
                                                   uint64_t seed) override {
    auto w = new_linear(out, in, spec);
    switch (spec.format) {
      case LinearFormat::fp8: {
        launch_random_e4m3(w->codes.data(), out, in, w->k_stride, seed, stream_);
        std::vector<float> scales(static_cast<size_t>(out), kRandomWeightStddev / kRandomCodeStddev);
        w->scales.upload(scales.data(), scales.size(), stream_);
        break;
      }
      case LinearFormat::bf16:
        launch_random_bf16(w->bf16.data(), out, in, w->k_stride, kRandomWeightStddev, seed, stream_);
        break;
      case LinearFormat::f32: launch_random_f32(w->f32.data(), out * in, 0.0f, kRandomWeightStddev, seed, stream_); break;
    }
    synchronize();
    return w;
  }

  std::unique_ptr<VectorWeight> make_vector(const float* values, int64_t size) override {
    auto v = std::make_unique<CudaVector>();
    v->size = size;
    v->values = DeviceBuffer<float>(static_cast<size_t>(size));
    v->values.upload(values, static_cast<size_t>(size), stream_);
    synchronize();
    return v;
  }

  std::unique_ptr<VectorWeight> make_random_vector(int64_t size, uint64_t seed) override {
    auto v = std::make_unique<CudaVector>();
    v->size = size;
    v->values = DeviceBuffer<float>(static_cast<size_t>(size));
    launch_random_f32(v->values.data(), size, 1.0f, 0.05f, seed, stream_);  // norm weights sit near 1
    synchronize();
    return v;
  }

  std::unique_ptr<EmbeddingTable> make_embedding(const float* table, int64_t vocab, int64_t hidden,
                                                 bool bf16) override {
    auto e = new_embedding(vocab, hidden, bf16);
    const size_t count = static_cast<size_t>(vocab * hidden);
    if (bf16) {
      std::vector<uint16_t> values(count);
      for (size_t i = 0; i < count; ++i) values[i] = float_to_bf16(table[i]);
      e->bf16.upload(values.data(), count, stream_);
    } else {
      e->f32.upload(table, count, stream_);
    }
    synchronize();
    return e;
  }

  std::unique_ptr<EmbeddingTable> make_random_embedding(int64_t vocab, int64_t hidden, bool bf16,
                                                        uint64_t seed) override {
    auto e = new_embedding(vocab, hidden, bf16);
    if (bf16) launch_random_bf16(e->bf16.data(), vocab, hidden, hidden, kRandomWeightStddev, seed, stream_);
    else launch_random_f32(e->f32.data(), vocab * hidden, 0.0f, kRandomWeightStddev, seed, stream_);
    synchronize();
    return e;
  }

  std::unique_ptr<Activations> make_activations(int64_t rows, int64_t cols) override {
    if (rows < 0 || cols < 0) fail("cuda backend: activations of shape [{}, {}]", rows, cols);
    return std::make_unique<CudaActivations>(rows, cols);
  }

  std::unique_ptr<KvCache> make_kv_cache(const KvCacheSpec& spec) override {
    return std::make_unique<CudaKvCache>(spec, stream_);
  }

  void prepare_batch(const TokenBatch& batch) override {
    tokens_.get(batch.tokens, stream_);
    positions_.get(batch.positions, stream_);
    slots_.get(batch.slots, stream_);
  }

  void synchronize() override { OCTET_CUDA_CHECK(cudaStreamSynchronize(stream_)); }

  void embed(const EmbeddingTable& table, std::span<const int32_t> tokens, Activations& out) override {
    const auto& t = static_cast<const CudaEmbedding&>(table);
    check_shape(out, static_cast<int64_t>(tokens.size()), t.hidden, "embedding output");
    for (int32_t token : tokens)
      if (token < 0 || token >= t.vocab) fail("token id {} outside the vocabulary [0, {})", token, t.vocab);
    const auto count = static_cast<int64_t>(tokens.size());
    const int32_t* device_tokens = tokens_.get(tokens, stream_);
    if (t.bf16.size() > 0) launch_embed_bf16(t.bf16.data(), device_tokens, count, t.hidden, written(out), stream_);
    else launch_embed_f32(t.f32.data(), device_tokens, count, t.hidden, written(out), stream_);
  }

  void rmsnorm(const Activations& x, const VectorWeight& weight, float eps, Activations& out) override {
    check_shape(x, x.rows, x.cols, "rmsnorm input");
    check_shape(out, x.rows, x.cols, "rmsnorm output");
    check_vector(weight, x.cols, "rmsnorm weight");
    launch_rmsnorm(read(x), static_cast<const CudaVector&>(weight).values.data(), eps, x.rows, x.cols, written(out),
                   stream_);
  }

  void add_rmsnorm(Activations& residual, const Activations& delta, const VectorWeight& weight, float eps,
                   Activations& out) override {
    check_shape(residual, residual.rows, residual.cols, "residual");
    check_shape(delta, residual.rows, residual.cols, "residual delta");
    check_shape(out, residual.rows, residual.cols, "rmsnorm output");
    check_vector(weight, residual.cols, "rmsnorm weight");
    float* residual_data = written(residual);
    launch_add_rmsnorm(residual_data, read(delta), static_cast<const CudaVector&>(weight).values.data(), eps,
                       residual.rows, residual.cols, written(out), stream_);
  }

  // The dispatch on shape, in one place:
  //   fp8, rows ≤ 8: quantize x per token, then the E4M3 GEMV (tensor-core mma, weight-bandwidth bound);
  //   fp8, rows > 8: quantize, cuBLASLt E4M3 GEMM into float32, epilogue applies token × channel scales;
  //   bf16: round x to bf16, cuBLASLt BF16 GEMM with float32 accumulation and output;
  //   f32: cuBLASLt SGEMM (CUBLAS_COMPUTE_32F: no TF32);
  // and the simple kernel wherever cuBLASLt offers no algorithm.
  void linear(const Activations& x, const LinearWeight& weight, Activations& out) override {
    const auto& w = static_cast<const CudaLinear&>(weight);
    const int64_t m = x.rows, n = w.out_features, k = w.in_features;
    check_shape(x, m, k, "linear input");
    check_shape(out, m, n, "linear output");
    if (m == 0) return;
    float* y = written(out);
    switch (w.format) {
      case LinearFormat::fp8: {
        const uint8_t* codes = quantized_input(x, w);
        const float* row_scales = row_scales_.data();
        if (m <= kGemvMaxRows) {
          launch_gemv_e4m3(codes, row_scales, m, w.codes.data(), w.scales.data(), n, w.k_stride, y, stream_);
          ++paths_.gemv;
          return;
        }
        int64_t ldo = n;
        float* target = gemm_output(y, m, n, ldo);
        if (gemm_->run(GemmType::e4m3, codes, w.k_stride, w.codes.data(), w.k_stride, target, ldo, m, n, w.k_stride,
                       stream_)) {
          launch_scale_rows_cols(target, ldo, y, n, m, n, row_scales, w.scales.data(), stream_);
          ++paths_.cublaslt;
        } else {
          simple_fallback("fp8", m, n, k);
          launch_matmul_simple(OperandType::e4m3, codes, w.k_stride, row_scales, m, w.codes.data(), w.k_stride,
                               w.scales.data(), n, w.k_stride, y, n, stream_);
        }
        return;
      }
      case LinearFormat::bf16: {
        const uint16_t* x16 = bf16_input(x, w.k_stride);
        int64_t ldo = n;
        float* target = gemm_output(y, m, n, ldo);
        if (gemm_->run(GemmType::bf16, x16, w.k_stride, w.bf16.data(), w.k_stride, target, ldo, m, n, w.k_stride,
                       stream_)) {
          if (target != y) launch_scale_rows_cols(target, ldo, y, n, m, n, nullptr, nullptr, stream_);
          ++paths_.cublaslt;
        } else {
          simple_fallback("bf16", m, n, k);
          launch_matmul_simple(OperandType::bf16, x16, w.k_stride, nullptr, m, w.bf16.data(), w.k_stride, nullptr, n,
                               w.k_stride, y, n, stream_);
        }
        return;
      }
      case LinearFormat::f32: {
        int64_t ldo = n;
        float* target = gemm_output(y, m, n, ldo);
        if (gemm_->run(GemmType::f32, read(x), k, w.f32.data(), k, target, ldo, m, n, k, stream_)) {
          if (target != y) launch_scale_rows_cols(target, ldo, y, n, m, n, nullptr, nullptr, stream_);
          ++paths_.cublaslt;
        } else {
          simple_fallback("f32", m, n, k);
          launch_matmul_simple(OperandType::f32, read(x), k, nullptr, m, w.f32.data(), k, nullptr, n, k, y, n, stream_);
        }
        return;
      }
    }
  }

  void rope(Activations& x, int64_t head_dim, std::span<const int64_t> positions,
            std::span<const float> inverse_frequencies) override {
    if (head_dim <= 0 || static_cast<int64_t>(inverse_frequencies.size()) * 2 != head_dim || x.cols % head_dim != 0)
      fail("rope: head_dim {} does not match {} frequencies / {} columns", head_dim, inverse_frequencies.size(), x.cols);
    const auto tokens = static_cast<int64_t>(positions.size());
    check_shape(x, tokens, x.cols, "rope input");
    const int64_t* device_positions = positions_.get(positions, stream_);
    const float* frequencies = frequencies_.get(inverse_frequencies, stream_);
    launch_rope(written(x), tokens, x.cols / head_dim, head_dim, device_positions, frequencies, stream_);
  }

  void kv_write(KvCache& cache, int64_t layer, const TokenBatch& batch, const Activations& k,
                const Activations& v) override {
    auto& c = static_cast<CudaKvCache&>(cache);
    const auto tokens = static_cast<int64_t>(batch.size());
    check_batch(batch);
    check_layer(c, layer);
    const int64_t width = c.spec.kv_heads * c.spec.head_dim;
    check_shape(k, tokens, width, "kv_write k");
    check_shape(v, tokens, width, "kv_write v");
    c.reserve(batch.slots, batch.positions);
    launch_kv_write(read(k), read(v), tokens, slots_.get(batch.slots, stream_), positions_.get(batch.positions, stream_),
                    c.view(), layer, c.static_k_scale(layer), c.static_v_scale(layer), stream_);
  }

  void attention(const KvCache& cache, int64_t layer, const TokenBatch& batch, const Activations& q,
                 Activations& out) override {
    const auto& c = static_cast<const CudaKvCache&>(cache);
    const auto tokens = static_cast<int64_t>(batch.size());
    check_batch(batch);
    check_layer(c, layer);
    if (q.cols % c.spec.head_dim != 0) fail("attention: {} columns for head_dim {}", q.cols, c.spec.head_dim);
    check_shape(q, tokens, q.cols, "attention q");
    check_shape(out, tokens, q.cols, "attention output");
    if (tokens == 0) return;
    c.check_readable(batch.slots, batch.positions);
    const int64_t heads = q.cols / c.spec.head_dim;
    const int64_t longest = *std::max_element(batch.positions.begin(), batch.positions.end()) + 1;
    const int splits = attention_splits(tokens, c.spec.kv_heads, longest, multiprocessors_);
    const int64_t workspace_floats = attention_workspace_floats(tokens, heads, c.spec.head_dim, splits);
    if (workspace_floats > 0) ensure_capacity(attention_workspace_, static_cast<size_t>(workspace_floats));
    launch_attention(read(q), tokens, heads, slots_.get(batch.slots, stream_), positions_.get(batch.positions, stream_),
                     c.view(), layer, splits, attention_workspace_.data(), written(out), stream_);
  }

  void swiglu(const Activations& gate, const Activations& up, Activations& out) override {
    check_shape(gate, gate.rows, gate.cols, "swiglu gate");
    check_shape(up, gate.rows, gate.cols, "swiglu up");
    check_shape(out, gate.rows, gate.cols, "swiglu output");
    launch_swiglu(read(gate), read(up), gate.rows * gate.cols, written(out), stream_);
  }

  void add(Activations& x, const Activations& y) override {
    check_shape(x, x.rows, x.cols, "residual");
    check_shape(y, x.rows, x.cols, "residual delta");
    launch_add(written(x), read(y), x.rows * x.cols, stream_);
  }

  void copy_rows_to_host(const Activations& x, std::span<const int64_t> rows, float* out) override {
    const float* src = read(x);
    const auto row_bytes = static_cast<size_t>(x.cols) * sizeof(float);
    for (size_t i = 0; i < rows.size();) {
      if (rows[i] < 0 || rows[i] >= x.rows) fail("copy_rows_to_host: row {} outside [0, {})", rows[i], x.rows);
      size_t run = 1;  // consecutive rows go in one copy
      while (i + run < rows.size() && rows[i + run] == rows[i] + static_cast<int64_t>(run) && rows[i + run] < x.rows) ++run;
      OCTET_CUDA_CHECK(cudaMemcpyAsync(out + i * x.cols, src + rows[i] * x.cols, run * row_bytes,
                                       cudaMemcpyDeviceToHost, stream_));
      i += run;
    }
    synchronize();
  }

  void gather_rows(const Activations& x, std::span<const int64_t> rows, Activations& out) override {
    check_shape(out, static_cast<int64_t>(rows.size()), x.cols, "gather output");
    for (int64_t r : rows)
      if (r < 0 || r >= x.rows) fail("gather_rows: row {} outside [0, {})", r, x.rows);
    const int64_t* device_rows = gather_rows_.get(rows, stream_);
    launch_gather_rows(read(x), device_rows, static_cast<int64_t>(rows.size()), x.cols, written(out), stream_);
  }

 private:
  std::unique_ptr<CudaLinear> new_linear(int64_t out, int64_t in, const LinearSpec& spec) {
    if (out <= 0 || in <= 0) fail("cuda backend: linear layer of shape [{}, {}]", out, in);
    auto w = std::make_unique<CudaLinear>();
    w->out_features = out;
    w->in_features = in;
    w->format = spec.format;
    w->static_input_scale = spec.static_input_scale;
    w->k_stride = spec.format == LinearFormat::f32 ? in : padded_k(in);
    const auto count = static_cast<size_t>(out * w->k_stride);
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

  std::unique_ptr<CudaEmbedding> new_embedding(int64_t vocab, int64_t hidden, bool bf16) {
    if (vocab <= 0 || hidden <= 0) fail("cuda backend: embedding table of shape [{}, {}]", vocab, hidden);
    auto e = std::make_unique<CudaEmbedding>();
    e->vocab = vocab;
    e->hidden = hidden;
    const auto count = static_cast<size_t>(vocab * hidden);
    if (bf16) e->bf16 = DeviceBuffer<uint16_t>(count);
    else e->f32 = DeviceBuffer<float>(count);
    return e;
  }

  // Where cuBLASLt writes an [m, n] float32 result: y itself when its rows are 64-byte multiples,
  // else a scratch with padded rows (ldo), which the caller copies (or scales) into y. Tensor-core
  // kernels want 16-byte aligned rows; FP8 ones refuse anything else.
  float* gemm_output(float* y, int64_t m, int64_t n, int64_t& ldo) {
    ldo = (n + 15) / 16 * 16;
    if (ldo == n) return y;
    ensure_capacity(gemm_scratch_, static_cast<size_t>(m * ldo));
    return gemm_scratch_.data();
  }

  // E4M3 codes [x.rows, k_stride] and per-row scales of x, reused while x is unchanged.
  const uint8_t* quantized_input(const Activations& x, const CudaLinear& w) {
    const auto key = std::make_tuple(&x, cast(x).stamp, x.rows, w.k_stride, w.static_input_scale);
    if (quantized_valid_ && key == quantized_key_) return codes_.data();
    ensure_capacity(codes_, static_cast<size_t>(x.rows * w.k_stride));
    ensure_capacity(row_scales_, static_cast<size_t>(x.rows));
    launch_quantize_rows_e4m3(read(x), x.rows, x.cols, w.k_stride, w.static_input_scale, codes_.data(),
                              row_scales_.data(), stream_);
    quantized_key_ = key;
    quantized_valid_ = true;
    return codes_.data();
  }

  const uint16_t* bf16_input(const Activations& x, int64_t k_stride) {
    const auto key = std::make_tuple(&x, cast(x).stamp, x.rows, k_stride);
    if (bf16_valid_ && key == bf16_key_) return bf16_.data();
    ensure_capacity(bf16_, static_cast<size_t>(x.rows * k_stride));
    launch_rows_to_bf16(read(x), x.rows, x.cols, k_stride, bf16_.data(), stream_);
    bf16_key_ = key;
    bf16_valid_ = true;
    return bf16_.data();
  }

  void simple_fallback(const char* format, int64_t m, int64_t n, int64_t k) {
    ++paths_.simple;
    if (warned_shapes_.insert({m, n, k}).second)
      spdlog::warn("cuBLASLt has no {} algorithm for [{} x {}] · [{} x {}]ᵀ; using the slow reference kernel", format,
                   m, k, n, k);
  }

  void check_vector(const VectorWeight& v, int64_t size, const char* what) const {
    if (v.size != size) fail("cuda backend: {} has {} values, expected {}", what, v.size, size);
  }
  static void check_batch(const TokenBatch& batch) {
    if (batch.positions.size() != batch.size() || batch.slots.size() != batch.size())
      fail("cuda backend: batch of {} tokens with {} positions and {} slots", batch.size(), batch.positions.size(),
           batch.slots.size());
  }
  static void check_layer(const CudaKvCache& c, int64_t layer) {
    if (layer < 0 || layer >= c.spec.layers) fail("kv cache: layer {} outside [0, {})", layer, c.spec.layers);
  }

  int device_;
  int compute_capability_ = 0;
  int multiprocessors_ = 0;
  std::string device_name_;
  cudaStream_t stream_ = nullptr;
  std::unique_ptr<CublasLtGemm> gemm_;
  DeviceMirror<int32_t> tokens_;
  DeviceMirror<int64_t> positions_, slots_, gather_rows_;
  DeviceMirror<float> frequencies_;
  DeviceBuffer<uint8_t> codes_;
  DeviceBuffer<float> row_scales_;
  std::tuple<const Activations*, uint64_t, int64_t, int64_t, float> quantized_key_{};
  bool quantized_valid_ = false;
  DeviceBuffer<uint16_t> bf16_;
  std::tuple<const Activations*, uint64_t, int64_t, int64_t> bf16_key_{};
  bool bf16_valid_ = false;
  DeviceBuffer<float> gemm_scratch_;
  DeviceBuffer<float> attention_workspace_;
  LinearPathCounts paths_;
  std::set<std::tuple<int64_t, int64_t, int64_t>> warned_shapes_;
};

}  // namespace

LinearPathCounts linear_path_counts(const Backend& backend) {
  const auto* cuda = dynamic_cast<const CudaBackend*>(&backend);
  if (!cuda) fail("linear_path_counts: the {} backend is not the CUDA backend", backend.name());
  return cuda->path_counts();
}

}  // namespace cuda

std::unique_ptr<Backend> make_cuda_backend(int device_index) {
  CudaStatus status = probe_cuda();
  if (!status.available) fail("--device cuda: {}", status.reason);
  if (device_index < 0 || device_index >= static_cast<int>(status.gpus.size()))
    fail("--device cuda: GPU {} does not exist ({} found)", device_index, status.gpus.size());
  return std::make_unique<cuda::CudaBackend>(device_index);
}

}  // namespace octet::backend
