#include "config/validation.h"

#include "common/error.h"
#include "config/value.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>

namespace octet::config {

namespace {

std::string range_text(const KeyInfo& key) {
  const std::string low =
      key.min ? fmt::format("{} {}", key.min_exclusive ? "greater than" : "at least", *key.min) : "";
  const std::string high = key.max ? fmt::format("at most {}", *key.max) : "";
  if (!low.empty() && !high.empty()) return low + " and " + high;
  return low.empty() ? high : low;
}

void validate_choice(const KeyInfo& key, const std::string& choice, std::string_view context) {
  if (std::find(key.allowed.begin(), key.allowed.end(), choice) != key.allowed.end()) return;
  const std::string suggestion = did_you_mean(choice, {key.allowed.begin(), key.allowed.end()});
  fail("{}: {}: invalid value '{}' (allowed: {}{})", context, key.name, choice, fmt::join(key.allowed, ", "),
       suggestion.empty() ? "" : fmt::format("; did you mean '{}'?", suggestion));
}

}  // namespace

void validate(const KeyInfo& key, const ConfigValue& value, std::string_view context) {
  if (key.type == ValueType::choice) validate_choice(key, std::get<std::string>(value), context);
  if (key.type == ValueType::choice_list)
    for (const auto& item : std::get<std::vector<std::string>>(value)) validate_choice(key, item, context);
  if (key.type != ValueType::integer && key.type != ValueType::number) return;
  const double number =
      key.type == ValueType::integer ? static_cast<double>(std::get<int64_t>(value)) : std::get<double>(value);
  const bool too_low = key.min && (key.min_exclusive ? number <= *key.min : number < *key.min);
  const bool too_high = key.max && number > *key.max;
  if (too_low || too_high)
    fail("{}: {}: {} is out of range (allowed: {})", context, key.name, format_value(value), range_text(key));
}

// Optimal string alignment: insertions, deletions, substitutions and swaps of neighbours ("bsae").
size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::vector<size_t>> d(a.size() + 1, std::vector<size_t>(b.size() + 1));
  for (size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (size_t i = 1; i <= a.size(); ++i)
    for (size_t j = 1; j <= b.size(); ++j) {
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
    }
  return d[a.size()][b.size()];
}

std::string did_you_mean(std::string_view word, const std::vector<std::string>& candidates) {
  std::string best;
  size_t best_distance = SIZE_MAX;
  for (const auto& candidate : candidates) {
    const size_t distance = edit_distance(word, candidate);
    if (distance < best_distance) best = candidate, best_distance = distance;
  }
  // A third of the word's letters, at least one, at most three: typos, not different words.
  const size_t tolerance = std::clamp<size_t>(word.size() / 3, 1, 3);
  if (best_distance <= tolerance) return best;
  // A prefix left unfinished ("engine.max_context" for "engine.max_context_length").
  for (const auto& candidate : candidates)
    if (word.size() >= 4 && candidate.starts_with(word)) return candidate;
  return "";
}

std::string suggest_key(std::string_view unknown) {
  std::vector<std::string> names;
  for (const auto& key : schema()) {
    names.emplace_back(key.name);
    for (size_t dot = key.name.find('.'); dot != std::string_view::npos; dot = key.name.find('.', dot + 1))
      names.emplace_back(key.name.substr(0, dot));  // sections: "engin" is a typo of "engine"
  }
  std::string suggestion = did_you_mean(unknown, names);
  if (!suggestion.empty()) return suggestion;
  // The right name in the wrong section ("llm.max_context_length").
  const std::string_view leaf = unknown.substr(unknown.rfind('.') + 1);
  for (const auto& name : names)
    if (std::string_view(name).substr(name.rfind('.') + 1) == leaf) return name;
  return "";
}

std::string unknown_key_message(std::string_view context, std::string_view unknown) {
  if (unknown == "api.api_key" || unknown == "api.key")
    return fmt::format("{}: {}: API keys are never read from files; set OCTET_API_KEY or OPENAI_API_KEY", context,
                       unknown);
  const std::string suggestion = suggest_key(unknown);
  return fmt::format(
      "{}: unknown key '{}'{}", context, unknown,
      suggestion.empty() ? " (see docs/CONFIG.md for every key)" : fmt::format(" (did you mean '{}'?)", suggestion));
}

}  // namespace octet::config
