#pragma once
// The Llama forward pass over a Backend: weights uploaded once, activations reused across calls.
#include "backend/backend.h"
#include "model/llama_config.h"
#include "octet/engine.h"

#include <memory>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

namespace octet::model {

class WeightSource;

struct ModelOptions {
  Precision precision = Precision::fp8;
  int64_t max_context = 8192;  // positions per sequence slot
  int64_t slots = 1;           // sequences that can be in flight at once
  fp8::Format kv_fp8_format = fp8::Format::e4m3;
  // KV pool in blocks of kv_block_size positions; 0: every slot owns max_context positions (identity
  // block tables). A scheduler asks for a smaller pool and maps blocks to slots with set_block_table.
  int64_t kv_blocks = 0;
  int64_t kv_block_size = 16;
  // The embedding table and the LM head in fp8 precision (docs/CONFIG.md, llm.lm_head_precision).
  VocabPrecision lm_head_precision = VocabPrecision::auto_select;
  VocabPrecision embedding_precision = VocabPrecision::auto_select;
};

// What auto means for the vocabulary tensors where the checkpoint does not decide (weights quantized
// at load, random weights): chosen from the measurements in docs/ACCURACY.md.
inline constexpr VocabPrecision kAutoVocabPrecision = VocabPrecision::bf16;

// Whether a vocabulary tensor is stored fp8: requested (auto resolved to the checkpoint's choice
// where it made one, else kAutoVocabPrecision) under the model's precision. fp8 requested for a
// precision other than fp8 is an error naming `setting`.
bool vocab_tensor_fp8(Precision precision, VocabPrecision requested, std::optional<bool> checkpoint_fp8,
                      const char* setting);

class LlamaModel {
 public:
  // weights == nullptr: random weights made by the backend (--dummy-weights; speed does not depend on
  // weight values).
  LlamaModel(const LlamaConfig& config, const WeightSource* weights, backend::Backend& backend,
             const ModelOptions& options);

  // Runs every token of the batch through the model (their K/V enter the cache) and writes the
  // logits of the batch rows listed in logit_rows to logits ([logit_rows.size(), vocab]); with
  // logits == nullptr they are computed but stay on the backend (benchmarks).
  void forward(const backend::TokenBatch& batch, std::span<const int64_t> logit_rows, float* logits);

  // The last forward pass's logits where the backend keeps them ([logit_rows.size(), vocab]), for
  // sampling them there (Backend::sample_rows) instead of copying them out.
  const backend::Activations& logits() const;

  void clear_slot(int64_t slot) { kv_cache_->clear_slot(slot); }
  // The pool blocks holding slot's positions, in order (paged KV; see backend::KvCache).
  void set_block_table(int64_t slot, std::span<const int32_t> blocks) { kv_cache_->set_block_table(slot, blocks); }
  const backend::KvCacheSpec& kv_spec() const { return kv_spec_; }
  // Replaces the KV cache with one for `slots` sequences of `max_context` positions (the old one is
  // freed first, so the two never hold memory together).
  void reset_kv_cache(int64_t slots, int64_t max_context);
  const LlamaConfig& config() const { return config_; }
  const ModelOptions& options() const { return options_; }
  uint64_t weight_bytes() const { return weight_bytes_; }
  // Whether the embedding table / LM head are stored fp8 (the resolved llm.*_precision settings).
  bool embedding_fp8() const { return embedding_fp8_; }
  bool lm_head_fp8() const { return lm_head_fp8_; }
  // Bytes a forward pass reads from the weights whatever the batch: all but the embedding table.
  uint64_t streamed_weight_bytes() const { return weight_bytes_ - embedding_->bytes(); }
  backend::Backend& backend() { return backend_; }
  uint64_t kv_bytes_per_position() const { return kv_cache_->bytes_per_position(); }
  // Every linear layer by its Hugging Face module name ("model.layers.0.self_attn.q_proj", "lm_head").
  const std::vector<std::pair<std::string, const backend::LinearWeight*>>& linear_layers() const {
    return linear_layers_;
  }

 private:
  struct Layer {
    std::unique_ptr<backend::VectorWeight> attn_norm, ffn_norm;
    std::unique_ptr<backend::LinearWeight> q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj;
  };
  struct Buffers {  // activations for up to `rows` tokens
    int64_t rows = 0;
    std::unique_ptr<backend::Activations> x, normed, q, k, v, attn, proj, gate, up, act, last, logits;
  };

  void run_layers_op_by_op(const backend::TokenBatch& batch);
  void attention_block(const Layer& layer, int64_t index, const backend::TokenBatch& batch,
                       const backend::LinearWeight* previous_down_proj);
  void mlp_block(const Layer& layer);
  void ensure_buffers(int64_t rows, int64_t logit_rows);
  void read_kv_scales(const WeightSource& weights, backend::KvCacheSpec& kv) const;

  LlamaConfig config_;
  ModelOptions options_;
  backend::Backend& backend_;
  std::unique_ptr<backend::EmbeddingTable> embedding_;
  std::vector<Layer> layers_;
  std::vector<backend::DecoderLayerWeights> layer_weights_;  // layers_' weights, for run_decoder_layers
  std::unique_ptr<backend::VectorWeight> final_norm_;
  std::unique_ptr<backend::LinearWeight> lm_head_;
  std::unique_ptr<backend::KvCache> kv_cache_;
  backend::KvCacheSpec kv_spec_;
  std::vector<float> rope_inverse_frequencies_;
  Buffers buffers_;
  int64_t logit_capacity_ = 0;
  uint64_t weight_bytes_ = 0;
  bool embedding_fp8_ = false;
  bool lm_head_fp8_ = false;
  std::vector<std::pair<std::string, const backend::LinearWeight*>> linear_layers_;
};

}  // namespace octet::model
