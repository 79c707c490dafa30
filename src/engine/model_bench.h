#pragma once
// Prefill and decode speed of a model shape with random weights (speed does not depend on weight
// values), against the device's measured ceilings: `octet bench --dummy-weights config.json`.
#include "octet/engine.h"

#include <string>
#include <vector>

namespace octet::engine {

struct ModelBenchOptions {
  std::string config_json;  // Hugging Face config.json of the shape
  Precision precision = Precision::fp8;
  VocabPrecision lm_head_precision = VocabPrecision::auto_select;  // fp8 precision: embedding table, LM head
  VocabPrecision embedding_precision = VocabPrecision::auto_select;
  Device device = Device::auto_select;
  std::vector<int64_t> prefill_tokens = {128, 1024, 4096};
  std::vector<int64_t> decode_batches = {1, 8, 32, 64, 128};
  int64_t context = 1024;  // decode: tokens already in each sequence's cache
  int decode_steps = 32;
  // Wait for each decode step before the next, as a server must before it can stream the tokens;
  // off, the host queues step n + 1 while the device runs step n.
  bool sync_each_step = false;
  int threads = 0;
  Numerics numerics = Numerics::fast;
};

struct PrefillResult {
  int64_t tokens = 0;
  double ms = 0;  // = time to first token
  double tokens_per_s = 0;
  double tflops = 0;            // 2 · parameters · tokens (linear layers) + attention
  double percent_of_peak = 0;   // of the measured FP8 GEMM ceiling (GPU)
};

struct DecodeResult {
  int64_t batch = 0;
  double ms_per_step = 0;
  double tokens_per_s = 0;
  double bytes_per_step = 0;     // weights + the KV cache read
  double bytes_per_s = 0;
  double percent_of_roofline = 0;  // of the measured copy bandwidth
};

struct ModelBenchReport {
  std::string device;
  std::string model;
  std::string precision;
  std::string numerics;  // "fast" or "reproducible"
  int64_t parameters = 0;
  uint64_t weight_bytes = 0;
  double copy_bandwidth_bytes_per_s = 0;  // GPU only
  double fp8_gemm_flops = 0;              // GPU only
  uint64_t peak_device_memory_bytes = 0;
  std::vector<PrefillResult> prefill;
  std::vector<DecodeResult> decode;
};

ModelBenchReport run_model_bench(const ModelBenchOptions& options);

}  // namespace octet::engine
