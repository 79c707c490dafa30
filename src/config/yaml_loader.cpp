// Config files and their Hydra-style composition: a file's `defaults:` list names other config files
// (relative to the config path) that apply before it, in order; `_self_` in the list places the
// file's own settings elsewhere than last. Line numbers come from yaml-cpp's marks.
#include "common/error.h"
#include "config/assignment.h"
#include "config/validation.h"
#include "config/value.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <filesystem>
#include <set>

namespace octet::config {

namespace fs = std::filesystem;

namespace {

class Composer {
 public:
  Composer(const std::string& config_path, int& next_source) : root_(config_path), next_source_(next_source) {}

  void compose(const std::string& name, const std::string& referrer, bool is_defaults_file) {
    const fs::path path = resolve(name, referrer);
    const std::string relative = fs::relative(path, root_).generic_string();
    if (std::find(chain_.begin(), chain_.end(), relative) != chain_.end())
      fail("{}: defaults lists form a cycle: {} -> {}", referrer, fmt::join(chain_, " -> "), relative);
    const YAML::Node root = parse(path);
    if (!root.IsNull() && !root.IsMap()) fail("{}: expected a mapping of settings at the top level", path.string());

    chain_.push_back(relative);
    std::vector<std::pair<std::string, std::string>> before, after;  // (name, context)
    bool self_seen = false;
    if (root.IsMap() && root["defaults"]) {
      const YAML::Node list = root["defaults"];
      const std::string list_context = at(path, list);
      if (!list.IsSequence()) fail("{}: defaults: expected a list of config names", list_context);
      for (const auto& entry : list) {
        if (!entry.IsScalar())
          fail("{}: defaults: entries are config names (config groups such as '- db: mysql' are not supported)",
               at(path, entry));
        if (entry.Scalar() == "_self_")
          self_seen = true;
        else
          (self_seen ? after : before).emplace_back(entry.Scalar(), at(path, entry));
      }
    }
    for (const auto& [entry, context] : before) compose(entry, context, false);
    if (root.IsMap()) {
      const int source = next_source_++;
      std::set<std::string> seen;
      flatten(root, "", path, relative, is_defaults_file, source, seen);
    }
    loaded_.files.push_back(relative);
    for (const auto& [entry, context] : after) compose(entry, context, false);
    chain_.pop_back();
  }

  LoadedFiles take() { return std::move(loaded_); }

 private:
  static std::string at(const fs::path& path, const YAML::Node& node) {
    return fmt::format("{}:{}", path.string(), node.Mark().line + 1);
  }

  fs::path resolve(const std::string& name, const std::string& referrer) const {
    const bool has_extension = name.ends_with(".yaml") || name.ends_with(".yml");
    const fs::path path = root_ / (has_extension ? name : name + ".yaml");
    if (fs::is_regular_file(path)) return path;
    std::vector<std::string> available;
    for (const auto& entry : fs::recursive_directory_iterator(root_)) {
      const std::string relative = fs::relative(entry.path(), root_).generic_string();
      if (entry.is_regular_file() && relative.ends_with(".yaml"))
        available.push_back(relative.substr(0, relative.size() - 5));
    }
    std::sort(available.begin(), available.end());
    const std::string suggestion = did_you_mean(has_extension ? name.substr(0, name.rfind('.')) : name, available);
    fail("{}: config '{}' not found in {} (available: {}{})", referrer, name, root_.string(),
         fmt::join(available, ", "), suggestion.empty() ? "" : fmt::format("; did you mean '{}'?", suggestion));
  }

  static YAML::Node parse(const fs::path& path) {
    try {
      return YAML::LoadFile(path.string());
    } catch (const YAML::BadFile&) {
      fail("{}: cannot read the file", path.string());
    } catch (const YAML::ParserException& e) {
      fail("{}:{}:{}: YAML syntax error: {}", path.string(), e.mark.line + 1, e.mark.column + 1, e.msg);
    }
  }

  void flatten(const YAML::Node& map, const std::string& prefix, const fs::path& path, const std::string& relative,
               bool is_defaults_file, int source, std::set<std::string>& seen) {
    for (const auto& item : map) {
      const std::string context = at(path, item.first);
      if (!item.first.IsScalar()) fail("{}: keys are names, not lists or mappings", context);
      const std::string name = prefix.empty() ? item.first.Scalar() : prefix + "." + item.first.Scalar();
      if (name == "defaults") continue;
      if (!seen.insert(name).second) fail("{}: duplicate key '{}'", context, name);
      if (const KeyInfo* key = find_key(name)) {
        const int line = item.first.Mark().line + 1;
        Provenance provenance{is_defaults_file ? Provenance::Source::defaults_file : Provenance::Source::file,
                              fmt::format("{}:{}", relative, line)};
        loaded_.assignments.push_back({key, parse_node(*key, item.second, context), provenance, context, source});
      } else if (is_section(name)) {
        if (item.second.IsMap())
          flatten(item.second, name, path, relative, is_defaults_file, source, seen);
        else if (!item.second.IsNull())
          fail("{}: '{}' is a section: expected a mapping of its keys ({})", context, name,
               fmt::join(keys_in_section(name), ", "));
      } else {
        throw Error(unknown_key_message(context, name));
      }
    }
  }

  fs::path root_;
  int& next_source_;
  std::vector<std::string> chain_;
  LoadedFiles loaded_;
};

}  // namespace

LoadedFiles load_config_files(const std::string& config_path, const std::string& config_name, int& next_source) {
  Composer composer(config_path, next_source);
  const bool defaults_present = fs::is_regular_file(fs::path(config_path) / "defaults.yaml");
  if (defaults_present) composer.compose("defaults", "defaults", true);
  const bool names_defaults = config_name == "defaults" || config_name == "defaults.yaml";
  if (!config_name.empty() && !(names_defaults && defaults_present))
    composer.compose(config_name, "--config-name", false);
  return composer.take();
}

}  // namespace octet::config
