// The key table of docs/CONFIG.md, generated from the schema so that the doc cannot drift from it.
#include "config/schema.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace octet {

namespace {

std::string values_text(const config::KeyInfo& key) {
  using config::ValueType;
  if (key.type == ValueType::choice) return fmt::format("{}", fmt::join(key.allowed, ", "));
  if (key.type == ValueType::choice_list) return fmt::format("list of {}", fmt::join(key.allowed, ", "));
  std::string text(config::type_name(key));
  if (key.min && key.max)
    return fmt::format("{} in {}{}, {}]", text, key.min_exclusive ? "(" : "[", *key.min, *key.max);
  if (key.min) return fmt::format("{} {} {}", text, key.min_exclusive ? ">" : "≥", *key.min);
  return text;
}

}  // namespace

std::string config_keys_markdown() {
  std::string out = "| Key | Default | Values | Environment | Meaning |\n|---|---|---|---|---|\n";
  for (const auto& key : config::schema()) {
    std::vector<std::string> variables;
    for (auto seed_name : key.seed_env) variables.push_back(fmt::format("`{}`", seed_name));
    variables.push_back(fmt::format("`{}`", config::environment_name(key.name)));
    const std::string alias = key.alias_of.empty() ? "" : fmt::format(" Alias of `{}`.", key.alias_of);
    out += fmt::format("| `{}` | `{}` | {} | {} | {}{} |\n", key.name, key.default_yaml, values_text(key),
                       fmt::join(variables, " "), key.doc, alias);
  }
  return out;
}

}  // namespace octet
