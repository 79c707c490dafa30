#pragma once
// The tests' own safetensors writer, independent of src/: the header JSON is assembled as text, the
// layout follows the format's definition (u64 little-endian header length, JSON padded with spaces
// to a multiple of 8 bytes as the reference writer pads it, tensors back to back in the order
// given), and element encodings (BF16, F16, E4M3) are written here from their definitions.
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace octet::testing {

struct StTensor {
  std::string name;
  std::string dtype;  // as written, so unknown dtypes can be written too
  std::vector<int64_t> shape;
  std::vector<uint8_t> data;
};

inline std::string json_escape(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (c == '"' || c == '\\') out += '\\';
    if (static_cast<unsigned char>(c) < 0x20) {
      char buffer[8];
      std::snprintf(buffer, sizeof buffer, "\\u%04x", c);
      out += buffer;
      continue;
    }
    out += c;
  }
  return out;
}

// The header JSON for tensors laid out back to back (offsets from 0).
inline std::string safetensors_header(const std::vector<StTensor>& tensors,
                                      const std::map<std::string, std::string>& metadata = {}) {
  std::string json = "{";
  bool first = true;
  if (!metadata.empty()) {
    json += "\"__metadata__\":{";
    bool first_meta = true;
    for (const auto& [key, value] : metadata) {
      if (!first_meta) json += ",";
      json += "\"" + json_escape(key) + "\":\"" + json_escape(value) + "\"";
      first_meta = false;
    }
    json += "}";
    first = false;
  }
  uint64_t offset = 0;
  for (const auto& t : tensors) {
    if (!first) json += ",";
    first = false;
    json += "\"" + json_escape(t.name) + "\":{\"dtype\":\"" + t.dtype + "\",\"shape\":[";
    for (size_t i = 0; i < t.shape.size(); ++i) json += (i ? "," : "") + std::to_string(t.shape[i]);
    json += "],\"data_offsets\":[" + std::to_string(offset) + "," + std::to_string(offset + t.data.size()) + "]}";
    offset += t.data.size();
  }
  return json + "}";
}

// A whole file from a header text (padded to 8 bytes) and the data section.
inline std::vector<uint8_t> safetensors_file(std::string header, const std::vector<uint8_t>& data) {
  while (header.size() % 8 != 0) header += ' ';
  std::vector<uint8_t> out(8);
  const uint64_t length = header.size();
  for (int i = 0; i < 8; ++i) out[static_cast<size_t>(i)] = static_cast<uint8_t>(length >> (8 * i));
  out.insert(out.end(), header.begin(), header.end());
  out.insert(out.end(), data.begin(), data.end());
  return out;
}

inline std::vector<uint8_t> safetensors_bytes(const std::vector<StTensor>& tensors,
                                              const std::map<std::string, std::string>& metadata = {}) {
  std::vector<uint8_t> data;
  for (const auto& t : tensors) data.insert(data.end(), t.data.begin(), t.data.end());
  return safetensors_file(safetensors_header(tensors, metadata), data);
}

inline void write_bytes(const std::filesystem::path& path, const std::vector<uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  if (!out) throw std::runtime_error("cannot write " + path.string());
}

inline void write_text(const std::filesystem::path& path, const std::string& text) {
  std::ofstream out(path);
  out << text;
  if (!out) throw std::runtime_error("cannot write " + path.string());
}

// ---- element encodings, from their definitions -----------------------------------------------

inline std::vector<uint8_t> f32_bytes(const std::vector<float>& values) {
  std::vector<uint8_t> out(values.size() * 4);
  std::memcpy(out.data(), values.data(), out.size());
  return out;
}

// bfloat16: the top 16 bits after rounding to nearest even.
inline uint16_t bf16_bits(float value) {
  uint32_t bits = std::bit_cast<uint32_t>(value);
  bits += 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>(bits >> 16);
}
inline float bf16_value(uint16_t bits) { return std::bit_cast<float>(static_cast<uint32_t>(bits) << 16); }

// Little-endian 16-bit encodings of values (bf16_bits, f16_bits).
inline std::vector<uint8_t> u16_bytes(const std::vector<float>& values, uint16_t (*encode)(float)) {
  std::vector<uint8_t> out;
  for (float v : values) {
    const uint16_t b = encode(v);
    out.push_back(static_cast<uint8_t>(b));
    out.push_back(static_cast<uint8_t>(b >> 8));
  }
  return out;
}
inline std::vector<uint8_t> bf16_bytes(const std::vector<float>& values) { return u16_bytes(values, bf16_bits); }

// IEEE half for normal-range values (the tests' weights): round to nearest even via double.
inline uint16_t f16_bits(float value) {
  const uint16_t sign = std::signbit(value) ? 0x8000 : 0;
  double magnitude = std::fabs(static_cast<double>(value));
  if (magnitude == 0) return sign;
  int exponent = static_cast<int>(std::floor(std::log2(magnitude)));
  if (exponent < -14) exponent = -14;  // subnormal range: fixed exponent
  double mantissa = magnitude / std::ldexp(1.0, exponent - 10);  // in [1024, 2048) for normals
  mantissa = std::nearbyint(mantissa);
  if (mantissa >= 2048) {
    mantissa /= 2;
    ++exponent;
  }
  if (mantissa < 1024) return static_cast<uint16_t>(sign | static_cast<uint16_t>(mantissa));  // subnormal
  return static_cast<uint16_t>(sign | ((exponent + 15) << 10) | (static_cast<uint16_t>(mantissa) - 1024));
}

inline float f16_value(uint16_t bits) {
  const int exponent = (bits >> 10) & 0x1f, mantissa = bits & 0x3ff;
  const float sign = (bits & 0x8000) ? -1.0f : 1.0f;
  if (exponent == 0) return sign * std::ldexp(static_cast<float>(mantissa), -24);
  return sign * std::ldexp(1.0f + static_cast<float>(mantissa) / 1024.0f, exponent - 15);
}

inline std::vector<uint8_t> f16_bytes(const std::vector<float>& values) { return u16_bytes(values, f16_bits); }

// E4M3 ("fn") value of a code: bias 7, 3 mantissa bits, no infinities, 0x7f/0xff NaN.
inline float e4m3_value(uint8_t code) {
  const float sign = (code & 0x80) ? -1.0f : 1.0f;
  const int exponent = (code >> 3) & 0xf;
  const int mantissa = code & 0x7;
  if (exponent == 0xf && mantissa == 0x7) return std::nanf("");
  if (exponent == 0) return sign * std::ldexp(static_cast<float>(mantissa), -9);
  return sign * std::ldexp(1.0f + static_cast<float>(mantissa) / 8.0f, exponent - 7);
}

// Nearest E4M3 code by exhaustive search (ties to the even code), saturating at ±448: slow, obvious.
inline uint8_t e4m3_code(float value) {
  if (std::isnan(value)) return 0x7f;
  uint8_t best = 0;
  double best_distance = INFINITY;
  for (int code = 0; code < 256; ++code) {
    const float v = e4m3_value(static_cast<uint8_t>(code));
    if (std::isnan(v)) continue;
    if (v == 0 && std::signbit(v) != std::signbit(value)) continue;
    const double distance = std::fabs(static_cast<double>(v) - static_cast<double>(value));
    if (distance < best_distance || (distance == best_distance && (code & 1) == 0)) {
      best = static_cast<uint8_t>(code);
      best_distance = distance;
    }
  }
  return best;
}

}  // namespace octet::testing
