#include "formats/safetensors_checkpoint.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>
#include <set>

#include "common/error.h"
#include "formats/json_file.h"

namespace octet::formats {
namespace {

namespace fs = std::filesystem;

constexpr const char* kSingleFile = "model.safetensors";
constexpr const char* kIndexFile = "model.safetensors.index.json";

// A shard is named by a plain file name in the model directory (never a path out of it).
void check_shard_name(const std::string& shard, const std::string& tensor, const fs::path& index) {
  if (shard.empty() || shard.find('/') != std::string::npos || shard.find('\\') != std::string::npos || shard == "." ||
      shard == "..")
    fail("{}: weight_map['{}'] is '{}'; expected a file name in the model directory", index.string(), tensor, shard);
}

}  // namespace

SafetensorsCheckpoint SafetensorsCheckpoint::open(const std::string& directory) {
  SafetensorsCheckpoint checkpoint;
  checkpoint.directory_ = directory;
  const fs::path dir(directory);
  const fs::path index_path = dir / kIndexFile;
  if (!fs::exists(index_path)) {
    const fs::path single = dir / kSingleFile;
    if (!fs::exists(single))
      fail("{}: no {} and no {} (a Hugging Face model directory holds one of them)", directory, kSingleFile, kIndexFile);
    auto& file = checkpoint.shards_.emplace_back(std::make_unique<safetensors::File>(safetensors::File::open(single.string())));
    for (const auto& info : file->tensors()) checkpoint.tensors_[info.name] = {file.get(), &info};
    return checkpoint;
  }

  const nlohmann::json index = read_json_file(index_path.string());
  const auto map = index.is_object() ? index.find("weight_map") : index.end();
  if (map == index.end() || !map->is_object())
    fail("{}: expected an object with a 'weight_map' object", index_path.string());
  std::map<std::string, std::string> shard_of;  // tensor -> shard file
  std::set<std::string> shard_names;
  for (const auto& [tensor, shard] : map->items()) {
    if (!shard.is_string()) fail("{}: weight_map['{}'] must be a file name string", index_path.string(), tensor);
    const std::string name = shard.get<std::string>();
    check_shard_name(name, tensor, index_path);
    shard_of[tensor] = name;
    shard_names.insert(name);
  }
  std::map<std::string, const safetensors::File*> opened;
  for (const std::string& name : shard_names) {
    const fs::path path = dir / name;
    if (!fs::exists(path)) {
      const auto first = std::find_if(shard_of.begin(), shard_of.end(), [&](const auto& e) { return e.second == name; });
      fail("{}: shard '{}' named by {} (for tensor '{}' and others) is missing", directory, name, kIndexFile, first->first);
    }
    auto& file = checkpoint.shards_.emplace_back(std::make_unique<safetensors::File>(safetensors::File::open(path.string())));
    opened[name] = file.get();
  }
  for (const auto& [tensor, shard] : shard_of) {
    const safetensors::File* file = opened.at(shard);
    const safetensors::TensorInfo* info = file->find(tensor);
    if (!info) fail("{}: {} puts tensor '{}' in shard '{}', which does not hold it", directory, kIndexFile, tensor, shard);
    checkpoint.tensors_[tensor] = {file, info};
  }
  // A tensor in a shard but absent from the index is still a tensor of the model, unless two shards hold it.
  for (const auto& file : checkpoint.shards_)
    for (const auto& info : file->tensors()) {
      const auto [it, inserted] = checkpoint.tensors_.try_emplace(info.name, CheckpointTensor{file.get(), &info});
      if (!inserted && it->second.file != file.get())
        fail("{}: tensor '{}' is in both {} and {}", directory, info.name, it->second.file->path(), file->path());
    }
  return checkpoint;
}

const CheckpointTensor* SafetensorsCheckpoint::find(const std::string& name) const {
  const auto it = tensors_.find(name);
  return it == tensors_.end() ? nullptr : &it->second;
}

const CheckpointTensor& SafetensorsCheckpoint::tensor(const std::string& name) const {
  if (const CheckpointTensor* t = find(name)) return *t;
  fail("{}: tensor '{}' is missing from the checkpoint", directory_, name);
}

uint64_t SafetensorsCheckpoint::tensor_bytes() const {
  uint64_t total = 0;
  for (const auto& [name, tensor] : tensors_) total += tensor.info->byte_size();
  return total;
}

}  // namespace octet::formats
