#pragma once
// FP8 scalar formats as defined by the OCP 8-bit floating point spec and implemented by CUDA's
// __nv_fp8_e4m3 / __nv_fp8_e5m2 (torch.float8_e4m3fn / float8_e5m2):
//   E4M3 ("fn"): bias 7, max ±448, no infinities, NaN = 0x7F / 0xFF.
//   E5M2: bias 15, max ±57344, infinities 0x7C / 0xFC, NaNs 0x7D-0x7F / 0xFD-0xFF.
// Encoding rounds to nearest, ties to even, and saturates finite values and infinities to ±max
// (the __NV_SATFINITE behaviour); NaN stays NaN.
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace octet::fp8 {

enum class Format { e4m3, e5m2 };

inline constexpr float kE4M3Max = 448.0f;
inline constexpr float kE5M2Max = 57344.0f;

uint8_t encode_e4m3(float value);
float decode_e4m3(uint8_t code);
uint8_t encode_e5m2(float value);
float decode_e5m2(uint8_t code);

uint8_t encode(Format format, float value);
float decode(Format format, uint8_t code);
float max_value(Format format);

// "float8_e4m3fn" / "e4m3" and "float8_e5m2" / "e5m2"; throws octet::Error for anything else.
Format parse_format(std::string_view name);
std::string_view format_name(Format format);  // "float8_e4m3fn" or "float8_e5m2"

// Bulk helpers used on hot paths: out[i] = encode(in[i] * inv_scale), out[i] = decode(in[i]) * scale.
void encode_scaled(Format format, const float* in, float inv_scale, uint8_t* out, size_t count);
void decode_scaled(Format format, const uint8_t* in, float scale, float* out, size_t count);

}  // namespace octet::fp8
