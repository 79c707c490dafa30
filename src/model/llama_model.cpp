#include "model/llama_model.h"

#include "common/error.h"
#include "model/weight_source.h"

#include <fmt/format.h>

namespace octet::model {

using backend::LinearFormat;

namespace {

LinearFormat linear_format(Precision precision) {
  switch (precision) {
    case Precision::fp8: return LinearFormat::fp8;
    case Precision::bf16: return LinearFormat::bf16;
    case Precision::f32: return LinearFormat::f32;
  }
  return LinearFormat::f32;
}

backend::KvCacheSpec::Storage kv_storage(Precision precision) {
  switch (precision) {
    case Precision::fp8: return backend::KvCacheSpec::Storage::fp8;
    case Precision::bf16: return backend::KvCacheSpec::Storage::bf16;
    case Precision::f32: return backend::KvCacheSpec::Storage::f32;
  }
  return backend::KvCacheSpec::Storage::f32;
}

}  // namespace

bool vocab_tensor_fp8(Precision precision, VocabPrecision requested, std::optional<bool> checkpoint_fp8,
                      const char* setting) {
  if (precision != Precision::fp8) {
    if (requested == VocabPrecision::fp8)
      fail("{} = fp8 needs llm.precision = fp8 (it is {}); use auto or bf16", setting, precision_name(precision));
    return false;
  }
  if (requested != VocabPrecision::auto_select) return requested == VocabPrecision::fp8;
  return checkpoint_fp8 ? *checkpoint_fp8 : kAutoVocabPrecision == VocabPrecision::fp8;
}

LlamaModel::LlamaModel(const LlamaConfig& config, const WeightSource* weights, backend::Backend& backend,
                       const ModelOptions& options)
    : config_(config), options_(options), backend_(backend) {
  const int64_t hidden = config.hidden, ffn = config.ffn;
  // Linear layers take the requested precision. In fp8 mode the embedding table and the LM head are
  // fp8 or bf16 by options (vocab_tensor_fp8): a pre-quantized checkpoint decides auto by what it
  // stores (published FP8 checkpoints keep lm_head 16-bit).
  const LinearFormat body = linear_format(options.precision);
  std::optional<bool> checkpoint_head_fp8;
  if (weights && weights->prequantized()) checkpoint_head_fp8 = !config.tied_embeddings && weights->stores_fp8("lm_head");
  const bool head_fp8 = vocab_tensor_fp8(options.precision, options.lm_head_precision, checkpoint_head_fp8,
                                         "llm.lm_head_precision");
  const bool table_fp8 = vocab_tensor_fp8(options.precision, options.embedding_precision, checkpoint_head_fp8,
                                          "llm.embedding_precision");
  embedding_fp8_ = table_fp8;
  lm_head_fp8_ = head_fp8;
  const LinearFormat head = head_fp8 ? LinearFormat::fp8
                                     : (options.precision == Precision::f32 ? LinearFormat::f32 : LinearFormat::bf16);
  const backend::EmbeddingFormat table_format =
      table_fp8 ? backend::EmbeddingFormat::fp8
                : (options.precision == Precision::f32 ? backend::EmbeddingFormat::f32 : backend::EmbeddingFormat::bf16);

  uint64_t seed = 1;  // random weights: a distinct stream per tensor
  // Linear layers come as the checkpoint stores them: float weights are quantized here, FP8 codes
  // are kept with their scales, and layers the checkpoint excludes from quantization stay 16-bit
  // (unless honour_exclusion is false: the LM head's format is settled above).
  auto linear = [&](const std::string& module, int64_t out, int64_t in, LinearFormat format, bool honour_exclusion = true) {
    std::unique_ptr<backend::LinearWeight> w;
    if (weights) {
      LinearWeights stored = weights->load_linear(module, out, in);
      if (honour_exclusion && stored.keep_16bit && format == LinearFormat::fp8) format = LinearFormat::bf16;
      backend::LinearSpec spec{format, format == LinearFormat::fp8 ? stored.input_scale : 0.0f};
      if (!stored.block_scales.empty() && format == LinearFormat::fp8) {  // 128×128 block scales, multiplied as stored
        const uint8_t* codes = stored.stored ? static_cast<const uint8_t*>(stored.stored->data) : stored.e4m3_codes.data();
        w = backend.make_fp8_block_linear(codes, stored.block_scales.data(), out, in, spec);
      } else if (!stored.block_scales.empty()) {
        const std::vector<float> values = stored.dequantized(in);
        w = backend.make_linear(values.data(), out, in, spec);
      } else if (stored.stored) {  // the stored bytes, converted by the backend
        if (stored.prequantized()) spec.weight_scales = stored.channel_scales;
        w = backend.make_linear_from_stored(*stored.stored, spec);
      } else if (stored.prequantized() && format == LinearFormat::fp8) {
        w = backend.make_fp8_linear(stored.e4m3_codes.data(), stored.channel_scales.data(), out, in, spec);
      } else {
        const std::vector<float> values = stored.prequantized() ? stored.dequantized(in) : std::move(stored.values);
        w = backend.make_linear(values.data(), out, in, spec);
      }
    } else {
      w = backend.make_random_linear(out, in, backend::LinearSpec{format, 0.0f}, seed++);
    }
    weight_bytes_ += w->bytes();
    linear_layers_.emplace_back(module, w.get());
    return w;
  };
  auto vector = [&](const std::string& name, int64_t size) {
    weight_bytes_ += static_cast<uint64_t>(size) * 4;
    if (!weights) return backend.make_random_vector(size, seed++);
    std::vector<float> values = weights->load(name, {size});
    return backend.make_vector(values.data(), size);
  };

  // Tied embeddings: the LM head is the table. An fp8 head's per-row codes and scales are what an
  // fp8 table holds, so the table shares them where the backend can.
  const backend::LinearSpec head_spec{head, 0.0f};
  if (weights) {
    const std::string embed = "model.embed_tokens.weight";
    // The stored bytes, converted by the backend; float32 where the source has only that to give.
    const MappedTensor stored = weights->load_stored(embed, {config.vocab, hidden});
    std::vector<float> table;
    if (!stored) table = weights->load(embed, {config.vocab, hidden});
    if (config.tied_embeddings) {
      lm_head_ = stored ? backend.make_linear_from_stored(*stored, head_spec)
                        : backend.make_linear(table.data(), config.vocab, hidden, head_spec);
      linear_layers_.emplace_back("lm_head", lm_head_.get());
      if (head_fp8 && table_fp8) embedding_ = backend.make_embedding_sharing(*lm_head_);
    }
    if (!embedding_)
      embedding_ = stored ? backend.make_embedding_from_stored(*stored, table_format)
                          : backend.make_embedding(table.data(), config.vocab, hidden, table_format);
  } else {
    if (config.tied_embeddings) {
      lm_head_ = backend.make_random_linear(config.vocab, hidden, head_spec, seed++);
      if (head_fp8 && table_fp8) embedding_ = backend.make_embedding_sharing(*lm_head_);
    }
    if (!embedding_) embedding_ = backend.make_random_embedding(config.vocab, hidden, table_format, seed++);
  }
  weight_bytes_ += embedding_->bytes() + (lm_head_ ? lm_head_->bytes() : 0);
  for (int64_t i = 0; i < config.layers; ++i) {
    const std::string p = fmt::format("model.layers.{}.", i);
    Layer layer;
    layer.attn_norm = vector(p + "input_layernorm.weight", hidden);
    layer.q_proj = linear(p + "self_attn.q_proj", config.q_dim(), hidden, body);
    layer.k_proj = linear(p + "self_attn.k_proj", config.kv_dim(), hidden, body);
    layer.v_proj = linear(p + "self_attn.v_proj", config.kv_dim(), hidden, body);
    layer.o_proj = linear(p + "self_attn.o_proj", hidden, config.q_dim(), body);
    layer.ffn_norm = vector(p + "post_attention_layernorm.weight", hidden);
    layer.gate_proj = linear(p + "mlp.gate_proj", ffn, hidden, body);
    layer.up_proj = linear(p + "mlp.up_proj", ffn, hidden, body);
    layer.down_proj = linear(p + "mlp.down_proj", hidden, ffn, body);
    // One allocation per group linear_group runs together, fused a layer at a time (the backend's
    // extra memory is one group's copy while it moves them).
    backend::LinearWeight* qkv[] = {layer.q_proj.get(), layer.k_proj.get(), layer.v_proj.get()};
    backend::LinearWeight* gate_up[] = {layer.gate_proj.get(), layer.up_proj.get()};
    backend.fuse_linears(qkv);
    backend.fuse_linears(gate_up);
    layers_.push_back(std::move(layer));
  }
  for (const Layer& l : layers_)
    layer_weights_.push_back({l.q_proj.get(), l.k_proj.get(), l.v_proj.get(), l.o_proj.get(), l.gate_proj.get(),
                              l.up_proj.get(), l.down_proj.get(), l.attn_norm.get(), l.ffn_norm.get()});
  final_norm_ = vector("model.norm.weight", hidden);
  if (!config.tied_embeddings) lm_head_ = linear("lm_head", config.vocab, hidden, head, /*honour_exclusion=*/false);

  for (double f : config.rope_inverse_frequencies()) rope_inverse_frequencies_.push_back(static_cast<float>(f));

  backend::KvCacheSpec kv;
  kv.layers = config.layers;
  kv.kv_heads = config.kv_heads;
  kv.head_dim = config.head_dim;
  kv.max_positions = options.max_context;
  kv.slots = options.slots;
  kv.storage = kv_storage(options.precision);
  kv.fp8_format = options.kv_fp8_format;
  kv.num_blocks = options.kv_blocks;
  kv.block_size = options.kv_block_size;
  if (weights && kv.storage == backend::KvCacheSpec::Storage::fp8) read_kv_scales(*weights, kv);
  kv_spec_ = kv;
  kv_cache_ = backend.make_kv_cache(kv);
}

// A checkpoint calibrated for an FP8 KV cache has scales for every layer or for none.
void LlamaModel::read_kv_scales(const WeightSource& weights, backend::KvCacheSpec& kv) const {
  for (int64_t layer = 0; layer < config_.layers; ++layer) {
    const std::optional<KvScales> scales = weights.kv_scales(layer);
    const bool first_layer_has_them = !kv.static_k_scales.empty();
    if (layer > 0 && scales.has_value() != first_layer_has_them)
      fail("KV-cache scales: layer {} {} them but layer 0 {}", layer, scales ? "has" : "lacks",
           first_layer_has_them ? "has them" : "lacks them");
    if (!scales) continue;
    kv.static_k_scales.push_back(scales->k_scale);
    kv.static_v_scales.push_back(scales->v_scale);
  }
}

void LlamaModel::reset_kv_cache(int64_t slots, int64_t max_context) {
  kv_cache_.reset();
  kv_spec_.slots = slots;
  kv_spec_.max_positions = max_context;
  options_.slots = slots;
  options_.max_context = max_context;
  kv_cache_ = backend_.make_kv_cache(kv_spec_);
}

void LlamaModel::ensure_buffers(int64_t rows, int64_t logit_rows) {
  if (rows > buffers_.rows) {
    const auto& c = config_;
    auto make = [&](int64_t cols) { return backend_.make_activations(rows, cols); };
    buffers_.x = make(c.hidden);
    buffers_.normed = make(c.hidden);
    buffers_.q = make(c.q_dim());
    buffers_.k = make(c.kv_dim());
    buffers_.v = make(c.kv_dim());
    buffers_.attn = make(c.q_dim());
    buffers_.proj = make(c.hidden);
    buffers_.gate = make(c.ffn);
    buffers_.up = make(c.ffn);
    buffers_.act = make(c.ffn);
    buffers_.rows = rows;
  }
  if (logit_rows > logit_capacity_ || !buffers_.last) {
    logit_capacity_ = std::max<int64_t>(logit_rows, 1);
    buffers_.last = backend_.make_activations(logit_capacity_, config_.hidden);
    buffers_.logits = backend_.make_activations(logit_capacity_, config_.vocab);
  }
}

// Activations are sized for the largest batch seen; row counts shrink to the batch by setting
// rows on the views each call (the backend reads rows from the Activations).
void LlamaModel::forward(const backend::TokenBatch& batch, std::span<const int64_t> logit_rows, float* logits) {
  const auto tokens = static_cast<int64_t>(batch.size());
  if (tokens == 0) return;
  ensure_buffers(tokens, static_cast<int64_t>(logit_rows.size()));
  for (auto* a : {buffers_.x.get(), buffers_.normed.get(), buffers_.q.get(), buffers_.k.get(), buffers_.v.get(),
                  buffers_.attn.get(), buffers_.proj.get(), buffers_.gate.get(), buffers_.up.get(),
                  buffers_.act.get()})
    a->rows = tokens;

  for (int32_t token : batch.tokens)
    if (token < 0 || token >= config_.vocab) fail("token id {} outside the vocabulary [0, {})", token, config_.vocab);
  buffers_.last->rows = static_cast<int64_t>(logit_rows.size());
  buffers_.logits->rows = buffers_.last->rows;
  // A backend may replay a recorded pass of this shape instead of running the ops below.
  if (!backend_.begin_step(this, batch, logit_rows)) {
    try {
      // x: [tokens, hidden], then every layer: in one op where the backend can, else op by op.
      backend_.embed(*embedding_, batch.tokens, *buffers_.x);
      if (!backend_.run_decoder_layers(layer_weights_, *buffers_.x, *kv_cache_, batch, rope_inverse_frequencies_,
                                       static_cast<float>(config_.rms_norm_eps))) {
        run_layers_op_by_op(batch);
      }
      // Only the rows that need logits go through the final norm and the LM head.
      if (!logit_rows.empty()) {
        backend_.gather_rows(*buffers_.x, logit_rows, *buffers_.last);
        backend_.rmsnorm(*buffers_.last, *final_norm_, static_cast<float>(config_.rms_norm_eps), *buffers_.last);
        backend_.linear(*buffers_.last, *lm_head_, *buffers_.logits);
      }
    } catch (...) {
      backend_.cancel_step();
      throw;
    }
    backend_.end_step();
  }
  if (logit_rows.empty()) return;
  if (!logits) return;
  std::vector<int64_t> all_rows(logit_rows.size());
  for (size_t r = 0; r < all_rows.size(); ++r) all_rows[r] = static_cast<int64_t>(r);
  backend_.copy_rows_to_host(*buffers_.logits, all_rows, logits);
}

const backend::Activations& LlamaModel::logits() const {
  if (!buffers_.logits) fail("the model has no logits yet: run a forward pass with logit rows first");
  return *buffers_.logits;
}

// Each block's output projection joins x at the next norm, in one op (linear_add_rmsnorm: fused where
// the backend can); the last layer's down projection is added after the loop.
void LlamaModel::run_layers_op_by_op(const backend::TokenBatch& batch) {
  for (int64_t i = 0; i < config_.layers; ++i) {
    attention_block(layers_[i], i, batch, i > 0 ? layers_[i - 1].down_proj.get() : nullptr);
    mlp_block(layers_[i]);
  }
  if (!layers_.empty()) {
    const backend::LinearWeight* head[] = {lm_head_.get()};
    backend_.prefetch_for_following_linear(head);
    backend_.linear(*buffers_.act, *layers_.back().down_proj, *buffers_.proj);
    backend_.add(*buffers_.x, *buffers_.proj);
  }
}

void LlamaModel::attention_block(const Layer& layer, int64_t index, const backend::TokenBatch& batch,
                                 const backend::LinearWeight* previous_down_proj) {
  auto& b = buffers_;
  const float eps = static_cast<float>(config_.rms_norm_eps);
  const backend::LinearWeight* qkv[] = {layer.q_proj.get(), layer.k_proj.get(), layer.v_proj.get()};
  const backend::LinearWeight* o[] = {layer.o_proj.get()};
  // The previous layer's down projection (of act) joins the residual here, in one op with the norm.
  // Before each linear op, the hint of the one after it (Backend::prefetch_for_following_linear).
  if (previous_down_proj) {
    backend_.prefetch_for_following_linear(qkv);
    backend_.linear_add_rmsnorm(*b.act, *previous_down_proj, *b.proj, *b.x, *layer.attn_norm, eps, *b.normed);
  } else {
    backend_.rmsnorm(*b.x, *layer.attn_norm, eps, *b.normed);
  }
  // normed: [tokens, hidden] → q: [tokens, heads·head_dim], k, v: [tokens, kv_heads·head_dim]
  // (then RoPE on q and k, and k, v into the cache at the batch's positions)
  backend_.prefetch_for_following_linear(o);
  backend_.linear_qkv_rope_kv_write(*b.normed, qkv, *b.q, *b.k, *b.v, *kv_cache_, index, batch, rope_inverse_frequencies_);
  // attn: [tokens, heads·head_dim] = softmax(q·Kᵀ/√d)·V over each token's own sequence
  backend_.attention(*kv_cache_, index, batch, *b.q, *b.attn);
}

void LlamaModel::mlp_block(const Layer& layer) {
  auto& b = buffers_;
  // attn → o_proj, added to the residual x, normed; normed: [tokens, hidden] → gate, up: [tokens, ffn] →
  // act; act's down projection joins x at the next layer's norm (or after the last layer).
  const backend::LinearWeight* gate_up[] = {layer.gate_proj.get(), layer.up_proj.get()};
  const backend::LinearWeight* down[] = {layer.down_proj.get()};
  backend_.prefetch_for_following_linear(gate_up);
  backend_.linear_add_rmsnorm(*b.attn, *layer.o_proj, *b.proj, *b.x, *layer.ffn_norm,
                              static_cast<float>(config_.rms_norm_eps), *b.normed);
  backend_.prefetch_for_following_linear(down);
  backend_.linear_swiglu(*b.normed, *layer.gate_proj, *layer.up_proj, *b.gate, *b.up, *b.act);
}

}  // namespace octet::model
