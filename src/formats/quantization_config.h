#pragma once
// How a Hugging Face checkpoint says its weights are quantized: NVIDIA ModelOpt (hf_quant_config.json,
// and/or config.json's quantization_config with quant_method "modelopt") or compressed-tensors
// (quant_method "compressed-tensors", format "float-quantized"). Only FP8 E4M3 schemes with
// per-tensor, per-output-channel or (compressed-tensors) 128×128 block weight scales are accepted;
// anything else is an error naming the file and the field.
#include <nlohmann/json_fwd.hpp>

#include <regex>
#include <string>
#include <vector>

namespace octet::formats {

struct QuantizationConfig {
  enum class Method { none, modelopt, compressed_tensors };
  Method method = Method::none;
  std::string algorithm;      // "FP8", "FP8_PER_CHANNEL_PER_TOKEN", or the compressed-tensors scheme in words
  bool per_channel_weights = false;  // weight_scale [out] / [out, 1]; else one scalar per tensor
  bool block_weights = false;        // weight_scale [ceil(out/128), ceil(in/128)] (strategy "block")
  bool static_activations = false;   // every quantized linear has a scalar input_scale
  bool fp8_kv_cache = false;         // every layer has k/v scales
  std::vector<std::string> excluded;  // module patterns kept unquantized (as written)
  std::string source;                 // the file(s) the settings come from

  bool quantized() const { return method != Method::none; }
  // Whether the linear layer `module` ("model.layers.0.mlp.up_proj", "lm_head") stays 16-bit.
  bool is_excluded(const std::string& module) const;

  std::vector<std::regex> excluded_regexes;  // compressed-tensors "re:" entries, compiled
};

// Reads hf_quant_config.json in directory (when present) and config_json's quantization_config.
// config_source names config.json in errors.
QuantizationConfig read_quantization_config(const std::string& directory, const nlohmann::json& config_json,
                                            const std::string& config_source);

}  // namespace octet::formats
