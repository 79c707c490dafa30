#pragma once
// The kernels a model forward pass needs, behind one interface so the forward pass is written once
// (src/model/llama_model.cpp) and each backend (cpu/, cuda/) supplies the arithmetic.
//
// Activations are row-major [rows, cols] float32 buffers owned by the backend. Weights are uploaded
// once, from host float32 or from the checkpoint's stored bytes (stored_tensor.h), and stored in the
// backend's format for the requested precision.
#include "backend/stored_tensor.h"
#include "fp8/fp8.h"
#include "octet/engine.h"

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace octet::backend {

// How a linear layer's weights (and the activations that meet them) are stored and multiplied.
enum class LinearFormat {
  f32,   // float32 weights, float32 activations
  bf16,  // bf16 weights, activations rounded to bf16, float32 accumulation
  fp8,   // E4M3 weights with per-output-channel scales, activations quantized to E4M3 per token
};

// Rows and columns of the weight that share one scale in a block-scaled FP8 layer (make_fp8_block_linear).
inline constexpr int64_t kFp8ScaleBlock = 128;
// Scale blocks along a dimension of `features` (the last one partial where it is not a multiple).
inline constexpr int64_t fp8_scale_blocks(int64_t features) { return (features + kFp8ScaleBlock - 1) / kFp8ScaleBlock; }

// Static activation scale (from a calibrated checkpoint's input_scale); absent: dynamic per token.
struct LinearSpec {
  LinearFormat format = LinearFormat::fp8;
  float static_input_scale = 0.0f;  // 0: dynamic per-token scales
  // fp8 only: one weight scale per output channel, from a pre-quantized checkpoint; empty: each
  // row's amax / 448. Weights that are code × scale then come back as exactly their codes.
  std::span<const float> weight_scales;
};

struct LinearWeight {
  virtual ~LinearWeight() = default;
  int64_t out_features = 0;
  int64_t in_features = 0;
  virtual uint64_t bytes() const = 0;
};

struct VectorWeight {  // norm weights: always float32
  virtual ~VectorWeight() = default;
  int64_t size = 0;
};

// How an embedding table is stored; each row is gathered and widened to float32 by embed().
enum class EmbeddingFormat {
  f32,
  bf16,
  fp8,  // E4M3 codes with one float scale per row (the row's amax / 448): row = decode(code) · scale
};

struct EmbeddingTable {  // [vocab, hidden]
  virtual ~EmbeddingTable() = default;
  int64_t vocab = 0;
  int64_t hidden = 0;
  virtual uint64_t bytes() const = 0;
};

struct Activations {
  virtual ~Activations() = default;
  int64_t rows = 0;
  int64_t cols = 0;
};

// Per-layer key/value storage: a pool of fixed-size blocks of positions, shared by sequence slots
// through per-slot block tables (paged attention). Position p of slot s lives in physical block
// block_table(s)[p / block_size] at row p % block_size.
//
// num_blocks == 0 sizes the pool for every slot at max_positions and gives each slot its own
// contiguous run of blocks (slot s: blocks [s * blocks_per_slot, (s + 1) * blocks_per_slot)), so a
// single-sequence caller never touches block tables. A scheduler instead asks for a smaller pool and
// assigns blocks to slots itself with set_block_table.
struct KvCacheSpec {
  int64_t layers = 0;
  int64_t kv_heads = 0;
  int64_t head_dim = 0;
  int64_t max_positions = 0;  // per slot: bounds the block table (max_positions / block_size blocks)
  int64_t slots = 1;
  enum class Storage { f32, bf16, fp8 } storage = Storage::f32;
  fp8::Format fp8_format = fp8::Format::e4m3;
  std::vector<float> static_k_scales;  // per layer, from a checkpoint; empty: dynamic per (token, head)
  std::vector<float> static_v_scales;
  int64_t block_size = 16;  // positions per block
  int64_t num_blocks = 0;   // blocks in the pool; 0: slots * blocks_per_slot(), identity tables
  // GPU backends: the share of the device's memory that weights, activations and this cache may
  // use together; a cache beyond it is refused, naming the largest context that fits.
  double gpu_memory_utilization = 0.90;

  int64_t blocks_per_slot() const { return (max_positions + block_size - 1) / block_size; }
  int64_t pool_blocks() const { return num_blocks > 0 ? num_blocks : slots * blocks_per_slot(); }
};

struct KvCache {
  virtual ~KvCache() = default;
  KvCacheSpec spec;
  virtual uint64_t bytes_per_position() const = 0;  // all layers, K and V
  virtual void clear_slot(int64_t slot) = 0;
  // The physical blocks holding slot's positions, in order (at most spec.blocks_per_slot(), each in
  // [0, spec.pool_blocks())); positions past blocks.size() * block_size are unmapped until the next
  // call. Takes effect for batches prepared after it; the slot's earlier contents stay where they are.
  virtual void set_block_table(int64_t slot, std::span<const int32_t> blocks) = 0;
};

// Where each token of a batch belongs: its sequence slot and its position in that sequence.
// Tokens of one slot appear in increasing position order; a token attends to positions <= its own.
struct TokenBatch {
  std::vector<int32_t> tokens;
  std::vector<int64_t> positions;
  std::vector<int64_t> slots;
  size_t size() const { return tokens.size(); }
};

// How one logits row becomes a token (the logit processing a device sampler does: no repetition
// penalty, which needs the sequence's history). The pipeline and its order are engine::Sampler's:
// temperature <= 0 is greedy (argmax, lowest index on ties); else temperature → top-k → softmax →
// top-p → min-p → one draw of counter_uniform(seed, step) (common/counter_rng.h) by inverse CDF.
struct RowSampling {
  float temperature = 0.0f;
  int32_t top_k = 0;     // 0: off
  float top_p = 1.0f;    // 1: off
  float min_p = 0.0f;    // 0: off
  uint64_t seed = 0;
  uint64_t step = 0;     // the sequence's token index: its draw depends only on (seed, step)
};

// One decoder layer's weights, for ops that run whole layers (Backend::run_decoder_layers).
struct DecoderLayerWeights {
  const LinearWeight* q = nullptr;
  const LinearWeight* k = nullptr;
  const LinearWeight* v = nullptr;
  const LinearWeight* o = nullptr;
  const LinearWeight* gate = nullptr;
  const LinearWeight* up = nullptr;
  const LinearWeight* down = nullptr;
  const VectorWeight* attn_norm = nullptr;
  const VectorWeight* ffn_norm = nullptr;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;  // "cpu" or "cuda"
  virtual Numerics numerics() const { return Numerics::fast; }

  virtual std::unique_ptr<LinearWeight> make_linear(const float* weights, int64_t out_features,
                                                    int64_t in_features, const LinearSpec& spec) = 0;
  // An FP8 layer kept bit for bit from a pre-quantized checkpoint: w[o][i] = decode(e4m3_codes[o·in + i])
  // · channel_scales[o]. The default widens to float32 and calls make_linear with spec.weight_scales
  // (the same codes come back); backends override it to copy the codes directly.
  virtual std::unique_ptr<LinearWeight> make_fp8_linear(const uint8_t* e4m3_codes, const float* channel_scales,
                                                        int64_t out_features, int64_t in_features,
                                                        const LinearSpec& spec);
  // An FP8 layer with one scale per 128×128 block of the weight (compressed-tensors strategy "block",
  // DeepSeek-style exports): w[o][i] = decode(e4m3_codes[o·in + i]) · block_scales[(o / 128) · ceil(in / 128)
  // + i / 128]; the last block row and column may be partial. Activations are quantized per token as for
  // the other FP8 layers, and each 128-wide run of in-features is summed in float32 and multiplied by its
  // block's scale, so no weight is re-rounded. The default refuses: folding the blocks into one scale
  // per row would silently change the weights.
  virtual std::unique_ptr<LinearWeight> make_fp8_block_linear(const uint8_t* e4m3_codes, const float* block_scales,
                                                              int64_t out_features, int64_t in_features,
                                                              const LinearSpec& spec);
  // A linear layer from a checkpoint's stored bytes ([out, in]), converted where the backend keeps its
  // weights. Float dtypes give the same weights as make_linear of their float32 widening (the same
  // bf16 rounding, per-channel scales and E4M3 codes); E4M3 codes need spec.weight_scales (one per
  // row) and give make_fp8_linear's weights (or code · scale widened, for other formats). The
  // default widens on the host and calls make_linear / make_fp8_linear.
  virtual std::unique_ptr<LinearWeight> make_linear_from_stored(const StoredTensor& weights, const LinearSpec& spec);
  virtual std::unique_ptr<VectorWeight> make_vector(const float* values, int64_t size) = 0;
  virtual std::unique_ptr<EmbeddingTable> make_embedding(const float* table, int64_t vocab, int64_t hidden,
                                                         EmbeddingFormat format) = 0;
  // Tied embeddings with an fp8 LM head: a table that gathers the head's own E4M3 codes and
  // per-output-channel (= per-row) scales, so the two share one copy. Its bytes() is 0 (the head
  // counts them); the head must outlive it. nullptr: this backend cannot share (make a table instead).
  virtual std::unique_ptr<EmbeddingTable> make_embedding_sharing(const LinearWeight& fp8_head) { return nullptr; }
  // An embedding table ([vocab, hidden], a float dtype) from a checkpoint's stored bytes: the same
  // table as make_embedding of their float32 widening; the default widens on the host.
  virtual std::unique_ptr<EmbeddingTable> make_embedding_from_stored(const StoredTensor& table, EmbeddingFormat format);
  virtual std::unique_ptr<Activations> make_activations(int64_t rows, int64_t cols) = 0;
  virtual std::unique_ptr<KvCache> make_kv_cache(const KvCacheSpec& spec) = 0;
  // How many blocks of spec's shape a new cache could hold now within spec.gpu_memory_utilization
  // (a scheduler sizes num_blocks from this); -1 where memory is not the backend's to budget (CPU).
  virtual int64_t kv_blocks_that_fit(const KvCacheSpec& spec) { return -1; }

  // Random weights of a realistic scale, made where the backend keeps them (--dummy-weights: speed
  // does not depend on weight values). The defaults draw on the host and upload.
  virtual std::unique_ptr<LinearWeight> make_random_linear(int64_t out_features, int64_t in_features,
                                                           const LinearSpec& spec, uint64_t seed);
  virtual std::unique_ptr<VectorWeight> make_random_vector(int64_t size, uint64_t seed);
  virtual std::unique_ptr<EmbeddingTable> make_random_embedding(int64_t vocab, int64_t hidden, EmbeddingFormat format,
                                                                uint64_t seed);

  // Called by the forward pass before the ops of a batch: backends that keep the batch's tokens,
  // positions and slots in device memory copy them once here.
  virtual void prepare_batch(const TokenBatch& batch) {}
  // Brackets the ops of one forward pass (LlamaModel::forward calls them; the defaults prepare the
  // batch and run every op as called). A backend that records steps (CUDA graphs) may replay a
  // recording of the same caller (the model object: its weights, cache and buffers) and shape
  // (tokens, logit rows) instead: begin_step then returns true and the caller skips the ops and
  // end_step. Between the two, ops must depend only on the caller, the shape and the batch data
  // given here, and the caller must not read results or synchronize.
  virtual bool begin_step(const void* caller, const TokenBatch& batch, std::span<const int64_t> logit_rows) {
    prepare_batch(batch);
    return false;
  }
  virtual void end_step() {}
  // Called instead of end_step when an op between begin_step and end_step threw: a backend that
  // was recording drops the recording, so the failure does not outlive the step.
  virtual void cancel_step() {}
  // How many begin_step calls replayed a recording so far (statistics for tests and benchmarks).
  virtual int64_t replayed_steps() const { return 0; }
  // The largest step (in tokens) the backend records and replays; 0 where it records none. A
  // recording is kept per (tokens, logit rows), so callers pad steps to few sizes (engine/step_padding.h).
  virtual int64_t max_recorded_step_tokens() const { return 0; }
  // The device's time for the last begin_step .. end_step (its uploads and ops, or the replay), in
  // milliseconds, waiting for it to end; < 0 where the backend does not time steps.
  virtual double last_step_device_ms() { return -1.0; }
  // Waits for all queued work (timing, host reads).
  virtual void synchronize() {}

  // out[t] = table[tokens[t]]
  virtual void embed(const EmbeddingTable& table, std::span<const int32_t> tokens, Activations& out) = 0;
  // out[t] = x[t] / rms(x[t]) * weight
  virtual void rmsnorm(const Activations& x, const VectorWeight& weight, float eps, Activations& out) = 0;
  // residual += delta; out = rmsnorm(residual) (fused where the backend can)
  virtual void add_rmsnorm(Activations& residual, const Activations& delta, const VectorWeight& weight, float eps,
                           Activations& out) {
    add(residual, delta);
    rmsnorm(residual, weight, eps, out);
  }
  // out = x · Wᵀ : [rows, in] → [rows, out]
  virtual void linear(const Activations& x, const LinearWeight& weight, Activations& out) = 0;
  // outs[i] = x · weights[i]ᵀ for weights that share the input (q/k/v, gate/up): one launch where the
  // backend can fuse them.
  virtual void linear_group(const Activations& x, std::span<const LinearWeight* const> weights,
                            std::span<Activations* const> outs) {
    for (size_t i = 0; i < weights.size(); ++i) linear(x, *weights[i], *outs[i]);
  }
  // Called once per group of weights that linear_group will be given together, in that order (q/k/v,
  // gate/up), right after they are made: a backend may move them into one allocation (each member
  // staying a valid weight of the same values and bytes(), a view freed with the last member) so that
  // linear_group can multiply them as one matrix. Members it cannot fuse are left as they are; the
  // default leaves all of them.
  virtual void fuse_linears(std::span<LinearWeight* const> weights) {}
  // x: [tokens, heads*head_dim], rotated in place (rotate-half / NeoX pairing, as in HF Llama)
  virtual void rope(Activations& x, int64_t head_dim, std::span<const int64_t> positions,
                    std::span<const float> inverse_frequencies) = 0;
  // Stores k, v ([tokens, kv_heads*head_dim]) of layer at the batch's (slot, position).
  virtual void kv_write(KvCache& cache, int64_t layer, const TokenBatch& batch, const Activations& k,
                        const Activations& v) = 0;
  // rope(q), rope(k), then kv_write(k, v): one pass where the backend fuses them.
  virtual void rope_kv_write(KvCache& cache, int64_t layer, const TokenBatch& batch, Activations& q, Activations& k,
                             const Activations& v, std::span<const float> inverse_frequencies) {
    rope(q, cache.spec.head_dim, batch.positions, inverse_frequencies);
    rope(k, cache.spec.head_dim, batch.positions, inverse_frequencies);
    kv_write(cache, layer, batch, k, v);
  }
  // The attention block's start: q, k, v = x · qkv[0..2]ᵀ (linear_group), then rope_kv_write(q, k, v), in
  // one op where the backend can skip the pass that splits one product into q, k and v.
  virtual void linear_qkv_rope_kv_write(const Activations& x, std::span<const LinearWeight* const> qkv, Activations& q,
                                        Activations& k, Activations& v, KvCache& cache, int64_t layer,
                                        const TokenBatch& batch, std::span<const float> inverse_frequencies) {
    Activations* outs[] = {&q, &k, &v};
    linear_group(x, qkv, outs);
    rope_kv_write(cache, layer, batch, q, k, v, inverse_frequencies);
  }
  // q: [tokens, heads*head_dim] → out: same shape; causal attention over the slot's cache (GQA).
  virtual void attention(const KvCache& cache, int64_t layer, const TokenBatch& batch, const Activations& q,
                         Activations& out) = 0;
  // out = silu(gate) * up
  virtual void swiglu(const Activations& gate, const Activations& up, Activations& out) = 0;
  // The two ends of a layer's blocks, fused where the backend can skip a pass between the product and
  // its use. gate_out, up_out and proj are scratch: their contents afterwards are unspecified.
  // out = swiglu(x · gateᵀ, x · upᵀ)
  virtual void linear_swiglu(const Activations& x, const LinearWeight& gate, const LinearWeight& up, Activations& gate_out,
                             Activations& up_out, Activations& out) {
    const LinearWeight* weights[] = {&gate, &up};
    Activations* outs[] = {&gate_out, &up_out};
    linear_group(x, weights, outs);
    swiglu(gate_out, up_out, out);
  }
  // residual += x · weightᵀ; out = rmsnorm(residual) · norm
  virtual void linear_add_rmsnorm(const Activations& x, const LinearWeight& weight, Activations& proj, Activations& residual,
                                  const VectorWeight& norm, float eps, Activations& out) {
    linear(x, weight, proj);
    add_rmsnorm(residual, proj, norm, eps, out);
  }
  // A hint, given just before a linear op: the linear op after it reads `weights`, and the ops between
  // the two read little memory. A backend may start bringing those weights closer (CUDA: into L2,
  // during the small kernels) once the next linear op has streamed its own. Only speed depends on it.
  virtual void prefetch_for_following_linear(std::span<const LinearWeight* const> weights) {}
  // Every decoder layer of the step in one op, where the backend has a kernel for this batch (CUDA: one
  // token, a persistent kernel): x holds the embedded tokens and becomes the residual after the last
  // layer (its down projection added), and the cache is written as the layer-by-layer ops write it.
  // Returns false, having done nothing, where it has none: the caller then runs the layers op by op.
  virtual bool run_decoder_layers(std::span<const DecoderLayerWeights> layers, Activations& x, KvCache& cache,
                                  const TokenBatch& batch, std::span<const float> inverse_frequencies, float eps) {
    return false;
  }
  // x += y
  virtual void add(Activations& x, const Activations& y) = 0;
  // Copies selected rows to host float32 (row-major).
  virtual void copy_rows_to_host(const Activations& x, std::span<const int64_t> rows, float* out) = 0;
  // tokens_out[i] = the token drawn from row rows[i] of logits ([rows, vocab]) as per_row[i] says.
  // The default copies the rows to the host and runs engine::sample_with_uniform; a backend that
  // samples where the logits are (samples_on_device) copies back only the token ids.
  virtual void sample_rows(const Activations& logits, std::span<const int64_t> rows,
                           std::span<const RowSampling> per_row, std::span<int32_t> tokens_out);
  virtual bool samples_on_device() const { return false; }
  // Gathers selected rows into out (rows.size() rows).
  virtual void gather_rows(const Activations& x, std::span<const int64_t> rows, Activations& out) = 0;
};

// sample_rows' argument checks, shared by the backends: one setting and one output per row, rows
// inside logits.
void check_sample_rows(const Activations& logits, std::span<const int64_t> rows, std::span<const RowSampling> per_row,
                       std::span<int32_t> tokens_out);

// numerics reproducible: the ops of backend/canonical_numerics.h, the same bits as the CUDA backend's.
std::unique_ptr<Backend> make_cpu_backend(int threads, Numerics numerics = Numerics::fast);

}  // namespace octet::backend
