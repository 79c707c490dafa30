#pragma once
// The CUDA backend: weights in device memory in their precision, float32 activations, one stream.
// Linear layers dispatch on the number of rows: the FP8 GEMV kernel for decode-sized batches,
// cuBLASLt for the rest (see linear()). Forward steps of up to StepGraphs::kMaxTokens tokens are
// recorded as CUDA graphs and replayed (step_graphs.h); OCTET_CUDA_GRAPHS=0 runs every op eagerly.
// Attention sends runs of >= kMinPrefillRunTokens prompt tokens of one slot to the tensor-core
// kernel (attention_prefill.cu) in steps that are never recorded, the rest to the decode kernel
// (attention.cu: the grouped tensor-core kernel, or with OCTET_CUDA_DECODE_ATTENTION=v1 the one
// before it, a query head per block on CUDA cores); OCTET_CUDA_TC_ATTENTION=0 keeps every token on
// the decode kernel (for comparison).
// OCTET_CUDA_SKINNY_GEMM=1 sends FP8 linears of 17–128 rows to the skinny GEMM (skinny_gemm_fp8.cu)
// instead of cuBLASLt; off by default until it is measured faster.
// On sm_90 and later the backend's own kernels are programmatic dependent launches, each one's blocks
// scheduled while the kernel before it finishes (launch.cuh); OCTET_CUDA_PDL=0 launches them plainly.
// q/k/v and gate/up are fused into one allocation per group (fuse_linears) and, above the GEMV's rows,
// multiplied by one GEMM whose output one pass scales and splits (grouped_gemm());
// OCTET_CUDA_GROUPED_GEMM=0 runs one GEMM per member as before.
// Declared here for the files that define its members, one concept each (the groups below).
#include "backend/backend.h"
#include "backend/cuda/cublaslt_gemm.h"
#include "backend/cuda/cuda_kv_cache.h"
#include "backend/cuda/cuda_tensors.h"
#include "backend/cuda/device_buffer.h"
#include "backend/cuda/kernels.h"
#include "backend/cuda/persistent_decode.h"
#include "backend/cuda/reproducible_kernels.h"
#include "backend/cuda/staged_upload.h"
#include "backend/cuda/step_graphs.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace octet::backend::cuda {

// The backend's environment switches (cuda_backend.cpp), read once when it is made.
bool switched_on(const char* variable);
bool switched_on_explicitly(const char* variable);
std::optional<DecodeAttention> decode_attention_kernel();
std::string probe_skip_setting();  // OCTET_CUDA_PROBE_SKIP, checked: "" or ",name,name,"
int64_t probe_rows_setting();        // OCTET_CUDA_PROBE_ROWS, checked: 1–4096 (default 8)
int64_t l2_prefetch_bytes_setting();       // cuda_backend_prefetch.cpp
bool l2_prefetch_evict_last_setting();

// Under numerics reproducible, the norms, linears, RoPE, attention and SwiGLU run the kernels of
// reproducible.cu instead (the CPU backend's bits; cuda_backend_reproducible.cpp), op by op: no fused
// products and no persistent kernel. Steps are still recorded and replayed.
class CudaBackend final : public Backend {
 public:
  CudaBackend(int device, Numerics numerics);
  ~CudaBackend() override;

  std::string name() const override { return "cuda"; }
  Numerics numerics() const override { return reproducible_ ? Numerics::reproducible : Numerics::fast; }

  // Weights and embeddings: cuda_backend_weights.cpp.
  std::unique_ptr<LinearWeight> make_linear(const float* weights, int64_t out, int64_t in, const LinearSpec& spec) override;
  std::unique_ptr<LinearWeight> make_linear_from_stored(const StoredTensor& stored, const LinearSpec& spec) override;
  std::unique_ptr<LinearWeight> make_fp8_block_linear(const uint8_t* e4m3_codes, const float* block_scales, int64_t out,
                                                      int64_t in, const LinearSpec& spec) override;
  std::unique_ptr<EmbeddingTable> make_embedding_from_stored(const StoredTensor& table, EmbeddingFormat format) override;
  std::unique_ptr<LinearWeight> make_random_linear(int64_t out, int64_t in, const LinearSpec& spec, uint64_t seed) override;
  std::unique_ptr<VectorWeight> make_vector(const float* values, int64_t size) override;
  std::unique_ptr<VectorWeight> make_random_vector(int64_t size, uint64_t seed) override;
  std::unique_ptr<EmbeddingTable> make_embedding(const float* table, int64_t vocab, int64_t hidden,
                                                 EmbeddingFormat format) override;
  std::unique_ptr<EmbeddingTable> make_embedding_sharing(const LinearWeight& fp8_head) override;
  std::unique_ptr<EmbeddingTable> make_random_embedding(int64_t vocab, int64_t hidden, EmbeddingFormat format,
                                                        uint64_t seed) override;
  void fuse_linears(std::span<LinearWeight* const> weights) override;

  // Activations, caches, steps, norms, sampling and copies: cuda_backend.cpp.
  std::unique_ptr<Activations> make_activations(int64_t rows, int64_t cols) override;
  std::unique_ptr<KvCache> make_kv_cache(const KvCacheSpec& spec) override;
  int64_t kv_blocks_that_fit(const KvCacheSpec& spec) override { return cuda::kv_blocks_that_fit(spec); }
  void prepare_batch(const TokenBatch& batch) override;
  bool begin_step(const void* caller, const TokenBatch& batch, std::span<const int64_t> logit_rows) override;
  int64_t replayed_steps() const override { return replayed_steps_; }
  int64_t max_recorded_step_tokens() const override { return graphs_.max_recorded_tokens(); }
  void end_step() override;
  void cancel_step() override;
  double last_step_device_ms() override;
  void synchronize() override {
    join_weight_prefetch();
    OCTET_CUDA_CHECK(cudaStreamSynchronize(stream_));
  }
  void embed(const EmbeddingTable& table, std::span<const int32_t> tokens, Activations& out) override;
  void rmsnorm(const Activations& x, const VectorWeight& weight, float eps, Activations& out) override;
  void add_rmsnorm(Activations& residual, const Activations& delta, const VectorWeight& weight, float eps,
                   Activations& out) override;
  void swiglu(const Activations& gate, const Activations& up, Activations& out) override;
  void add(Activations& x, const Activations& y) override;
  void copy_rows_to_host(const Activations& x, std::span<const int64_t> rows, float* out) override;
  void sample_rows(const Activations& logits, std::span<const int64_t> rows, std::span<const RowSampling> per_row,
                   std::span<int32_t> tokens_out) override;
  bool samples_on_device() const override { return device_sampling_; }
  void gather_rows(const Activations& x, std::span<const int64_t> rows, Activations& out) override;

  // Linear layers: cuda_backend_linear.cpp.
  void linear_group(const Activations& x, std::span<const LinearWeight* const> weights,
                    std::span<Activations* const> outs) override;
  void linear_add_rmsnorm(const Activations& x, const LinearWeight& weight, Activations& proj, Activations& residual,
                          const VectorWeight& norm, float eps, Activations& out) override;
  void linear_swiglu(const Activations& x, const LinearWeight& gate, const LinearWeight& up, Activations& gate_out,
                     Activations& up_out, Activations& out) override;
  void linear(const Activations& x, const LinearWeight& weight, Activations& out) override;
  void linear_qkv_rope_kv_write(const Activations& x, std::span<const LinearWeight* const> qkv, Activations& q,
                                Activations& k, Activations& v, KvCache& cache, int64_t layer, const TokenBatch& batch,
                                std::span<const float> inverse_frequencies) override;

  // The next linear's weights into L2 during the small kernels: cuda_backend_prefetch.cpp.
  void prefetch_for_following_linear(std::span<const LinearWeight* const> weights) override;

  // Every layer of a one-token step in the persistent kernel: cuda_backend_persistent.cpp.
  bool run_decoder_layers(std::span<const DecoderLayerWeights> layers, Activations& x, KvCache& cache,
                          const TokenBatch& batch, std::span<const float> inverse_frequencies, float eps) override;

  // Attention and the KV cache: cuda_backend_attention.cpp.
  void rope(Activations& x, int64_t head_dim, std::span<const int64_t> positions,
            std::span<const float> inverse_frequencies) override;
  void kv_write(KvCache& cache, int64_t layer, const TokenBatch& batch, const Activations& k, const Activations& v) override;
  void rope_kv_write(KvCache& cache, int64_t layer, const TokenBatch& batch, Activations& q, Activations& k,
                     const Activations& v, std::span<const float> inverse_frequencies) override;
  void attention(const KvCache& cache, int64_t layer, const TokenBatch& batch, const Activations& q, Activations& out) override;

 private:
  // cuda_backend_weights.cpp
  StagedUpload& staging();
  DeviceBuffer<uint8_t> upload_to_scratch(const StoredTensor& stored);
  template <typename T>
  void convert_stored(const StoredTensor& stored, T* out);
  void check_row_scales(const DeviceBuffer<float>& scales);
  std::unique_ptr<CudaLinear> new_linear(int64_t out, int64_t in, const LinearSpec& spec);
  std::unique_ptr<CudaEmbedding> new_embedding(int64_t vocab, int64_t hidden, EmbeddingFormat format);

  // cuda_backend_linear.cpp
  // Whether an FP8 product of m rows over n weight rows (of k columns) goes to cuBLASLt unscaled, with a
  // scaling pass or a reader that applies the scales after it (not the GEMV, the skinny GEMM or an
  // epilogue-scaled prefill GEMM); unscaled_gemm_rows: that, and the fused products are on.
  bool unscaled_cublaslt(int64_t m, int64_t n, int64_t k) const;
  bool unscaled_gemm_rows(int64_t m, int64_t n, int64_t k) const;
  static bool plain_fp8(const CudaLinear& w);
  static constexpr int64_t kMinEpilogueScaledRows = 128;  // see gemm_e4m3()
  void linear_unhinted(const Activations& x, const LinearWeight& weight, Activations& out);  // linear() less the prefetch
  bool gemm_e4m3(const uint8_t* codes, const float* row_scales, const CudaLinear& w, int64_t m, float* y);
  bool grouped_gemm(const Activations& x, std::span<const LinearWeight* const> weights, std::span<Activations* const> outs);
  bool use_skinny_gemm(int64_t rows, int64_t k) const;
  bool use_wgmma_gemm(int64_t rows, int64_t k) const;
  void launch_skinny_gemm(const uint8_t* codes, const float* row_scales, int64_t rows, const GemvGroup& group, int64_t k);
  const CudaActivations& quantized(const Activations& x);

  // cuda_backend_attention.cpp
  void decode_attention(const CudaKvCache& c, int64_t layer, const Activations& q, int64_t tokens, Activations& out,
                        const int32_t* token_list);
  void upload_frequencies(std::span<const float> inverse_frequencies);
  // rope_kv_write, with q, k and v first taken from a fused group's product where source is given.
  void rope_kv_write_from(KvCache& cache, int64_t layer, const TokenBatch& batch, Activations& q, Activations& k,
                          const Activations& v, std::span<const float> inverse_frequencies, const QkvProduct* source);
  const PrefillPlan& prefill_plan(const TokenBatch& batch, int64_t group);

  // cuda_backend_reproducible.cpp
  void reproducible_linear(const Activations& x, const LinearWeight& weight, Activations& out);
  void reproducible_attention(const CudaKvCache& cache, int64_t layer, const TokenBatch& batch, const Activations& q,
                              Activations& out);

  // cuda_backend_persistent.cpp
  const PersistentLayer* persistent_layers(const std::vector<PersistentLayer>& host);

  // cuda_backend_prefetch.cpp
  // Called right after a linear op's weight-streaming kernels (of `rows` input rows): the pending
  // hint's prefetch forks onto prefetch_stream_ there; join_weight_prefetch joins it back.
  void issue_weight_prefetch(int64_t rows);
  void join_weight_prefetch();

  // cuda_backend.cpp
  void expect_prepared(size_t tokens) const;

  // Scratch grows, never shrinks; growth frees the old buffer, so recorded steps are dropped.
  template <typename T>
  void ensure_capacity(DeviceBuffer<T>& buffer, size_t count) {
    if (buffer.size() >= count) return;
    if (graphs_.capturing()) fail("cuda backend: scratch of {} elements grew while recording a step", count);
    buffer = DeviceBuffer<T>(std::max(count, buffer.size() * 2));
    ++*epoch_;
  }

  int device_;
  bool reproducible_;
  // OCTET_CUDA_SAMPLING=0: callers copy logits to the host and sample there, as before device sampling
  // (an A/B switch; sample_rows itself still runs on the device).
  bool device_sampling_ = switched_on("OCTET_CUDA_SAMPLING");
  bool epilogue_scales_ = switched_on("OCTET_CUDA_GEMM_EPILOGUE_SCALES");  // see gemm_e4m3()
  bool fused_products_ = switched_on("OCTET_CUDA_FUSED_PRODUCTS");        // see linear_add_rmsnorm()
  bool fused_qkv_rope_ = switched_on("OCTET_CUDA_FUSED_QKV_ROPE");        // see linear_qkv_rope_kv_write()
  // For timing only: OCTET_CUDA_PROBE_SKIP=norm,quant,rope,attn,swiglu,linears (any of them) leaves
  // those launches out of steps of up to OCTET_CUDA_PROBE_ROWS rows (default 8: a 128-token prefill
  // stays whole), so that a recorded step's time without them prices them in place, overlaps included
  // (ncu times kernels one by one). The outputs are then wrong; the backend says so on stderr when it
  // is made.
  std::string probe_skip_ = probe_skip_setting();
  int64_t probe_rows_ = probe_rows_setting();
  bool probe_skips(const char* op, int64_t rows) const {
    if (rows > probe_rows_ || probe_skip_.empty()) return false;
    return probe_skip_.find("," + std::string(op) + ",") != std::string::npos;
  }
  // OCTET_CUDA_GROUPED_GEMM=0: fused groups run one GEMM per member (for comparison); =all: one GEMM
  // at every row count (see grouped_gemm()).
  enum class GroupedGemm { off, on, all };
  GroupedGemm grouped_gemm_ = [] {
    const char* value = std::getenv("OCTET_CUDA_GROUPED_GEMM");
    if (value != nullptr && std::strcmp(value, "all") == 0) return GroupedGemm::all;
    return switched_on("OCTET_CUDA_GROUPED_GEMM") ? GroupedGemm::on : GroupedGemm::off;
  }();
  LiveKvCaches live_caches_ = std::make_shared<std::vector<CudaKvCache*>>();
  std::vector<SampleRowSpec> sample_specs_host_;
  DeviceBuffer<SampleRowSpec> sample_specs_;
  DeviceBuffer<int32_t> sampled_tokens_;
  AllocationEpoch epoch_;
  StepGraphs graphs_;
  bool tc_attention_;

  std::optional<DecodeAttention> decode_attention_ = decode_attention_kernel();  // nullopt: by batch size
  bool skinny_gemm_;
  // OCTET_CUDA_WGMMA_GEMM_ROWS=R (1–128; 0, the default: none): FP8 linears of R to 128 rows on
  // wgmma (sm_90), ahead of the GEMV and cuBLASLt: up to 64 rows on skinny_gemm_wgmma_narrow.cu
  // unless OCTET_CUDA_WGMMA_GEMM_KERNEL=streamk, the rest on skinny_gemm_wgmma.cu.
  int64_t wgmma_rows_;
  bool wgmma_narrow_;
  StepGraphs::Action step_action_ = StepGraphs::Action::eager;
  // Bracket the last step on the stream (last_step_device_ms); none while a capture is open.
  cudaEvent_t step_start_ = nullptr, step_stop_ = nullptr;
  bool step_timed_ = false;
  void record_step_stop();
  bool in_step_ = false;
  bool fp8_linears_ = false;  // an FP8 weight exists: norms and SwiGLU also write E4M3 codes
  int64_t replayed_steps_ = 0;
  std::vector<int64_t> step_rows_host_;
  DeviceBuffer<int64_t> step_rows_;
  int compute_capability_ = 0;
  std::string device_name_;
  cudaStream_t stream_ = nullptr;
  std::unique_ptr<CublasLtGemm> gemm_;
  std::unique_ptr<StagedUpload> staging_;  // made by the first upload of stored weights
  DeviceBuffer<int32_t> tokens_;
  DeviceBuffer<int64_t> positions_, slots_, gather_rows_;
  size_t prepared_ = 0;
  uint64_t prepared_batches_ = 0;  // prepare_batch calls so far
  PrefillPlan plan_;
  uint64_t plan_batch_ = 0;  // plan_ is of the prepared_batches_-th batch (0: none yet)
  int64_t plan_group_ = 0;
  DeviceBuffer<PrefillTile> prefill_tiles_;
  DeviceBuffer<int32_t> other_tokens_;
  DeviceBuffer<uint8_t> codes_;
  DeviceBuffer<float> row_scales_;
  DeviceBuffer<uint16_t> bf16_;
  DeviceBuffer<float> frequencies_;
  DeviceBuffer<float> attention_scratch_;
  DeviceBuffer<uint32_t> attention_counters_;  // the grouped attention's finished splits per item, zero between launches
  DeviceBuffer<float> skinny_scratch_;  // the skinny GEMM's split-k partial sums
  DeviceBuffer<float> wgmma_scratch_;      // the wgmma GEMM's shared tiles' parts
  DeviceBuffer<uint32_t> wgmma_counters_;  // and its counters (zeroed when grown)
  DeviceBuffer<float> group_product_;   // a fused group's [rows, group rows] product before scale_split
  std::vector<float> frequencies_host_;
  struct PersistentLayerTable {
    std::vector<PersistentLayer> host;
    DeviceBuffer<PersistentLayer> device;
  };
  std::vector<PersistentLayerTable> persistent_layer_tables_;  // see persistent_layers()
  // OCTET_CUDA_L2_PREFETCH_MB=N (default 4, 0: off): each hint prefetches up to N MiB of its weights.
  int64_t prefetch_bytes_ = l2_prefetch_bytes_setting();
  bool prefetch_evict_last_ = l2_prefetch_evict_last_setting();  // OCTET_CUDA_L2_PREFETCH_EVICT=normal: off
  L2PrefetchRanges pending_prefetch_;
  cudaStream_t prefetch_stream_ = nullptr;  // made with the backend where prefetch_bytes_ > 0
  cudaEvent_t prefetch_fork_ = nullptr, prefetch_join_ = nullptr;
  bool prefetch_unjoined_ = false;  // work on prefetch_stream_ that stream_ has not waited for
  DeviceBuffer<float> persistent_scratch_;
  DeviceBuffer<unsigned> persistent_barrier_;
  DeviceBuffer<unsigned long long> persistent_trace_;  // OCTET_CUDA_PERSISTENT_TRACE's timestamps
};

}  // namespace octet::backend::cuda
