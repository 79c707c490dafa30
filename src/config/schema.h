#pragma once
// The key table: the single source of truth for names, types, defaults, allowed values and docs.
// configs/defaults.yaml and docs/CONFIG.md are checked against it by tests.
#include "octet/config.h"

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace octet::config {

enum class ValueType { string, boolean, integer, number, choice, choice_list };

// How an alias relates to its canonical key. `same`: another name for it. `fp8_flag`: a boolean
// "is the precision fp8": true sets fp8; false turns fp8 into bf16 and leaves bf16/f32 alone.
enum class AliasKind { none, same, fp8_flag };

struct KeyInfo {
  std::string_view name;
  ValueType type;
  std::string_view default_yaml;               // as written in defaults.yaml
  std::vector<std::string_view> allowed = {};  // choice, choice_list
  std::optional<double> min = {}, max = {};
  bool min_exclusive = false;
  std::string_view doc = {};
  std::string_view alias_of = {};
  AliasKind alias_kind = AliasKind::none;
  bool secret = false;                          // masked when rendered
  std::vector<std::string_view> seed_env = {};  // the seed's variable names, besides OCTET_<KEY>
};

const std::vector<KeyInfo>& schema();
const KeyInfo* find_key(std::string_view name);
bool is_section(std::string_view name);  // "llm", "llm.quantization", …
std::vector<std::string> keys_in_section(std::string_view section);
std::vector<std::string> top_level_sections();  // "llm", "quantization", …

// OCTET_ENGINE_MAX_CONTEXT_LENGTH for engine.max_context_length.
std::string environment_name(std::string_view key);

// The default as a typed value (parsed from default_yaml).
ConfigValue default_value(const KeyInfo& key);

std::string_view type_name(const KeyInfo& key);  // "string", "boolean", "integer", "number", "choice", …

}  // namespace octet::config
