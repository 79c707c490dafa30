#pragma once
// Writing a model's tensors as safetensors shards, one tensor in memory at a time: the header is
// planned from names, dtypes and shapes, then each tensor's bytes are asked for in order and
// appended. More than one shard gives model-0000i-of-0000n.safetensors and the
// model.safetensors.index.json that maps each tensor to its shard (the Hugging Face layout).
#include "formats/safetensors.h"

#include <cstdint>
#include <functional>
#include <map>
#include <span>
#include <string>
#include <vector>

namespace octet::formats {

struct PlannedTensor {
  std::string name;
  safetensors::Dtype dtype = safetensors::Dtype::F32;
  std::vector<int64_t> shape;
  uint64_t byte_size() const;
};

// Fills out (byte_size() bytes) with the tensor's little-endian data.
using TensorFiller = std::function<void(const PlannedTensor& tensor, std::span<uint8_t> out)>;
using WriteProgress = std::function<void(uint64_t bytes_done, uint64_t bytes_total)>;

// The header of one file holding tensors back to back in the given order, padded with spaces to a
// multiple of 8 bytes (as the reference writer pads it).
std::string safetensors_header(const std::vector<PlannedTensor>& tensors, const std::map<std::string, std::string>& metadata);

struct WrittenShards {
  std::vector<std::string> files;  // file names in the directory
  uint64_t tensor_bytes = 0;
};

// Shards hold tensors in order, a new shard starting when the next tensor would pass max_shard_bytes
// (a tensor larger than the limit gets a shard of its own).
WrittenShards write_safetensors_shards(const std::string& directory, const std::vector<PlannedTensor>& tensors,
                                       const TensorFiller& fill, uint64_t max_shard_bytes,
                                       const std::map<std::string, std::string>& metadata,
                                       const WriteProgress& progress = {});

}  // namespace octet::formats
