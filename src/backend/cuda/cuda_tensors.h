#pragma once
// Storage of the CUDA backend: activations, weights in their precision. Internal to the backend and
// its tests.
#include "backend/backend.h"
#include "backend/cuda/device_buffer.h"

#include <atomic>
#include <cstdint>

namespace octet::backend::cuda {

// Every write to an activation buffer through the backend stamps it with a fresh number, so the
// backend can tell that a buffer it already quantized (or converted to bf16) is unchanged: the Q, K
// and V projections (and gate and up) read the same normed input, which is then quantized once.
inline std::atomic<uint64_t> activation_write_stamps{0};

struct CudaActivations final : Activations {
  CudaActivations(int64_t r, int64_t c) : data(static_cast<size_t>(r * c)) {
    rows = r;
    cols = c;
    mark_written();
  }
  // Call after writing `data` by any means other than a backend op (tests, uploads).
  float* mark_written() {
    stamp = ++activation_write_stamps;
    return data.data();
  }
  DeviceBuffer<float> data;
  uint64_t stamp = 0;
};

struct CudaVector final : VectorWeight {
  DeviceBuffer<float> values;
};

struct CudaEmbedding final : EmbeddingTable {
  DeviceBuffer<uint16_t> bf16;
  DeviceBuffer<float> f32;
  uint64_t bytes() const override { return bf16.bytes() + f32.bytes(); }
};

// fp8: codes [out, k_stride] E4M3 (k_stride = padded_k(in), zero padding) with per-output-channel
// scales; bf16: [out, k_stride] likewise padded; f32: [out, in] (k_stride = in).
struct CudaLinear final : LinearWeight {
  LinearFormat format = LinearFormat::fp8;
  float static_input_scale = 0.0f;
  int64_t k_stride = 0;
  DeviceBuffer<uint8_t> codes;
  DeviceBuffer<float> scales;
  DeviceBuffer<uint16_t> bf16;
  DeviceBuffer<float> f32;
  uint64_t bytes() const override { return codes.bytes() + scales.bytes() + bf16.bytes() + f32.bytes(); }
};

}  // namespace octet::backend::cuda
