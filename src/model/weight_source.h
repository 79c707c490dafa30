#pragma once
// Where a model's weights come from. The model asks for tensors by their Hugging Face names
// ("model.layers.3.self_attn.q_proj.weight") in HF layout ([out_features, in_features], Q/K rows in
// HF's rotate-half order); each checkpoint format maps names and layouts to that.
#include "backend/stored_tensor.h"

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace octet::gguf { class File; }
namespace octet::formats {
class SafetensorsCheckpoint;
struct QuantizationConfig;
}

namespace octet::model {

struct LlamaConfig;

// A tensor's bytes as the checkpoint stores them, a view into the file's mmap; the deleter of the
// last copy releases the mapped pages (and counts the bytes as read).
using MappedTensor = std::shared_ptr<const backend::StoredTensor>;

// A linear layer's weights as the checkpoint stores them: float values to be quantized (or not) at
// load, or E4M3 codes with their scales, to be kept exactly.
struct LinearWeights {
  std::vector<float> values;          // [out, in]; empty when the checkpoint stores FP8 codes or stored is set
  std::vector<uint8_t> e4m3_codes;    // [out, in] codes (copied out of the file, whose pages are then released)
  MappedTensor stored;                // or: the weight's stored bytes (a float dtype, or E4M3 codes), uncopied
  std::vector<float> channel_scales;  // [out]: w = decode(code) · scale (a per-tensor scale repeated)
  // or, for 128×128 block scales: [ceil(out/128), ceil(in/128)], w[o][i] = decode(code) · block_scales[o/128][i/128]
  std::vector<float> block_scales;
  float input_scale = 0.0f;           // static activation scale (x_q = x / input_scale); 0: dynamic
  bool keep_16bit = false;            // the checkpoint's config excludes this layer from quantization

  bool prequantized() const { return !e4m3_codes.empty() || (stored && stored->dtype == backend::StoredDtype::e4m3); }
  // code · scale as float32 (for precisions other than fp8), in_features columns.
  std::vector<float> dequantized(int64_t in_features) const;
};

// Static FP8 KV-cache scales of one layer (k_fp8 = k / k_scale).
struct KvScales {
  float k_scale = 0.0f;
  float v_scale = 0.0f;
};

class WeightSource {
 public:
  virtual ~WeightSource() = default;
  virtual bool has(const std::string& name) const = 0;
  // float32 values of the tensor, checked against the expected shape (outermost first); FP8 weights
  // come dequantized.
  virtual std::vector<float> load(const std::string& name, const std::vector<int64_t>& shape) const = 0;
  // The linear layer `module` ("model.layers.0.self_attn.q_proj"), weight [out, in]. The default
  // loads module.weight as float values.
  virtual LinearWeights load_linear(const std::string& module, int64_t out_features, int64_t in_features) const;
  // Whether the checkpoint is a pre-quantized FP8 export (ModelOpt, compressed-tensors): its choices
  // (which layers it stores in FP8) then decide the auto settings.
  virtual bool prequantized() const { return false; }
  // Whether the linear layer `module` is stored as FP8 codes (without loading it).
  virtual bool stores_fp8(const std::string& module) const { return false; }
  // The tensor's stored bytes (shape checked, as load()), for backends to convert themselves; nullptr
  // where the source has only float32 to give (GGUF, a non-float dtype, OCTET_STORED_UPLOAD=0).
  virtual MappedTensor load_stored(const std::string& name, const std::vector<int64_t>& shape) const { return nullptr; }
  // The checkpoint's KV-cache scales for a layer; nullopt when it has none (dynamic scales).
  virtual std::optional<KvScales> kv_scales(int64_t layer) const { return std::nullopt; }
  // Bytes of the stored tensors (for load speed); 0 when unknown.
  virtual uint64_t stored_bytes() const { return 0; }
  // Called with the stored bytes read so far (of stored_bytes()) after each tensor, e.g. for a progress bar.
  void set_progress(std::function<void(uint64_t bytes_read)> progress) { progress_ = std::move(progress); }

 protected:
  void report_read(uint64_t bytes) const {
    bytes_read_ += bytes;
    if (progress_) progress_(bytes_read_);
  }

 private:
  std::function<void(uint64_t)> progress_;
  mutable uint64_t bytes_read_ = 0;
};

// GGUF files written by llama.cpp's converter: blk.N.* names, Q/K rows permuted for interleaved RoPE.
std::unique_ptr<WeightSource> make_gguf_weight_source(std::shared_ptr<const gguf::File> file,
                                                      const LlamaConfig& config);

// A Hugging Face safetensors checkpoint (HF names and layout already), with its quantization settings.
std::unique_ptr<WeightSource> make_hf_weight_source(std::shared_ptr<const formats::SafetensorsCheckpoint> checkpoint,
                                                    formats::QuantizationConfig quantization);

}  // namespace octet::model
