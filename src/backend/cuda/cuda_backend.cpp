// The CUDA backend: weights in device memory in their precision, float32 activations, one stream.
// Linear layers dispatch on the number of rows: the FP8 GEMV kernel for decode-sized batches,
// cuBLASLt for the rest (see linear()).
#include "backend/cuda/cublaslt_gemm.h"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/device_buffer.h"
#include "backend/cuda/kernels.h"
#include "backend/device.h"
#include "common/bf16.h"
#include "fp8/scaling.h"

#include <algorithm>
#include <vector>

namespace octet::backend {
namespace cuda {
namespace {

constexpr float kRandomWeightStddev = 0.02f;
constexpr float kRandomCodeStddev = 112.0f;  // random_weights.cu draws codes of N(0, 1) · 112

struct CudaActivations final : Activations {
  CudaActivations(int64_t r, int64_t c) : data(static_cast<size_t>(r * c)) {
    rows = r;
    cols = c;
  }
  DeviceBuffer<float> data;
};

struct CudaVector final : VectorWeight {
  DeviceBuffer<float> values;
};

struct CudaEmbedding final : EmbeddingTable {
  DeviceBuffer<uint16_t> bf16;
  DeviceBuffer<float> f32;
  uint64_t bytes() const override { return bf16.bytes() + f32.bytes(); }
};

struct CudaLinear final : LinearWeight {
  LinearFormat format = LinearFormat::fp8;
  float static_input_scale = 0.0f;
  DeviceBuffer<uint8_t> codes;  // fp8: [out, in] E4M3
  DeviceBuffer<float> scales;   // fp8: per output channel
  DeviceBuffer<uint16_t> bf16;
  DeviceBuffer<float> f32;
  uint64_t bytes() const override { return codes.bytes() + scales.bytes() + bf16.bytes() + f32.bytes(); }
};

KvStorage storage_of(const KvCacheSpec& spec) {
  switch (spec.storage) {
    case KvCacheSpec::Storage::f32: return KvStorage::f32;
    case KvCacheSpec::Storage::bf16: return KvStorage::bf16;
    case KvCacheSpec::Storage::fp8: return spec.fp8_format == fp8::Format::e4m3 ? KvStorage::e4m3 : KvStorage::e5m2;
  }
  return KvStorage::f32;
}

int64_t element_bytes(KvStorage s) { return s == KvStorage::f32 ? 4 : s == KvStorage::bf16 ? 2 : 1; }

// [layers] × [slots, max_positions, kv_heads, head_dim] for K and V, with per-(slot, position, head)
// scales when stored in FP8.
struct CudaKvCache final : KvCache {
  explicit CudaKvCache(const KvCacheSpec& s) : storage(storage_of(s)) {
    spec = s;
    const int64_t cells = s.slots * s.max_positions * s.kv_heads;
    for (int64_t layer = 0; layer < s.layers; ++layer) {
      k.emplace_back(static_cast<size_t>(cells * s.head_dim * element_bytes(storage)));
      v.emplace_back(static_cast<size_t>(cells * s.head_dim * element_bytes(storage)));
      if (s.storage == KvCacheSpec::Storage::fp8) {
        k_scales.emplace_back(static_cast<size_t>(cells));
        v_scales.emplace_back(static_cast<size_t>(cells));
      }
    }
    // Zeros rather than stale memory: positions a benchmark never wrote read as 0, never as NaN.
    for (auto* lanes : {&k, &v})
      for (auto& b : *lanes) OCTET_CUDA_CHECK(cudaMemset(b.data(), 0, b.bytes()));
    for (auto* lanes : {&k_scales, &v_scales})
      for (auto& b : *lanes) OCTET_CUDA_CHECK(cudaMemset(b.data(), 0, b.bytes()));
  }
  uint64_t bytes_per_position() const override {
    uint64_t per_lane = static_cast<uint64_t>(spec.kv_heads * spec.head_dim * element_bytes(storage));
    if (spec.storage == KvCacheSpec::Storage::fp8) per_lane += static_cast<uint64_t>(spec.kv_heads) * 4;
    return 2 * per_lane * static_cast<uint64_t>(spec.layers);
  }
  void clear_slot(int64_t) override {}  // positions are overwritten before they are read
  // Until the kernels read block tables, only each slot's own contiguous run is accepted.
  void set_block_table(int64_t slot, std::span<const int32_t> blocks) override {
    const int64_t per_slot = spec.blocks_per_slot();
    for (size_t b = 0; b < blocks.size(); ++b)
      if (blocks[b] != slot * per_slot + static_cast<int64_t>(b))
        fail("cuda backend: block tables other than each slot's own contiguous blocks are not supported yet");
  }

  KvStorage storage;
  std::vector<DeviceBuffer<uint8_t>> k, v;
  std::vector<DeviceBuffer<float>> k_scales, v_scales;
};

const CudaActivations& cast(const Activations& a) { return static_cast<const CudaActivations&>(a); }
CudaActivations& cast(Activations& a) { return static_cast<CudaActivations&>(a); }

void check_shape(const Activations& a, int64_t rows, int64_t cols, const char* what) {
  if (a.rows < rows || a.cols != cols)
    fail("cuda backend: {} has shape [{}, {}], expected [>= {}, {}]", what, a.rows, a.cols, rows, cols);
}

template <typename T>
void ensure_capacity(DeviceBuffer<T>& buffer, size_t count) {
  if (buffer.size() < count) buffer = DeviceBuffer<T>(std::max(count, buffer.size() * 2));
}

class CudaBackend final : public Backend {
 public:
  explicit CudaBackend(int device) : device_(device) {
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
    v->size = size;
    v->values = DeviceBuffer<float>(static_cast<size_t>(size));
    v->values.upload(values, static_cast<size_t>(size), stream_);
    OCTET_CUDA_CHECK(cudaStreamSynchronize(stream_));
    return v;
  }

  std::unique_ptr<VectorWeight> make_random_vector(int64_t size, uint64_t seed) override {
    auto v = std::make_unique<CudaVector>();
    v->size = size;
    v->values = DeviceBuffer<float>(static_cast<size_t>(size));
    launch_random_f32(v->values.data(), size, 1.0f, 0.05f, seed, stream_);
    return v;
  }

  std::unique_ptr<EmbeddingTable> make_embedding(const float* table, int64_t vocab, int64_t hidden, bool bf16) override {
    auto e = new_embedding(vocab, hidden, bf16);
    const size_t count = static_cast<size_t>(vocab * hidden);
    if (bf16) {
      std::vector<uint16_t> values(count);
      for (size_t i = 0; i < count; ++i) values[i] = float_to_bf16(table[i]);
      e->bf16.upload(values.data(), count, stream_);
      OCTET_CUDA_CHECK(cudaStreamSynchronize(stream_));
    } else {
      e->f32.upload(table, count, stream_);
      OCTET_CUDA_CHECK(cudaStreamSynchronize(stream_));
    }
    return e;
  }

  std::unique_ptr<EmbeddingTable> make_random_embedding(int64_t vocab, int64_t hidden, bool bf16, uint64_t seed) override {
    auto e = new_embedding(vocab, hidden, bf16);
    if (bf16) launch_random_bf16(e->bf16.data(), vocab * hidden, kRandomWeightStddev, seed, stream_);
    else launch_random_f32(e->f32.data(), vocab * hidden, 0.0f, kRandomWeightStddev, seed, stream_);
    return e;
  }

  std::unique_ptr<Activations> make_activations(int64_t rows, int64_t cols) override {
    return std::make_unique<CudaActivations>(rows, cols);
  }

  std::unique_ptr<KvCache> make_kv_cache(const KvCacheSpec& spec) override {
    if (spec.num_blocks != 0) fail("cuda backend: a shared block pool (num_blocks > 0) is not supported yet");
    if (!spec.static_k_scales.empty() || !spec.static_v_scales.empty())
      fail("cuda backend: static KV scales are not wired yet; the cache uses dynamic per-(token, head) scales");
    return std::make_unique<CudaKvCache>(spec);
  }

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

  void synchronize() override { OCTET_CUDA_CHECK(cudaStreamSynchronize(stream_)); }

  void embed(const EmbeddingTable& table, std::span<const int32_t> tokens, Activations& out) override {
    const auto& t = static_cast<const CudaEmbedding&>(table);
    expect_prepared(tokens.size());
    for (int32_t token : tokens)
      if (token < 0 || token >= t.vocab) fail("token id {} outside the vocabulary [0, {})", token, t.vocab);
    check_shape(out, static_cast<int64_t>(tokens.size()), t.hidden, "embedding output");
    const auto n = static_cast<int64_t>(tokens.size());
    if (t.bf16.size() > 0) launch_embed_bf16(t.bf16.data(), tokens_.data(), n, t.hidden, cast(out).data.data(), stream_);
    else launch_embed_f32(t.f32.data(), tokens_.data(), n, t.hidden, cast(out).data.data(), stream_);
  }

  void rmsnorm(const Activations& x, const VectorWeight& weight, float eps, Activations& out) override {
    check_shape(out, x.rows, x.cols, "rmsnorm output");
    launch_rmsnorm(cast(x).data.data(), static_cast<const CudaVector&>(weight).values.data(), eps, x.rows, x.cols,
                   cast(out).data.data(), stream_);
  }

  void add_rmsnorm(Activations& residual, const Activations& delta, const VectorWeight& weight, float eps,
                   Activations& out) override {
    check_shape(delta, residual.rows, residual.cols, "residual delta");
    check_shape(out, residual.rows, residual.cols, "rmsnorm output");
    launch_add_rmsnorm(cast(residual).data.data(), cast(delta).data.data(),
                       static_cast<const CudaVector&>(weight).values.data(), eps, residual.rows, residual.cols,
                       cast(out).data.data(), stream_);
  }

  void linear(const Activations& x, const LinearWeight& weight, Activations& out) override {
    const auto& w = static_cast<const CudaLinear&>(weight);
    const int64_t m = x.rows, n = w.out_features, k = w.in_features;
    check_shape(x, m, k, "linear input");
    check_shape(out, m, n, "linear output");
    float* y = cast(out).data.data();
    switch (w.format) {
      case LinearFormat::fp8: {
        ensure_capacity(codes_, static_cast<size_t>(m * k));
        ensure_capacity(row_scales_, static_cast<size_t>(m));
        launch_quantize_rows_e4m3(cast(x).data.data(), m, k, w.static_input_scale, codes_.data(), row_scales_.data(), stream_);
        // Decode-sized batches read each weight once through the GEMV; larger ones go to tensor cores.
        if (m <= kGemvMaxRows && k % 16 == 0) {
          launch_gemv_e4m3(codes_.data(), row_scales_.data(), m, w.codes.data(), w.scales.data(), n, k, y, stream_);
        } else if (gemm_->run(GemmType::e4m3, codes_.data(), w.codes.data(), y, m, n, k, stream_)) {
          launch_scale_rows_cols(y, m, n, row_scales_.data(), w.scales.data(), stream_);
        } else {
          launch_matmul_e4m3_simple(codes_.data(), row_scales_.data(), m, w.codes.data(), w.scales.data(), n, k, y, stream_);
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
    if (frequencies_.size() != inverse_frequencies.size() || frequencies_host_ != std::vector<float>(inverse_frequencies.begin(), inverse_frequencies.end())) {
      frequencies_host_.assign(inverse_frequencies.begin(), inverse_frequencies.end());
      frequencies_ = DeviceBuffer<float>(frequencies_host_.size());
      frequencies_.upload(frequencies_host_.data(), frequencies_host_.size(), stream_);
    }
    launch_rope(cast(x).data.data(), static_cast<int64_t>(positions.size()), x.cols / head_dim, head_dim, positions_.data(),
                frequencies_.data(), stream_);
  }

  void kv_write(KvCache& cache, int64_t layer, const TokenBatch& batch, const Activations& k, const Activations& v) override {
    auto& c = static_cast<CudaKvCache&>(cache);
    expect_prepared(batch.size());
    check_positions(c, batch);
    const bool fp8 = c.spec.storage == KvCacheSpec::Storage::fp8;
    launch_kv_write(cast(k).data.data(), cast(v).data.data(), static_cast<int64_t>(batch.size()), slots_.data(),
                    positions_.data(), c.spec.kv_heads, c.spec.head_dim, c.spec.max_positions, c.storage, 0.0f, 0.0f,
                    c.k[layer].data(), c.v[layer].data(), fp8 ? c.k_scales[layer].data() : nullptr,
                    fp8 ? c.v_scales[layer].data() : nullptr, stream_);
  }

  void attention(const KvCache& cache, int64_t layer, const TokenBatch& batch, const Activations& q, Activations& out) override {
    const auto& c = static_cast<const CudaKvCache&>(cache);
    expect_prepared(batch.size());
    check_shape(out, q.rows, q.cols, "attention output");
    const bool fp8 = c.spec.storage == KvCacheSpec::Storage::fp8;
    const auto tokens = static_cast<int64_t>(batch.size());
    const int64_t heads = q.cols / c.spec.head_dim;
    const int64_t longest = *std::max_element(batch.positions.begin(), batch.positions.end()) + 1;
    ensure_capacity(attention_scratch_, std::max<size_t>(1, attention_scratch_floats(tokens, heads, c.spec.head_dim,
                                                                                   attention_splits(tokens, heads, longest))));
    launch_attention(cast(q).data.data(), tokens, heads, c.spec.kv_heads, c.spec.head_dim, slots_.data(), positions_.data(),
                     longest, c.spec.max_positions, c.storage, c.k[layer].data(), c.v[layer].data(),
                     fp8 ? c.k_scales[layer].data() : nullptr, fp8 ? c.v_scales[layer].data() : nullptr,
                     attention_scratch_.data(), cast(out).data.data(), stream_);
  }

  void swiglu(const Activations& gate, const Activations& up, Activations& out) override {
    check_shape(up, gate.rows, gate.cols, "swiglu up");
    check_shape(out, gate.rows, gate.cols, "swiglu output");
    launch_swiglu(cast(gate).data.data(), cast(up).data.data(), gate.rows * gate.cols, cast(out).data.data(), stream_);
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
    ensure_capacity(gather_rows_, rows.size());
    gather_rows_.upload(rows.data(), rows.size(), stream_);
    launch_gather_rows(cast(x).data.data(), gather_rows_.data(), static_cast<int64_t>(rows.size()), x.cols,
                       cast(out).data.data(), stream_);
  }

 private:
  std::unique_ptr<CudaLinear> new_linear(int64_t out, int64_t in, const LinearSpec& spec) {
    if (spec.format == LinearFormat::fp8 && compute_capability_ < 89)
      fail("FP8 needs an NVIDIA GPU of compute capability 8.9 or newer (Ada, Hopper, Blackwell); {} is {}.{}: "
           "use --precision bf16", device_name_, compute_capability_ / 10, compute_capability_ % 10);
    auto w = std::make_unique<CudaLinear>();
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

  std::unique_ptr<CudaEmbedding> new_embedding(int64_t vocab, int64_t hidden, bool bf16) {
    auto e = std::make_unique<CudaEmbedding>();
    e->vocab = vocab;
    e->hidden = hidden;
    const size_t count = static_cast<size_t>(vocab * hidden);
    if (bf16) e->bf16 = DeviceBuffer<uint16_t>(count);
    else e->f32 = DeviceBuffer<float>(count);
    return e;
  }

  void expect_prepared(size_t tokens) const {
    if (prepared_ != tokens) fail("cuda backend: prepare_batch() was given {} tokens, the op has {}", prepared_, tokens);
  }

  static void check_positions(const CudaKvCache& c, const TokenBatch& batch) {
    for (size_t t = 0; t < batch.size(); ++t) {
      if (batch.slots[t] < 0 || batch.slots[t] >= c.spec.slots) fail("kv cache: slot {} outside [0, {})", batch.slots[t], c.spec.slots);
      if (batch.positions[t] < 0 || batch.positions[t] >= c.spec.max_positions)
        fail("kv cache: position {} outside the context of {} tokens", batch.positions[t], c.spec.max_positions);
    }
  }

  int device_;
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
