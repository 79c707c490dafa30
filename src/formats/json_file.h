#pragma once
// A JSON file read whole (config.json, index and tokenizer files), bounded in size; errors name the file.
#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>

namespace octet::formats {

inline constexpr uint64_t kMaxJsonFileBytes = uint64_t{256} << 20;  // tokenizer.json of a 256k vocabulary: ~20 MB

nlohmann::json read_json_file(const std::string& path);

}  // namespace octet::formats
