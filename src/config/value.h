#pragma once
// Typed values from YAML nodes, YAML text and environment text, checked against the key's type,
// range and allowed values (validation.h). `context` starts every error: "configs/x.yaml:3", "environment variable
// USE_FP8", "command line override 'llm.top_p=2'".
#include "config/schema.h"

#include <yaml-cpp/yaml.h>

#include <string>
#include <string_view>
#include <vector>

namespace octet::config {

ConfigValue parse_node(const KeyInfo& key, const YAML::Node& node, std::string_view context);
ConfigValue parse_yaml_text(const KeyInfo& key, std::string_view text, std::string_view context);
// Environment variables are plain text: strings are taken verbatim, lists may be "a,b" or "[a, b]".
ConfigValue parse_environment_text(const KeyInfo& key, std::string_view text, std::string_view context);

std::string format_value(const ConfigValue& value);  // YAML: quoted where needed, lists in flow style

}  // namespace octet::config
