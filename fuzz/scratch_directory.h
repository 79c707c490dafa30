#pragma once
// A temporary folder of the fuzzing process (mkdtemp under the system's temp path), for targets
// whose inputs become files.
#include <cstdlib>
#include <filesystem>
#include <string>

namespace octet::fuzz {

inline std::filesystem::path scratch_directory(const std::string& prefix) {
  std::string pattern = (std::filesystem::temp_directory_path() / (prefix + "-XXXXXX")).string();
  if (!mkdtemp(pattern.data())) std::abort();
  return std::filesystem::path(pattern);
}

// Removes what the previous input left.
inline void empty_directory(const std::filesystem::path& dir) {
  for (const auto& entry : std::filesystem::directory_iterator(dir)) std::filesystem::remove_all(entry.path());
}

}  // namespace octet::fuzz
