#pragma once
// A small GGUF writer for tests: builds files with any metadata (including values a valid writer
// would refuse: unknown types, BOOL 2, raw payloads) and any tensor infos, so that the reader can be
// checked on both well-formed and damaged files.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "formats/gguf.h"

namespace octet::gguf::testing {

// Metadata value builders.
Value u8(uint8_t v);
Value i8(int8_t v);
Value u16(uint16_t v);
Value i16(int16_t v);
Value u32(uint32_t v);
Value i32(int32_t v);
Value u64(uint64_t v);
Value i64(int64_t v);
Value f32(float v);
Value f64(double v);
Value boolean(bool v);
Value str(std::string v);
Value array(ValueType element_type, std::vector<Value> elements);

// Little-endian byte buffer for raw payloads.
struct Bytes {
  std::vector<uint8_t> data;
  Bytes& u8(uint8_t v);
  Bytes& u32(uint32_t v);
  Bytes& u64(uint64_t v);
  Bytes& f32(float v);
  Bytes& string(const std::string& v);  // u64 length + bytes
  Bytes& raw(const std::vector<uint8_t>& v);
};

struct TestTensor {
  std::string name;
  std::vector<uint64_t> dims;
  uint32_t type = 0;                    // raw, so unknown types can be written
  std::vector<uint8_t> data;            // laid out at the next aligned position of the data section
  std::optional<uint64_t> offset;       // written into the info instead of the laid-out offset
};

class GgufWriter {
 public:
  uint32_t version = 3;
  uint64_t alignment = 32;  // layout only; declare it with set_alignment or a general.alignment key
  std::optional<uint64_t> tensor_count_override;
  std::optional<uint64_t> kv_count_override;

  void set_alignment(uint32_t bytes);  // adds the general.alignment key and lays out with it
  void add(const std::string& key, Value value);  // in order; duplicates are written as given
  void add_raw(const std::string& key, uint32_t value_type, const Bytes& payload);
  void add_tensor(TestTensor tensor);
  void add_tensor(const std::string& name, std::vector<uint64_t> dims, TensorType type, std::vector<uint8_t> data);
  void add_f32_tensor(const std::string& name, std::vector<uint64_t> dims, const std::vector<float>& values);

  std::vector<uint8_t> build() const;
  void save(const std::string& path) const;

 private:
  struct Entry {
    std::string key;
    uint32_t type;
    std::vector<uint8_t> payload;
  };
  std::vector<Entry> entries_;
  std::vector<TestTensor> tensors_;
};

// The message of the octet::Error that parse throws, or "<no error>".
std::string parse_error(const std::vector<uint8_t>& bytes, const std::string& source = "damaged.gguf");

}  // namespace octet::gguf::testing
