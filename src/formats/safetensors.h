#pragma once
// safetensors reader over a memory map. Layout: an 8-byte little-endian header length N, N bytes of
// UTF-8 JSON ({"name": {"dtype", "shape", "data_offsets": [begin, end]}, ..., "__metadata__":
// {string: string}}), then the data section. Offsets are relative to the data section; the tensors
// must cover it exactly, in order, without overlaps or holes (as the reference implementation
// requires). Every check happens in parse(); errors name the file and the tensor.
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace octet::safetensors {

enum class Dtype { BOOL, U8, I8, F8_E4M3, F8_E5M2, F8_E8M0, I16, U16, F16, BF16, I32, U32, F32, F64, I64, U64 };

std::string_view dtype_name(Dtype dtype);                   // "F8_E4M3"
std::optional<Dtype> parse_dtype(std::string_view name);    // nullopt for names this reader does not know
uint64_t dtype_bytes(Dtype dtype);
bool is_floating(Dtype dtype);  // F32, F16, BF16, F64, F8_E4M3, F8_E5M2: convertible by to_float

// The reference implementation's bound; real headers are a few MB at most (70B: ~100 KB per shard).
inline constexpr uint64_t kMaxHeaderBytes = 100'000'000;
inline constexpr size_t kMaxDims = 16;

struct TensorInfo {
  std::string name;
  Dtype dtype = Dtype::F32;
  std::vector<int64_t> shape;  // outermost first (row-major)
  uint64_t data_begin = 0;     // [begin, end) relative to the data section
  uint64_t data_end = 0;
  uint64_t element_count = 0;
  uint64_t byte_size() const { return data_end - data_begin; }
};

class File {
 public:
  static File open(const std::string& path);
  // Parses a buffer that the caller keeps alive; source names it in errors.
  static File parse(std::span<const uint8_t> bytes, const std::string& source);

  const std::string& path() const { return source_; }
  uint64_t header_bytes() const { return header_bytes_; }  // N, the JSON's length
  uint64_t file_bytes() const { return bytes_.size(); }
  const std::vector<TensorInfo>& tensors() const { return tensors_; }  // in data order
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

  const TensorInfo* find(const std::string& name) const;  // nullptr when absent
  const TensorInfo& tensor(const std::string& name) const;  // octet::Error naming file and tensor
  std::span<const uint8_t> bytes(const TensorInfo& tensor) const;

  // Widens a floating-point tensor to float32 (element_count values); octet::Error for other dtypes.
  void to_float(const TensorInfo& tensor, float* out) const;
  std::vector<float> to_float(const TensorInfo& tensor) const;
  // Drops the tensor's mapped pages from memory (files opened with open(); no-op for parse()).
  void release(const TensorInfo& tensor) const;

 private:
  std::shared_ptr<const void> mapping_;
  std::span<const uint8_t> bytes_;
  std::string source_;
  uint64_t header_bytes_ = 0;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, size_t> index_;
  std::map<std::string, std::string> metadata_;
};

// Widens count elements of a floating-point dtype from raw little-endian bytes.
void widen_to_float(Dtype dtype, const uint8_t* data, uint64_t count, float* out);

}  // namespace octet::safetensors
