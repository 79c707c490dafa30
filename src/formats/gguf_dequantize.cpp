// ggml block formats: sizes of every known tensor type and decoders for the ones Octet reads.
// Layouts follow ggml's block structs (all little-endian). Results are bit-exact with ggml and
// gguf-py whatever the compiler does with multiply-adds: a half-precision scale (11 significant
// bits) times a sub-scale (at most 7 bits of magnitude) times a quant (at most 5 bits, or 32)
// fits the 24-bit float32 significand, so every product is exact and each element is rounded at
// most once, by the final add of Q4_1/Q5_1/Q4_K/Q5_K.
#include <cstring>

#include "common/error.h"
#include "common/half.h"
#include "formats/gguf.h"

namespace octet::gguf {
namespace {

using RowDecoder = void (*)(const uint8_t* blocks, float* out, uint64_t block_count);  // 1-element blocks for F32/F16/BF16

struct TypeTraits {
  TensorType type;
  const char* name;
  uint32_t block_elements;
  uint32_t block_bytes;
  RowDecoder decode;  // nullptr: known layout size, but no decoder here
};

// Unaligned little-endian loads (tensor data may sit at any address when parse() gets a buffer).
uint16_t load_u16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }
uint32_t load_u32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[1]) << 8) |
         (static_cast<uint32_t>(p[2]) << 16) | (static_cast<uint32_t>(p[3]) << 24);
}
float float_from_bits(uint32_t bits) {
  float value;
  std::memcpy(&value, &bits, sizeof value);
  return value;
}

float load_half(const uint8_t* p) { return half_to_float(load_u16(p)); }

void decode_f32(const uint8_t* data, float* out, uint64_t count) { std::memcpy(out, data, count * 4); }

void decode_f16(const uint8_t* data, float* out, uint64_t count) {
  for (uint64_t i = 0; i < count; ++i) out[i] = load_half(data + 2 * i);
}

void decode_bf16(const uint8_t* data, float* out, uint64_t count) {
  for (uint64_t i = 0; i < count; ++i) out[i] = float_from_bits(static_cast<uint32_t>(load_u16(data + 2 * i)) << 16);
}

// Legacy 32-element blocks: element j < 16 sits in the low nibble of qs[j], element j + 16 in the
// high nibble; Q5 types keep the fifth bit of element j in bit j of a 32-bit qh.
constexpr int kLegacyBlock = 32;

void decode_q4_0(const uint8_t* block, float* out, uint64_t block_count) {  // d, qs[16]
  for (uint64_t b = 0; b < block_count; ++b, block += 18, out += kLegacyBlock) {
    const float d = load_half(block);
    const uint8_t* qs = block + 2;
    for (int j = 0; j < 16; ++j) {
      out[j] = static_cast<float>((qs[j] & 0x0f) - 8) * d;
      out[j + 16] = static_cast<float>((qs[j] >> 4) - 8) * d;
    }
  }
}

void decode_q4_1(const uint8_t* block, float* out, uint64_t block_count) {  // d, m, qs[16]
  for (uint64_t b = 0; b < block_count; ++b, block += 20, out += kLegacyBlock) {
    const float d = load_half(block);
    const float m = load_half(block + 2);
    const uint8_t* qs = block + 4;
    for (int j = 0; j < 16; ++j) {
      out[j] = static_cast<float>(qs[j] & 0x0f) * d + m;
      out[j + 16] = static_cast<float>(qs[j] >> 4) * d + m;
    }
  }
}

void decode_q5_0(const uint8_t* block, float* out, uint64_t block_count) {  // d, qh[4], qs[16]
  for (uint64_t b = 0; b < block_count; ++b, block += 22, out += kLegacyBlock) {
    const float d = load_half(block);
    const uint32_t qh = load_u32(block + 2);
    const uint8_t* qs = block + 6;
    for (int j = 0; j < 16; ++j) {
      const int low = (qs[j] & 0x0f) | static_cast<int>(((qh >> j) & 1u) << 4);
      const int high = (qs[j] >> 4) | static_cast<int>(((qh >> (j + 16)) & 1u) << 4);
      out[j] = static_cast<float>(low - 16) * d;
      out[j + 16] = static_cast<float>(high - 16) * d;
    }
  }
}

void decode_q5_1(const uint8_t* block, float* out, uint64_t block_count) {  // d, m, qh[4], qs[16]
  for (uint64_t b = 0; b < block_count; ++b, block += 24, out += kLegacyBlock) {
    const float d = load_half(block);
    const float m = load_half(block + 2);
    const uint32_t qh = load_u32(block + 4);
    const uint8_t* qs = block + 8;
    for (int j = 0; j < 16; ++j) {
      const int low = (qs[j] & 0x0f) | static_cast<int>(((qh >> j) & 1u) << 4);
      const int high = (qs[j] >> 4) | static_cast<int>(((qh >> (j + 16)) & 1u) << 4);
      out[j] = static_cast<float>(low) * d + m;
      out[j + 16] = static_cast<float>(high) * d + m;
    }
  }
}

void decode_q8_0(const uint8_t* block, float* out, uint64_t block_count) {  // d, qs[32] (int8)
  for (uint64_t b = 0; b < block_count; ++b, block += 34, out += kLegacyBlock) {
    const float d = load_half(block);
    for (int j = 0; j < 32; ++j) out[j] = static_cast<float>(static_cast<int8_t>(block[2 + j])) * d;
  }
}

// K-quants: 256-element super-blocks of 8 sub-blocks (Q4_K, Q5_K) or 16 (Q6_K).
constexpr int kSuperBlock = 256;

// Q4_K/Q5_K pack eight 6-bit scales and eight 6-bit mins into 12 bytes: sub-blocks 0-3 use the
// low 6 bits of bytes 0-3 (scale) and 4-7 (min); sub-blocks 4-7 take their low 4 bits from the
// nibbles of bytes 8-11 and their top 2 bits from the spare top bits of bytes 0-7.
void unpack_scale_min(const uint8_t* scales, int sub_block, int* scale, int* min) {
  if (sub_block < 4) {
    *scale = scales[sub_block] & 63;
    *min = scales[sub_block + 4] & 63;
  } else {
    *scale = (scales[sub_block + 4] & 0x0f) | ((scales[sub_block - 4] >> 6) << 4);
    *min = (scales[sub_block + 4] >> 4) | ((scales[sub_block] >> 6) << 4);
  }
}

// Q4_K: d, dmin, scales[12], qs[128]. Each 32-byte chunk of qs holds two sub-blocks: low nibbles
// first, then high nibbles.
void decode_q4_k(const uint8_t* block, float* out, uint64_t block_count) {
  for (uint64_t b = 0; b < block_count; ++b, block += 144, out += kSuperBlock) {
    const float d = load_half(block);
    const float dmin = load_half(block + 2);
    const uint8_t* scales = block + 4;
    const uint8_t* qs = block + 16;
    for (int sub = 0; sub < 8; ++sub) {
      int scale, min;
      unpack_scale_min(scales, sub, &scale, &min);
      const float step = d * static_cast<float>(scale);
      const float offset = dmin * static_cast<float>(min);
      const uint8_t* chunk = qs + 32 * (sub / 2);
      const int shift = 4 * (sub % 2);
      for (int l = 0; l < 32; ++l) out[32 * sub + l] = step * static_cast<float>((chunk[l] >> shift) & 0x0f) - offset;
    }
  }
}

// Q5_K: d, dmin, scales[12], qh[32], qs[128]; as Q4_K plus a fifth bit: bit `sub` of qh[l].
void decode_q5_k(const uint8_t* block, float* out, uint64_t block_count) {
  for (uint64_t b = 0; b < block_count; ++b, block += 176, out += kSuperBlock) {
    const float d = load_half(block);
    const float dmin = load_half(block + 2);
    const uint8_t* scales = block + 4;
    const uint8_t* qh = block + 16;
    const uint8_t* qs = block + 48;
    for (int sub = 0; sub < 8; ++sub) {
      int scale, min;
      unpack_scale_min(scales, sub, &scale, &min);
      const float step = d * static_cast<float>(scale);
      const float offset = dmin * static_cast<float>(min);
      const uint8_t* chunk = qs + 32 * (sub / 2);
      const int shift = 4 * (sub % 2);
      for (int l = 0; l < 32; ++l) {
        const int q = ((chunk[l] >> shift) & 0x0f) | (((qh[l] >> sub) & 1) << 4);
        out[32 * sub + l] = step * static_cast<float>(q) - offset;
      }
    }
  }
}

// Q6_K: ql[128], qh[64], scales[16] (int8, one per 16 elements), d. Each 128-element half uses 64
// bytes of ql and 32 of qh; its four 32-element groups t take low (t < 2) or high (t >= 2) nibbles
// of ql[32 * (t % 2) + l] and bits 2t..2t+1 of qh[l].
void decode_q6_k(const uint8_t* block, float* out, uint64_t block_count) {
  for (uint64_t b = 0; b < block_count; ++b, block += 210, out += kSuperBlock) {
    const uint8_t* ql = block;
    const uint8_t* qh = block + 128;
    const int8_t* scales = reinterpret_cast<const int8_t*>(block + 192);
    const float d = load_half(block + 208);
    for (int half = 0; half < 2; ++half) {
      for (int group = 0; group < 4; ++group) {
        const uint8_t* low_bytes = ql + 64 * half + 32 * (group % 2);
        const int low_shift = 4 * (group / 2);
        const int element0 = 128 * half + 32 * group;
        for (int l = 0; l < 32; ++l) {
          const int q = (((low_bytes[l] >> low_shift) & 0x0f) | (((qh[32 * half + l] >> (2 * group)) & 3) << 4)) - 32;
          const float step = d * static_cast<float>(scales[(element0 + l) / 16]);
          out[element0 + l] = step * static_cast<float>(q);
        }
      }
    }
  }
}

// Block sizes as in ggml's type traits; decoders only for the types Octet reads.
constexpr TypeTraits kTypes[] = {
    {TensorType::F32, "F32", 1, 4, decode_f32},
    {TensorType::F16, "F16", 1, 2, decode_f16},
    {TensorType::Q4_0, "Q4_0", 32, 18, decode_q4_0},
    {TensorType::Q4_1, "Q4_1", 32, 20, decode_q4_1},
    {TensorType::Q5_0, "Q5_0", 32, 22, decode_q5_0},
    {TensorType::Q5_1, "Q5_1", 32, 24, decode_q5_1},
    {TensorType::Q8_0, "Q8_0", 32, 34, decode_q8_0},
    {TensorType::Q8_1, "Q8_1", 32, 36, nullptr},
    {TensorType::Q2_K, "Q2_K", 256, 84, nullptr},
    {TensorType::Q3_K, "Q3_K", 256, 110, nullptr},
    {TensorType::Q4_K, "Q4_K", 256, 144, decode_q4_k},
    {TensorType::Q5_K, "Q5_K", 256, 176, decode_q5_k},
    {TensorType::Q6_K, "Q6_K", 256, 210, decode_q6_k},
    {TensorType::Q8_K, "Q8_K", 256, 292, nullptr},
    {TensorType::IQ2_XXS, "IQ2_XXS", 256, 66, nullptr},
    {TensorType::IQ2_XS, "IQ2_XS", 256, 74, nullptr},
    {TensorType::IQ3_XXS, "IQ3_XXS", 256, 98, nullptr},
    {TensorType::IQ1_S, "IQ1_S", 256, 50, nullptr},
    {TensorType::IQ4_NL, "IQ4_NL", 32, 18, nullptr},
    {TensorType::IQ3_S, "IQ3_S", 256, 110, nullptr},
    {TensorType::IQ2_S, "IQ2_S", 256, 82, nullptr},
    {TensorType::IQ4_XS, "IQ4_XS", 256, 136, nullptr},
    {TensorType::I8, "I8", 1, 1, nullptr},
    {TensorType::I16, "I16", 1, 2, nullptr},
    {TensorType::I32, "I32", 1, 4, nullptr},
    {TensorType::I64, "I64", 1, 8, nullptr},
    {TensorType::F64, "F64", 1, 8, nullptr},
    {TensorType::IQ1_M, "IQ1_M", 256, 56, nullptr},
    {TensorType::BF16, "BF16", 1, 2, decode_bf16},
    {TensorType::TQ1_0, "TQ1_0", 256, 54, nullptr},
    {TensorType::TQ2_0, "TQ2_0", 256, 66, nullptr},
    {TensorType::MXFP4, "MXFP4", 32, 17, nullptr},
};

const TypeTraits* find_traits(TensorType type) {
  for (const TypeTraits& traits : kTypes)
    if (traits.type == type) return &traits;
  return nullptr;
}

const TypeTraits& known_traits(TensorType type) {
  const TypeTraits* traits = find_traits(type);
  if (!traits) fail("unknown ggml tensor type {}", static_cast<uint32_t>(type));
  return *traits;
}

}  // namespace

std::string type_name(TensorType type) {
  const TypeTraits* traits = find_traits(type);
  return traits ? traits->name : fmt::format("type {}", static_cast<uint32_t>(type));
}

bool is_known_type(TensorType type) { return find_traits(type) != nullptr; }

bool can_dequantize(TensorType type) {
  const TypeTraits* traits = find_traits(type);
  return traits && traits->decode;
}

uint64_t block_size(TensorType type) { return known_traits(type).block_elements; }

uint64_t byte_size(TensorType type, uint64_t count) {
  const TypeTraits& traits = known_traits(type);
  if (count % traits.block_elements != 0)
    fail("{} element count {} is not a multiple of the block size {}", traits.name, count, traits.block_elements);
  const uint64_t blocks = count / traits.block_elements;
  uint64_t bytes = 0;
  if (__builtin_mul_overflow(blocks, static_cast<uint64_t>(traits.block_bytes), &bytes))
    fail("{} element count {} overflows a 64-bit byte size", traits.name, count);
  return bytes;
}

void dequantize_row(TensorType type, const uint8_t* data, float* out, uint64_t count) {
  const TypeTraits& traits = known_traits(type);
  if (!traits.decode) fail("cannot dequantize tensor type {} (no decoder for it)", traits.name);
  if (count % traits.block_elements != 0)
    fail("{} element count {} is not a multiple of the block size {}", traits.name, count, traits.block_elements);
  if (count == 0) return;  // empty tensors may come with null pointers, which memcpy must not see
  traits.decode(data, out, count / traits.block_elements);  // scalar types: one element per block
}

}  // namespace octet::gguf
