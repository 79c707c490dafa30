#include "config/schema.h"

#include "common/error.h"
#include "config/value.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>

namespace octet::config {

namespace {

using T = ValueType;

// Keys of one section stay together: render_config nests them in this order.
std::vector<KeyInfo> make_schema() {
  return {
      {.name = "model_name", .type = T::string, .default_yaml = "\"\"",
       .doc = "The seed's name for llm.model (the flagship config sets it).", .alias_of = "llm.model",
       .alias_kind = AliasKind::same},

      {.name = "llm.model", .type = T::string, .default_yaml = "\"\"",
       .doc = "A GGUF file, a Hugging Face checkpoint directory, or a repo id (nvidia/...) that the model "
              "manager maps to its folder; empty: SmolLM2-135M-Instruct.Q4_1.gguf in $OCTET_MODELS (./models).",
       .seed_env = {"LLM_MODEL"}},
      {.name = "llm.precision", .type = T::choice, .default_yaml = "fp8", .allowed = {"fp8", "bf16", "f32"},
       .doc = "Arithmetic of the linear layers: fp8 (E4M3 weights and activations), bf16 or f32."},
      {.name = "llm.lm_head_precision", .type = T::choice, .default_yaml = "auto", .allowed = {"auto", "bf16", "fp8"},
       .doc = "LM head when llm.precision is fp8: fp8 (E4M3, a float scale per vocabulary row, dynamic per-token "
              "activations) or bf16; auto: what a pre-quantized checkpoint stores (ModelOpt / compressed-tensors "
              "exclude lm_head: bf16), else bf16 (an fp8 head raised SmolLM2's KL from BF16 by 55% over the FP8 "
              "body's: docs/ACCURACY.md). Other precisions keep the head in theirs (fp8 is then an error)."},
      {.name = "llm.embedding_precision", .type = T::choice, .default_yaml = "auto", .allowed = {"auto", "bf16", "fp8"},
       .doc = "Embedding table when llm.precision is fp8: fp8 (E4M3 codes, a float scale per row) or bf16; auto: "
              "as llm.lm_head_precision's auto. A tied table and an fp8 head share one copy."},
      {.name = "llm.use_fp8", .type = T::boolean, .default_yaml = "true",
       .doc = "The seed's switch for llm.precision: true is fp8, false is bf16 (f32 stays f32).",
       .alias_of = "llm.precision", .alias_kind = AliasKind::fp8_flag, .seed_env = {"USE_FP8"}},
      {.name = "llm.device", .type = T::choice, .default_yaml = "auto", .allowed = {"auto", "cpu", "cuda"},
       .doc = "Where to run: auto picks CUDA when a capable GPU is present."},
      {.name = "llm.threads", .type = T::integer, .default_yaml = "0", .min = 0, .doc = "CPU threads; 0: all cores."},
      {.name = "llm.max_tokens", .type = T::integer, .default_yaml = "256", .min = 1,
       .doc = "Most tokens generated per request."},
      {.name = "llm.temperature", .type = T::number, .default_yaml = "0.7", .min = 0,
       .doc = "Sampling temperature; 0 is greedy."},
      {.name = "llm.top_p", .type = T::number, .default_yaml = "1.0", .min = 0, .max = 1,
       .doc = "Nucleus sampling mass; 1: off."},
      {.name = "llm.top_k", .type = T::integer, .default_yaml = "0", .min = 0,
       .doc = "Keep the k most likely tokens; 0: off."},
      {.name = "llm.min_p", .type = T::number, .default_yaml = "0.0", .min = 0, .max = 1,
       .doc = "Drop tokens below min_p times the top probability; 0: off."},
      {.name = "llm.repetition_penalty", .type = T::number, .default_yaml = "1.0", .min = 0, .min_exclusive = true,
       .doc = "Penalty for tokens already seen; 1: off."},
      {.name = "llm.seed", .type = T::integer, .default_yaml = "0", .min = 0,
       .doc = "Random seed: the same seed gives the same output."},
      {.name = "llm.quantization.enable_fp8", .type = T::boolean, .default_yaml = "true",
       .doc = "The seed's switch for llm.precision, as llm.use_fp8.", .alias_of = "llm.precision",
       .alias_kind = AliasKind::fp8_flag},
      {.name = "llm.quantization.fp8_kv_cache", .type = T::boolean, .default_yaml = "true",
       .doc = "The seed's name for quantization.quantize_kv_cache.", .alias_of = "quantization.quantize_kv_cache",
       .alias_kind = AliasKind::same},

      {.name = "quantization.enabled", .type = T::boolean, .default_yaml = "true",
       .doc = "The seed's switch for llm.precision, as llm.use_fp8.", .alias_of = "llm.precision",
       .alias_kind = AliasKind::fp8_flag},
      {.name = "quantization.precision", .type = T::choice, .default_yaml = "fp8", .allowed = {"fp8", "bf16", "f32"},
       .doc = "The seed's name for llm.precision.", .alias_of = "llm.precision", .alias_kind = AliasKind::same},
      {.name = "quantization.data_type", .type = T::choice, .default_yaml = "float8_e4m3fn",
       .allowed = {"float8_e4m3fn", "float8_e5m2"},
       .doc = "FP8 encoding of the KV cache when engine.kv_cache_dtype is auto. Weights and activations are "
              "always E4M3: E5M2's 2-bit mantissa is too coarse for them.",
       .seed_env = {"FP8_QUANTIZATION_TYPE"}},
      {.name = "quantization.quantize_kv_cache", .type = T::boolean, .default_yaml = "true",
       .doc = "Keep the KV cache in FP8 when the precision is fp8; false keeps it in BF16 (the engine "
              "does not support that yet)."},

      {.name = "engine.max_context_length", .type = T::integer, .default_yaml = "0", .min = 0,
       .doc = "Context length in tokens; 0: the model's, at most 8192."},
      {.name = "engine.tensor_parallel_size", .type = T::integer, .default_yaml = "1", .min = 1,
       .doc = "GPUs each layer is split across (one rank per GPU).", .seed_env = {"TENSOR_PARALLEL_SIZE"}},
      {.name = "engine.gpu_memory_utilization", .type = T::number, .default_yaml = "0.90", .min = 0, .max = 1,
       .min_exclusive = true, .doc = "Share of each GPU's memory the engine may take (weights, KV cache, buffers)."},
      {.name = "engine.engine_dir", .type = T::string, .default_yaml = "\"\"",
       .doc = "A prepared FP8 engine directory (made by `octet quantize`; the seed's TensorRT-LLM engine dir): when set, it is the model that runs, loaded with no conversion; empty: none.",
       .seed_env = {"TENSORRT_LLM_ENGINE_DIR"}},
      {.name = "engine.kv_cache_dtype", .type = T::choice, .default_yaml = "auto",
       .allowed = {"auto", "float8_e4m3fn", "float8_e5m2"},
       .doc = "FP8 format of the KV cache; auto: quantization.data_type. Ignored when the KV cache is not FP8."},
      {.name = "engine.numerics", .type = T::choice, .default_yaml = "fast", .allowed = {"fast", "reproducible"},
       .doc = "fast: each backend's fastest kernels (the CPU and the GPU agree to rounding); reproducible: the "
              "same bits on every backend and thread count, every sum in one fixed order (exact for FP8 "
              "products), much slower on the GPU (docs/ACCURACY.md, \"Reproducible numerics\")."},

      {.name = "planner.mode", .type = T::choice, .default_yaml = "auto", .allowed = {"local", "api", "auto"},
       .doc = "local: the engine; api: an OpenAI-compatible server; auto: the engine, falling back to the "
              "API when the local model cannot run and an API key is set."},
      {.name = "planner.system_prompt", .type = T::string,
       .default_yaml = "\"You are a helpful AI assistant. Explain the steps to reach the goal.\"",
       .doc = "System message sent before every planning request."},
      {.name = "planner.max_tokens", .type = T::integer, .default_yaml = "512", .min = 1,
       .doc = "Most tokens per plan."},
      {.name = "planner.temperature", .type = T::number, .default_yaml = "0.2", .min = 0,
       .doc = "Sampling temperature for plans (low: plans should be steady)."},

      {.name = "api.base_url", .type = T::string, .default_yaml = "https://api.openai.com/v1",
       .doc = "OpenAI-compatible endpoint; the key comes from OCTET_API_KEY or OPENAI_API_KEY, never a file."},
      {.name = "api.model", .type = T::string, .default_yaml = "gpt-4o-mini", .doc = "Model name sent to the API."},
      {.name = "api.timeout_s", .type = T::number, .default_yaml = "60", .min = 0, .min_exclusive = true,
       .doc = "Seconds before a request is abandoned."},
      {.name = "api.max_retries", .type = T::integer, .default_yaml = "3", .min = 0,
       .doc = "Retries after a timeout, 429 or 5xx."},
      {.name = "api.backoff_s", .type = T::number, .default_yaml = "1.0", .min = 0,
       .doc = "Delay before the first retry; it doubles with each retry."},

      {.name = "server.host", .type = T::string, .default_yaml = "127.0.0.1",
       .doc = "Address to listen on; 0.0.0.0 exposes the server to the network."},
      {.name = "server.port", .type = T::integer, .default_yaml = "8000", .min = 0, .max = 65535,
       .doc = "TCP port; 0: any free port (printed at start)."},
      {.name = "server.api_key", .type = T::string, .default_yaml = "\"\"",
       .doc = "Bearer token clients must send; empty: no authentication. Prefer OCTET_SERVER_API_KEY to a file.",
       .secret = true},
      {.name = "server.max_concurrency", .type = T::integer, .default_yaml = "8", .min = 1,
       .doc = "Requests generated at once; more wait in a queue."},
      {.name = "server.max_body_bytes", .type = T::integer, .default_yaml = "1048576", .min = 1,
       .doc = "Largest request body accepted."},
      {.name = "server.kv_cache_blocks", .type = T::integer, .default_yaml = "0", .min = -1,
       .doc = "KV-cache blocks (16 positions each) shared by the running requests; 0: max_concurrency full "
              "contexts; -1: no shared pool, each slot keeps its own context (backends without block tables). "
              "A request waits while its blocks are short and is refused when it can never fit."},
      {.name = "server.max_batch_tokens", .type = T::integer, .default_yaml = "0", .min = 0,
       .doc = "Tokens per forward step: one per running request, prompt chunks fill the rest (at least "
              "max_concurrency); 0: 2048 on a GPU, where long chunks prefill several times faster per token, "
              "256 on the CPU, where they would stall the running streams for seconds."},
      {.name = "server.shutdown_timeout_s", .type = T::number, .default_yaml = "10", .min = 0,
       .doc = "On SIGINT/SIGTERM, seconds in-flight requests may run on before they are aborted."},

      {.name = "logging.level", .type = T::choice, .default_yaml = "warn",
       .allowed = {"trace", "debug", "info", "warn", "error", "off"}, .doc = "Log level on stderr."},
      {.name = "logging.debug", .type = T::boolean, .default_yaml = "false",
       .doc = "Debug logging (the seed's FP8_DEBUG): lowers logging.level to debug.", .seed_env = {"FP8_DEBUG"}},

      {.name = "eval.tasks", .type = T::choice_list, .default_yaml = "[perplexity]",
       .allowed = {"perplexity", "mmlu", "gsm8k", "humaneval"}, .doc = "Tasks the evaluator runs."},
      {.name = "eval.num_samples", .type = T::integer, .default_yaml = "0", .min = 0,
       .doc = "Examples per task; 0: all."},
      {.name = "eval.baseline_precision", .type = T::choice, .default_yaml = "bf16", .allowed = {"bf16", "f32"},
       .doc = "Precision the FP8 results are compared against."},
      {.name = "eval.text_path", .type = T::string, .default_yaml = "\"\"",
       .doc = "Text for the perplexity task; empty: tests/fixtures/english_text.txt of the source tree."},
  };
}

}  // namespace

const std::vector<KeyInfo>& schema() {
  static const std::vector<KeyInfo> table = make_schema();
  return table;
}

const KeyInfo* find_key(std::string_view name) {
  for (const auto& key : schema())
    if (key.name == name) return &key;
  return nullptr;
}

bool is_section(std::string_view name) {
  for (const auto& key : schema())
    if (key.name.size() > name.size() && key.name.starts_with(name) && key.name[name.size()] == '.') return true;
  return false;
}

std::vector<std::string> keys_in_section(std::string_view section) {
  std::vector<std::string> keys;
  for (const auto& key : schema())
    if (key.name.starts_with(section) && key.name.size() > section.size() && key.name[section.size()] == '.')
      keys.emplace_back(key.name);
  return keys;
}

std::vector<std::string> top_level_sections() {
  std::vector<std::string> sections;
  for (const auto& key : schema()) {
    const auto dot = key.name.find('.');
    if (dot == std::string_view::npos) continue;
    std::string section(key.name.substr(0, dot));
    if (std::find(sections.begin(), sections.end(), section) == sections.end()) sections.push_back(section);
  }
  return sections;
}

std::string environment_name(std::string_view key) {
  std::string name = "OCTET_";
  for (char c : key) name += c == '.' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return name;
}

ConfigValue default_value(const KeyInfo& key) {
  return parse_yaml_text(key, key.default_yaml, fmt::format("schema default of {}", key.name));
}

std::string_view type_name(const KeyInfo& key) {
  switch (key.type) {
    case ValueType::string: return "string";
    case ValueType::boolean: return "boolean";
    case ValueType::integer: return "integer";
    case ValueType::number: return "number";
    case ValueType::choice: return "choice";
    case ValueType::choice_list: return "list of choices";
  }
  return "?";
}

}  // namespace octet::config
