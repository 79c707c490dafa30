#include "model/llama_config.h"

#include "common/error.h"
#include "formats/gguf.h"

#include <nlohmann/json.hpp>

#include <cmath>
#include <fstream>
#include <numbers>

namespace octet::model {

int64_t LlamaConfig::parameter_count() const {
  const int64_t attention = hidden * q_dim() + 2 * hidden * kv_dim() + q_dim() * hidden;
  const int64_t mlp = 3 * hidden * ffn;
  const int64_t norms = 2 * hidden;
  const int64_t embeddings = vocab * hidden;
  return embeddings + layers * (attention + mlp + norms) + hidden + (tied_embeddings ? 0 : vocab * hidden);
}

std::vector<double> LlamaConfig::rope_inverse_frequencies() const {
  std::vector<double> inv(static_cast<size_t>(head_dim / 2));
  for (size_t i = 0; i < inv.size(); ++i)
    inv[i] = 1.0 / std::pow(rope_theta, static_cast<double>(2 * i) / static_cast<double>(head_dim));
  if (rope_scaling.type == "llama3") {
    const auto& s = rope_scaling;
    const double old_context = static_cast<double>(s.original_max_position_embeddings);
    const double low_freq_wavelen = old_context / s.low_freq_factor;
    const double high_freq_wavelen = old_context / s.high_freq_factor;
    for (double& f : inv) {
      const double wavelen = 2 * std::numbers::pi / f;
      if (wavelen > low_freq_wavelen) {
        f = f / s.factor;
      } else if (wavelen >= high_freq_wavelen) {
        const double smooth = (old_context / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
        f = (1 - smooth) * f / s.factor + smooth * f;
      }
    }
  }
  return inv;
}

void LlamaConfig::validate(const std::string& source) const {
  auto positive = [&](int64_t v, const char* key) {
    if (v <= 0) fail("{}: {} must be positive, found {}", source, key, v);
  };
  positive(layers, "layers (num_hidden_layers / block_count)");
  positive(hidden, "hidden size");
  positive(heads, "attention heads");
  positive(kv_heads, "key/value heads");
  positive(head_dim, "head dimension");
  positive(ffn, "intermediate size");
  positive(vocab, "vocabulary size");
  positive(context_length, "context length");
  if (heads % kv_heads != 0) fail("{}: {} attention heads are not a multiple of {} key/value heads", source, heads, kv_heads);
  if (head_dim % 2 != 0) fail("{}: head dimension {} must be even for rotary embeddings", source, head_dim);
  if (!(rms_norm_eps > 0)) fail("{}: rms_norm_eps must be positive, found {}", source, rms_norm_eps);
  if (!(rope_theta > 0)) fail("{}: rope_theta must be positive, found {}", source, rope_theta);
  if (!rope_scaling.type.empty() && rope_scaling.type != "llama3")
    fail("{}: rope_scaling type '{}' is not supported (supported: llama3)", source, rope_scaling.type);
  if (rope_scaling.type == "llama3") {
    if (!(rope_scaling.factor >= 1)) fail("{}: rope_scaling.factor must be >= 1, found {}", source, rope_scaling.factor);
    if (!(rope_scaling.high_freq_factor > rope_scaling.low_freq_factor))
      fail("{}: rope_scaling.high_freq_factor ({}) must exceed low_freq_factor ({})", source,
           rope_scaling.high_freq_factor, rope_scaling.low_freq_factor);
    if (rope_scaling.original_max_position_embeddings <= 0)
      fail("{}: rope_scaling.original_max_position_embeddings must be positive", source);
  }
}

LlamaConfig config_from_gguf(const gguf::File& file) {
  const std::string arch = file.get_string("general.architecture").value_or("");
  if (arch != "llama") fail("{}: general.architecture is '{}', expected 'llama'", file.path(), arch);
  auto required = [&](const std::string& key) -> int64_t {
    auto v = file.get_int(key);
    if (!v) fail("{}: metadata '{}' is missing", file.path(), key);
    return *v;
  };
  LlamaConfig c;
  c.architecture = arch;
  c.name = file.get_string("general.name").value_or("");
  c.layers = required("llama.block_count");
  c.hidden = required("llama.embedding_length");
  c.ffn = required("llama.feed_forward_length");
  c.heads = required("llama.attention.head_count");
  c.kv_heads = file.get_int("llama.attention.head_count_kv").value_or(c.heads);
  c.head_dim = file.get_int("llama.attention.key_length").value_or(c.heads > 0 ? c.hidden / c.heads : 0);
  c.context_length = required("llama.context_length");
  c.rms_norm_eps = file.get_float("llama.attention.layer_norm_rms_epsilon").value_or(1e-5);
  c.rope_theta = file.get_float("llama.rope.freq_base").value_or(10000.0);
  if (auto vocab = file.get_int("llama.vocab_size")) {
    c.vocab = *vocab;
  } else if (auto tokens = file.get_string_array("tokenizer.ggml.tokens")) {
    c.vocab = static_cast<int64_t>(tokens->size());
  }
  if (auto type = file.get_string("llama.rope.scaling.type"); type && *type != "none") {
    // llama.cpp bakes llama3 frequency scaling into a rope_freqs tensor; plain "linear" is not Llama 3.
    fail("{}: rope scaling type '{}' in GGUF metadata is not supported", file.path(), *type);
  }
  c.tied_embeddings = file.find_tensor("output.weight") == nullptr;
  if (auto bos = file.get_int("tokenizer.ggml.bos_token_id")) c.bos_token_id = *bos;
  if (auto eos = file.get_int("tokenizer.ggml.eos_token_id")) c.eos_token_ids.push_back(*eos);
  if (auto eot = file.get_int("tokenizer.ggml.eot_token_id")) c.eos_token_ids.push_back(*eot);
  c.validate(file.path());
  return c;
}

namespace {

template <typename T>
T json_get(const nlohmann::json& j, const std::string& key, const std::string& source) {
  if (!j.contains(key)) fail("{}: key '{}' is missing", source, key);
  try {
    return j.at(key).get<T>();
  } catch (const nlohmann::json::exception&) {
    fail("{}: key '{}' has the wrong type ({}), expected {}", source, key, j.at(key).type_name(),
         std::is_integral_v<T> ? "an integer" : "a number");
  }
}

template <typename T>
T json_get_or(const nlohmann::json& j, const std::string& key, T fallback, const std::string& source) {
  if (!j.contains(key) || j.at(key).is_null()) return fallback;
  return json_get<T>(j, key, source);
}

}  // namespace

LlamaConfig config_from_hf_json(const nlohmann::json& j, const std::string& source) {
  if (!j.is_object()) fail("{}: expected a JSON object", source);
  LlamaConfig c;
  c.architecture = "llama";
  if (j.contains("model_type") && j["model_type"].is_string() && j["model_type"] != "llama")
    fail("{}: model_type is '{}', expected 'llama'", source, j["model_type"].get<std::string>());
  c.name = j.value("_name_or_path", std::string());
  c.hidden = json_get<int64_t>(j, "hidden_size", source);
  c.ffn = json_get<int64_t>(j, "intermediate_size", source);
  c.layers = json_get<int64_t>(j, "num_hidden_layers", source);
  c.heads = json_get<int64_t>(j, "num_attention_heads", source);
  c.kv_heads = json_get_or<int64_t>(j, "num_key_value_heads", c.heads, source);
  c.head_dim = json_get_or<int64_t>(j, "head_dim", c.heads > 0 ? c.hidden / c.heads : 0, source);
  c.vocab = json_get<int64_t>(j, "vocab_size", source);
  c.context_length = json_get<int64_t>(j, "max_position_embeddings", source);
  c.rms_norm_eps = json_get_or<double>(j, "rms_norm_eps", 1e-6, source);
  c.rope_theta = json_get_or<double>(j, "rope_theta", 10000.0, source);
  c.tied_embeddings = j.contains("tie_word_embeddings") && j["tie_word_embeddings"].is_boolean()
                          ? j["tie_word_embeddings"].get<bool>()
                          : false;
  if (j.contains("rope_scaling") && !j["rope_scaling"].is_null()) {
    const auto& rs = j["rope_scaling"];
    const std::string where = source + " rope_scaling";
    if (!rs.is_object()) fail("{}: rope_scaling must be an object or null", source);
    std::string type = rs.contains("rope_type") ? rs["rope_type"].get<std::string>()
                                                : rs.value("type", std::string());
    if (type != "default") {
      c.rope_scaling.type = type;
      c.rope_scaling.factor = json_get<double>(rs, "factor", where);
      c.rope_scaling.low_freq_factor = json_get_or<double>(rs, "low_freq_factor", 1.0, where);
      c.rope_scaling.high_freq_factor = json_get_or<double>(rs, "high_freq_factor", 4.0, where);
      c.rope_scaling.original_max_position_embeddings =
          json_get_or<int64_t>(rs, "original_max_position_embeddings", 8192, where);
    }
  }
  if (j.contains("bos_token_id") && j["bos_token_id"].is_number_integer()) c.bos_token_id = j["bos_token_id"].get<int64_t>();
  if (j.contains("eos_token_id")) {
    const auto& eos = j["eos_token_id"];
    if (eos.is_number_integer()) c.eos_token_ids.push_back(eos.get<int64_t>());
    else if (eos.is_array())
      for (const auto& e : eos) c.eos_token_ids.push_back(e.get<int64_t>());
  }
  c.validate(source);
  return c;
}

LlamaConfig config_from_hf_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) fail("{}: cannot open", path);
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(in);
  } catch (const nlohmann::json::parse_error& e) {
    fail("{}: invalid JSON: {}", path, e.what());
  }
  return config_from_hf_json(j, path);
}

}  // namespace octet::model
