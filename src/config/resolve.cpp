// Resolution: which setting of each key wins. Sources apply in order (defaults.yaml, the composed
// files, the environment, the command line) and the last one to set a key wins. Aliases (the seed's
// llm.use_fp8, quantization.enabled, model_name, …) are one setting with their canonical key: the last
// source that sets any of them decides, and within one source they must agree.
#include "common/error.h"
#include "config/assignment.h"
#include "config/value.h"

#include <fmt/format.h>

#include <filesystem>

namespace octet::config {

namespace {

std::string_view canonical_name(const KeyInfo& key) { return key.alias_of.empty() ? key.name : key.alias_of; }

// The canonical value after `key` is set to `value`.
ConfigValue apply(const KeyInfo& key, const ConfigValue& state, const ConfigValue& value) {
  if (key.alias_kind != AliasKind::fp8_flag) return value;
  if (std::get<bool>(value)) return std::string("fp8");
  return std::get<std::string>(state) == "fp8" ? ConfigValue(std::string("bf16")) : state;
}

// What `key` reads as when the canonical value is `state`.
ConfigValue derive(const KeyInfo& key, const ConfigValue& state) {
  if (key.alias_kind != AliasKind::fp8_flag) return state;
  return std::get<std::string>(state) == "fp8";
}

void resolve_family(const KeyInfo& canonical, const std::vector<const Assignment*>& settings,
                    std::map<std::string_view, ResolvedValue>& out) {
  ConfigValue state = default_value(canonical);
  std::vector<const Assignment*> deciding_group;
  for (size_t begin = 0; begin < settings.size();) {
    size_t end = begin;
    while (end < settings.size() && settings[end]->source == settings[begin]->source) ++end;
    const std::vector<const Assignment*> group(settings.begin() + begin, settings.begin() + end);
    for (const Assignment* a : group) state = apply(*a->key, state, a->value);
    // The last setting applied always agrees with the state, so it is the one to name.
    for (const Assignment* a : group)
      if (derive(*a->key, state) != a->value)
        fail("{}: {} = {} contradicts {} = {} ({}); both set {}, so give them one value", a->context, a->key->name,
             format_value(a->value), group.back()->key->name, format_value(group.back()->value), group.back()->context,
             canonical.name);
    deciding_group = group;
    begin = end;
  }
  const Assignment* decider = deciding_group.empty() ? nullptr : deciding_group.back();
  for (const Assignment* a : deciding_group)
    if (a->key == &canonical) decider = a;

  for (const auto& key : schema()) {
    if (canonical_name(key) != canonical.name) continue;
    ResolvedValue resolved{std::string(key.name), derive(key, state), {Provenance::Source::built_in, "schema"}};
    if (decider) {
      resolved.provenance = {Provenance::Source::derived,
                             fmt::format("{} = {} ({})", decider->key->name, format_value(decider->value),
                                         decider->provenance.describe())};
      for (const Assignment* a : deciding_group)
        if (a->key == &key) resolved.provenance = a->provenance;
    }
    out[key.name] = resolved;
  }
}

std::string find_config_path(const ConfigRequest& request) {
  namespace fs = std::filesystem;
  if (!request.config_path.empty()) {
    if (!fs::is_directory(request.config_path)) fail("--config-path {}: not a directory", request.config_path);
    return request.config_path;
  }
  const auto variable = request.environment.find("OCTET_CONFIG_PATH");
  if (variable != request.environment.end() && !variable->second.empty()) {
    if (!fs::is_directory(variable->second))
      fail("environment variable OCTET_CONFIG_PATH: {} is not a directory", variable->second);
    return variable->second;
  }
  // An installed binary may have no source tree: then only the built-in defaults apply.
  const std::string source_configs = std::string(OCTET_SOURCE_DIR) + "/configs";
  return fs::is_directory(source_configs) ? source_configs : "";
}

}  // namespace

}  // namespace octet::config

namespace octet {

ResolvedConfig resolve_config(const ConfigRequest& request) {
  using namespace config;
  ResolvedConfig resolved;
  resolved.config_path = find_config_path(request);
  int next_source = 0;
  std::vector<Assignment> settings;
  if (!resolved.config_path.empty()) {
    LoadedFiles loaded = load_config_files(resolved.config_path, request.config_name, next_source);
    settings = std::move(loaded.assignments);
    resolved.files = std::move(loaded.files);
  } else if (!request.config_name.empty()) {
    fail("--config-name {}: no config path (set --config-path or OCTET_CONFIG_PATH)", request.config_name);
  }
  for (auto& a : environment_assignments(request.environment, next_source++)) settings.push_back(std::move(a));
  for (auto& a : override_assignments(request.overrides, next_source++)) settings.push_back(std::move(a));

  std::map<std::string_view, std::vector<const Assignment*>> by_family;
  for (const auto& a : settings) by_family[canonical_name(*a.key)].push_back(&a);
  std::map<std::string_view, ResolvedValue> values;
  for (const auto& key : schema())
    if (key.alias_of.empty()) resolve_family(key, by_family[key.name], values);
  for (const auto& key : schema()) resolved.values.push_back(values.at(key.name));
  return resolved;
}

}  // namespace octet
