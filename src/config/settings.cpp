// The plain structs, built once from the resolved values, and their mapping onto the engine's options.
#include "common/error.h"
#include "config/assignment.h"
#include "octet/config.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>

namespace octet {

namespace {

class Reader {
 public:
  explicit Reader(const ResolvedConfig& resolved) : resolved_(resolved) {}
  const std::string& text(std::string_view key) const { return std::get<std::string>(value(key)); }
  bool flag(std::string_view key) const { return std::get<bool>(value(key)); }
  int64_t integer(std::string_view key) const { return std::get<int64_t>(value(key)); }
  double number(std::string_view key) const { return std::get<double>(value(key)); }
  const std::vector<std::string>& list(std::string_view key) const {
    return std::get<std::vector<std::string>>(value(key));
  }

 private:
  const ConfigValue& value(std::string_view key) const { return resolved_.at(key).value; }
  const ResolvedConfig& resolved_;
};

// logging.debug may only make logging more verbose, never less (level trace stays trace).
std::string effective_log_level(const std::string& level, bool debug) {
  static constexpr std::array<std::string_view, 6> order = {"trace", "debug", "info", "warn", "error", "off"};
  const auto position = std::find(order.begin(), order.end(), level) - order.begin();
  return debug && position > 1 ? "debug" : level;
}

Config build(ResolvedConfig resolved) {
  const Reader r(resolved);
  Config c;
  c.llm.model = r.text("llm.model");
  c.llm.precision = parse_precision(r.text("llm.precision"));
  c.llm.lm_head_precision = parse_vocab_precision(r.text("llm.lm_head_precision"));
  c.llm.embedding_precision = parse_vocab_precision(r.text("llm.embedding_precision"));
  c.llm.device = parse_device(r.text("llm.device"));
  c.llm.threads = static_cast<int>(r.integer("llm.threads"));
  c.llm.max_tokens = static_cast<int>(r.integer("llm.max_tokens"));
  c.llm.temperature = static_cast<float>(r.number("llm.temperature"));
  c.llm.top_p = static_cast<float>(r.number("llm.top_p"));
  c.llm.top_k = static_cast<int>(r.integer("llm.top_k"));
  c.llm.min_p = static_cast<float>(r.number("llm.min_p"));
  c.llm.repetition_penalty = static_cast<float>(r.number("llm.repetition_penalty"));
  c.llm.seed = static_cast<uint64_t>(r.integer("llm.seed"));

  c.quantization.data_type = r.text("quantization.data_type");
  c.quantization.quantize_kv_cache = r.flag("quantization.quantize_kv_cache");

  c.engine.max_context_length = r.integer("engine.max_context_length");
  c.engine.tensor_parallel_size = static_cast<int>(r.integer("engine.tensor_parallel_size"));
  c.engine.gpu_memory_utilization = r.number("engine.gpu_memory_utilization");
  c.engine.engine_dir = r.text("engine.engine_dir");
  c.engine.numerics = parse_numerics(r.text("engine.numerics"));
  const bool fp8_kv = c.llm.precision == Precision::fp8 && c.quantization.quantize_kv_cache;
  const std::string& kv_choice = r.text("engine.kv_cache_dtype");
  c.engine.kv_cache_dtype = !fp8_kv               ? (c.llm.precision == Precision::f32 ? "f32" : "bf16")
                            : kv_choice == "auto" ? c.quantization.data_type
                                                  : kv_choice;

  c.planner.mode = r.text("planner.mode");
  c.planner.system_prompt = r.text("planner.system_prompt");
  c.planner.max_tokens = static_cast<int>(r.integer("planner.max_tokens"));
  c.planner.temperature = static_cast<float>(r.number("planner.temperature"));

  c.api.base_url = r.text("api.base_url");
  c.api.model = r.text("api.model");
  c.api.timeout_s = r.number("api.timeout_s");
  c.api.max_retries = static_cast<int>(r.integer("api.max_retries"));
  c.api.backoff_s = r.number("api.backoff_s");

  c.server.host = r.text("server.host");
  c.server.port = static_cast<int>(r.integer("server.port"));
  c.server.api_key = r.text("server.api_key");
  c.server.max_concurrency = static_cast<int>(r.integer("server.max_concurrency"));
  c.server.max_body_bytes = r.integer("server.max_body_bytes");
  c.server.kv_cache_blocks = r.integer("server.kv_cache_blocks");
  c.server.max_batch_tokens = r.integer("server.max_batch_tokens");
  c.server.shutdown_timeout_s = r.number("server.shutdown_timeout_s");

  c.logging.debug = r.flag("logging.debug");
  c.logging.level = effective_log_level(r.text("logging.level"), c.logging.debug);

  c.eval.tasks = r.list("eval.tasks");
  c.eval.num_samples = r.integer("eval.num_samples");
  c.eval.baseline_precision = parse_precision(r.text("eval.baseline_precision"));
  c.eval.text_path = r.text("eval.text_path");
  c.resolved = std::move(resolved);
  return c;
}

}  // namespace

Config load_config(const ConfigRequest& request) {
  Config config = build(resolve_config(request));
  config.api.api_key = config::api_key_from(request.environment);
  return config;
}

EngineOptions engine_options(const Config& config) {
  EngineOptions options;
  options.model_path = config.llm.model.empty() ? default_model_path() : config.llm.model;
  // A prepared engine directory (the seed's TensorRT-LLM engine dir) is what runs when set.
  if (!config.engine.engine_dir.empty()) {
    options.model_path = config.engine.engine_dir;
    options.prepared_engine = true;
  }
  options.precision = config.llm.precision;
  options.lm_head_precision = config.llm.lm_head_precision;
  options.embedding_precision = config.llm.embedding_precision;
  options.device = config.llm.device;
  options.threads = config.llm.threads;
  options.max_context = config.engine.max_context_length;
  options.numerics = config.engine.numerics;
  if (config.llm.precision == Precision::fp8 && !config.quantization.quantize_kv_cache)
    fail(
        "quantization.quantize_kv_cache = false: the engine keeps the KV cache in FP8 when the precision is fp8 "
        "(set llm.precision=bf16 for a BF16 cache)");
  // Other precisions keep a BF16/F32 cache and ignore the field, which must still name an FP8 format.
  options.kv_cache_dtype =
      config.llm.precision == Precision::fp8 ? config.engine.kv_cache_dtype : config.quantization.data_type;
  return options;
}

GenerationParams generation_params(const Config& config) {
  GenerationParams params;
  params.max_tokens = config.llm.max_tokens;
  params.temperature = config.llm.temperature;
  params.top_p = config.llm.top_p;
  params.top_k = config.llm.top_k;
  params.min_p = config.llm.min_p;
  params.repetition_penalty = config.llm.repetition_penalty;
  params.seed = config.llm.seed;
  return params;
}

}  // namespace octet
