#pragma once
// Llama-architecture hyper-parameters, read from GGUF metadata (llama.* keys) or a Hugging Face
// config.json. Both readers validate: missing or inconsistent fields are errors naming the source
// and the key.
#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace octet::gguf { class File; }

namespace octet::model {

struct RopeScaling {
  // "" (none), "linear" (every frequency divided by factor) or "llama3"; HF also spells the key
  // "type" in older files.
  std::string type;
  double factor = 1.0;
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  int64_t original_max_position_embeddings = 8192;
};

struct LlamaConfig {
  std::string architecture = "llama";
  std::string name;
  int64_t layers = 0;
  int64_t hidden = 0;
  int64_t heads = 0;
  int64_t kv_heads = 0;
  int64_t head_dim = 0;
  int64_t ffn = 0;  // intermediate size
  int64_t vocab = 0;
  int64_t context_length = 0;  // max_position_embeddings
  double rms_norm_eps = 1e-5;
  double rope_theta = 10000.0;
  RopeScaling rope_scaling;
  // llama.cpp's GGUF converter stores llama3 scaling as a rope_freqs.weight tensor instead of
  // metadata: inverse frequency i is divided by rope_freq_factors[i] (head_dim / 2 values).
  std::vector<double> rope_freq_factors;
  bool tied_embeddings = false;
  std::optional<int64_t> bos_token_id;
  std::vector<int64_t> eos_token_ids;

  int64_t q_dim() const { return heads * head_dim; }
  int64_t kv_dim() const { return kv_heads * head_dim; }
  // Parameter count from the shapes (embeddings, all layers, final norm, untied head).
  int64_t parameter_count() const;
  // Per-dimension-pair inverse frequencies (head_dim / 2 values), llama3 scaling applied.
  std::vector<double> rope_inverse_frequencies() const;
  // Throws octet::Error (naming source) when a field is missing or inconsistent.
  void validate(const std::string& source) const;
};

LlamaConfig config_from_gguf(const gguf::File& file);
LlamaConfig config_from_hf_json(const nlohmann::json& config, const std::string& source);
LlamaConfig config_from_hf_file(const std::string& config_json_path);

}  // namespace octet::model
