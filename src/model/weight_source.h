#pragma once
// Where a model's weights come from. The model asks for tensors by their Hugging Face names
// ("model.layers.3.self_attn.q_proj.weight") in HF layout ([out_features, in_features], Q/K rows in
// HF's rotate-half order); each checkpoint format maps names and layouts to that.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace octet::gguf { class File; }

namespace octet::model {

struct LlamaConfig;

class WeightSource {
 public:
  virtual ~WeightSource() = default;
  virtual bool has(const std::string& name) const = 0;
  // float32 values of the tensor, checked against the expected shape (outermost first).
  virtual std::vector<float> load(const std::string& name, const std::vector<int64_t>& shape) const = 0;
};

// GGUF files written by llama.cpp's converter: blk.N.* names, Q/K rows permuted for interleaved RoPE.
std::unique_ptr<WeightSource> make_gguf_weight_source(std::shared_ptr<const gguf::File> file,
                                                      const LlamaConfig& config);

}  // namespace octet::model
