// Environment variables: the seed's names (USE_FP8, LLM_MODEL, TENSORRT_LLM_ENGINE_DIR,
// FP8_QUANTIZATION_TYPE, TENSOR_PARALLEL_SIZE, FP8_DEBUG) and OCTET_<SECTION>_<KEY> for every key.
// Empty variables count as unset, as shells make unsetting awkward.
#include "common/error.h"
#include "config/assignment.h"
#include "config/validation.h"
#include "config/value.h"

#include <fmt/format.h>

#include <set>

extern char** environ;

namespace octet {

std::map<std::string, std::string> current_environment() {
  std::map<std::string, std::string> environment;
  for (char** entry = environ; entry && *entry; ++entry) {
    const std::string text(*entry);
    const size_t equals = text.find('=');
    if (equals != std::string::npos) environment.emplace(text.substr(0, equals), text.substr(equals + 1));
  }
  return environment;
}

}  // namespace octet

namespace octet::config {

namespace {

// OCTET_ variables that are not settings: they locate things before any config is read, or hold secrets.
const std::set<std::string> kNotSettings = {"OCTET_API_KEY", "OCTET_CONFIG_PATH", "OCTET_MODELS"};

std::map<std::string, const KeyInfo*> variable_table() {
  std::map<std::string, const KeyInfo*> table;
  for (const auto& key : schema()) {
    table[environment_name(key.name)] = &key;
    for (auto seed_name : key.seed_env) table[std::string(seed_name)] = &key;
  }
  return table;
}

// OCTET_LLM_TEMPRATURE is a typo only if it claims a section; other OCTET_ variables are not ours.
bool claims_a_section(const std::string& variable) {
  for (const auto& section : top_level_sections())
    if (variable.starts_with(environment_name(section) + "_")) return true;
  return false;
}

}  // namespace

std::vector<Assignment> environment_assignments(const std::map<std::string, std::string>& environment, int source) {
  static const std::map<std::string, const KeyInfo*> table = variable_table();
  std::vector<Assignment> assignments;
  for (const auto& [variable, text] : environment) {
    if (text.empty() || kNotSettings.count(variable)) continue;
    const auto found = table.find(variable);
    const std::string context = "environment variable " + variable;
    if (found == table.end()) {
      if (!variable.starts_with("OCTET_") || !claims_a_section(variable)) continue;
      std::vector<std::string> names;
      for (const auto& [name, key] : table) names.push_back(name);
      const std::string suggestion = did_you_mean(variable, names);
      fail("{}: no such setting{}", context,
           suggestion.empty() ? " (OCTET_<SECTION>_<KEY>; see docs/CONFIG.md)"
                              : fmt::format(" (did you mean {}?)", suggestion));
    }
    const KeyInfo& key = *found->second;
    assignments.push_back({&key, parse_environment_text(key, text, context),
                           Provenance{Provenance::Source::environment, variable}, context, source});
  }
  return assignments;
}

std::string api_key_from(const std::map<std::string, std::string>& environment) {
  for (const char* variable : {"OCTET_API_KEY", "OPENAI_API_KEY"}) {
    const auto found = environment.find(variable);
    if (found != environment.end() && !found->second.empty()) return found->second;
  }
  return "";
}

}  // namespace octet::config
