#pragma once
// --config-name, --config-path and key=value overrides, for any subcommand that reads the config.
#include "octet/config.h"

#include <CLI/CLI.hpp>

#include <string>
#include <vector>

namespace octet::cli {

struct ConfigFlags {
  std::string config_name;
  std::string config_path;
  std::vector<std::string> overrides;  // main's extract_overrides(), then any given positionally

  void add_to(CLI::App& command);
  ConfigRequest request() const;  // with the process's environment
};

}  // namespace octet::cli
