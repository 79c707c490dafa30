#pragma once
// `octet quantize SRC DST`: a BF16/F16/F32 Hugging Face directory or a GGUF file in, a ModelOpt-layout
// FP8 directory out (what nvidia/*-FP8 publish), which Octet, vLLM and TensorRT-LLM load:
//   without calibration: quant_algo FP8_PER_CHANNEL_PER_TOKEN — weight_scale [out] per output channel,
//     no input_scale (activations quantized per token at run time), no KV scales;
//   with calibration text: quant_algo FP8 — scalar weight_scale per tensor, static scalar input_scale
//     (activation amax / 448 over the text, the model run in BF16) and k_scale / v_scale per layer.
// Layers matching an exclusion pattern stay BF16, and so does lm_head unless fp8_lm_head (then E4M3
// with a weight_scale [vocab] per output channel, whatever the algorithm, and not in the exclude list). Tensors are converted and written
// one at a time, so memory stays near the largest tensor (calibration holds a BF16 model in memory).
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace octet::quantize {

struct QuantizeOptions {
  std::string source;       // GGUF file or Hugging Face directory
  std::string destination;  // created; must not exist or be an empty directory
  std::vector<std::string> exclude;  // module patterns kept BF16 (fnmatch wildcards), besides lm_head
  bool fp8_lm_head = false;          // write lm_head in FP8 (untied models only: a tied head is the embedding)
  std::string calibration_text_path;  // empty: weight-only scales, dynamic activations
  int64_t calibration_max_tokens = 4096;
  uint64_t max_shard_bytes = 5'000'000'000;
  int threads = 0;             // calibration forward passes; 0: all cores
  bool show_progress = false;  // a progress bar with GB/s on stderr
};

struct QuantizeReport {
  std::string algorithm;  // "FP8" or "FP8_PER_CHANNEL_PER_TOKEN"
  int64_t fp8_layers = 0;
  int64_t bf16_layers = 0;  // excluded linear layers (lm_head included)
  int64_t calibration_tokens = 0;
  uint64_t bytes_written = 0;
  std::vector<std::string> shard_files;
  double seconds = 0;
};

QuantizeReport quantize_checkpoint(const QuantizeOptions& options);

// The exclusion test of the written checkpoint: lm_head unless fp8_lm_head, then the patterns (fnmatch).
bool excluded_from_quantization(const std::string& module, const std::vector<std::string>& patterns,
                                bool fp8_lm_head = false);

}  // namespace octet::quantize
