// Reading the quantization settings of FP8 checkpoints. The shapes follow the published exports:
//   hf_quant_config.json (ModelOpt, authoritative when present):
//     {"producer": {...}, "quantization": {"quant_algo": "FP8", "kv_cache_quant_algo": "FP8" | null,
//      "exclude_modules": ["lm_head", ...]}}
//   config.json quantization_config, ModelOpt: {"quant_method": "modelopt", "quant_algo": ..., and
//     "kv_cache_quant_algo" or "kv_cache_scheme", "exclude_modules" or "ignore"} or the nested
//     {"quant_method": "modelopt", "quantization": {...}} form;
//   compressed-tensors: {"quant_method": "compressed-tensors", "format": "float-quantized",
//     "config_groups": {"group_0": {"targets": ["Linear"], "weights": {...}, "input_activations": {...}}},
//     "ignore": ["lm_head", "re:..."], "kv_cache_scheme": {...} | null}; the FP8_BLOCK scheme has
//     weights {"strategy": "block", "block_structure": [128, 128]} and input_activations
//     {"strategy": "group", "group_size": 128, "dynamic": true}.
#include "formats/quantization_config.h"

#include <fnmatch.h>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <optional>

#include "common/error.h"
#include "formats/json_file.h"

namespace octet::formats {
namespace {

using nlohmann::json;

std::string upper(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(), [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
  return text;
}

const json* member(const json& object, const char* key) {
  if (!object.is_object()) return nullptr;
  const auto it = object.find(key);
  return it == object.end() || it->is_null() ? nullptr : &*it;
}

std::string string_field(const json& object, const char* key, const std::string& where, bool required = true) {
  const json* value = member(object, key);
  if (!value) {
    if (required) fail("{}: missing key '{}'", where, key);
    return "";
  }
  if (!value->is_string()) fail("{}: key '{}' must be a string, found {}", where, key, value->type_name());
  return value->get<std::string>();
}

std::vector<std::string> string_list(const json& object, const char* key, const std::string& where) {
  std::vector<std::string> out;
  const json* value = member(object, key);
  if (!value) return out;
  if (!value->is_array()) fail("{}: key '{}' must be a list of strings, found {}", where, key, value->type_name());
  for (const auto& element : *value) {
    if (!element.is_string()) fail("{}: key '{}' must hold strings, found {}", where, key, element.type_name());
    out.push_back(element.get<std::string>());
  }
  return out;
}

// kv_cache_scheme of compressed-tensors and newer ModelOpt exports: 8-bit float, one static scale.
bool fp8_kv_scheme(const json& object, const std::string& where) {
  const json* scheme = member(object, "kv_cache_scheme");
  if (!scheme) return false;
  const json* bits = member(*scheme, "num_bits");
  const std::string type = string_field(*scheme, "type", where + " kv_cache_scheme", false);
  if (!bits || !bits->is_number_integer() || bits->get<int64_t>() != 8 || type != "float")
    fail("{}: kv_cache_scheme {} is not an FP8 (8-bit float) scheme", where, scheme->dump());
  const json* dynamic = member(*scheme, "dynamic");
  if (dynamic && dynamic->is_boolean() && dynamic->get<bool>())
    fail("{}: kv_cache_scheme is dynamic; only static per-tensor KV scales are read", where);
  return true;
}

void set_modelopt_algorithm(QuantizationConfig& config, const std::string& algorithm, const std::string& where) {
  config.method = QuantizationConfig::Method::modelopt;
  config.algorithm = upper(algorithm);
  if (config.algorithm == "FP8") {
    config.per_channel_weights = false;
    config.static_activations = true;
  } else if (config.algorithm == "FP8_PER_CHANNEL_PER_TOKEN") {
    config.per_channel_weights = true;
    config.static_activations = false;
  } else {
    fail("{}: quant_algo '{}' is not supported (Octet reads ModelOpt FP8 and FP8_PER_CHANNEL_PER_TOKEN)", where,
         algorithm);
  }
}

void read_kv_algorithm(QuantizationConfig& config, const json& object, const std::string& where) {
  const std::string kv = upper(string_field(object, "kv_cache_quant_algo", where, false));
  if (!kv.empty() && kv != "FP8") fail("{}: kv_cache_quant_algo '{}' is not supported (FP8 or null)", where, kv);
  config.fp8_kv_cache = kv == "FP8";
}

// The "quantization" object of hf_quant_config.json (or its copy nested in config.json).
QuantizationConfig modelopt_nested(const json& quantization, const std::string& where) {
  if (!quantization.is_object()) fail("{}: 'quantization' must be an object", where);
  QuantizationConfig config;
  set_modelopt_algorithm(config, string_field(quantization, "quant_algo", where), where);
  read_kv_algorithm(config, quantization, where);
  config.excluded = string_list(quantization, "exclude_modules", where);
  config.source = where;
  return config;
}

QuantizationConfig modelopt_flat(const json& settings, const std::string& where) {
  if (const json* nested = member(settings, "quantization")) return modelopt_nested(*nested, where + " quantization");
  QuantizationConfig config;
  set_modelopt_algorithm(config, string_field(settings, "quant_algo", where), where);
  if (member(settings, "kv_cache_quant_algo")) read_kv_algorithm(config, settings, where);
  else config.fp8_kv_cache = fp8_kv_scheme(settings, where);
  config.excluded = member(settings, "exclude_modules") ? string_list(settings, "exclude_modules", where)
                                                       : string_list(settings, "ignore", where);
  config.source = where;
  return config;
}

// One compressed-tensors quantization args object ("weights" or "input_activations").
struct CtArgs {
  std::string strategy;
  bool dynamic = false;
};

// A "block" weight strategy's block_structure, which must be [128, 128] (the blocks Octet multiplies).
void check_block_structure(const json& args, const std::string& where) {
  const json* structure = member(args, "block_structure");
  const bool ok = structure && structure->is_array() && structure->size() == 2 && (*structure)[0] == 128 &&
                  (*structure)[1] == 128;
  if (!ok)
    fail("{}: block_structure {} is not supported (strategy 'block' needs block_structure [128, 128])", where,
         structure ? structure->dump() : "missing");
}

CtArgs ct_args(const json& args, const std::string& where) {
  if (!args.is_object()) fail("{}: expected an object, found {}", where, args.type_name());
  const json* bits = member(args, "num_bits");
  if (!bits || !bits->is_number_integer() || bits->get<int64_t>() != 8)
    fail("{}: num_bits must be 8 for FP8, found {}", where, bits ? bits->dump() : "nothing");
  const std::string type = string_field(args, "type", where);
  if (type != "float") fail("{}: type '{}' is not supported (FP8 checkpoints have type 'float')", where, type);
  CtArgs out;
  out.strategy = string_field(args, "strategy", where);
  const json* dynamic = member(args, "dynamic");
  if (dynamic && !dynamic->is_boolean()) fail("{}: 'dynamic' must be true or false", where);
  out.dynamic = dynamic && dynamic->get<bool>();
  return out;
}

QuantizationConfig compressed_tensors(const json& settings, const std::string& where) {
  QuantizationConfig config;
  config.method = QuantizationConfig::Method::compressed_tensors;
  config.source = where;
  const std::string format = string_field(settings, "format", where, false);
  if (format != "float-quantized" && format != "naive-quantized")
    fail("{}: format '{}' is not supported (Octet reads FP8 'float-quantized' checkpoints)", where, format);
  const json* groups = member(settings, "config_groups");
  if (!groups || !groups->is_object() || groups->empty()) fail("{}: 'config_groups' must be a non-empty object", where);
  bool first = true;
  for (const auto& [name, group] : groups->items()) {
    const std::string group_where = where + " config_groups." + name;
    const auto targets = string_list(group, "targets", group_where);
    if (std::find(targets.begin(), targets.end(), "Linear") == targets.end())
      fail("{}: targets [{}]: only groups targeting 'Linear' are supported", group_where, fmt::join(targets, ", "));
    const json* weights = member(group, "weights");
    if (!weights) fail("{}: missing 'weights'", group_where);
    const CtArgs w = ct_args(*weights, group_where + ".weights");
    if (w.dynamic) fail("{}.weights: dynamic weight quantization is not a stored checkpoint", group_where);
    if (w.strategy != "tensor" && w.strategy != "channel" && w.strategy != "block")
      fail("{}.weights: strategy '{}' is not supported (tensor, channel, or block with block_structure [128, 128]; "
           "group scales are not)",
           group_where, w.strategy);
    if (w.strategy == "block") check_block_structure(*weights, group_where + ".weights");
    bool static_activations = false;
    if (const json* inputs = member(group, "input_activations")) {
      const CtArgs a = ct_args(*inputs, group_where + ".input_activations");
      if (!a.dynamic && a.strategy != "tensor")
        fail("{}.input_activations: static strategy '{}' is not supported (tensor)", group_where, a.strategy);
      // FP8_BLOCK's dynamic 1x128 groups: Octet quantizes the whole token with one scale (as for
      // its other FP8 layers), a coarser choice that no weight depends on.
      const bool block_groups = w.strategy == "block" && a.strategy == "group";
      if (a.dynamic && a.strategy != "token" && a.strategy != "tensor" && !block_groups)
        fail("{}.input_activations: dynamic strategy '{}' is not supported (token; group with block weights)", group_where,
             a.strategy);
      if (block_groups) spdlog::info("{}: activations in 1x128 groups; Octet quantizes them per token", group_where);
      static_activations = !a.dynamic;
    } else {
      spdlog::info("{}: weight-only FP8; Octet quantizes the activations per token (W8A8)", group_where);
    }
    const bool per_channel = w.strategy == "channel", block = w.strategy == "block";
    if (!first && (per_channel != config.per_channel_weights || block != config.block_weights ||
                   static_activations != config.static_activations))
      fail("{}: groups with different schemes are not supported", where);
    config.per_channel_weights = per_channel;
    config.block_weights = block;
    config.static_activations = static_activations;
    first = false;
  }
  config.algorithm = fmt::format("FP8 weights per {}, {} activations",
                                 config.block_weights ? "128x128 block" : config.per_channel_weights ? "channel" : "tensor",
                                 config.static_activations ? "static" : "dynamic");
  config.fp8_kv_cache = fp8_kv_scheme(settings, where);
  config.excluded = string_list(settings, "ignore", where);
  for (const std::string& entry : config.excluded) {
    if (!entry.starts_with("re:")) continue;
    try {
      config.excluded_regexes.emplace_back(entry.substr(3));
    } catch (const std::regex_error& e) {
      fail("{}: ignore entry '{}' is not a valid regular expression: {}", where, entry, e.what());
    }
  }
  return config;
}

}  // namespace

bool QuantizationConfig::is_excluded(const std::string& module) const {
  for (const std::string& pattern : excluded) {
    if (pattern.starts_with("re:")) continue;
    if (pattern == module || ::fnmatch(pattern.c_str(), module.c_str(), 0) == 0) return true;
    // ModelOpt writes "module*" for a module and everything under it.
    if (pattern.size() > 1 && pattern.back() == '*' && module == pattern.substr(0, pattern.size() - 1)) return true;
  }
  // compressed-tensors matches its "re:" patterns from the start of the name (Python's re.match).
  for (const std::regex& pattern : excluded_regexes)
    if (std::regex_search(module, pattern, std::regex_constants::match_continuous)) return true;
  return false;
}

QuantizationConfig read_quantization_config(const std::string& directory, const nlohmann::json& config_json,
                                            const std::string& config_source) {
  const std::filesystem::path hf_quant_path = std::filesystem::path(directory) / "hf_quant_config.json";
  std::optional<QuantizationConfig> from_hf_quant;
  if (std::filesystem::exists(hf_quant_path)) {
    const json hf_quant = read_json_file(hf_quant_path.string());
    const json* quantization = member(hf_quant, "quantization");
    if (!quantization) fail("{}: missing the 'quantization' object", hf_quant_path.string());
    from_hf_quant = modelopt_nested(*quantization, hf_quant_path.string());
  }

  const json* settings = member(config_json, "quantization_config");
  std::optional<QuantizationConfig> from_config;
  if (settings) {
    const std::string where = config_source + " quantization_config";
    if (!settings->is_object()) fail("{}: expected an object", where);
    const std::string method = string_field(*settings, "quant_method", where);
    if (method.starts_with("modelopt")) from_config = modelopt_flat(*settings, where);
    else if (method == "compressed-tensors") from_config = compressed_tensors(*settings, where);
    else
      fail("{}: quant_method '{}' is not supported (Octet reads FP8 checkpoints from modelopt and compressed-tensors)",
           where, method);
  }

  if (from_hf_quant) {
    if (from_config && (from_config->method != from_hf_quant->method || from_config->algorithm != from_hf_quant->algorithm))
      spdlog::warn("{} says {}, {} says {}; following hf_quant_config.json", from_config->source, from_config->algorithm,
                   from_hf_quant->source, from_hf_quant->algorithm);
    return *from_hf_quant;
  }
  return from_config.value_or(QuantizationConfig{});
}

}  // namespace octet::formats
