// GGUF v2/v3 parsing. The file is hostile until proven otherwise: every count is bounded by the
// bytes that remain before anything is allocated, every offset is checked against the file, and
// every error names the file, the key or tensor, and what was expected versus found.
#include "formats/gguf.h"

#include <algorithm>
#include <cstring>
#include <limits>

#include "common/error.h"
#include "formats/mapped_file.h"

namespace octet::gguf {
namespace {

constexpr uint32_t kMagic = 0x46554747;  // "GGUF" read as little-endian uint32
constexpr uint64_t kDefaultAlignment = 32;
constexpr uint32_t kMaxDims = 4;                      // GGML_MAX_DIMS
constexpr uint64_t kMaxKeyBytes = 65535;              // the spec's limit on key length
constexpr int kMaxArrayDepth = 16;                    // nesting beyond this is hostile, not a model
// Each metadata value costs ~48 bytes in memory but may take 1 byte in the file; this caps memory
// for hostile files (~400 MB) far above real models (a 256k-token vocabulary plus its merges).
constexpr uint64_t kMaxMetadataValues = uint64_t{1} << 23;
// Smallest encodings, used to bound counts by the remaining bytes before reserving memory.
constexpr uint64_t kMinKeyValueBytes = 8 + 4 + 1;     // key length, value type, one-byte value
constexpr uint64_t kMinTensorInfoBytes = 8 + 4 + 4 + 8;  // name length, n_dims, type, offset

std::string value_type_name(ValueType type) {
  static const char* const names[] = {"UINT8", "INT8",   "UINT16", "INT16", "UINT32", "INT32",  "FLOAT32",
                                      "BOOL",  "STRING", "ARRAY",  "UINT64", "INT64", "FLOAT64"};
  const auto index = static_cast<uint32_t>(type);
  return index < std::size(names) ? names[index] : fmt::format("value type {}", index);
}

bool is_valid_value_type(uint32_t type) { return type <= static_cast<uint32_t>(ValueType::FLOAT64); }

uint64_t scalar_bytes(ValueType type) {
  switch (type) {
    case ValueType::UINT8: case ValueType::INT8: case ValueType::BOOL: return 1;
    case ValueType::UINT16: case ValueType::INT16: return 2;
    case ValueType::UINT32: case ValueType::INT32: case ValueType::FLOAT32: return 4;
    case ValueType::UINT64: case ValueType::INT64: case ValueType::FLOAT64: return 8;
    case ValueType::STRING: return 8;  // the length prefix
    case ValueType::ARRAY: return 4 + 8;  // element type and count
  }
  return 1;
}

bool is_integer(ValueType type) {
  switch (type) {
    case ValueType::UINT8: case ValueType::INT8: case ValueType::UINT16: case ValueType::INT16:
    case ValueType::UINT32: case ValueType::INT32: case ValueType::UINT64: case ValueType::INT64: return true;
    default: return false;
  }
}

bool is_float(ValueType type) { return type == ValueType::FLOAT32 || type == ValueType::FLOAT64; }

// Sequential little-endian reader over the file bytes; every read is bounds-checked.
class Cursor {
 public:
  Cursor(std::span<const uint8_t> bytes, const std::string& source) : bytes_(bytes), source_(source) {}

  uint64_t position() const { return position_; }
  uint64_t remaining() const { return bytes_.size() - position_; }

  template <typename T>
  T read(std::string_view what) {
    require(sizeof(T), what);
    T value;
    std::memcpy(&value, bytes_.data() + position_, sizeof(T));
    position_ += sizeof(T);
    return value;
  }

  std::string read_string(std::string_view what, uint64_t max_bytes = std::numeric_limits<uint64_t>::max()) {
    const auto length = read<uint64_t>(what);
    if (length > max_bytes) fail("{}: {} has length {}, above the limit of {} bytes", source_, what, length, max_bytes);
    if (length > remaining())
      fail("{}: {} claims {} bytes at offset {}, but only {} bytes remain in the file", source_, what, length,
           position_, remaining());
    std::string text(reinterpret_cast<const char*>(bytes_.data() + position_), length);
    position_ += length;
    return text;
  }

  void require(uint64_t count, std::string_view what) const {
    if (count > remaining())
      fail("{}: file truncated: reading {} at offset {} needs {} bytes, {} remain", source_, what, position_, count,
           remaining());
  }

 private:
  std::span<const uint8_t> bytes_;
  const std::string& source_;
  uint64_t position_ = 0;
};

class MetadataReader {
 public:
  MetadataReader(Cursor& cursor, const std::string& source) : cursor_(cursor), source_(source) {}

  Value read_value(ValueType type, const std::string& what, int depth) {
    if (++value_count_ > kMaxMetadataValues)
      fail("{}: {}: the metadata holds more than {} values in total", source_, what, kMaxMetadataValues);
    Value value;
    value.type = type;
    switch (type) {
      case ValueType::UINT8: value.data = uint64_t{cursor_.read<uint8_t>(what)}; break;
      case ValueType::UINT16: value.data = uint64_t{cursor_.read<uint16_t>(what)}; break;
      case ValueType::UINT32: value.data = uint64_t{cursor_.read<uint32_t>(what)}; break;
      case ValueType::UINT64: value.data = cursor_.read<uint64_t>(what); break;
      case ValueType::INT8: value.data = int64_t{cursor_.read<int8_t>(what)}; break;
      case ValueType::INT16: value.data = int64_t{cursor_.read<int16_t>(what)}; break;
      case ValueType::INT32: value.data = int64_t{cursor_.read<int32_t>(what)}; break;
      case ValueType::INT64: value.data = cursor_.read<int64_t>(what); break;
      case ValueType::FLOAT32: value.data = double{cursor_.read<float>(what)}; break;
      case ValueType::FLOAT64: value.data = cursor_.read<double>(what); break;
      case ValueType::BOOL: {
        const auto byte = cursor_.read<uint8_t>(what);
        if (byte > 1) fail("{}: {}: BOOL value must be 0 or 1, found {}", source_, what, byte);
        value.data = byte == 1;
        break;
      }
      case ValueType::STRING: value.data = cursor_.read_string(what); break;
      case ValueType::ARRAY: read_array(value, what, depth); break;
    }
    return value;
  }

 private:
  void read_array(Value& value, const std::string& what, int depth) {
    if (depth >= kMaxArrayDepth) fail("{}: {}: arrays nested deeper than {} levels", source_, what, kMaxArrayDepth);
    const auto element_type = cursor_.read<uint32_t>(what);
    if (!is_valid_value_type(element_type))
      fail("{}: {}: array element type {} is not a GGUF value type (0..12)", source_, what, element_type);
    value.element_type = static_cast<ValueType>(element_type);
    const auto count = cursor_.read<uint64_t>(what);
    const uint64_t min_bytes = scalar_bytes(value.element_type);
    if (count > cursor_.remaining() / min_bytes)
      fail("{}: {}: array claims {} elements of {} ({} bytes each at least), but only {} bytes remain", source_, what,
           count, value_type_name(value.element_type), min_bytes, cursor_.remaining());
    Array elements;
    elements.reserve(count);
    for (uint64_t i = 0; i < count; ++i) elements.push_back(read_value(value.element_type, what, depth + 1));
    value.data = std::move(elements);
  }

  Cursor& cursor_;
  const std::string& source_;
  uint64_t value_count_ = 0;
};

uint64_t align_up(uint64_t offset, uint64_t alignment) {
  const uint64_t remainder = offset % alignment;
  return remainder == 0 ? offset : offset + (alignment - remainder);
}

std::string dims_text(const std::vector<uint64_t>& dims) { return fmt::format("[{}]", fmt::join(dims, ", ")); }

const Value* find_value(const std::map<std::string, Value>& metadata, const std::string& key) {
  const auto it = metadata.find(key);
  return it == metadata.end() ? nullptr : &it->second;
}

[[noreturn]] void wrong_type(const std::string& source, const std::string& key, std::string_view expected,
                             const Value& value) {
  std::string found = value_type_name(value.type);
  if (value.type == ValueType::ARRAY) found += " of " + value_type_name(value.element_type);
  fail("{}: key '{}': expected {}, found {}", source, key, expected, found);
}

// Integer value as int64 when it fits; nullopt for non-integers, error when out of range.
std::optional<int64_t> as_int64(const Value& value, const std::string& source, const std::string& key) {
  if (const auto* u = std::get_if<uint64_t>(&value.data)) {
    if (*u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
      fail("{}: key '{}': value {} does not fit a signed 64-bit integer", source, key, *u);
    return static_cast<int64_t>(*u);
  }
  if (const auto* i = std::get_if<int64_t>(&value.data)) return *i;
  return std::nullopt;
}

std::optional<double> as_double(const Value& value) {
  if (const auto* d = std::get_if<double>(&value.data)) return *d;
  if (const auto* u = std::get_if<uint64_t>(&value.data)) return static_cast<double>(*u);
  if (const auto* i = std::get_if<int64_t>(&value.data)) return static_cast<double>(*i);
  return std::nullopt;
}

// The tensor's bytes once its type is decodable and its element count matches its byte size.
std::span<const uint8_t> dequantizable_bytes(const File& file, const TensorInfo& tensor) {
  if (!can_dequantize(tensor.type))
    fail("{}: tensor '{}' has type {}, which Octet cannot dequantize (supported: F32, F16, BF16, Q4_0, Q4_1, Q5_0, "
         "Q5_1, Q8_0, Q4_K, Q5_K, Q6_K)",
         file.path(), tensor.name, type_name(tensor.type));
  const auto bytes = file.tensor_bytes(tensor);
  const uint64_t block = block_size(tensor.type);
  const uint64_t block_bytes = byte_size(tensor.type, block);
  if (tensor.element_count % block != 0 || bytes.size() % block_bytes != 0 ||
      bytes.size() / block_bytes != tensor.element_count / block)
    fail("{}: tensor '{}': {} elements of {} do not fill its {} bytes ({} elements per {}-byte block)", file.path(),
         tensor.name, tensor.element_count, type_name(tensor.type), bytes.size(), block, block_bytes);
  return bytes;
}

}  // namespace

File File::open(const std::string& path) {
  formats::MappedFile mapped = formats::map_file(path, "a GGUF header");
  File file = parse(mapped.bytes, path);
  file.mapping_ = std::move(mapped.mapping);
  return file;
}

void File::release(const TensorInfo& tensor) const {
  if (mapping_) formats::release_pages(tensor_bytes(tensor));
}

File File::parse(std::span<const uint8_t> bytes, const std::string& source) {
  File file;
  file.bytes_ = bytes;
  file.source_ = source;
  Cursor cursor(bytes, file.source_);
  const std::string& name = file.source_;

  if (bytes.size() < 8) fail("{}: {} bytes is too small for a GGUF header (magic and version)", name, bytes.size());
  const auto magic = cursor.read<uint32_t>("magic");
  if (magic != kMagic)
    fail("{}: not a GGUF file: magic is 0x{:08x}, expected 0x{:08x} (\"GGUF\")", name, magic, kMagic);
  file.version_ = cursor.read<uint32_t>("version");
  if (file.version_ == 1) fail("{}: unsupported GGUF version 1 (only v2 and v3 are read; re-convert the model)", name);
  if (file.version_ == 0x02000000u || file.version_ == 0x03000000u)
    fail("{}: unsupported big-endian GGUF (version field reads 0x{:08x})", name, file.version_);
  if (file.version_ != 2 && file.version_ != 3)
    fail("{}: unsupported GGUF version {} (expected 2 or 3)", name, file.version_);

  const auto tensor_count = cursor.read<uint64_t>("tensor count");
  const auto kv_count = cursor.read<uint64_t>("metadata key-value count");
  // Both tables follow, so each count is bounded by its own minimum size over the bytes left.
  if (kv_count > cursor.remaining() / kMinKeyValueBytes)
    fail("{}: header claims {} metadata entries, but only {} bytes follow ({} at least each)", name, kv_count,
         cursor.remaining(), kMinKeyValueBytes);
  if (tensor_count > cursor.remaining() / kMinTensorInfoBytes)
    fail("{}: header claims {} tensors, but only {} bytes follow ({} at least per tensor info)", name, tensor_count,
         cursor.remaining(), kMinTensorInfoBytes);

  MetadataReader metadata_reader(cursor, name);
  for (uint64_t i = 0; i < kv_count; ++i) {
    std::string key = cursor.read_string(fmt::format("key of metadata entry #{}", i), kMaxKeyBytes);
    const std::string what = fmt::format("key '{}'", key);
    const auto type = cursor.read<uint32_t>(what);
    if (!is_valid_value_type(type)) fail("{}: key '{}': unknown value type {} (expected 0..12)", name, key, type);
    Value value = metadata_reader.read_value(static_cast<ValueType>(type), what, 0);
    if (file.metadata_.count(key)) fail("{}: duplicate metadata key '{}'", name, key);
    file.metadata_.emplace(std::move(key), std::move(value));
  }

  if (const Value* alignment = find_value(file.metadata_, "general.alignment")) {
    const auto* value = std::get_if<uint64_t>(&alignment->data);
    if (!value) wrong_type(name, "general.alignment", "an unsigned integer", *alignment);
    if (*value == 0 || (*value & (*value - 1)) != 0 || *value > (uint64_t{1} << 30))
      fail("{}: key 'general.alignment': expected a power of two up to 2^30, found {}", name, *value);
    file.alignment_ = *value;
  } else {
    file.alignment_ = kDefaultAlignment;
  }

  file.tensors_.reserve(tensor_count);
  for (uint64_t i = 0; i < tensor_count; ++i) {
    TensorInfo tensor;
    tensor.name = cursor.read_string(fmt::format("name of tensor #{}", i), kMaxKeyBytes);
    const std::string what = fmt::format("tensor '{}'", tensor.name);
    const auto n_dims = cursor.read<uint32_t>(what);
    if (n_dims > kMaxDims) fail("{}: tensor '{}': {} dimensions, at most {} expected", name, tensor.name, n_dims, kMaxDims);
    tensor.element_count = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
      tensor.dims.push_back(cursor.read<uint64_t>(what));
      if (__builtin_mul_overflow(tensor.element_count, tensor.dims.back(), &tensor.element_count) ||
          tensor.element_count > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        for (uint32_t rest = d + 1; rest < n_dims; ++rest) tensor.dims.push_back(cursor.read<uint64_t>(what));
        fail("{}: tensor '{}': dims {} overflow a 64-bit element count", name, tensor.name, dims_text(tensor.dims));
      }
    }
    const auto type = cursor.read<uint32_t>(what);
    tensor.type = static_cast<TensorType>(type);
    if (!is_known_type(tensor.type)) fail("{}: tensor '{}': unknown tensor type {}", name, tensor.name, type);
    const uint64_t block = block_size(tensor.type);
    // ggml rows are whole blocks, so the row length (dims[0]) must be a multiple of the block size.
    const uint64_t row_length = tensor.dims.empty() ? 1 : tensor.dims[0];
    if (row_length % block != 0)
      fail("{}: tensor '{}' ({}, dims {}): row length {} is not a multiple of the block size {}", name, tensor.name,
           type_name(tensor.type), dims_text(tensor.dims), row_length, block);
    const uint64_t block_bytes = byte_size(tensor.type, block);
    if (__builtin_mul_overflow(tensor.element_count / block, block_bytes, &tensor.byte_size))
      fail("{}: tensor '{}' ({}, dims {}): byte size overflows 64 bits", name, tensor.name, type_name(tensor.type),
           dims_text(tensor.dims));
    tensor.offset = cursor.read<uint64_t>(what);
    if (file.tensor_index_.count(tensor.name)) fail("{}: duplicate tensor name '{}'", name, tensor.name);
    file.tensor_index_.emplace(tensor.name, file.tensors_.size());
    file.tensors_.push_back(std::move(tensor));
  }

  // The data section starts at the next multiple of the alignment; a file without tensors may end
  // before it.
  const uint64_t data_offset = align_up(cursor.position(), file.alignment_);
  if (data_offset > bytes.size() && !file.tensors_.empty())
    fail("{}: file truncated: the data section starts at offset {}, but the file has {} bytes", name, data_offset,
         bytes.size());
  file.data_offset_ = std::min<uint64_t>(data_offset, bytes.size());
  const uint64_t data_bytes = bytes.size() - file.data_offset_;

  std::vector<const TensorInfo*> by_offset;
  by_offset.reserve(file.tensors_.size());
  for (const TensorInfo& tensor : file.tensors_) {
    if (tensor.offset % file.alignment_ != 0)
      fail("{}: tensor '{}': data offset {} is not a multiple of the alignment {}", name, tensor.name, tensor.offset,
           file.alignment_);
    if (tensor.offset > data_bytes || tensor.byte_size > data_bytes - tensor.offset)
      fail("{}: tensor '{}' ({}, dims {}): {} data bytes at offset {} run past the end of the data section, "
           "which has {} bytes (starting at file offset {}; file size {})",
           name, tensor.name, type_name(tensor.type), dims_text(tensor.dims), tensor.byte_size, tensor.offset,
           data_bytes, file.data_offset_, bytes.size());
    if (tensor.byte_size > 0) by_offset.push_back(&tensor);
  }
  std::sort(by_offset.begin(), by_offset.end(),
            [](const TensorInfo* a, const TensorInfo* b) { return a->offset < b->offset; });
  for (size_t i = 1; i < by_offset.size(); ++i) {
    const TensorInfo& previous = *by_offset[i - 1];
    const TensorInfo& current = *by_offset[i];
    if (previous.offset + previous.byte_size > current.offset)
      fail("{}: tensors '{}' (bytes [{}, {})) and '{}' (bytes [{}, {})) overlap", name, previous.name,
           previous.offset, previous.offset + previous.byte_size, current.name, current.offset,
           current.offset + current.byte_size);
  }
  return file;
}

std::optional<std::string> File::get_string(const std::string& key) const {
  const Value* value = find_value(metadata_, key);
  if (!value) return std::nullopt;
  if (value->type != ValueType::STRING) wrong_type(source_, key, "STRING", *value);
  return std::get<std::string>(value->data);
}

std::optional<uint64_t> File::get_uint(const std::string& key) const {
  const Value* value = find_value(metadata_, key);
  if (!value) return std::nullopt;
  if (const auto* u = std::get_if<uint64_t>(&value->data)) return *u;
  if (const auto* i = std::get_if<int64_t>(&value->data)) {
    if (*i < 0) fail("{}: key '{}': expected a non-negative integer, found {}", source_, key, *i);
    return static_cast<uint64_t>(*i);
  }
  wrong_type(source_, key, "an integer", *value);
}

std::optional<int64_t> File::get_int(const std::string& key) const {
  const Value* value = find_value(metadata_, key);
  if (!value) return std::nullopt;
  if (auto result = as_int64(*value, source_, key)) return result;
  wrong_type(source_, key, "an integer", *value);
}

std::optional<double> File::get_float(const std::string& key) const {
  const Value* value = find_value(metadata_, key);
  if (!value) return std::nullopt;
  if (value->type != ValueType::ARRAY)
    if (auto result = as_double(*value)) return result;
  wrong_type(source_, key, "a number", *value);
}

std::optional<bool> File::get_bool(const std::string& key) const {
  const Value* value = find_value(metadata_, key);
  if (!value) return std::nullopt;
  if (value->type != ValueType::BOOL) wrong_type(source_, key, "BOOL", *value);
  return std::get<bool>(value->data);
}

std::optional<std::vector<std::string>> File::get_string_array(const std::string& key) const {
  const Value* value = find_value(metadata_, key);
  if (!value) return std::nullopt;
  if (value->type != ValueType::ARRAY || value->element_type != ValueType::STRING)
    wrong_type(source_, key, "ARRAY of STRING", *value);
  std::vector<std::string> result;
  const auto& elements = std::get<Array>(value->data);
  result.reserve(elements.size());
  for (const Value& element : elements) result.push_back(std::get<std::string>(element.data));
  return result;
}

std::optional<std::vector<int64_t>> File::get_int_array(const std::string& key) const {
  const Value* value = find_value(metadata_, key);
  if (!value) return std::nullopt;
  if (value->type != ValueType::ARRAY || !is_integer(value->element_type))
    wrong_type(source_, key, "ARRAY of integers", *value);
  std::vector<int64_t> result;
  const auto& elements = std::get<Array>(value->data);
  result.reserve(elements.size());
  for (const Value& element : elements) result.push_back(*as_int64(element, source_, key));
  return result;
}

std::optional<std::vector<double>> File::get_float_array(const std::string& key) const {
  const Value* value = find_value(metadata_, key);
  if (!value) return std::nullopt;
  if (value->type != ValueType::ARRAY || !(is_float(value->element_type) || is_integer(value->element_type)))
    wrong_type(source_, key, "ARRAY of numbers", *value);
  std::vector<double> result;
  const auto& elements = std::get<Array>(value->data);
  result.reserve(elements.size());
  for (const Value& element : elements) result.push_back(*as_double(element));
  return result;
}

const TensorInfo* File::find_tensor(const std::string& name) const {
  const auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

const TensorInfo& File::tensor(const std::string& name) const {
  const TensorInfo* info = find_tensor(name);
  if (!info) fail("{}: no tensor named '{}'", source_, name);
  return *info;
}

std::span<const uint8_t> File::tensor_bytes(const TensorInfo& tensor) const {
  // Re-checked because callers may pass a TensorInfo that did not come from this file.
  const uint64_t data_bytes = bytes_.size() - data_offset_;
  if (tensor.offset > data_bytes || tensor.byte_size > data_bytes - tensor.offset)
    fail("{}: tensor '{}': bytes [{}, +{}) lie outside the data section ({} bytes)", source_, tensor.name,
         tensor.offset, tensor.byte_size, data_bytes);
  return bytes_.subspan(data_offset_ + tensor.offset, tensor.byte_size);
}

void File::dequantize(const TensorInfo& tensor, float* out) const {
  const auto bytes = dequantizable_bytes(*this, tensor);
  dequantize_row(tensor.type, bytes.data(), out, tensor.element_count);
}

std::vector<float> File::dequantize(const TensorInfo& tensor) const {
  // Checked before allocating: the element count of a foreign TensorInfo could be anything.
  const auto bytes = dequantizable_bytes(*this, tensor);
  std::vector<float> result(tensor.element_count);
  dequantize_row(tensor.type, bytes.data(), result.data(), tensor.element_count);
  return result;
}

}  // namespace octet::gguf
