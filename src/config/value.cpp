#include "config/value.h"

#include "common/error.h"
#include "config/validation.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>

namespace octet::config {

namespace {

std::string lower(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string_view trim(std::string_view text) {
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front()))) text.remove_prefix(1);
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.remove_suffix(1);
  return text;
}

std::string expected(const KeyInfo& key) {
  switch (key.type) {
    case ValueType::string: return "a string";
    case ValueType::boolean: return "a boolean (true or false)";
    case ValueType::integer: return "an integer";
    case ValueType::number: return "a number";
    case ValueType::choice: return fmt::format("one of {}", fmt::join(key.allowed, ", "));
    case ValueType::choice_list: return fmt::format("a list of {}", fmt::join(key.allowed, ", "));
  }
  return "?";
}

[[noreturn]] void wrong_type(const KeyInfo& key, std::string_view found, std::string_view context) {
  fail("{}: {}: expected {}, found {}", context, key.name, expected(key), found);
}

// The scalar text of a value that has no quotes or YAML structure left (types other than lists).
ConfigValue parse_plain(const KeyInfo& key, std::string_view text, std::string_view context) {
  const std::string found = fmt::format("'{}'", text);
  switch (key.type) {
    case ValueType::string:
    case ValueType::choice: return std::string(text);
    case ValueType::boolean: {
      const std::string word = lower(trim(text));
      if (word == "true" || word == "yes" || word == "on" || word == "1") return true;
      if (word == "false" || word == "no" || word == "off" || word == "0") return false;
      wrong_type(key, found, context);
    }
    case ValueType::integer: {
      const std::string_view digits = trim(text);
      int64_t value = 0;
      auto [end, error] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
      if (digits.empty() || error != std::errc() || end != digits.data() + digits.size())
        wrong_type(key, found, context);
      return value;
    }
    case ValueType::number: {
      const std::string_view digits = trim(text);
      double value = 0;
      auto [end, error] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
      if (digits.empty() || error != std::errc() || end != digits.data() + digits.size() || !std::isfinite(value))
        wrong_type(key, found, context);
      return value;
    }
    case ValueType::choice_list: {
      std::vector<std::string> items;
      size_t start = 0;
      while (start <= text.size()) {
        size_t comma = text.find(',', start);
        if (comma == std::string_view::npos) comma = text.size();
        const std::string_view item = trim(text.substr(start, comma - start));
        if (!item.empty()) items.emplace_back(item);
        start = comma + 1;
      }
      return items;
    }
  }
  wrong_type(key, found, context);
}

// Whether a string reads back as itself when written without quotes.
bool plain_scalar_safe(const std::string& s) {
  if (s.empty() || s == "~" || lower(s) == "null") return false;  // would read back as "no value"
  if (std::isspace(static_cast<unsigned char>(s.front())) || std::isspace(static_cast<unsigned char>(s.back())))
    return false;
  if (s.front() == '-' || s.front() == '?') return false;
  for (char c : s)
    if (static_cast<unsigned char>(c) < 0x20) return false;
  return s.find_first_of(":#{}[],&*!|>'\"%@`") == std::string::npos;
}

}  // namespace

ConfigValue parse_node(const KeyInfo& key, const YAML::Node& node, std::string_view context) {
  ConfigValue value;
  if (node.IsNull()) {
    if (key.type == ValueType::string)
      value = std::string();
    else if (key.type == ValueType::choice_list)
      value = std::vector<std::string>();
    else
      wrong_type(key, "no value", context);
  } else if (node.IsScalar()) {
    // yaml-cpp tags quoted scalars "!": a quoted "8000" is a string, and a port is not.
    const bool quoted = node.Tag() == "!";
    const bool textual = key.type == ValueType::string || key.type == ValueType::choice;
    if (quoted && !textual && key.type != ValueType::choice_list)
      wrong_type(key, fmt::format("the string \"{}\" (remove the quotes)", node.Scalar()), context);
    value = parse_plain(key, node.Scalar(), context);
  } else if (node.IsSequence()) {
    if (key.type != ValueType::choice_list) wrong_type(key, "a list", context);
    std::vector<std::string> items;
    for (const auto& item : node) {
      if (!item.IsScalar()) wrong_type(key, "a nested list or mapping", context);
      items.push_back(item.Scalar());
    }
    value = items;
  } else {
    wrong_type(key, "a mapping", context);
  }
  validate(key, value, context);
  return value;
}

ConfigValue parse_yaml_text(const KeyInfo& key, std::string_view text, std::string_view context) {
  // Strings are taken as typed unless quoted, so prompts and URLs need no YAML escaping.
  const bool quoted = !text.empty() && (text.front() == '"' || text.front() == '\'');
  if (key.type == ValueType::string && !quoted) return std::string(text);
  YAML::Node node;
  try {
    node = YAML::Load(std::string(text));
  } catch (const YAML::Exception& e) {
    fail("{}: cannot read '{}' as a YAML value: {}", context, text, e.msg);
  }
  return parse_node(key, node, context);
}

ConfigValue parse_environment_text(const KeyInfo& key, std::string_view text, std::string_view context) {
  if (key.type == ValueType::choice_list && trim(text).starts_with('[')) return parse_yaml_text(key, text, context);
  ConfigValue value = parse_plain(key, text, context);
  validate(key, value, context);
  return value;
}

std::string format_value(const ConfigValue& value) {
  struct Formatter {
    std::string operator()(bool b) const { return b ? "true" : "false"; }
    std::string operator()(int64_t i) const { return std::to_string(i); }
    std::string operator()(double d) const {
      std::string text = fmt::format("{}", d);
      // Keep a decimal point so the type reads as a number, as in defaults.yaml.
      if (text.find_first_of(".e") == std::string::npos) text += ".0";
      return text;
    }
    std::string operator()(const std::string& s) const {
      if (plain_scalar_safe(s)) return s;
      YAML::Emitter out;
      out << YAML::DoubleQuoted << s;
      return out.c_str();
    }
    std::string operator()(const std::vector<std::string>& items) const {
      return fmt::format("[{}]", fmt::join(items, ", "));
    }
  };
  return std::visit(Formatter{}, value);
}

}  // namespace octet::config
