#pragma once
// `octet config show [--config-name N] [--config-path D] [--no-provenance] [key=value …]`.
#include <CLI/CLI.hpp>

#include <string>
#include <vector>

namespace octet::cli {

// `overrides`: the key=value arguments main took off the whole command line (extract_overrides);
// `config show` also accepts them positionally when main did not.
void register_config_command(CLI::App& app, std::vector<std::string> overrides = {});

}  // namespace octet::cli
