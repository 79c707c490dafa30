#pragma once
// The CUDA backend's device objects behind the Backend interface's handles: activations, vectors,
// embedding tables and linear weights in device memory, and the casts from the interface's types.
#include "backend/backend.h"
#include "backend/cuda/device_buffer.h"
#include "backend/cuda/step_graphs.h"
#include "common/error.h"

#include <cstdint>
#include <memory>

namespace octet::backend::cuda {

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

inline const CudaActivations& cast(const Activations& a) { return static_cast<const CudaActivations&>(a); }
inline CudaActivations& cast(Activations& a) {  // for writing: the codes no longer match
  auto& c = static_cast<CudaActivations&>(a);
  c.codes_current = false;
  return c;
}

inline void check_shape(const Activations& a, int64_t rows, int64_t cols, const char* what) {
  if (a.rows < rows || a.cols != cols)
    fail("cuda backend: {} has shape [{}, {}], expected [>= {}, {}]", what, a.rows, a.cols, rows, cols);
}

}  // namespace octet::backend::cuda
