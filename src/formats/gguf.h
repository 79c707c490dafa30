#pragma once
// GGUF (v2, v3) reader over a memory map. Every count, length and offset is checked against the
// file before use; errors name the file, the key or tensor, what was expected and what was found.
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <variant>
#include <vector>

namespace octet::gguf {

// ggml tensor types (values as in the GGUF spec). All listed types have known block sizes, so
// files holding them parse; only some can be dequantized (can_dequantize).
enum class TensorType : uint32_t {
  F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q5_0 = 6, Q5_1 = 7, Q8_0 = 8, Q8_1 = 9,
  Q2_K = 10, Q3_K = 11, Q4_K = 12, Q5_K = 13, Q6_K = 14, Q8_K = 15,
  IQ2_XXS = 16, IQ2_XS = 17, IQ3_XXS = 18, IQ1_S = 19, IQ4_NL = 20, IQ3_S = 21, IQ2_S = 22,
  IQ4_XS = 23, I8 = 24, I16 = 25, I32 = 26, I64 = 27, F64 = 28, IQ1_M = 29, BF16 = 30,
  TQ1_0 = 34, TQ2_0 = 35, MXFP4 = 39,
};
std::string type_name(TensorType type);  // "Q4_1", or "type 42" for unknown values
bool is_known_type(TensorType type);     // block size and byte size known
bool can_dequantize(TensorType type);    // F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K

// Metadata value types (as in the spec).
enum class ValueType : uint32_t {
  UINT8 = 0, INT8 = 1, UINT16 = 2, INT16 = 3, UINT32 = 4, INT32 = 5, FLOAT32 = 6, BOOL = 7,
  STRING = 8, ARRAY = 9, UINT64 = 10, INT64 = 11, FLOAT64 = 12,
};

struct Value;
using Array = std::vector<Value>;
struct Value {
  ValueType type = ValueType::UINT8;
  ValueType element_type = ValueType::UINT8;  // for arrays
  std::variant<uint64_t, int64_t, double, bool, std::string, Array> data;
};

struct TensorInfo {
  std::string name;
  std::vector<uint64_t> dims;  // GGUF order: dims[0] is the fastest-varying (columns)
  TensorType type = TensorType::F32;
  uint64_t offset = 0;         // relative to the data section
  uint64_t element_count = 0;
  uint64_t byte_size = 0;
};

class File {
 public:
  // Maps the file read-only and parses header, metadata and tensor infos.
  static File open(const std::string& path);
  // Parses a buffer owned by the caller (kept alive by the caller); source names it in errors.
  static File parse(std::span<const uint8_t> bytes, const std::string& source);

  uint32_t version() const { return version_; }
  const std::string& path() const { return source_; }
  uint64_t alignment() const { return alignment_; }

  const std::map<std::string, Value>& metadata() const { return metadata_; }
  bool has(const std::string& key) const { return metadata_.count(key) != 0; }
  // Typed getters: nullopt when absent; octet::Error when present with another type.
  // Integer getters accept any integer type whose value fits.
  std::optional<std::string> get_string(const std::string& key) const;
  std::optional<uint64_t> get_uint(const std::string& key) const;
  std::optional<int64_t> get_int(const std::string& key) const;
  std::optional<double> get_float(const std::string& key) const;
  std::optional<bool> get_bool(const std::string& key) const;
  std::optional<std::vector<std::string>> get_string_array(const std::string& key) const;
  std::optional<std::vector<int64_t>> get_int_array(const std::string& key) const;
  std::optional<std::vector<double>> get_float_array(const std::string& key) const;

  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  const TensorInfo* find_tensor(const std::string& name) const;  // nullptr when absent
  const TensorInfo& tensor(const std::string& name) const;        // octet::Error when absent
  std::span<const uint8_t> tensor_bytes(const TensorInfo& tensor) const;

  // Dequantizes a whole tensor into element_count floats. octet::Error naming the tensor and
  // type for types this reader does not decode.
  void dequantize(const TensorInfo& tensor, float* out) const;
  std::vector<float> dequantize(const TensorInfo& tensor) const;
  // Drops the tensor's mapped pages from memory (files opened with open(); no-op for parse()).
  void release(const TensorInfo& tensor) const;

 private:
  std::shared_ptr<const void> mapping_;  // keeps the mmap alive (empty for parse())
  std::span<const uint8_t> bytes_;
  std::string source_;
  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
  uint64_t data_offset_ = 0;
  std::map<std::string, Value> metadata_;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, size_t> tensor_index_;  // name -> position in tensors_
};

// Dequantizes count elements of one block-quantized row (count a multiple of the type's block size);
// octet::Error for types that cannot be dequantized.
void dequantize_row(TensorType type, const uint8_t* data, float* out, uint64_t count);
// Bytes taken by count elements of type (count a multiple of the block size); octet::Error otherwise.
uint64_t byte_size(TensorType type, uint64_t count);
uint64_t block_size(TensorType type);  // elements per block (1 for F32/F16/BF16); octet::Error if unknown

}  // namespace octet::gguf
