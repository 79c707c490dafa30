// safetensors parsing. The header is hostile until proven otherwise: its length is bounded before
// anything is read, every field is type-checked, element counts and byte sizes are computed with
// overflow checks, and the tensors must tile the data section exactly.
#include "formats/safetensors.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <cstring>
#include <limits>

#include "common/bf16.h"
#include "common/error.h"
#include "common/half.h"
#include "formats/mapped_file.h"
#include "fp8/fp8.h"

namespace octet::safetensors {
namespace {

struct DtypeTraits {
  Dtype dtype;
  const char* name;
  uint64_t bytes;
  bool floating;
};

constexpr std::array<DtypeTraits, 16> kDtypes = {{
    {Dtype::BOOL, "BOOL", 1, false},     {Dtype::U8, "U8", 1, false},         {Dtype::I8, "I8", 1, false},
    {Dtype::F8_E4M3, "F8_E4M3", 1, true}, {Dtype::F8_E5M2, "F8_E5M2", 1, true}, {Dtype::F8_E8M0, "F8_E8M0", 1, false},
    {Dtype::I16, "I16", 2, false},       {Dtype::U16, "U16", 2, false},       {Dtype::F16, "F16", 2, true},
    {Dtype::BF16, "BF16", 2, true},      {Dtype::I32, "I32", 4, false},       {Dtype::U32, "U32", 4, false},
    {Dtype::F32, "F32", 4, true},        {Dtype::F64, "F64", 8, true},        {Dtype::I64, "I64", 8, false},
    {Dtype::U64, "U64", 8, false},
}};

const DtypeTraits& traits(Dtype dtype) {
  for (const auto& t : kDtypes)
    if (t.dtype == dtype) return t;
  fail("safetensors: dtype {} has no traits", static_cast<int>(dtype));
}

uint64_t load_u64_le(const uint8_t* p) {
  uint64_t value = 0;
  for (int i = 7; i >= 0; --i) value = (value << 8) | p[i];
  return value;
}

// Decode tables: an FP8 tensor widens by lookup, 256 entries per format.
struct Fp8Tables {
  std::array<float, 256> e4m3{}, e5m2{};
  Fp8Tables() {
    for (int code = 0; code < 256; ++code) {
      e4m3[static_cast<size_t>(code)] = fp8::decode_e4m3(static_cast<uint8_t>(code));
      e5m2[static_cast<size_t>(code)] = fp8::decode_e5m2(static_cast<uint8_t>(code));
    }
  }
};
const Fp8Tables& fp8_tables() {
  static const Fp8Tables tables;
  return tables;
}

uint64_t json_unsigned(const nlohmann::json& value, const std::string& where, const char* field) {
  if (!value.is_number_integer())
    fail("{}: '{}' must hold non-negative integers, found {} {}", where, field, value.type_name(), value.dump().substr(0, 40));
  if (value.is_number_unsigned()) return value.get<uint64_t>();
  const int64_t signed_value = value.get<int64_t>();
  if (signed_value < 0) fail("{}: '{}' must hold non-negative integers, found {}", where, field, signed_value);
  return static_cast<uint64_t>(signed_value);
}

TensorInfo parse_tensor(const std::string& name, const nlohmann::json& entry, const std::string& source) {
  const std::string where = fmt::format("{}: tensor '{}'", source, name);
  if (!entry.is_object()) fail("{}: expected an object with dtype, shape, data_offsets, found {}", where, entry.type_name());
  TensorInfo info;
  info.name = name;

  const auto dtype = entry.find("dtype");
  if (dtype == entry.end() || !dtype->is_string()) fail("{}: 'dtype' must be a string", where);
  const std::string dtype_text = dtype->get<std::string>();
  const auto parsed = parse_dtype(dtype_text);
  if (!parsed) {
    if (dtype_text == "F4" || dtype_text.starts_with("F6_"))
      fail("{}: dtype '{}' packs several elements per byte; this reader supports whole-byte dtypes", where, dtype_text);
    fail("{}: unknown dtype '{}'", where, dtype_text.substr(0, 40));
  }
  info.dtype = *parsed;

  const auto shape = entry.find("shape");
  if (shape == entry.end() || !shape->is_array()) fail("{}: 'shape' must be an array of integers", where);
  if (shape->size() > kMaxDims) fail("{}: shape has {} dimensions, at most {} supported", where, shape->size(), kMaxDims);
  uint64_t count = 1;
  for (const auto& dim : *shape) {
    const uint64_t extent = json_unsigned(dim, where, "shape");
    if (extent > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
      fail("{}: shape extent {} does not fit a signed 64-bit integer", where, extent);
    info.shape.push_back(static_cast<int64_t>(extent));
    if (__builtin_mul_overflow(count, extent, &count))
      fail("{}: shape [{}...] has more elements than 64 bits count", where, fmt::join(info.shape, ", "));
  }
  info.element_count = count;

  const auto offsets = entry.find("data_offsets");
  if (offsets == entry.end() || !offsets->is_array() || offsets->size() != 2)
    fail("{}: 'data_offsets' must be an array [begin, end]", where);
  info.data_begin = json_unsigned((*offsets)[0], where, "data_offsets");
  info.data_end = json_unsigned((*offsets)[1], where, "data_offsets");
  if (info.data_end < info.data_begin)
    fail("{}: data_offsets [{}, {}] end before they begin", where, info.data_begin, info.data_end);

  uint64_t expected_bytes = 0;
  if (__builtin_mul_overflow(count, dtype_bytes(info.dtype), &expected_bytes))
    fail("{}: {} elements of {} overflow a 64-bit byte count", where, count, dtype_text);
  if (info.byte_size() != expected_bytes)
    fail("{}: shape [{}] of {} takes {} bytes, but data_offsets [{}, {}] span {}", where, fmt::join(info.shape, ", "),
         dtype_text, expected_bytes, info.data_begin, info.data_end, info.byte_size());
  return info;
}

}  // namespace

std::string_view dtype_name(Dtype dtype) { return traits(dtype).name; }

std::optional<Dtype> parse_dtype(std::string_view name) {
  for (const auto& t : kDtypes)
    if (name == t.name) return t.dtype;
  return std::nullopt;
}

uint64_t dtype_bytes(Dtype dtype) { return traits(dtype).bytes; }
bool is_floating(Dtype dtype) { return traits(dtype).floating; }

File File::open(const std::string& path) {
  formats::MappedFile mapped = formats::map_file(path, "an 8-byte header length and a JSON header");
  File file = parse(mapped.bytes, path);
  file.mapping_ = std::move(mapped.mapping);
  return file;
}

File File::parse(std::span<const uint8_t> bytes, const std::string& source) {
  File file;
  file.bytes_ = bytes;
  file.source_ = source;
  if (bytes.size() < 8)
    fail("{}: {} bytes is too small for a safetensors file (it starts with an 8-byte header length)", source,
         bytes.size());
  const uint64_t header_bytes = load_u64_le(bytes.data());
  if (header_bytes > kMaxHeaderBytes)
    fail("{}: header length {} is above the limit of {} bytes (damaged, or not a safetensors file)", source, header_bytes,
         kMaxHeaderBytes);
  if (header_bytes > bytes.size() - 8)
    fail("{}: header length {} runs past the end of the file ({} bytes follow the length field; truncated?)", source,
         header_bytes, bytes.size() - 8);
  file.header_bytes_ = header_bytes;
  const char* json_begin = reinterpret_cast<const char*>(bytes.data() + 8);
  if (header_bytes == 0 || json_begin[0] != '{')
    fail("{}: the header does not start with '{{' (not a safetensors file?)", source);

  nlohmann::json header;
  try {
    header = nlohmann::json::parse(json_begin, json_begin + header_bytes);
  } catch (const nlohmann::json::exception& e) {
    fail("{}: the header is not valid JSON: {}", source, e.what());
  }
  if (!header.is_object()) fail("{}: the header must be a JSON object, found {}", source, header.type_name());

  const uint64_t data_bytes = bytes.size() - 8 - header_bytes;
  for (const auto& [key, value] : header.items()) {
    if (key == "__metadata__") {
      if (!value.is_object()) fail("{}: '__metadata__' must be an object of strings, found {}", source, value.type_name());
      for (const auto& [meta_key, meta_value] : value.items()) {
        if (!meta_value.is_string())
          fail("{}: '__metadata__' entry '{}' must be a string, found {}", source, meta_key, meta_value.type_name());
        file.metadata_[meta_key] = meta_value.get<std::string>();
      }
      continue;
    }
    TensorInfo info = parse_tensor(key, value, source);
    if (info.data_end > data_bytes)
      fail("{}: tensor '{}': data_offsets [{}, {}] run past the data section of {} bytes (truncated file?)", source, key,
           info.data_begin, info.data_end, data_bytes);
    file.tensors_.push_back(std::move(info));
  }

  std::sort(file.tensors_.begin(), file.tensors_.end(), [](const TensorInfo& a, const TensorInfo& b) {
    return a.data_begin != b.data_begin ? a.data_begin < b.data_begin : a.data_end < b.data_end;
  });
  uint64_t covered = 0;
  for (size_t i = 0; i < file.tensors_.size(); ++i) {
    const TensorInfo& t = file.tensors_[i];
    if (t.data_begin < covered)
      fail("{}: tensor '{}' (bytes [{}, {})) overlaps tensor '{}' (which ends at {})", source, t.name, t.data_begin,
           t.data_end, file.tensors_[i - 1].name, covered);
    if (t.data_begin > covered)
      fail("{}: bytes [{}, {}) of the data section belong to no tensor (a hole before '{}')", source, covered,
           t.data_begin, t.name);
    covered = t.data_end;
    file.index_[t.name] = i;
  }
  if (covered != data_bytes)
    fail("{}: the data section has {} bytes, but the tensors cover {} (trailing bytes)", source, data_bytes, covered);
  return file;
}

const TensorInfo* File::find(const std::string& name) const {
  const auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

const TensorInfo& File::tensor(const std::string& name) const {
  if (const TensorInfo* info = find(name)) return *info;
  fail("{}: tensor '{}' is missing", source_, name);
}

std::span<const uint8_t> File::bytes(const TensorInfo& tensor) const {
  return bytes_.subspan(8 + header_bytes_ + tensor.data_begin, tensor.byte_size());
}

void widen_to_float(Dtype dtype, const uint8_t* data, uint64_t count, float* out) {
  switch (dtype) {
    case Dtype::F32: std::memcpy(out, data, count * 4); return;
    case Dtype::F16:
      for (uint64_t i = 0; i < count; ++i) out[i] = half_to_float(static_cast<uint16_t>(data[2 * i] | (data[2 * i + 1] << 8)));
      return;
    case Dtype::BF16:
      // Unaligned 16-bit loads through memcpy: the compiler turns this loop into vector shifts.
      for (uint64_t i = 0; i < count; ++i) {
        uint16_t bits;
        std::memcpy(&bits, data + 2 * i, 2);
        out[i] = bf16_to_float(bits);
      }
      return;
    case Dtype::F64:
      for (uint64_t i = 0; i < count; ++i) {
        double value;
        std::memcpy(&value, data + 8 * i, 8);
        out[i] = static_cast<float>(value);
      }
      return;
    case Dtype::F8_E4M3:
      for (uint64_t i = 0; i < count; ++i) out[i] = fp8_tables().e4m3[data[i]];
      return;
    case Dtype::F8_E5M2:
      for (uint64_t i = 0; i < count; ++i) out[i] = fp8_tables().e5m2[data[i]];
      return;
    default: fail("safetensors: dtype {} is not a floating-point type", dtype_name(dtype));
  }
}

void File::to_float(const TensorInfo& tensor, float* out) const {
  if (!is_floating(tensor.dtype))
    fail("{}: tensor '{}' has dtype {}; expected a floating-point dtype (F32, F16, BF16, F8_E4M3, ...)", source_,
         tensor.name, dtype_name(tensor.dtype));
  widen_to_float(tensor.dtype, bytes(tensor).data(), tensor.element_count, out);
}

void File::release(const TensorInfo& tensor) const {
  if (mapping_) formats::release_pages(bytes(tensor));
}

std::vector<float> File::to_float(const TensorInfo& tensor) const {
  std::vector<float> values(static_cast<size_t>(tensor.element_count));
  to_float(tensor, values.data());
  return values;
}

}  // namespace octet::safetensors
