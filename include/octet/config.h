#pragma once
// Configuration: YAML files composed Hydra-style, environment variables and key=value overrides,
// resolved once into plain structs that flow down. Precedence (docs/CONFIG.md):
//   defaults.yaml < config files (defaults lists, then the named file) < environment < command line.
// Every resolved value remembers where it came from, so `octet config show` can say why it is what it is.
#include "octet/engine.h"

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace octet {

struct LlmSettings {
  std::string model;  // empty: default_model_path() (engine_options fills it in)
  Precision precision = Precision::fp8;
  VocabPrecision lm_head_precision = VocabPrecision::auto_select;
  VocabPrecision embedding_precision = VocabPrecision::auto_select;
  Device device = Device::auto_select;
  int threads = 0;
  int max_tokens = 256;
  float temperature = 0.7f;
  float top_p = 1.0f;
  int top_k = 0;
  float min_p = 0.0f;
  float repetition_penalty = 1.0f;
  uint64_t seed = 0;
};

// The seed's aliases (llm.use_fp8, quantization.enabled, …) are folded into llm.precision and
// quantize_kv_cache; they have no fields of their own so that nothing reads a stale alias.
struct QuantizationSettings {
  std::string data_type = "float8_e4m3fn";
  bool quantize_kv_cache = true;
};

struct EngineSettings {
  int64_t max_context_length = 0;  // 0: the model's, at most 8192
  int tensor_parallel_size = 1;
  double gpu_memory_utilization = 0.90;
  std::string engine_dir;
  std::string kv_cache_dtype = "float8_e4m3fn";  // resolved: float8_e4m3fn | float8_e5m2 | bf16 | f32
  Numerics numerics = Numerics::fast;
};

struct PlannerSettings {
  std::string mode = "auto";  // local | api | auto
  std::string system_prompt;
  int max_tokens = 512;
  float temperature = 0.2f;
};

struct ApiSettings {
  std::string base_url;
  std::string model;
  double timeout_s = 60;
  int max_retries = 3;
  double backoff_s = 1;
  std::string api_key;  // from OCTET_API_KEY or OPENAI_API_KEY only, never from a file
};

struct ServerSettings {
  std::string host = "127.0.0.1";
  int port = 8000;
  std::string api_key;  // empty: no authentication
  int max_concurrency = 8;
  int64_t max_body_bytes = 1 << 20;
  int64_t kv_cache_blocks = 0;   // 0: max_concurrency full contexts
  int64_t max_batch_tokens = 256;
  double shutdown_timeout_s = 10;
};

struct LoggingSettings {
  std::string level = "warn";  // effective level: logging.debug lowers it to debug
  bool debug = false;
};

struct EvalSettings {
  std::vector<std::string> tasks;
  int64_t num_samples = 0;  // 0: all
  Precision baseline_precision = Precision::bf16;
  std::string text_path;
};

using ConfigValue = std::variant<bool, int64_t, double, std::string, std::vector<std::string>>;

struct Provenance {
  enum class Source { built_in, defaults_file, file, environment, command_line, derived };
  Source source = Source::built_in;
  std::string where;             // "defaults.yaml:12", "fp8_model.yaml:3", "USE_FP8", "llm.use_fp8=true", …
  std::string describe() const;  // "default (defaults.yaml:12)", "env USE_FP8", "command line …"
};

struct ResolvedValue {
  std::string key;  // dotted: "engine.max_context_length"
  ConfigValue value;
  Provenance provenance;
};

struct ResolvedConfig {
  std::string config_path;            // where config names were looked up ("" when none was found)
  std::vector<std::string> files;     // files applied, in order, relative to config_path
  std::vector<ResolvedValue> values;  // every schema key, in schema order
  const ResolvedValue& at(std::string_view key) const;
};

struct Config {
  LlmSettings llm;
  QuantizationSettings quantization;
  EngineSettings engine;
  PlannerSettings planner;
  ApiSettings api;
  ServerSettings server;
  LoggingSettings logging;
  EvalSettings eval;
  ResolvedConfig resolved;
};

std::map<std::string, std::string> current_environment();

struct ConfigRequest {
  std::string config_path;             // "": $OCTET_CONFIG_PATH, else <source dir>/configs
  std::string config_name;             // "": defaults.yaml alone; ".yaml" optional; may name a subfolder file
  std::vector<std::string> overrides;  // "key=value", value parsed as a YAML scalar (or flow list)
  std::map<std::string, std::string> environment = current_environment();
};

// Throws octet::Error naming the file:line, variable or override and the allowed values.
ResolvedConfig resolve_config(const ConfigRequest& request);
Config load_config(const ConfigRequest& request);

// YAML of every key; with_provenance adds a comment per value saying where it came from.
std::string render_config(const ResolvedConfig& resolved, bool with_provenance);

// The key table of docs/CONFIG.md, generated from the schema (a test keeps the doc in step).
std::string config_keys_markdown();

EngineOptions engine_options(const Config& config);
GenerationParams generation_params(const Config& config);

// Moves every argument that looks like an override (^[A-Za-z_][\w.]*=) out of args and returns them
// in order; arguments after a "--" are left alone so prompts may contain "a=b".
std::vector<std::string> extract_overrides(std::vector<std::string>& args);

}  // namespace octet
