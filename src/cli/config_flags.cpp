#include "cli/config_flags.h"

namespace octet::cli {

void ConfigFlags::add_to(CLI::App& command) {
  command.add_option("--config-name", config_name,
                     "Config file in the config path (.yaml optional); default: defaults.yaml alone");
  command.add_option("--config-path", config_path,
                     "Folder of config files; default: $OCTET_CONFIG_PATH, else the source tree's configs/");
}

ConfigRequest ConfigFlags::request() const {
  ConfigRequest request;
  request.config_name = config_name;
  request.config_path = config_path;
  request.overrides = overrides;
  return request;
}

}  // namespace octet::cli
