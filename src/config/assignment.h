#pragma once
// One setting of one key by one source (a file, the environment, the command line), before
// resolution decides which setting wins.
#include "config/schema.h"

#include <string>
#include <vector>

namespace octet::config {

struct Assignment {
  const KeyInfo* key = nullptr;
  ConfigValue value;
  Provenance provenance;
  std::string context;  // how errors name it: "/abs/configs/x.yaml:3", "environment variable USE_FP8", …
  int source = 0;       // settings of one file, of the environment or of the command line share a source
};

// Files, in application order: defaults.yaml, then each defaults list (depth first), then the file.
struct LoadedFiles {
  std::vector<Assignment> assignments;
  std::vector<std::string> files;  // relative to the config path
};

// config_path must exist. Loads defaults.yaml when present, then config_name (unless empty).
LoadedFiles load_config_files(const std::string& config_path, const std::string& config_name, int& next_source);

// Seed variables (USE_FP8, LLM_MODEL, …) and OCTET_<SECTION>_<KEY>; all of them are one source.
std::vector<Assignment> environment_assignments(const std::map<std::string, std::string>& environment, int source);
std::string api_key_from(const std::map<std::string, std::string>& environment);

// "key=value" overrides; all of them are one source.
std::vector<Assignment> override_assignments(const std::vector<std::string>& overrides, int source);

}  // namespace octet::config
