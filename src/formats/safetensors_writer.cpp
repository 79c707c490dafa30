#include "formats/safetensors_writer.h"

#include <nlohmann/json.hpp>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>

#include "common/error.h"

namespace octet::formats {
namespace {

namespace fs = std::filesystem;

struct FileCloser {
  void operator()(std::FILE* f) const { std::fclose(f); }
};

void write_all(std::FILE* file, const void* data, size_t bytes, const std::string& path) {
  if (bytes > 0 && std::fwrite(data, 1, bytes, file) != bytes) fail("{}: write failed (disk full?)", path);
}

}  // namespace

uint64_t PlannedTensor::byte_size() const {
  uint64_t count = 1;
  for (int64_t d : shape) count *= static_cast<uint64_t>(d);
  return count * safetensors::dtype_bytes(dtype);
}

std::string safetensors_header(const std::vector<PlannedTensor>& tensors, const std::map<std::string, std::string>& metadata) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (const auto& t : tensors) {
    const uint64_t end = offset + t.byte_size();
    header[t.name] = {{"dtype", std::string(safetensors::dtype_name(t.dtype))}, {"shape", t.shape}, {"data_offsets", {offset, end}}};
    offset = end;
  }
  std::string text = header.dump();
  while (text.size() % 8 != 0) text += ' ';
  return text;
}

WrittenShards write_safetensors_shards(const std::string& directory, const std::vector<PlannedTensor>& tensors,
                                       const TensorFiller& fill, uint64_t max_shard_bytes,
                                       const std::map<std::string, std::string>& metadata,
                                       const WriteProgress& progress) {
  std::vector<std::vector<const PlannedTensor*>> shards;
  uint64_t shard_bytes = 0, total = 0;
  for (const auto& t : tensors) {
    const uint64_t bytes = t.byte_size();
    if (shards.empty() || (shard_bytes > 0 && shard_bytes + bytes > max_shard_bytes)) {
      shards.emplace_back();
      shard_bytes = 0;
    }
    shards.back().push_back(&t);
    shard_bytes += bytes;
    total += bytes;
  }
  if (shards.empty()) shards.emplace_back();

  WrittenShards written;
  nlohmann::ordered_json weight_map = nlohmann::ordered_json::object();
  uint64_t done = 0;
  std::vector<uint8_t> buffer;
  for (size_t s = 0; s < shards.size(); ++s) {
    const std::string name = shards.size() == 1 ? "model.safetensors"
                                                : fmt::format("model-{:05d}-of-{:05d}.safetensors", s + 1, shards.size());
    const std::string path = (fs::path(directory) / name).string();
    std::vector<PlannedTensor> in_shard;
    for (const PlannedTensor* t : shards[s]) in_shard.push_back(*t);
    const std::string header = safetensors_header(in_shard, metadata);
    std::unique_ptr<std::FILE, FileCloser> file(std::fopen(path.c_str(), "wb"));
    if (!file) fail("{}: cannot create", path);
    uint8_t length[8];
    for (int i = 0; i < 8; ++i) length[i] = static_cast<uint8_t>(static_cast<uint64_t>(header.size()) >> (8 * i));
    write_all(file.get(), length, 8, path);
    write_all(file.get(), header.data(), header.size(), path);
    for (const PlannedTensor& t : in_shard) {
      buffer.assign(t.byte_size(), 0);
      fill(t, buffer);
      write_all(file.get(), buffer.data(), buffer.size(), path);
      weight_map[t.name] = name;
      done += buffer.size();
      if (progress) progress(done, total);
    }
    if (std::fclose(file.release()) != 0) fail("{}: write failed on close", path);
    written.files.push_back(name);
  }
  written.tensor_bytes = total;
  if (shards.size() > 1) {
    const fs::path index = fs::path(directory) / "model.safetensors.index.json";
    std::ofstream out(index);
    out << nlohmann::ordered_json{{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}}.dump(2) << "\n";
    if (!out) fail("{}: write failed", index.string());
  }
  return written;
}

}  // namespace octet::formats
