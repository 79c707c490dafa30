#pragma once
// Checks of values against the schema, and the did-you-mean suggestions that errors carry.
#include "config/schema.h"

#include <string>
#include <string_view>
#include <vector>

namespace octet::config {

// Range and allowed values; every parse_* function calls it, so a value that exists is valid.
void validate(const KeyInfo& key, const ConfigValue& value, std::string_view context);

// The closest candidate by edit distance, or "" when none is close enough to be a plausible typo.
std::string did_you_mean(std::string_view word, const std::vector<std::string>& candidates);
size_t edit_distance(std::string_view a, std::string_view b);

// A schema key for a misspelt or misplaced one ("llm.temprature", "llm.max_context_length"), or "".
std::string suggest_key(std::string_view unknown);
// "<context>: unknown key 'x' (did you mean 'y'?)".
std::string unknown_key_message(std::string_view context, std::string_view unknown);

}  // namespace octet::config
