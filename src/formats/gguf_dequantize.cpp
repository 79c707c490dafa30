// ggml block formats → float32. Layouts (little-endian, per block):
//   Q4_0 (32): f16 d, u8 qs[16]                  x = (q - 8)·d
//   Q4_1 (32): f16 d, f16 m, u8 qs[16]           x = q·d + m
//   Q5_0 (32): f16 d, u8 qh[4], u8 qs[16]        x = (q | hbit<<4) - 16)·d
//   Q5_1 (32): f16 d, f16 m, u8 qh[4], u8 qs[16] x = (q | hbit<<4)·d + m
//   Q8_0 (32): f16 d, i8 qs[32]                  x = q·d
//   Q8_1 (32): f32 d, f32 s, i8 qs[32]           x = q·d
//   Q4_K (256): f16 d, f16 dmin, u8 scales[12], u8 qs[128]            8 sub-blocks of 32, 6-bit scale/min
//   Q5_K (256): f16 d, f16 dmin, u8 scales[12], u8 qh[32], u8 qs[128]
//   Q6_K (256): u8 ql[128], u8 qh[64], i8 scales[16], f16 d            16 sub-blocks of 16
// In the 32-element formats, byte j holds element j in its low nibble and element j + 16 in its high one.
#include "common/error.h"
#include "formats/gguf.h"

#include <bit>
#include <cstring>

namespace octet::gguf {
namespace {

float half_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
  const uint32_t exponent = (h >> 10) & 0x1F;
  uint32_t mantissa = h & 0x3FF;
  uint32_t bits;
  if (exponent == 0) {
    if (mantissa == 0) {
      bits = sign;
    } else {  // subnormal: normalize
      int shift = 0;
      while ((mantissa & 0x400) == 0) {
        mantissa <<= 1;
        ++shift;
      }
      mantissa &= 0x3FF;
      bits = sign | static_cast<uint32_t>(127 - 15 - shift + 1) << 23 | mantissa << 13;
    }
  } else if (exponent == 0x1F) {
    bits = sign | 0x7F800000u | mantissa << 13;
  } else {
    bits = sign | (exponent + 127 - 15) << 23 | mantissa << 13;
  }
  return std::bit_cast<float>(bits);
}

uint16_t load_u16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}
float load_half(const uint8_t* p) { return half_to_float(load_u16(p)); }
float load_f32(const uint8_t* p) {
  float v;
  std::memcpy(&v, p, 4);
  return v;
}

// 6-bit scale and min of sub-block j from the 12 packed bytes of Q4_K / Q5_K.
void k_scale_min(int j, const uint8_t* scales, uint8_t& scale, uint8_t& min) {
  if (j < 4) {
    scale = scales[j] & 63;
    min = scales[j + 4] & 63;
  } else {
    scale = static_cast<uint8_t>((scales[j + 4] & 0x0F) | ((scales[j - 4] >> 6) << 4));
    min = static_cast<uint8_t>((scales[j + 4] >> 4) | ((scales[j] >> 6) << 4));
  }
}

void q4_0(const uint8_t* b, float* y) {
  const float d = load_half(b);
  for (int j = 0; j < 16; ++j) {
    y[j] = static_cast<float>((b[2 + j] & 0x0F) - 8) * d;
    y[j + 16] = static_cast<float>((b[2 + j] >> 4) - 8) * d;
  }
}

void q4_1(const uint8_t* b, float* y) {
  const float d = load_half(b), m = load_half(b + 2);
  for (int j = 0; j < 16; ++j) {
    y[j] = static_cast<float>(b[4 + j] & 0x0F) * d + m;
    y[j + 16] = static_cast<float>(b[4 + j] >> 4) * d + m;
  }
}

void q5_0(const uint8_t* b, float* y) {
  const float d = load_half(b);
  uint32_t qh;
  std::memcpy(&qh, b + 2, 4);
  for (int j = 0; j < 16; ++j) {
    const int lo = (b[6 + j] & 0x0F) | static_cast<int>(((qh >> j) & 1) << 4);
    const int hi = (b[6 + j] >> 4) | static_cast<int>(((qh >> (j + 16)) & 1) << 4);
    y[j] = static_cast<float>(lo - 16) * d;
    y[j + 16] = static_cast<float>(hi - 16) * d;
  }
}

void q5_1(const uint8_t* b, float* y) {
  const float d = load_half(b), m = load_half(b + 2);
  uint32_t qh;
  std::memcpy(&qh, b + 4, 4);
  for (int j = 0; j < 16; ++j) {
    const int lo = (b[8 + j] & 0x0F) | static_cast<int>(((qh >> j) & 1) << 4);
    const int hi = (b[8 + j] >> 4) | static_cast<int>(((qh >> (j + 16)) & 1) << 4);
    y[j] = static_cast<float>(lo) * d + m;
    y[j + 16] = static_cast<float>(hi) * d + m;
  }
}

void q8_0(const uint8_t* b, float* y) {
  const float d = load_half(b);
  for (int j = 0; j < 32; ++j) y[j] = static_cast<float>(static_cast<int8_t>(b[2 + j])) * d;
}

void q8_1(const uint8_t* b, float* y) {
  const float d = load_f32(b);
  for (int j = 0; j < 32; ++j) y[j] = static_cast<float>(static_cast<int8_t>(b[8 + j])) * d;
}

void q4_k(const uint8_t* b, float* y) {
  const float d = load_half(b), dmin = load_half(b + 2);
  const uint8_t* scales = b + 4;
  const uint8_t* q = b + 16;
  for (int chunk = 0; chunk < 4; ++chunk) {  // 64 elements: two sub-blocks sharing 32 bytes
    uint8_t sc, mn;
    k_scale_min(2 * chunk, scales, sc, mn);
    const float d1 = d * sc, m1 = dmin * mn;
    k_scale_min(2 * chunk + 1, scales, sc, mn);
    const float d2 = d * sc, m2 = dmin * mn;
    for (int l = 0; l < 32; ++l) y[l] = d1 * static_cast<float>(q[l] & 0x0F) - m1;
    for (int l = 0; l < 32; ++l) y[l + 32] = d2 * static_cast<float>(q[l] >> 4) - m2;
    q += 32;
    y += 64;
  }
}

void q5_k(const uint8_t* b, float* y) {
  const float d = load_half(b), dmin = load_half(b + 2);
  const uint8_t* scales = b + 4;
  const uint8_t* qh = b + 16;
  const uint8_t* ql = b + 48;
  for (int chunk = 0; chunk < 4; ++chunk) {
    uint8_t sc, mn;
    k_scale_min(2 * chunk, scales, sc, mn);
    const float d1 = d * sc, m1 = dmin * mn;
    k_scale_min(2 * chunk + 1, scales, sc, mn);
    const float d2 = d * sc, m2 = dmin * mn;
    const uint8_t bit_lo = static_cast<uint8_t>(1u << (2 * chunk)), bit_hi = static_cast<uint8_t>(2u << (2 * chunk));
    for (int l = 0; l < 32; ++l) y[l] = d1 * static_cast<float>((ql[l] & 0x0F) + ((qh[l] & bit_lo) ? 16 : 0)) - m1;
    for (int l = 0; l < 32; ++l) y[l + 32] = d2 * static_cast<float>((ql[l] >> 4) + ((qh[l] & bit_hi) ? 16 : 0)) - m2;
    ql += 32;
    y += 64;
  }
}

void q6_k(const uint8_t* b, float* y) {
  const uint8_t* ql = b;
  const uint8_t* qh = b + 128;
  const auto* sc = reinterpret_cast<const int8_t*>(b + 192);
  const float d = load_half(b + 208);
  for (int half = 0; half < 2; ++half) {  // 128 elements from 64 ql bytes and 32 qh bytes
    for (int l = 0; l < 32; ++l) {
      const int is = l / 16;
      const int q1 = ((ql[l] & 0x0F) | ((qh[l] & 3) << 4)) - 32;
      const int q2 = ((ql[l + 32] & 0x0F) | (((qh[l] >> 2) & 3) << 4)) - 32;
      const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
      const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
      y[l] = d * sc[is] * static_cast<float>(q1);
      y[l + 32] = d * sc[is + 2] * static_cast<float>(q2);
      y[l + 64] = d * sc[is + 4] * static_cast<float>(q3);
      y[l + 96] = d * sc[is + 6] * static_cast<float>(q4);
    }
    y += 128;
    ql += 64;
    qh += 32;
    sc += 8;
  }
}

struct BlockFormat {
  uint64_t elements;
  uint64_t bytes;
  void (*decode)(const uint8_t*, float*);  // nullptr: size known, decoding not supported
};

BlockFormat format_of(TensorType type) {
  switch (type) {
    case TensorType::F32: return {1, 4, nullptr};
    case TensorType::F16: return {1, 2, nullptr};
    case TensorType::BF16: return {1, 2, nullptr};
    case TensorType::Q4_0: return {32, 18, q4_0};
    case TensorType::Q4_1: return {32, 20, q4_1};
    case TensorType::Q5_0: return {32, 22, q5_0};
    case TensorType::Q5_1: return {32, 24, q5_1};
    case TensorType::Q8_0: return {32, 34, q8_0};
    case TensorType::Q8_1: return {32, 40, q8_1};
    case TensorType::Q2_K: return {256, 84, nullptr};
    case TensorType::Q3_K: return {256, 110, nullptr};
    case TensorType::Q4_K: return {256, 144, q4_k};
    case TensorType::Q5_K: return {256, 176, q5_k};
    case TensorType::Q6_K: return {256, 210, q6_k};
    case TensorType::Q8_K: return {256, 292, nullptr};
  }
  return {0, 0, nullptr};
}

bool is_plain(TensorType type) { return type == TensorType::F32 || type == TensorType::F16 || type == TensorType::BF16; }

}  // namespace

uint64_t block_size(TensorType type) { return format_of(type).elements; }

uint64_t byte_size(TensorType type, uint64_t count) {
  const BlockFormat f = format_of(type);
  if (f.elements == 0) fail("GGUF: unknown tensor type {}", type_name(type));
  if (count % f.elements != 0) fail("GGUF: {} elements are not a whole number of {} blocks of {}", count, type_name(type), f.elements);
  return count / f.elements * f.bytes;
}

void dequantize_row(TensorType type, const uint8_t* data, float* out, uint64_t count) {
  const BlockFormat f = format_of(type);
  if (f.elements == 0 || (!f.decode && !is_plain(type))) fail("GGUF: cannot decode tensors of type {}", type_name(type));
  if (count % f.elements != 0) fail("GGUF: {} elements are not a whole number of {} blocks", count, type_name(type));
  switch (type) {
    case TensorType::F32: std::memcpy(out, data, count * 4); return;
    case TensorType::F16:
      for (uint64_t i = 0; i < count; ++i) out[i] = load_half(data + 2 * i);
      return;
    case TensorType::BF16:
      for (uint64_t i = 0; i < count; ++i) out[i] = std::bit_cast<float>(static_cast<uint32_t>(load_u16(data + 2 * i)) << 16);
      return;
    default:
      for (uint64_t block = 0; block < count / f.elements; ++block) f.decode(data + block * f.bytes, out + block * f.elements);
  }
}

}  // namespace octet::gguf
