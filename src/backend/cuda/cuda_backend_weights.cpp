// The CUDA backend's weights and embeddings: made from host floats, from a checkpoint's stored bytes
// (through the pinned staging buffers, converted on the GPU) or at random, and per-channel FP8
// groups fused into one allocation.
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/stored_weights.h"
#include "common/bf16.h"
#include "fp8/scaling.h"

#include <cmath>
#include <memory>
#include <span>
#include <type_traits>
#include <vector>

namespace octet::backend::cuda {
namespace {

constexpr float kRandomWeightStddev = 0.02f;
constexpr float kRandomCodeStddev = 112.0f;  // random_weights.cu draws codes of N(0, 1) · 112

}  // namespace

std::unique_ptr<LinearWeight> CudaBackend::make_linear(const float* weights, int64_t out, int64_t in, const LinearSpec& spec) {
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
std::unique_ptr<LinearWeight> CudaBackend::make_linear_from_stored(const StoredTensor& stored, const LinearSpec& spec) {
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

std::unique_ptr<LinearWeight> CudaBackend::make_fp8_block_linear(const uint8_t* e4m3_codes, const float* block_scales, int64_t out,
                                                                 int64_t in, const LinearSpec& spec) {
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

std::unique_ptr<EmbeddingTable> CudaBackend::make_embedding_from_stored(const StoredTensor& table, EmbeddingFormat format) {
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

std::unique_ptr<LinearWeight> CudaBackend::make_random_linear(int64_t out, int64_t in, const LinearSpec& spec, uint64_t seed) {
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

std::unique_ptr<VectorWeight> CudaBackend::make_vector(const float* values, int64_t size) {
  auto v = std::make_unique<CudaVector>();
  v->ticket = EpochTicket(epoch_);
  v->size = size;
  v->values = DeviceBuffer<float>(static_cast<size_t>(size));
  v->values.upload(values, static_cast<size_t>(size), stream_);
  OCTET_CUDA_CHECK(cudaStreamSynchronize(stream_));
  return v;
}

std::unique_ptr<VectorWeight> CudaBackend::make_random_vector(int64_t size, uint64_t seed) {
  auto v = std::make_unique<CudaVector>();
  v->ticket = EpochTicket(epoch_);
  v->size = size;
  v->values = DeviceBuffer<float>(static_cast<size_t>(size));
  launch_random_f32(v->values.data(), size, 1.0f, 0.05f, seed, stream_);
  return v;
}

std::unique_ptr<EmbeddingTable> CudaBackend::make_embedding(const float* table, int64_t vocab, int64_t hidden,
                                                            EmbeddingFormat format) {
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

std::unique_ptr<EmbeddingTable> CudaBackend::make_embedding_sharing(const LinearWeight& fp8_head) {
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

std::unique_ptr<EmbeddingTable> CudaBackend::make_random_embedding(int64_t vocab, int64_t hidden, EmbeddingFormat format,
                                                                   uint64_t seed) {
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

// Moves a group of per-channel FP8 weights of one in_features (no static input scale, no block
// scales) into one allocation, a group at a time: the extra device memory is one copy of this group
// until the members' own buffers are freed below. Other groups are left as they are.
void CudaBackend::fuse_linears(std::span<LinearWeight* const> weights) {
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

StagedUpload& CudaBackend::staging() {
  if (!staging_) staging_ = std::make_unique<StagedUpload>();
  return *staging_;
}

// The stored bytes in a device buffer of their own (freed once the caller has synchronized).
DeviceBuffer<uint8_t> CudaBackend::upload_to_scratch(const StoredTensor& stored) {
  DeviceBuffer<uint8_t> scratch(stored.bytes());
  staging().copy(stored.data, stored.bytes(), scratch.data(), stream_);
  return scratch;
}

// Widening or rounding of a float tensor into out: bf16 (uint16_t) or f32 (synchronized before returning).
template <typename T>
void CudaBackend::convert_stored(const StoredTensor& stored, T* out) {
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
void CudaBackend::check_row_scales(const DeviceBuffer<float>& scales) {
  std::vector<float> host(scales.size());
  OCTET_CUDA_CHECK(cudaMemcpyAsync(host.data(), scales.data(), scales.bytes(), cudaMemcpyDeviceToHost, stream_));
  OCTET_CUDA_CHECK(cudaStreamSynchronize(stream_));
  for (float scale : host)
    if (!std::isfinite(scale)) fail("cannot choose an FP8 scale for a tensor whose amax is {}", scale);
}

std::unique_ptr<CudaLinear> CudaBackend::new_linear(int64_t out, int64_t in, const LinearSpec& spec) {
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

std::unique_ptr<CudaEmbedding> CudaBackend::new_embedding(int64_t vocab, int64_t hidden, EmbeddingFormat format) {
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

}  // namespace octet::backend::cuda
