// Llama hyper-parameters from GGUF metadata or a Hugging Face config.json. Both readers take
// defaults only where the format itself defines one (HF's LlamaConfig defaults, GGUF's optional
// keys); anything else missing or of the wrong type is an error naming the source and the key.
#include "model/llama_config.h"

#include <nlohmann/json.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <numbers>

#include "common/error.h"
#include "formats/gguf.h"

namespace octet::model {
namespace {

// Upper bounds that keep parameter_count() and the buffers sized from these fields far inside
// int64, while staying well above any real Llama (405B: hidden 16384, ffn 53248, 126 layers).
constexpr int64_t kMaxHidden = int64_t{1} << 20;
constexpr int64_t kMaxFfn = int64_t{1} << 22;
constexpr int64_t kMaxLayers = int64_t{1} << 12;
constexpr int64_t kMaxHeads = int64_t{1} << 12;
constexpr int64_t kMaxHeadDim = int64_t{1} << 12;
constexpr int64_t kMaxVocab = int64_t{1} << 24;
constexpr int64_t kMaxContext = int64_t{1} << 31;
constexpr uint64_t kMaxConfigJsonBytes = uint64_t{64} << 20;

void check_range(const std::string& source, const char* field, int64_t value, int64_t max) {
  if (value <= 0) fail("{}: {} must be positive, found {}", source, field, value);
  if (value > max) fail("{}: {} = {} is above the supported maximum {}", source, field, value, max);
}

void check_positive_finite(const std::string& source, const char* field, double value) {
  if (!std::isfinite(value) || value <= 0) fail("{}: {} must be a positive finite number, found {}", source, field, value);
}

// ---- GGUF ----------------------------------------------------------------------------------

class GgufKeys {
 public:
  GgufKeys(const gguf::File& file, std::string prefix) : file_(file), prefix_(std::move(prefix)) {}

  int64_t required_int(const std::string& name) const {
    if (auto value = file_.get_int(prefix_ + name)) return *value;
    missing(name);
  }
  std::optional<int64_t> optional_int(const std::string& name) const { return file_.get_int(prefix_ + name); }
  double required_float(const std::string& name) const {
    if (auto value = file_.get_float(prefix_ + name)) return *value;
    missing(name);
  }
  std::optional<double> optional_float(const std::string& name) const { return file_.get_float(prefix_ + name); }
  std::optional<std::string> optional_string(const std::string& name) const {
    return file_.get_string(prefix_ + name);
  }
  std::string key(const std::string& name) const { return prefix_ + name; }

 private:
  [[noreturn]] void missing(const std::string& name) const {
    fail("{}: missing metadata key '{}'", file_.path(), prefix_ + name);
  }
  const gguf::File& file_;
  std::string prefix_;
};

int64_t gguf_vocab_size(const gguf::File& file, const GgufKeys& keys) {
  if (auto vocab = keys.optional_int("vocab_size")) return *vocab;
  const auto& metadata = file.metadata();
  if (auto it = metadata.find("tokenizer.ggml.tokens"); it != metadata.end()) {
    if (const auto* tokens = std::get_if<gguf::Array>(&it->second.data)) return static_cast<int64_t>(tokens->size());
    fail("{}: key 'tokenizer.ggml.tokens': expected an ARRAY of STRING", file.path());
  }
  fail("{}: missing metadata keys '{}' and 'tokenizer.ggml.tokens' (one gives the vocabulary size)", file.path(),
       keys.key("vocab_size"));
}

void read_gguf_rope_scaling(const gguf::File& file, const GgufKeys& keys, LlamaConfig& config) {
  const std::string type = keys.optional_string("rope.scaling.type").value_or("none");
  if (type == "none") {
    config.rope_scaling.type = "";
  } else if (type == "linear") {
    config.rope_scaling.type = "linear";
    config.rope_scaling.factor = keys.required_float("rope.scaling.factor");
  } else if (type == "llama3") {
    // Not written by llama.cpp (it stores rope_freqs.weight), but unambiguous when present.
    config.rope_scaling.type = "llama3";
    config.rope_scaling.factor = keys.required_float("rope.scaling.factor");
    config.rope_scaling.low_freq_factor = keys.optional_float("rope.scaling.low_freq_factor").value_or(1.0);
    config.rope_scaling.high_freq_factor = keys.optional_float("rope.scaling.high_freq_factor").value_or(4.0);
    config.rope_scaling.original_max_position_embeddings = keys.required_int("rope.scaling.original_context_length");
  } else {
    fail("{}: key '{}': unsupported rope scaling type '{}' (Octet supports none, linear, llama3)", file.path(),
         keys.key("rope.scaling.type"), type);
  }

  if (const gguf::TensorInfo* factors = file.find_tensor("rope_freqs.weight")) {
    const auto expected = static_cast<uint64_t>(config.head_dim / 2);
    if (factors->element_count != expected)
      fail("{}: tensor 'rope_freqs.weight': expected {} elements (head_dim / 2), found {}", file.path(), expected,
           factors->element_count);
    const std::vector<float> values = file.dequantize(*factors);
    config.rope_freq_factors.assign(values.begin(), values.end());
  }
}

// ---- Hugging Face config.json ----------------------------------------------------------------

class JsonKeys {
 public:
  JsonKeys(const nlohmann::json& object, std::string source, std::string prefix = "")
      : object_(object), source_(std::move(source)), prefix_(std::move(prefix)) {}

  // nullptr when absent or null (HF writes null for "use the default").
  const nlohmann::json* find(const char* key) const {
    const auto it = object_.find(key);
    return it == object_.end() || it->is_null() ? nullptr : &*it;
  }
  int64_t required_int(const char* key) const {
    if (auto value = optional_int(key)) return *value;
    missing(key);
  }
  std::optional<int64_t> optional_int(const char* key) const {
    const nlohmann::json* value = find(key);
    if (!value) return std::nullopt;
    return to_int(*value, key);
  }
  double required_number(const char* key) const {
    if (auto value = optional_number(key)) return *value;
    missing(key);
  }
  std::optional<double> optional_number(const char* key) const {
    const nlohmann::json* value = find(key);
    if (!value) return std::nullopt;
    if (!value->is_number()) wrong_type(key, "a number", *value);
    return value->get<double>();
  }
  std::optional<bool> optional_bool(const char* key) const {
    const nlohmann::json* value = find(key);
    if (!value) return std::nullopt;
    if (!value->is_boolean()) wrong_type(key, "true or false", *value);
    return value->get<bool>();
  }
  std::optional<std::string> optional_string(const char* key) const {
    const nlohmann::json* value = find(key);
    if (!value) return std::nullopt;
    if (!value->is_string()) wrong_type(key, "a string", *value);
    return value->get<std::string>();
  }
  // An integer, or a list of integers (eos_token_id in Llama 3.1+).
  std::vector<int64_t> int_or_int_list(const char* key) const {
    const nlohmann::json* value = find(key);
    if (!value) return {};
    if (!value->is_array()) return {to_int(*value, key)};
    std::vector<int64_t> result;
    for (const auto& element : *value) result.push_back(to_int(element, key));
    return result;
  }
  std::string key(const char* name) const { return prefix_ + name; }
  const std::string& source() const { return source_; }

 private:
  int64_t to_int(const nlohmann::json& value, const char* key) const {
    if (!value.is_number_integer()) wrong_type(key, "an integer", value);
    if (value.is_number_unsigned() && value.get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
      fail("{}: key '{}': {} does not fit a signed 64-bit integer", source_, prefix_ + key, value.dump());
    return value.get<int64_t>();
  }
  [[noreturn]] void missing(const char* key) const { fail("{}: missing key '{}'", source_, prefix_ + key); }
  [[noreturn]] void wrong_type(const char* key, const char* expected, const nlohmann::json& found) const {
    fail("{}: key '{}': expected {}, found {} {}", source_, prefix_ + key, expected, found.type_name(),
         found.dump().substr(0, 80));
  }

  const nlohmann::json& object_;
  std::string source_;
  std::string prefix_;
};

RopeScaling read_hf_rope_scaling(const JsonKeys& keys) {
  RopeScaling scaling;
  const nlohmann::json* object = keys.find("rope_scaling");
  if (!object) return scaling;
  if (!object->is_object()) fail("{}: key 'rope_scaling': expected an object or null, found {}", keys.source(),
                                 object->type_name());
  const JsonKeys rope(*object, keys.source(), "rope_scaling.");
  // transformers renamed "type" to "rope_type"; files from either era exist.
  std::optional<std::string> type = rope.optional_string("rope_type");
  const char* type_key = "rope_type";
  if (!type) {
    type = rope.optional_string("type");
    type_key = "type";
  }
  if (!type) fail("{}: key 'rope_scaling' has neither 'rope_type' nor 'type'", keys.source());
  if (*type == "default") return scaling;
  if (*type == "linear") {
    scaling.type = "linear";
    scaling.factor = rope.required_number("factor");
  } else if (*type == "llama3") {
    scaling.type = "llama3";
    scaling.factor = rope.required_number("factor");
    scaling.low_freq_factor = rope.required_number("low_freq_factor");
    scaling.high_freq_factor = rope.required_number("high_freq_factor");
    scaling.original_max_position_embeddings = rope.required_int("original_max_position_embeddings");
  } else {
    fail("{}: key '{}': unsupported rope scaling '{}' (Octet supports default, linear, llama3)", keys.source(),
         rope.key(type_key), *type);
  }
  return scaling;
}

}  // namespace

LlamaConfig config_from_gguf(const gguf::File& file) {
  const std::string& source = file.path();
  const auto architecture = file.get_string("general.architecture");
  if (!architecture) fail("{}: missing metadata key 'general.architecture'", source);
  if (*architecture != "llama")
    fail("{}: key 'general.architecture' is '{}'; Octet reads only 'llama'", source, *architecture);
  const GgufKeys keys(file, *architecture + ".");

  LlamaConfig config;
  config.architecture = *architecture;
  config.name = file.get_string("general.name").value_or("");
  config.layers = keys.required_int("block_count");
  config.hidden = keys.required_int("embedding_length");
  config.ffn = keys.required_int("feed_forward_length");
  config.heads = keys.required_int("attention.head_count");
  config.kv_heads = keys.optional_int("attention.head_count_kv").value_or(config.heads);
  config.head_dim = keys.optional_int("attention.key_length").value_or(config.heads > 0 ? config.hidden / config.heads : 0);
  if (auto value_length = keys.optional_int("attention.value_length"); value_length && *value_length != config.head_dim)
    fail("{}: key '{}' is {}, but the key length (head_dim) is {}; Octet needs them equal", source,
         keys.key("attention.value_length"), *value_length, config.head_dim);
  if (auto rope_dims = keys.optional_int("rope.dimension_count"); rope_dims && *rope_dims != config.head_dim)
    fail("{}: key '{}' is {}, but head_dim is {}; partial rotary embeddings are not supported", source,
         keys.key("rope.dimension_count"), *rope_dims, config.head_dim);
  config.context_length = keys.required_int("context_length");
  config.rms_norm_eps = keys.required_float("attention.layer_norm_rms_epsilon");
  config.rope_theta = keys.optional_float("rope.freq_base").value_or(10000.0);
  config.vocab = gguf_vocab_size(file, keys);
  read_gguf_rope_scaling(file, keys, config);

  if (const gguf::TensorInfo* embedding = file.find_tensor("token_embd.weight")) {
    const std::vector<uint64_t> expected = {static_cast<uint64_t>(config.hidden), static_cast<uint64_t>(config.vocab)};
    if (embedding->dims != expected)
      fail("{}: tensor 'token_embd.weight': expected dims [{}, {}] (hidden, vocab), found [{}]", source, config.hidden,
           config.vocab, fmt::join(embedding->dims, ", "));
  }
  config.tied_embeddings = file.find_tensor("output.weight") == nullptr;

  if (auto bos = file.get_int("tokenizer.ggml.bos_token_id")) config.bos_token_id = *bos;
  // Llama 3 GGUFs keep end-of-turn (and end-of-message) apart from end-of-text; generation stops
  // on any of them, as the HF eos_token_id list does.
  for (const char* key : {"tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id"}) {
    const auto id = file.get_int(key);
    if (id && std::find(config.eos_token_ids.begin(), config.eos_token_ids.end(), *id) == config.eos_token_ids.end())
      config.eos_token_ids.push_back(*id);
  }
  config.validate(source);
  return config;
}

LlamaConfig config_from_hf_json(const nlohmann::json& json, const std::string& source) {
  if (!json.is_object()) fail("{}: expected a JSON object, found {}", source, json.type_name());
  const JsonKeys keys(json, source);
  if (auto model_type = keys.optional_string("model_type"); model_type && *model_type != "llama")
    fail("{}: key 'model_type' is '{}'; Octet reads only 'llama'", source, *model_type);
  if (auto activation = keys.optional_string("hidden_act"); activation && *activation != "silu")
    fail("{}: key 'hidden_act' is '{}'; Llama uses 'silu'", source, *activation);
  for (const char* bias_key : {"attention_bias", "mlp_bias"})
    if (keys.optional_bool(bias_key).value_or(false))
      fail("{}: key '{}' is true; Octet's Llama has no bias terms", source, bias_key);

  LlamaConfig config;
  config.name = keys.optional_string("_name_or_path").value_or("");
  config.hidden = keys.required_int("hidden_size");
  config.ffn = keys.required_int("intermediate_size");
  config.layers = keys.required_int("num_hidden_layers");
  config.heads = keys.required_int("num_attention_heads");
  config.kv_heads = keys.optional_int("num_key_value_heads").value_or(config.heads);
  config.head_dim = keys.optional_int("head_dim").value_or(config.heads > 0 ? config.hidden / config.heads : 0);
  config.vocab = keys.required_int("vocab_size");
  config.context_length = keys.required_int("max_position_embeddings");
  config.rms_norm_eps = keys.optional_number("rms_norm_eps").value_or(1e-6);  // HF LlamaConfig default
  config.rope_theta = keys.optional_number("rope_theta").value_or(10000.0);
  config.rope_scaling = read_hf_rope_scaling(keys);
  config.tied_embeddings = keys.optional_bool("tie_word_embeddings").value_or(false);
  config.bos_token_id = keys.optional_int("bos_token_id");
  config.eos_token_ids = keys.int_or_int_list("eos_token_id");
  config.validate(source);
  return config;
}

LlamaConfig config_from_hf_file(const std::string& config_json_path) {
  std::ifstream stream(config_json_path, std::ios::binary);
  if (!stream) fail("{}: cannot open", config_json_path);
  std::error_code error;
  const auto size = std::filesystem::file_size(config_json_path, error);
  if (!error && size > kMaxConfigJsonBytes)
    fail("{}: {} bytes is far too large for a config.json (limit {})", config_json_path, size, kMaxConfigJsonBytes);
  nlohmann::json json;
  try {
    json = nlohmann::json::parse(stream);
  } catch (const nlohmann::json::exception& parse_error) {
    fail("{}: invalid JSON: {}", config_json_path, parse_error.what());
  }
  LlamaConfig config = config_from_hf_json(json, config_json_path);
  if (config.name.empty()) {
    // A checkpoint's config.json is named by its directory; configs/models/<name>.json by its stem.
    const std::filesystem::path path(config_json_path);
    config.name = path.filename() == "config.json" ? path.parent_path().filename().string() : path.stem().string();
  }
  return config;
}

int64_t LlamaConfig::parameter_count() const {
  const int64_t embedding = vocab * hidden;
  const int64_t attention = hidden * q_dim() + 2 * hidden * kv_dim() + q_dim() * hidden;  // q, k, v, o
  const int64_t mlp = 3 * hidden * ffn;                                                   // gate, up, down
  const int64_t norms = 2 * hidden;                                                       // attention, mlp
  const int64_t head = tied_embeddings ? 0 : vocab * hidden;
  return embedding + layers * (attention + mlp + norms) + hidden /* final norm */ + head;
}

std::vector<double> LlamaConfig::rope_inverse_frequencies() const {
  const int64_t pairs = head_dim / 2;
  std::vector<double> frequencies(static_cast<size_t>(std::max<int64_t>(pairs, 0)));
  for (int64_t i = 0; i < pairs; ++i) {
    double inverse = std::pow(rope_theta, -2.0 * static_cast<double>(i) / static_cast<double>(head_dim));
    if (rope_scaling.type == "linear") {
      inverse /= rope_scaling.factor;
    } else if (rope_scaling.type == "llama3") {
      // Long wavelengths (low frequencies) are stretched by factor, short ones kept, and the band
      // in between interpolated, so that the model's local attention is untouched.
      const auto old_context = static_cast<double>(rope_scaling.original_max_position_embeddings);
      const double low_freq_wavelength = old_context / rope_scaling.low_freq_factor;
      const double high_freq_wavelength = old_context / rope_scaling.high_freq_factor;
      const double wavelength = 2.0 * std::numbers::pi / inverse;
      if (wavelength > low_freq_wavelength) {
        inverse /= rope_scaling.factor;
      } else if (wavelength >= high_freq_wavelength) {
        const double smooth = (old_context / wavelength - rope_scaling.low_freq_factor) /
                              (rope_scaling.high_freq_factor - rope_scaling.low_freq_factor);
        inverse = (1.0 - smooth) * inverse / rope_scaling.factor + smooth * inverse;
      }
    }
    if (!rope_freq_factors.empty()) inverse /= rope_freq_factors[static_cast<size_t>(i)];
    frequencies[static_cast<size_t>(i)] = inverse;
  }
  return frequencies;
}

void LlamaConfig::validate(const std::string& source) const {
  check_range(source, "layers (block_count / num_hidden_layers)", layers, kMaxLayers);
  check_range(source, "hidden (embedding_length / hidden_size)", hidden, kMaxHidden);
  check_range(source, "ffn (feed_forward_length / intermediate_size)", ffn, kMaxFfn);
  check_range(source, "heads (attention.head_count / num_attention_heads)", heads, kMaxHeads);
  check_range(source, "kv_heads (attention.head_count_kv / num_key_value_heads)", kv_heads, kMaxHeads);
  check_range(source, "head_dim (attention.key_length / head_dim)", head_dim, kMaxHeadDim);
  check_range(source, "vocab (vocab_size)", vocab, kMaxVocab);
  check_range(source, "context_length (context_length / max_position_embeddings)", context_length, kMaxContext);
  if (heads % kv_heads != 0)
    fail("{}: heads ({}) must be a multiple of kv_heads ({}) for grouped-query attention", source, heads, kv_heads);
  if (head_dim % 2 != 0) fail("{}: head_dim must be even for rotary embeddings, found {}", source, head_dim);
  check_positive_finite(source, "rms_norm_eps", rms_norm_eps);
  check_positive_finite(source, "rope_theta", rope_theta);

  if (rope_scaling.type == "linear") {
    check_positive_finite(source, "rope_scaling.factor", rope_scaling.factor);
  } else if (rope_scaling.type == "llama3") {
    check_positive_finite(source, "rope_scaling.factor", rope_scaling.factor);
    check_positive_finite(source, "rope_scaling.low_freq_factor", rope_scaling.low_freq_factor);
    check_positive_finite(source, "rope_scaling.high_freq_factor", rope_scaling.high_freq_factor);
    if (!(rope_scaling.high_freq_factor > rope_scaling.low_freq_factor))
      fail("{}: rope_scaling.high_freq_factor ({}) must exceed low_freq_factor ({})", source,
           rope_scaling.high_freq_factor, rope_scaling.low_freq_factor);
    check_range(source, "rope_scaling.original_max_position_embeddings",
                rope_scaling.original_max_position_embeddings, kMaxContext);
    if (!rope_freq_factors.empty())
      fail("{}: both llama3 rope scaling and rope_freqs factors are given; they would apply twice", source);
  } else if (!rope_scaling.type.empty()) {
    fail("{}: unsupported rope scaling type '{}'", source, rope_scaling.type);
  }
  if (!rope_freq_factors.empty()) {
    if (static_cast<int64_t>(rope_freq_factors.size()) != head_dim / 2)
      fail("{}: {} rope frequency factors, expected head_dim / 2 = {}", source, rope_freq_factors.size(), head_dim / 2);
    for (size_t i = 0; i < rope_freq_factors.size(); ++i)
      if (!std::isfinite(rope_freq_factors[i]) || rope_freq_factors[i] <= 0)
        fail("{}: rope frequency factor {} is {}, expected a positive finite number", source, i, rope_freq_factors[i]);
  }

  if (bos_token_id && (*bos_token_id < 0 || *bos_token_id >= vocab))
    fail("{}: bos_token_id {} is outside the vocabulary [0, {})", source, *bos_token_id, vocab);
  for (int64_t eos : eos_token_ids)
    if (eos < 0 || eos >= vocab) fail("{}: eos_token_id {} is outside the vocabulary [0, {})", source, eos, vocab);
}

}  // namespace octet::model
