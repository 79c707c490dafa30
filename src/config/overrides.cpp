// Command-line overrides, Hydra-style: `engine.max_context_length=4096`, value read as a YAML scalar
// (or a flow list such as `eval.tasks=[mmlu,gsm8k]`); string values need no quoting.
#include "common/error.h"
#include "config/assignment.h"
#include "config/validation.h"
#include "config/value.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cctype>

namespace octet::config {

namespace {

bool is_key_start(char c) { return std::isalpha(static_cast<unsigned char>(c)) || c == '_'; }
bool is_key_char(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.'; }

// The length of the key of "key=…" when the argument has that shape, else 0.
size_t override_key_length(std::string_view argument) {
  if (argument.empty() || !is_key_start(argument[0])) return 0;
  size_t i = 1;
  while (i < argument.size() && is_key_char(argument[i])) ++i;
  return i < argument.size() && argument[i] == '=' ? i : 0;
}

}  // namespace

std::vector<Assignment> override_assignments(const std::vector<std::string>& overrides, int source) {
  std::vector<Assignment> assignments;
  for (const auto& text : overrides) {
    std::string context = fmt::format("command line override '{}'", text);
    if (const size_t rest = text.find_first_not_of('+'); text.starts_with("+"))
      fail("{}: '+key=value' is not needed: every key already exists, write {}", context,
           rest == std::string::npos ? "key=value" : text.substr(rest));
    if (text.starts_with("~")) fail("{}: keys cannot be deleted, only set (key=value)", context);
    const size_t key_length = override_key_length(text);
    if (key_length == 0)
      fail("{}: expected key=value with a dotted key such as engine.max_context_length=4096", context);
    const std::string name = text.substr(0, key_length);
    const KeyInfo* key = find_key(name);
    if (!key && is_section(name))
      fail("{}: '{}' is a section; set one of its keys ({})", context, name, fmt::join(keys_in_section(name), ", "));
    if (!key) throw Error(unknown_key_message(context, name));
    const std::string shown = key->secret ? name + "=***" : text;  // secrets stay out of logs and renders
    context = fmt::format("command line override '{}'", shown);
    assignments.push_back({key, parse_yaml_text(*key, std::string_view(text).substr(key_length + 1), context),
                           Provenance{Provenance::Source::command_line, shown}, context, source});
  }
  return assignments;
}

}  // namespace octet::config

namespace octet {

std::vector<std::string> extract_overrides(std::vector<std::string>& args) {
  std::vector<std::string> overrides, rest;
  bool after_separator = false;
  for (auto& argument : args) {
    if (argument == "--") after_separator = true;
    if (!after_separator && config::override_key_length(argument) > 0)
      overrides.push_back(std::move(argument));
    else
      rest.push_back(std::move(argument));
  }
  args = std::move(rest);
  return overrides;
}

}  // namespace octet
