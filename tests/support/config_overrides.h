#pragma once
// A Config from default key=value settings that a test's own overrides replace (a command line
// takes one value per key), with the given environment.
#include "octet/config.h"

#include <map>
#include <string>
#include <vector>

namespace octet::testing {

inline Config config_from_settings(std::map<std::string, std::string> settings, const std::vector<std::string>& extra,
                                   std::map<std::string, std::string> env) {
  for (const auto& override_ : extra) {
    const auto equals = override_.find('=');
    settings[override_.substr(0, equals)] = override_.substr(equals + 1);
  }
  ConfigRequest request;
  for (const auto& [key, value] : settings) request.overrides.push_back(key + "=" + value);
  request.environment = std::move(env);
  return load_config(request);
}

}  // namespace octet::testing
