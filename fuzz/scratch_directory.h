#pragma once
// A temporary folder of the fuzzing process (mkdtemp under the system's temp path), for targets
// whose inputs become files, and the writing of those files.
#include <cstdlib>
#include <cstddef>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

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

// Writes parts[i] as dir/names[i] for each non-empty part (an empty part: the file is absent).
inline void write_parts(const std::filesystem::path& dir, const std::vector<std::string_view>& parts,
                        const std::vector<const char*>& names) {
  for (size_t i = 0; i < parts.size() && i < names.size(); ++i)
    if (!parts[i].empty())
      std::ofstream(dir / names[i], std::ios::binary).write(parts[i].data(), static_cast<std::streamsize>(parts[i].size()));
}

}  // namespace octet::fuzz
