#include "common/error.h"
#include "formats/gguf.h"
#include "model/llama_config.h"
#include "model/weight_source.h"

#include <regex>

namespace octet::model {
namespace {

struct GgufName {
  std::string name;
  int64_t permute_heads = 0;  // > 0: rows to restore from llama.cpp's Q/K permutation
};

class GgufWeightSource final : public WeightSource {
 public:
  GgufWeightSource(std::shared_ptr<const gguf::File> file, const LlamaConfig& config)
      : file_(std::move(file)), config_(config) {}

  bool has(const std::string& name) const override {
    auto mapped = map_name(name);
    return mapped && file_->find_tensor(mapped->name) != nullptr;
  }

  uint64_t stored_bytes() const override {
    uint64_t total = 0;
    for (const auto& t : file_->tensors()) total += t.byte_size;
    return total;
  }

  std::vector<float> load(const std::string& name, const std::vector<int64_t>& shape) const override {
    auto mapped = map_name(name);
    if (!mapped) fail("{}: no GGUF name for tensor '{}'", file_->path(), name);
    const gguf::TensorInfo* info = file_->find_tensor(mapped->name);
    if (!info) fail("{}: tensor '{}' (for {}) is missing", file_->path(), mapped->name, name);
    // GGUF lists dims fastest-first; HF shapes are outermost-first.
    std::vector<int64_t> found(info->dims.rbegin(), info->dims.rend());
    if (found != shape)
      fail("{}: tensor '{}' has shape [{}], expected [{}]", file_->path(), mapped->name, fmt::join(found, ", "),
           fmt::join(shape, ", "));
    std::vector<float> values = file_->dequantize(*info);
    file_->release(*info);
    report_read(info->byte_size);
    if (mapped->permute_heads > 0) values = unpermute_rows(values, shape[0], shape[1], mapped->permute_heads);
    return values;
  }

 private:
  std::optional<GgufName> map_name(const std::string& hf) const {
    if (hf == "model.embed_tokens.weight") return GgufName{"token_embd.weight"};
    if (hf == "model.norm.weight") return GgufName{"output_norm.weight"};
    if (hf == "lm_head.weight") return GgufName{"output.weight"};
    static const std::regex layer_pattern(R"(model\.layers\.(\d+)\.(.+)\.weight)");
    std::smatch m;
    if (!std::regex_match(hf, m, layer_pattern)) return std::nullopt;
    const std::string prefix = "blk." + m[1].str() + ".";
    const std::string part = m[2].str();
    if (part == "input_layernorm") return GgufName{prefix + "attn_norm.weight"};
    if (part == "post_attention_layernorm") return GgufName{prefix + "ffn_norm.weight"};
    if (part == "self_attn.q_proj") return GgufName{prefix + "attn_q.weight", config_.heads};
    if (part == "self_attn.k_proj") return GgufName{prefix + "attn_k.weight", config_.kv_heads};
    if (part == "self_attn.v_proj") return GgufName{prefix + "attn_v.weight"};
    if (part == "self_attn.o_proj") return GgufName{prefix + "attn_output.weight"};
    if (part == "mlp.gate_proj") return GgufName{prefix + "ffn_gate.weight"};
    if (part == "mlp.up_proj") return GgufName{prefix + "ffn_up.weight"};
    if (part == "mlp.down_proj") return GgufName{prefix + "ffn_down.weight"};
    return std::nullopt;
  }

  // llama.cpp stores each head's rows as interleaved pairs (row 2i, 2i+1 = HF rows i, i + d/2) so
  // that its RoPE rotates adjacent elements; HF layout (rotate-half) is restored here.
  static std::vector<float> unpermute_rows(const std::vector<float>& values, int64_t rows, int64_t cols,
                                           int64_t heads) {
    const int64_t head_dim = rows / heads, half = head_dim / 2;
    std::vector<float> out(values.size());
    for (int64_t h = 0; h < heads; ++h)
      for (int64_t i = 0; i < half; ++i)
        for (int64_t j = 0; j < 2; ++j) {
          const int64_t gguf_row = h * head_dim + 2 * i + j;
          const int64_t hf_row = h * head_dim + j * half + i;
          std::copy_n(values.data() + gguf_row * cols, cols, out.data() + hf_row * cols);
        }
    return out;
  }

  std::shared_ptr<const gguf::File> file_;
  LlamaConfig config_;
};

}  // namespace

std::unique_ptr<WeightSource> make_gguf_weight_source(std::shared_ptr<const gguf::File> file,
                                                      const LlamaConfig& config) {
  return std::make_unique<GgufWeightSource>(std::move(file), config);
}

}  // namespace octet::model
