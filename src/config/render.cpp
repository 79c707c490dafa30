// The resolved config as YAML (loadable again as a config file), optionally with a comment per
// value naming where it came from.
#include "common/error.h"
#include "config/schema.h"
#include "config/value.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace octet {

std::string Provenance::describe() const {
  switch (source) {
    case Source::built_in: return "default (built in)";
    case Source::defaults_file: return fmt::format("default ({})", where);
    case Source::file: return where;
    case Source::environment: return "env " + where;
    case Source::command_line: return "command line " + where;
    case Source::derived: return "from " + where;
  }
  return where;
}

const ResolvedValue& ResolvedConfig::at(std::string_view key) const {
  for (const auto& value : values)
    if (value.key == key) return value;
  fail("no config key '{}'", key);
}

std::string render_config(const ResolvedConfig& resolved, bool with_provenance) {
  constexpr size_t kCommentColumn = 48;
  std::string out;
  if (with_provenance) {
    out += "# Resolved configuration. Precedence: defaults < config files < environment < command line.\n";
    out += fmt::format("# config path: {}\n",
                       resolved.config_path.empty() ? "(none: built-in defaults)" : resolved.config_path);
    out += fmt::format("# files: {}\n",
                       resolved.files.empty() ? "(none)" : fmt::format("{}", fmt::join(resolved.files, ", ")));
  }
  std::vector<std::string> open_sections;
  for (const auto& value : resolved.values) {
    std::vector<std::string> parts;
    for (size_t start = 0;;) {
      const size_t dot = value.key.find('.', start);
      parts.push_back(value.key.substr(start, dot - start));
      if (dot == std::string::npos) break;
      start = dot + 1;
    }
    size_t common = 0;
    while (common < open_sections.size() && common + 1 < parts.size() && open_sections[common] == parts[common])
      ++common;
    open_sections.resize(common);
    for (size_t depth = common; depth + 1 < parts.size(); ++depth) {
      out += fmt::format("{:{}}{}:\n", "", 2 * depth, parts[depth]);
      open_sections.push_back(parts[depth]);
    }
    const config::KeyInfo* key = config::find_key(value.key);
    const bool masked = key && key->secret && !std::get<std::string>(value.value).empty();
    std::string line = fmt::format("{:{}}{}: {}", "", 2 * (parts.size() - 1), parts.back(),
                                   config::format_value(masked ? ConfigValue(std::string("***")) : value.value));
    if (with_provenance)
      line += fmt::format("{:{}}# {}", "", line.size() + 2 < kCommentColumn ? kCommentColumn - line.size() : 2,
                          value.provenance.describe());
    out += line + "\n";
  }
  return out;
}

}  // namespace octet
