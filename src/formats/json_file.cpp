#include "formats/json_file.h"

#include <filesystem>
#include <fstream>

#include "common/error.h"

namespace octet::formats {

nlohmann::json read_json_file(const std::string& path) {
  std::error_code error;
  const auto size = std::filesystem::file_size(path, error);
  if (error) fail("{}: cannot read: {}", path, error.message());
  if (size > kMaxJsonFileBytes) fail("{}: {} bytes is above the limit of {} for a JSON file", path, size, kMaxJsonFileBytes);
  std::ifstream in(path);
  if (!in) fail("{}: cannot open", path);
  try {
    return nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    fail("{}: not valid JSON: {}", path, e.what());
  }
}

}  // namespace octet::formats
