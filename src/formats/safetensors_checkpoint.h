#pragma once
// The safetensors weights of a Hugging Face model directory: a single model.safetensors, or shards
// listed by model.safetensors.index.json ({"metadata": {...}, "weight_map": {tensor: shard file}}).
// Every shard the index names must exist and hold the tensors the index assigns to it.
#include "formats/safetensors.h"

#include <map>
#include <memory>
#include <string>
#include <vector>

namespace octet::formats {

struct CheckpointTensor {
  const safetensors::File* file = nullptr;
  const safetensors::TensorInfo* info = nullptr;
};

class SafetensorsCheckpoint {
 public:
  static SafetensorsCheckpoint open(const std::string& directory);

  const std::string& directory() const { return directory_; }
  bool has(const std::string& name) const { return tensors_.count(name) != 0; }
  const CheckpointTensor* find(const std::string& name) const;
  // octet::Error naming the directory (and the shard the index assigns it to) when absent.
  const CheckpointTensor& tensor(const std::string& name) const;
  const std::map<std::string, CheckpointTensor>& tensors() const { return tensors_; }
  const std::vector<std::unique_ptr<safetensors::File>>& shards() const { return shards_; }
  uint64_t tensor_bytes() const;  // the data of every tensor (headers not counted)

 private:
  std::string directory_;
  std::vector<std::unique_ptr<safetensors::File>> shards_;
  std::map<std::string, CheckpointTensor> tensors_;
};

}  // namespace octet::formats
