// GGUF parsing. The file is read through a bounds-checked cursor: every read names what it is
// reading, so a truncated or hostile file fails with "file: <what> at offset N: needs K bytes,
// M left" instead of reading past the end or allocating absurd amounts.
#include "formats/gguf.h"

#include "common/error.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <set>

namespace octet::gguf {
namespace {

constexpr uint32_t kMagic = 0x46554747;  // "GGUF" little-endian
constexpr uint64_t kMaxArrayNesting = 4;

class Cursor {
 public:
  Cursor(std::span<const uint8_t> bytes, const std::string& source) : bytes_(bytes), source_(source) {}

  template <typename T>
  T read(const std::string& what) {
    need(sizeof(T), what);
    T value;
    std::memcpy(&value, bytes_.data() + offset_, sizeof(T));
    offset_ += sizeof(T);
    return value;
  }

  std::string read_string(const std::string& what) {
    const uint64_t length = read<uint64_t>(what + " length");
    need(length, what);
    std::string s(reinterpret_cast<const char*>(bytes_.data() + offset_), length);
    offset_ += length;
    return s;
  }

  // Fails unless count items of at least min_item_bytes each could still fit in the file, which
  // bounds every allocation by the file size.
  void check_count(uint64_t count, uint64_t min_item_bytes, const std::string& what) const {
    const uint64_t left = bytes_.size() - offset_;
    if (min_item_bytes > 0 && count > left / min_item_bytes)
      fail("{}: {} at offset {}: count {} cannot fit in the {} bytes left", source_, what, offset_, count, left);
  }

  void need(uint64_t count, const std::string& what) const {
    const uint64_t left = bytes_.size() - offset_;
    if (count > left) fail("{}: {} at offset {}: needs {} bytes, {} left (truncated file?)", source_, what, offset_, count, left);
  }

  uint64_t offset() const { return offset_; }

 private:
  std::span<const uint8_t> bytes_;
  const std::string& source_;
  uint64_t offset_ = 0;
};

uint64_t scalar_size(ValueType type) {
  switch (type) {
    case ValueType::UINT8: case ValueType::INT8: case ValueType::BOOL: return 1;
    case ValueType::UINT16: case ValueType::INT16: return 2;
    case ValueType::UINT32: case ValueType::INT32: case ValueType::FLOAT32: return 4;
    case ValueType::UINT64: case ValueType::INT64: case ValueType::FLOAT64: return 8;
    case ValueType::STRING: return 8;  // at least its length field
    case ValueType::ARRAY: return 12;  // at least element type + count
  }
  return 0;
}

bool known_value_type(uint32_t raw) { return raw <= static_cast<uint32_t>(ValueType::FLOAT64); }

Value read_value(Cursor& cursor, ValueType type, const std::string& key, const std::string& source, int depth) {
  Value v;
  v.type = type;
  switch (type) {
    case ValueType::UINT8: v.data = static_cast<uint64_t>(cursor.read<uint8_t>(key)); break;
    case ValueType::INT8: v.data = static_cast<int64_t>(cursor.read<int8_t>(key)); break;
    case ValueType::UINT16: v.data = static_cast<uint64_t>(cursor.read<uint16_t>(key)); break;
    case ValueType::INT16: v.data = static_cast<int64_t>(cursor.read<int16_t>(key)); break;
    case ValueType::UINT32: v.data = static_cast<uint64_t>(cursor.read<uint32_t>(key)); break;
    case ValueType::INT32: v.data = static_cast<int64_t>(cursor.read<int32_t>(key)); break;
    case ValueType::UINT64: v.data = cursor.read<uint64_t>(key); break;
    case ValueType::INT64: v.data = cursor.read<int64_t>(key); break;
    case ValueType::FLOAT32: v.data = static_cast<double>(cursor.read<float>(key)); break;
    case ValueType::FLOAT64: v.data = cursor.read<double>(key); break;
    case ValueType::BOOL: {
      uint8_t b = cursor.read<uint8_t>(key);
      if (b > 1) fail("{}: metadata '{}': bool value {} is neither 0 nor 1", source, key, b);
      v.data = b == 1;
      break;
    }
    case ValueType::STRING: v.data = cursor.read_string(key); break;
    case ValueType::ARRAY: {
      if (depth >= static_cast<int>(kMaxArrayNesting)) fail("{}: metadata '{}': arrays nested deeper than {}", source, key, kMaxArrayNesting);
      const uint32_t raw_type = cursor.read<uint32_t>(key + " element type");
      if (!known_value_type(raw_type)) fail("{}: metadata '{}': unknown array element type {}", source, key, raw_type);
      v.element_type = static_cast<ValueType>(raw_type);
      const uint64_t count = cursor.read<uint64_t>(key + " array length");
      cursor.check_count(count, scalar_size(v.element_type), "metadata '" + key + "' array");
      Array items;
      items.reserve(count);
      for (uint64_t i = 0; i < count; ++i) items.push_back(read_value(cursor, v.element_type, key, source, depth + 1));
      v.data = std::move(items);
      break;
    }
  }
  return v;
}

const char* value_type_name(ValueType t) {
  switch (t) {
    case ValueType::UINT8: return "uint8"; case ValueType::INT8: return "int8";
    case ValueType::UINT16: return "uint16"; case ValueType::INT16: return "int16";
    case ValueType::UINT32: return "uint32"; case ValueType::INT32: return "int32";
    case ValueType::FLOAT32: return "float32"; case ValueType::BOOL: return "bool";
    case ValueType::STRING: return "string"; case ValueType::ARRAY: return "array";
    case ValueType::UINT64: return "uint64"; case ValueType::INT64: return "int64";
    case ValueType::FLOAT64: return "float64";
  }
  return "?";
}

bool is_integer(ValueType t) {
  return t == ValueType::UINT8 || t == ValueType::INT8 || t == ValueType::UINT16 || t == ValueType::INT16 ||
         t == ValueType::UINT32 || t == ValueType::INT32 || t == ValueType::UINT64 || t == ValueType::INT64;
}

// Integer metadata as signed 64-bit when it fits; nullopt for a uint64 above INT64_MAX.
std::optional<int64_t> as_int(const Value& v) {
  if (auto* u = std::get_if<uint64_t>(&v.data)) {
    if (*u > static_cast<uint64_t>(INT64_MAX)) return std::nullopt;
    return static_cast<int64_t>(*u);
  }
  return std::get<int64_t>(v.data);
}

}  // namespace

std::string type_name(TensorType type) {
  switch (type) {
    case TensorType::F32: return "F32"; case TensorType::F16: return "F16"; case TensorType::BF16: return "BF16";
    case TensorType::Q4_0: return "Q4_0"; case TensorType::Q4_1: return "Q4_1";
    case TensorType::Q5_0: return "Q5_0"; case TensorType::Q5_1: return "Q5_1";
    case TensorType::Q8_0: return "Q8_0"; case TensorType::Q8_1: return "Q8_1";
    case TensorType::Q2_K: return "Q2_K"; case TensorType::Q3_K: return "Q3_K";
    case TensorType::Q4_K: return "Q4_K"; case TensorType::Q5_K: return "Q5_K";
    case TensorType::Q6_K: return "Q6_K"; case TensorType::Q8_K: return "Q8_K";
  }
  return "type " + std::to_string(static_cast<uint32_t>(type));
}

File File::open(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail("{}: cannot open: {}", path, std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    fail("{}: cannot stat: {}", path, std::strerror(errno));
  }
  const auto size = static_cast<size_t>(st.st_size);
  if (size == 0) {
    ::close(fd);
    fail("{}: empty file, expected a GGUF header", path);
  }
  void* address = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (address == MAP_FAILED) fail("{}: cannot mmap {} bytes: {}", path, size, std::strerror(errno));
  std::shared_ptr<const void> mapping(address, [size](const void* p) { ::munmap(const_cast<void*>(p), size); });
  File file = parse(std::span<const uint8_t>(static_cast<const uint8_t*>(address), size), path);
  file.mapping_ = std::move(mapping);
  return file;
}

File File::parse(std::span<const uint8_t> bytes, const std::string& source) {
  File file;
  file.bytes_ = bytes;
  file.source_ = source;
  Cursor cursor(bytes, file.source_);
  const uint32_t magic = cursor.read<uint32_t>("magic");
  if (magic != kMagic) fail("{}: not a GGUF file (magic 0x{:08x}, expected 0x{:08x} \"GGUF\")", source, magic, kMagic);
  file.version_ = cursor.read<uint32_t>("version");
  if (file.version_ != 2 && file.version_ != 3)
    fail("{}: unsupported GGUF version {} (this reader handles versions 2 and 3)", source, file.version_);
  const uint64_t tensor_count = cursor.read<uint64_t>("tensor count");
  const uint64_t kv_count = cursor.read<uint64_t>("metadata count");
  cursor.check_count(kv_count, 12, "metadata");       // key length + value type, at least
  cursor.check_count(tensor_count, 24, "tensor infos");  // name length + n_dims + type + offset

  for (uint64_t i = 0; i < kv_count; ++i) {
    std::string key = cursor.read_string(fmt::format("metadata key #{}", i));
    const uint32_t raw_type = cursor.read<uint32_t>("metadata '" + key + "' type");
    if (!known_value_type(raw_type)) fail("{}: metadata '{}': unknown value type {}", source, key, raw_type);
    Value value = read_value(cursor, static_cast<ValueType>(raw_type), key, source, 0);
    if (!file.metadata_.emplace(key, std::move(value)).second) fail("{}: metadata key '{}' appears twice", source, key);
  }
  if (auto alignment = file.get_uint("general.alignment")) {
    if (*alignment == 0 || (*alignment & (*alignment - 1)) != 0 || *alignment > 1u << 20)
      fail("{}: general.alignment is {}, expected a power of two up to 1 MiB", source, *alignment);
    file.alignment_ = *alignment;
  }

  std::set<std::string> names;
  for (uint64_t i = 0; i < tensor_count; ++i) {
    TensorInfo t;
    t.name = cursor.read_string(fmt::format("tensor #{} name", i));
    if (!names.insert(t.name).second) fail("{}: tensor '{}' appears twice", source, t.name);
    const uint32_t n_dims = cursor.read<uint32_t>("tensor '" + t.name + "' dimension count");
    if (n_dims == 0 || n_dims > 4) fail("{}: tensor '{}' has {} dimensions, expected 1 to 4", source, t.name, n_dims);
    t.element_count = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
      const uint64_t dim = cursor.read<uint64_t>("tensor '" + t.name + "' dimension");
      if (dim == 0 || dim > (1ull << 40)) fail("{}: tensor '{}' dimension {} is {}, expected 1 to 2^40", source, t.name, d, dim);
      if (t.element_count > (1ull << 50) / dim) fail("{}: tensor '{}' has too many elements (overflow)", source, t.name);
      t.element_count *= dim;
      t.dims.push_back(dim);
    }
    t.type = static_cast<TensorType>(cursor.read<uint32_t>("tensor '" + t.name + "' type"));
    t.offset = cursor.read<uint64_t>("tensor '" + t.name + "' offset");
    const uint64_t block = block_size(t.type);
    if (block == 0) {
      t.byte_size = 0;  // unknown type: reported when someone reads the tensor
    } else {
      if (t.dims[0] % block != 0)
        fail("{}: tensor '{}' row length {} is not a multiple of the {} block size {}", source, t.name, t.dims[0],
             type_name(t.type), block);
      t.byte_size = byte_size(t.type, t.element_count);
    }
    if (t.offset % file.alignment_ != 0)
      fail("{}: tensor '{}' offset {} is not a multiple of the alignment {}", source, t.name, t.offset, file.alignment_);
    file.tensors_.push_back(std::move(t));
  }

  file.data_offset_ = (cursor.offset() + file.alignment_ - 1) / file.alignment_ * file.alignment_;
  const uint64_t data_bytes = bytes.size() >= file.data_offset_ ? bytes.size() - file.data_offset_ : 0;
  if (tensor_count > 0 && bytes.size() < file.data_offset_)
    fail("{}: data section starts at {} but the file has {} bytes", source, file.data_offset_, bytes.size());
  // Ranges inside the data section and not overlapping one another.
  std::vector<std::pair<uint64_t, const TensorInfo*>> ranges;
  for (const auto& t : file.tensors_) {
    if (t.offset > data_bytes || t.byte_size > data_bytes - t.offset)
      fail("{}: tensor '{}' bytes [{}, {}) of the data section lie past its end ({} bytes; truncated file?)", source,
           t.name, t.offset, t.offset + t.byte_size, data_bytes);
    ranges.emplace_back(t.offset, &t);
  }
  std::sort(ranges.begin(), ranges.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  for (size_t i = 1; i < ranges.size(); ++i) {
    const TensorInfo& prev = *ranges[i - 1].second;
    if (prev.offset + prev.byte_size > ranges[i].first)
      fail("{}: tensors '{}' and '{}' overlap in the data section", source, prev.name, ranges[i].second->name);
  }
  return file;
}

namespace {
const Value* find_typed(const std::map<std::string, Value>& metadata, const std::string& key) {
  auto it = metadata.find(key);
  return it == metadata.end() ? nullptr : &it->second;
}
}  // namespace

std::optional<std::string> File::get_string(const std::string& key) const {
  const Value* v = find_typed(metadata_, key);
  if (!v) return std::nullopt;
  if (v->type != ValueType::STRING) fail("{}: metadata '{}' is {}, expected string", source_, key, value_type_name(v->type));
  return std::get<std::string>(v->data);
}

std::optional<uint64_t> File::get_uint(const std::string& key) const {
  const Value* v = find_typed(metadata_, key);
  if (!v) return std::nullopt;
  if (!is_integer(v->type)) fail("{}: metadata '{}' is {}, expected an integer", source_, key, value_type_name(v->type));
  if (auto* u = std::get_if<uint64_t>(&v->data)) return *u;
  const int64_t s = std::get<int64_t>(v->data);
  if (s < 0) fail("{}: metadata '{}' is {}, expected a non-negative integer", source_, key, s);
  return static_cast<uint64_t>(s);
}

std::optional<int64_t> File::get_int(const std::string& key) const {
  const Value* v = find_typed(metadata_, key);
  if (!v) return std::nullopt;
  if (!is_integer(v->type)) fail("{}: metadata '{}' is {}, expected an integer", source_, key, value_type_name(v->type));
  auto value = as_int(*v);
  if (!value) fail("{}: metadata '{}' does not fit a signed 64-bit integer", source_, key);
  return value;
}

std::optional<double> File::get_float(const std::string& key) const {
  const Value* v = find_typed(metadata_, key);
  if (!v) return std::nullopt;
  if (v->type == ValueType::FLOAT32 || v->type == ValueType::FLOAT64) return std::get<double>(v->data);
  if (is_integer(v->type)) return static_cast<double>(*get_int(key));
  fail("{}: metadata '{}' is {}, expected a number", source_, key, value_type_name(v->type));
}

std::optional<bool> File::get_bool(const std::string& key) const {
  const Value* v = find_typed(metadata_, key);
  if (!v) return std::nullopt;
  if (v->type != ValueType::BOOL) fail("{}: metadata '{}' is {}, expected bool", source_, key, value_type_name(v->type));
  return std::get<bool>(v->data);
}

std::optional<std::vector<std::string>> File::get_string_array(const std::string& key) const {
  const Value* v = find_typed(metadata_, key);
  if (!v) return std::nullopt;
  if (v->type != ValueType::ARRAY || v->element_type != ValueType::STRING)
    fail("{}: metadata '{}' is {}, expected an array of strings", source_, key, value_type_name(v->type));
  std::vector<std::string> out;
  for (const auto& item : std::get<Array>(v->data)) out.push_back(std::get<std::string>(item.data));
  return out;
}

std::optional<std::vector<int64_t>> File::get_int_array(const std::string& key) const {
  const Value* v = find_typed(metadata_, key);
  if (!v) return std::nullopt;
  if (v->type != ValueType::ARRAY || !is_integer(v->element_type))
    fail("{}: metadata '{}' is {}, expected an array of integers", source_, key, value_type_name(v->type));
  std::vector<int64_t> out;
  for (const auto& item : std::get<Array>(v->data)) {
    auto value = as_int(item);
    if (!value) fail("{}: metadata '{}' holds an integer that does not fit 64 bits signed", source_, key);
    out.push_back(*value);
  }
  return out;
}

std::optional<std::vector<double>> File::get_float_array(const std::string& key) const {
  const Value* v = find_typed(metadata_, key);
  if (!v) return std::nullopt;
  if (v->type != ValueType::ARRAY ||
      !(v->element_type == ValueType::FLOAT32 || v->element_type == ValueType::FLOAT64 || is_integer(v->element_type)))
    fail("{}: metadata '{}' is {}, expected an array of numbers", source_, key, value_type_name(v->type));
  std::vector<double> out;
  for (const auto& item : std::get<Array>(v->data)) {
    if (auto* d = std::get_if<double>(&item.data)) out.push_back(*d);
    else out.push_back(static_cast<double>(*as_int(item)));
  }
  return out;
}

const TensorInfo* File::find_tensor(const std::string& name) const {
  for (const auto& t : tensors_)
    if (t.name == name) return &t;
  return nullptr;
}

const TensorInfo& File::tensor(const std::string& name) const {
  const TensorInfo* t = find_tensor(name);
  if (!t) fail("{}: tensor '{}' not found", source_, name);
  return *t;
}

std::span<const uint8_t> File::tensor_bytes(const TensorInfo& t) const {
  if (block_size(t.type) == 0) fail("{}: tensor '{}' has type {}, which this reader cannot decode", source_, t.name, type_name(t.type));
  return bytes_.subspan(data_offset_ + t.offset, t.byte_size);
}

void File::dequantize(const TensorInfo& t, float* out) const {
  auto bytes = tensor_bytes(t);
  static const std::set<TensorType> decodable = {TensorType::F32,  TensorType::F16,  TensorType::BF16, TensorType::Q4_0,
                                                 TensorType::Q4_1, TensorType::Q5_0, TensorType::Q5_1, TensorType::Q8_0,
                                                 TensorType::Q8_1, TensorType::Q4_K, TensorType::Q5_K, TensorType::Q6_K};
  if (!decodable.count(t.type))
    fail("{}: tensor '{}' has type {}, which this reader cannot decode (supported: F32, F16, BF16, Q4_0, Q4_1, Q5_0, "
         "Q5_1, Q8_0, Q8_1, Q4_K, Q5_K, Q6_K)", source_, t.name, type_name(t.type));
  dequantize_row(t.type, bytes.data(), out, t.element_count);
}

std::vector<float> File::dequantize(const TensorInfo& t) const {
  std::vector<float> out(t.element_count);
  dequantize(t, out.data());
  return out;
}

}  // namespace octet::gguf
