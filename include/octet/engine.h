#pragma once
// The one API everything above the engine uses (CLI, planner, server, evaluator).
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace octet {

enum class Precision { fp8, bf16, f32 };
enum class Device { auto_select, cpu, cuda };
// Storage of the vocabulary-sized tensors (the embedding table, the LM head) in fp8 precision:
// auto (what a pre-quantized checkpoint stores, else the engine's default), bf16, or fp8 (E4M3 with
// one float scale per vocabulary row). Other precisions keep them in that precision.
enum class VocabPrecision { auto_select, bf16, fp8 };
// How the backend orders and rounds its arithmetic (engine.numerics). fast: each backend's fastest
// kernels, whose results agree to rounding; reproducible: the same bits on every backend (the CPU
// and the GPU give identical logits), at a cost in speed (docs/ACCURACY.md, "Reproducible numerics").
enum class Numerics { fast, reproducible };

Precision parse_precision(std::string_view name);  // "fp8" | "bf16" | "f32"
std::string_view precision_name(Precision precision);
Device parse_device(std::string_view name);  // "auto" | "cpu" | "cuda"
VocabPrecision parse_vocab_precision(std::string_view name);  // "auto" | "bf16" | "fp8"
std::string_view vocab_precision_name(VocabPrecision precision);
std::string_view device_name(Device device);
Numerics parse_numerics(std::string_view name);  // "fast" | "reproducible"
std::string_view numerics_name(Numerics numerics);

struct EngineOptions {
  std::string model_path;  // a GGUF file or a Hugging Face directory (BF16/F16/F32, ModelOpt or compressed-tensors FP8)
  // model_path is a prepared engine directory (engine.engine_dir / TENSORRT_LLM_ENGINE_DIR): it must
  // hold FP8 weights already (made by `octet quantize`), so loading does no quantization.
  bool prepared_engine = false;
  Precision precision = Precision::fp8;
  Device device = Device::auto_select;
  int threads = 0;            // 0: all cores
  int64_t max_context = 0;    // 0: min(model context, 8192)
  std::string kv_cache_dtype = "float8_e4m3fn";  // fp8 precision only; "float8_e5m2" selectable
  VocabPrecision lm_head_precision = VocabPrecision::auto_select;    // fp8 only: bf16 or fp8 needs precision fp8
  VocabPrecision embedding_precision = VocabPrecision::auto_select;
  Numerics numerics = Numerics::fast;
};

struct GenerationParams {
  int max_tokens = 256;
  float temperature = 0.7f;
  float top_p = 1.0f;
  int top_k = 0;
  float min_p = 0.0f;
  float repetition_penalty = 1.0f;
  uint64_t seed = 0;
  std::vector<std::string> stop;  // stop strings (not included in the text)
  bool ignore_eos = false;        // benchmarks: run to max_tokens
};

struct Message {
  std::string role;
  std::string content;
};

struct GenerationResult {
  std::string text;
  std::string finish_reason;  // "stop" or "length"
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;
  double prefill_tok_s = 0;
  double decode_tok_s = 0;
  double time_to_first_token_ms = 0;
  double total_ms = 0;
  uint64_t peak_memory_bytes = 0;  // process peak resident set
  std::vector<double> inter_token_ms;  // gaps between consecutive generated tokens
};

struct ModelInfo {
  std::string name;
  std::string architecture;
  std::string path;
  std::string precision;
  std::string device;
  std::string numerics = "fast";  // "fast" or "reproducible" (engine.numerics)
  int64_t parameters = 0;
  int64_t layers = 0, hidden = 0, heads = 0, kv_heads = 0, head_dim = 0, ffn = 0, vocab = 0;
  int64_t context_length = 0;
  bool tied_embeddings = false;
  uint64_t weight_bytes_bf16 = 0;  // all weights stored as BF16
  uint64_t weight_bytes_fp8 = 0;   // linear layers in FP8 (+ scales), norms BF16, embedding/head as configured
  double savings_percentage = 0;   // 100 * (1 - fp8 / bf16)
  uint64_t kv_bytes_per_token = 0; // K and V of all layers for one position, as this engine stores them
  std::string format;               // "gguf", "safetensors", "modelopt FP8", "compressed-tensors ..."
  // Sampling the checkpoint suggests (generation_config.json); unset when it suggests none.
  std::optional<float> suggested_temperature, suggested_top_p;
  std::optional<int> suggested_top_k;
};

// Called with each piece of text as it is produced; return false to stop generation.
using TokenCallback = std::function<bool(std::string_view piece)>;

// Reads a model's shapes and metadata without loading its weights (for `octet info`).
ModelInfo inspect_model(const EngineOptions& options);

// The default model file: $OCTET_MODELS (default ./models) / SmolLM2-135M-Instruct.Q4_1.gguf.
std::string default_model_path();

class Engine {
 public:
  virtual ~Engine() = default;
  static std::unique_ptr<Engine> create(const EngineOptions& options);

  virtual GenerationResult chat(const std::vector<Message>& messages, const GenerationParams& params,
                                const TokenCallback& on_piece = {}) = 0;
  virtual GenerationResult complete(const std::string& prompt, const GenerationParams& params,
                                    const TokenCallback& on_piece = {}) = 0;
  virtual ModelInfo info() const = 0;
};

}  // namespace octet
