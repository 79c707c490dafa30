#include "gguf_test_writer.h"

#include <cstring>
#include <fstream>
#include <stdexcept>

#include "common/error.h"

namespace octet::gguf::testing {
namespace {

Value scalar(ValueType type, decltype(Value::data) data) {
  Value value;
  value.type = type;
  value.data = std::move(data);
  return value;
}

// Any numeric alternative as raw bits of the given width, so that tests can store out-of-range
// values (a BOOL holding 2) through the same path as valid ones.
uint64_t raw_bits(const Value& value) {
  if (const auto* u = std::get_if<uint64_t>(&value.data)) return *u;
  if (const auto* i = std::get_if<int64_t>(&value.data)) return static_cast<uint64_t>(*i);
  if (const auto* b = std::get_if<bool>(&value.data)) return *b ? 1 : 0;
  if (const auto* d = std::get_if<double>(&value.data)) {
    if (value.type == ValueType::FLOAT32) {
      const float f = static_cast<float>(*d);
      uint32_t bits;
      std::memcpy(&bits, &f, 4);
      return bits;
    }
    uint64_t bits;
    std::memcpy(&bits, d, 8);
    return bits;
  }
  throw std::logic_error("scalar value expected");
}

void append(std::vector<uint8_t>& out, uint64_t bits, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<uint8_t>(bits >> (8 * i)));
}

void write_value(std::vector<uint8_t>& out, const Value& value) {
  switch (value.type) {
    case ValueType::UINT8: case ValueType::INT8: case ValueType::BOOL: append(out, raw_bits(value), 1); break;
    case ValueType::UINT16: case ValueType::INT16: append(out, raw_bits(value), 2); break;
    case ValueType::UINT32: case ValueType::INT32: case ValueType::FLOAT32: append(out, raw_bits(value), 4); break;
    case ValueType::UINT64: case ValueType::INT64: case ValueType::FLOAT64: append(out, raw_bits(value), 8); break;
    case ValueType::STRING: {
      const auto& text = std::get<std::string>(value.data);
      append(out, text.size(), 8);
      out.insert(out.end(), text.begin(), text.end());
      break;
    }
    case ValueType::ARRAY: {
      const auto& elements = std::get<Array>(value.data);
      append(out, static_cast<uint32_t>(value.element_type), 4);
      append(out, elements.size(), 8);
      for (const Value& element : elements) write_value(out, element);
      break;
    }
  }
}

uint64_t align_up(uint64_t offset, uint64_t alignment) { return (offset + alignment - 1) / alignment * alignment; }

}  // namespace

Value u8(uint8_t v) { return scalar(ValueType::UINT8, uint64_t{v}); }
Value i8(int8_t v) { return scalar(ValueType::INT8, int64_t{v}); }
Value u16(uint16_t v) { return scalar(ValueType::UINT16, uint64_t{v}); }
Value i16(int16_t v) { return scalar(ValueType::INT16, int64_t{v}); }
Value u32(uint32_t v) { return scalar(ValueType::UINT32, uint64_t{v}); }
Value i32(int32_t v) { return scalar(ValueType::INT32, int64_t{v}); }
Value u64(uint64_t v) { return scalar(ValueType::UINT64, v); }
Value i64(int64_t v) { return scalar(ValueType::INT64, v); }
Value f32(float v) { return scalar(ValueType::FLOAT32, double{v}); }
Value f64(double v) { return scalar(ValueType::FLOAT64, v); }
Value boolean(bool v) { return scalar(ValueType::BOOL, v); }
Value str(std::string v) { return scalar(ValueType::STRING, std::move(v)); }
Value array(ValueType element_type, std::vector<Value> elements) {
  Value value = scalar(ValueType::ARRAY, Array(std::move(elements)));
  value.element_type = element_type;
  return value;
}

Bytes& Bytes::u8(uint8_t v) { append(data, v, 1); return *this; }
Bytes& Bytes::u32(uint32_t v) { append(data, v, 4); return *this; }
Bytes& Bytes::u64(uint64_t v) { append(data, v, 8); return *this; }
Bytes& Bytes::f32(float v) { uint32_t bits; std::memcpy(&bits, &v, 4); append(data, bits, 4); return *this; }
Bytes& Bytes::string(const std::string& v) { u64(v.size()); data.insert(data.end(), v.begin(), v.end()); return *this; }
Bytes& Bytes::raw(const std::vector<uint8_t>& v) { data.insert(data.end(), v.begin(), v.end()); return *this; }

void GgufWriter::set_alignment(uint32_t bytes) {
  alignment = bytes;
  add("general.alignment", gguf::testing::u32(bytes));
}

void GgufWriter::add(const std::string& key, Value value) {
  Entry entry{key, static_cast<uint32_t>(value.type), {}};
  write_value(entry.payload, value);
  entries_.push_back(std::move(entry));
}

void GgufWriter::add_raw(const std::string& key, uint32_t value_type, const Bytes& payload) {
  entries_.push_back(Entry{key, value_type, payload.data});
}

void GgufWriter::add_tensor(TestTensor tensor) { tensors_.push_back(std::move(tensor)); }

void GgufWriter::add_tensor(const std::string& name, std::vector<uint64_t> dims, TensorType type,
                            std::vector<uint8_t> data) {
  add_tensor(TestTensor{name, std::move(dims), static_cast<uint32_t>(type), std::move(data), std::nullopt});
}

void GgufWriter::add_f32_tensor(const std::string& name, std::vector<uint64_t> dims, const std::vector<float>& values) {
  std::vector<uint8_t> data(values.size() * 4);
  std::memcpy(data.data(), values.data(), data.size());
  add_tensor(name, std::move(dims), TensorType::F32, std::move(data));
}

std::vector<uint8_t> GgufWriter::build() const {
  std::vector<uint8_t> out;
  append(out, 0x46554747, 4);  // "GGUF"
  append(out, version, 4);
  append(out, tensor_count_override.value_or(tensors_.size()), 8);
  append(out, kv_count_override.value_or(entries_.size()), 8);
  for (const Entry& entry : entries_) {
    append(out, entry.key.size(), 8);
    out.insert(out.end(), entry.key.begin(), entry.key.end());
    append(out, entry.type, 4);
    out.insert(out.end(), entry.payload.begin(), entry.payload.end());
  }
  std::vector<uint64_t> offsets;
  uint64_t data_size = 0;
  for (const TestTensor& tensor : tensors_) {
    data_size = align_up(data_size, alignment);
    offsets.push_back(data_size);
    data_size += tensor.data.size();
  }
  for (size_t i = 0; i < tensors_.size(); ++i) {
    const TestTensor& tensor = tensors_[i];
    append(out, tensor.name.size(), 8);
    out.insert(out.end(), tensor.name.begin(), tensor.name.end());
    append(out, tensor.dims.size(), 4);
    for (uint64_t dim : tensor.dims) append(out, dim, 8);
    append(out, tensor.type, 4);
    append(out, tensor.offset.value_or(offsets[i]), 8);
  }
  if (tensors_.empty()) return out;
  const uint64_t data_start = align_up(out.size(), alignment);
  out.resize(data_start + data_size, 0);
  for (size_t i = 0; i < tensors_.size(); ++i)
    if (!tensors_[i].data.empty())
      std::memcpy(out.data() + data_start + offsets[i], tensors_[i].data.data(), tensors_[i].data.size());
  return out;
}

void GgufWriter::save(const std::string& path) const {
  const auto bytes = build();
  std::ofstream stream(path, std::ios::binary | std::ios::trunc);
  stream.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  if (!stream) throw std::runtime_error("cannot write " + path);
}

std::string parse_error(const std::vector<uint8_t>& bytes, const std::string& source) {
  try {
    File::parse(bytes, source);
  } catch (const Error& error) {
    return error.what();
  }
  return "<no error>";
}

}  // namespace octet::gguf::testing
