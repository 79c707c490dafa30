// The CUDA backend's construction, its environment switches, forward steps (recorded as CUDA graphs:
// step_graphs.h) and the ops that are neither weights, linear layers nor attention: embedding lookup,
// norms, SwiGLU, residual adds, sampling and copies; the GPU probe and make_cuda_backend.
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/integer_setting.h"
#include "backend/cuda/programmatic_launch.h"
#include "backend/device.h"

#include <fmt/ranges.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace octet::backend {
namespace cuda {

// An on-by-default environment switch: "0" turns it off.
bool switched_on(const char* variable) {
  const char* value = std::getenv(variable);
  return value == nullptr || std::strcmp(value, "0") != 0;
}

// An off-by-default environment switch: "1" turns it on.
bool switched_on_explicitly(const char* variable) {
  const char* value = std::getenv(variable);
  return value != nullptr && std::strcmp(value, "1") == 0;
}

// OCTET_CUDA_PROBE_SKIP: a comma-separated list of the kernels a timing run leaves out (cuda_backend.h),
// returned as ",name,…," for whole-name lookups; unset or empty: none. An unknown name is refused.
std::string probe_skip_setting() {
  const char* value = std::getenv("OCTET_CUDA_PROBE_SKIP");
  if (value == nullptr || *value == '\0') return {};
  static constexpr std::string_view kNames[] = {"norm", "quant", "rope", "attn", "swiglu", "linears"};
  const std::string_view list(value);
  for (size_t begin = 0; begin <= list.size();) {
    const size_t end = std::min(list.find(',', begin), list.size());
    const std::string_view name = list.substr(begin, end - begin);
    if (std::find(std::begin(kNames), std::end(kNames), name) == std::end(kNames))
      fail("OCTET_CUDA_PROBE_SKIP is '{}': '{}' is not one of {}", list, name, fmt::join(kNames, ", "));
    begin = end + 1;
  }
  return "," + std::string(list) + ",";
}

// OCTET_CUDA_PROBE_ROWS: the largest step OCTET_CUDA_PROBE_SKIP applies to, 1–4096 rows; unset or empty: 8.
int64_t probe_rows_setting() { return integer_setting("OCTET_CUDA_PROBE_ROWS", 8, 1, 4096, "a row count"); }

// OCTET_CUDA_DECODE_ATTENTION: "v2" the grouped decode kernel for every batch, "v1" the one before
// it; unset or "auto": v1 below kMinGroupedDecodeTokens tokens, v2 from there.
std::optional<DecodeAttention> decode_attention_kernel() {
  const char* value = std::getenv("OCTET_CUDA_DECODE_ATTENTION");
  if (value == nullptr || *value == '\0' || std::strcmp(value, "auto") == 0) return std::nullopt;
  if (std::strcmp(value, "v2") == 0) return DecodeAttention::grouped;
  if (std::strcmp(value, "v1") == 0) return DecodeAttention::v1;
  fail("OCTET_CUDA_DECODE_ATTENTION is '{}', expected auto, v1 or v2", value);
}

// OCTET_CUDA_WGMMA_GEMM_KERNEL: "narrow" (the default) or "streamk", the wgmma GEMM for up to 64 rows.
bool wgmma_narrow_setting() {
  const char* value = std::getenv("OCTET_CUDA_WGMMA_GEMM_KERNEL");
  if (value == nullptr || *value == '\0' || std::strcmp(value, "narrow") == 0) return true;
  if (std::strcmp(value, "streamk") == 0) return false;
  fail("OCTET_CUDA_WGMMA_GEMM_KERNEL is '{}', expected narrow or streamk", value);
}

CudaBackend::CudaBackend(int device, Numerics numerics)
    : device_(device), reproducible_(numerics == Numerics::reproducible), epoch_(std::make_shared<uint64_t>(0)), graphs_(epoch_, switched_on("OCTET_CUDA_GRAPHS")),
      tc_attention_(switched_on("OCTET_CUDA_TC_ATTENTION")), skinny_gemm_(switched_on_explicitly("OCTET_CUDA_SKINNY_GEMM")),
      wgmma_rows_(integer_setting("OCTET_CUDA_WGMMA_GEMM_ROWS", 0, 0, 128, "a row count, 0 to 128")),
      wgmma_narrow_(wgmma_narrow_setting()) {
  OCTET_CUDA_CHECK(cudaSetDevice(device));
  cudaDeviceProp props{};
  OCTET_CUDA_CHECK(cudaGetDeviceProperties(&props, device));
  compute_capability_ = props.major * 10 + props.minor;
  device_name_ = props.name;
  OCTET_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  OCTET_CUDA_CHECK(cudaEventCreate(&step_start_));
  OCTET_CUDA_CHECK(cudaEventCreate(&step_stop_));
  set_programmatic_launches(stream_, switched_on("OCTET_CUDA_PDL"));
  if (prefetch_bytes_ > 0) {  // made here: never while a step is being recorded
    OCTET_CUDA_CHECK(cudaStreamCreateWithFlags(&prefetch_stream_, cudaStreamNonBlocking));
    OCTET_CUDA_CHECK(cudaEventCreateWithFlags(&prefetch_fork_, cudaEventDisableTiming));
    OCTET_CUDA_CHECK(cudaEventCreateWithFlags(&prefetch_join_, cudaEventDisableTiming));
  }
  gemm_ = std::make_unique<CublasLtGemm>();
  if (!probe_skip_.empty())
    std::fprintf(stderr, "OCTET_CUDA_PROBE_SKIP=%s: those kernels are left out of steps of up to %lld rows, outputs are wrong (for timing only)\n",
                 std::getenv("OCTET_CUDA_PROBE_SKIP"), static_cast<long long>(probe_rows_));
}

CudaBackend::~CudaBackend() {
  if (prefetch_stream_ != nullptr) {
    cudaStreamSynchronize(prefetch_stream_);
    cudaEventDestroy(prefetch_fork_);
    cudaEventDestroy(prefetch_join_);
    cudaStreamDestroy(prefetch_stream_);
  }
  cudaStreamSynchronize(stream_);
  cudaEventDestroy(step_start_);
  cudaEventDestroy(step_stop_);
  gemm_.reset();
  forget_programmatic_launches(stream_);
  cudaStreamDestroy(stream_);
}

std::unique_ptr<Activations> CudaBackend::make_activations(int64_t rows, int64_t cols) {
  return std::make_unique<CudaActivations>(rows, cols, epoch_);
}

std::unique_ptr<KvCache> CudaBackend::make_kv_cache(const KvCacheSpec& spec) {
  auto cache = std::make_unique<CudaKvCache>(spec, stream_, live_caches_);
  cache->ticket = EpochTicket(epoch_);
  return cache;
}

void CudaBackend::prepare_batch(const TokenBatch& batch) {
  const size_t n = batch.size();
  ensure_capacity(tokens_, n);
  ensure_capacity(positions_, n);
  ensure_capacity(slots_, n);
  tokens_.upload(batch.tokens.data(), n, stream_);
  positions_.upload(batch.positions.data(), n, stream_);
  slots_.upload(batch.slots.data(), n, stream_);
  for (const CudaKvCache* cache : *live_caches_) cache->upload_block_table_changes();
  prepared_ = n;
  ++prepared_batches_;
}

bool CudaBackend::begin_step(const void* caller, const TokenBatch& batch, std::span<const int64_t> logit_rows) {
  step_timed_ = false;
  if (!graphs_.capturing()) OCTET_CUDA_CHECK(cudaEventRecord(step_start_, stream_));
  prepare_batch(batch);
  step_rows_host_.assign(logit_rows.begin(), logit_rows.end());
  ensure_capacity(step_rows_, std::max<size_t>(1, logit_rows.size()));
  if (!logit_rows.empty()) step_rows_.upload(step_rows_host_.data(), logit_rows.size(), stream_);
  step_action_ = graphs_.begin(caller, static_cast<int64_t>(batch.size()), static_cast<int64_t>(logit_rows.size()), stream_,
                               [&](const std::vector<const CudaKvCache*>& caches, int64_t vocab) {
                                 // What the skipped ops would have checked.
                                 for (const CudaKvCache* cache : caches) cache->check_batch(batch);
                                 for (int32_t token : batch.tokens)
                                   if (vocab >= 0 && (token < 0 || token >= vocab))
                                     fail("token id {} outside the vocabulary [0, {})", token, vocab);
                               });
  in_step_ = step_action_ != StepGraphs::Action::replayed;
  if (step_action_ == StepGraphs::Action::replayed) {
    ++replayed_steps_;
    record_step_stop();
  }
  return step_action_ == StepGraphs::Action::replayed;
}

void CudaBackend::end_step() {
  in_step_ = false;
  join_weight_prefetch();
  graphs_.end(step_action_, stream_);
  record_step_stop();
}

void CudaBackend::cancel_step() {
  in_step_ = false;
  step_timed_ = false;
  join_weight_prefetch();
  graphs_.abandon_capture(stream_);
}

double CudaBackend::last_step_device_ms() {
  if (!step_timed_) return -1.0;
  OCTET_CUDA_CHECK(cudaEventSynchronize(step_stop_));
  float ms = 0.0f;
  OCTET_CUDA_CHECK(cudaEventElapsedTime(&ms, step_start_, step_stop_));
  return ms;
}

void CudaBackend::embed(const EmbeddingTable& table, std::span<const int32_t> tokens, Activations& out) {
  const auto& t = static_cast<const CudaEmbedding&>(table);
  expect_prepared(tokens.size());
  for (int32_t token : tokens)
    if (token < 0 || token >= t.vocab) fail("token id {} outside the vocabulary [0, {})", token, t.vocab);
  check_shape(out, static_cast<int64_t>(tokens.size()), t.hidden, "embedding output");
  graphs_.note_vocab(t.vocab);
  const auto n = static_cast<int64_t>(tokens.size());
  float* dst = cast(out).data.data();
  switch (t.format) {
    case EmbeddingFormat::bf16: launch_embed_bf16(t.bf16.data(), tokens_.data(), n, t.hidden, dst, stream_); break;
    case EmbeddingFormat::f32: launch_embed_f32(t.f32.data(), tokens_.data(), n, t.hidden, dst, stream_); break;
    case EmbeddingFormat::fp8: launch_embed_e4m3(t.fp8_codes, t.fp8_scales, tokens_.data(), n, t.hidden, dst, stream_); break;
  }
}

void CudaBackend::rmsnorm(const Activations& x, const VectorWeight& weight, float eps, Activations& out) {
  check_shape(out, x.rows, x.cols, "rmsnorm output");
  auto& o = cast(out);
  if (probe_skips("norm", x.rows)) return;
  if (reproducible_)
    return reproducible::launch_rmsnorm(const_cast<float*>(cast(x).data.data()), nullptr,
                                        static_cast<const CudaVector&>(weight).values.data(), eps, x.rows, x.cols,
                                        o.data.data(), stream_);
  launch_add_rmsnorm_quantize(const_cast<float*>(cast(x).data.data()), nullptr,
                              static_cast<const CudaVector&>(weight).values.data(), eps, x.rows, x.cols, o.data.data(),
                              fp8_linears_ ? o.codes.data() : nullptr, o.row_scales.data(), stream_);
  o.codes_current = fp8_linears_;
}

void CudaBackend::add_rmsnorm(Activations& residual, const Activations& delta, const VectorWeight& weight, float eps,
                              Activations& out) {
  check_shape(delta, residual.rows, residual.cols, "residual delta");
  check_shape(out, residual.rows, residual.cols, "rmsnorm output");
  float* r = cast(residual).data.data();
  auto& o = cast(out);
  if (probe_skips("norm", residual.rows)) return;
  if (reproducible_)
    return reproducible::launch_rmsnorm(r, cast(delta).data.data(), static_cast<const CudaVector&>(weight).values.data(),
                                        eps, residual.rows, residual.cols, o.data.data(), stream_);
  launch_add_rmsnorm_quantize(r, cast(delta).data.data(), static_cast<const CudaVector&>(weight).values.data(), eps,
                              residual.rows, residual.cols, o.data.data(), fp8_linears_ ? o.codes.data() : nullptr,
                              o.row_scales.data(), stream_);
  o.codes_current = fp8_linears_;
}

void CudaBackend::swiglu(const Activations& gate, const Activations& up, Activations& out) {
  check_shape(up, gate.rows, gate.cols, "swiglu up");
  check_shape(out, gate.rows, gate.cols, "swiglu output");
  auto& o = cast(out);
  if (probe_skips("swiglu", gate.rows)) return;
  if (reproducible_)
    return reproducible::launch_swiglu(cast(gate).data.data(), cast(up).data.data(), gate.rows * gate.cols, o.data.data(),
                                       stream_);
  if (fp8_linears_) {
    launch_swiglu_quantize(cast(gate).data.data(), cast(up).data.data(), gate.rows, gate.cols, o.data.data(),
                           o.codes.data(), o.row_scales.data(), stream_);
    o.codes_current = true;
  } else {
    launch_swiglu(cast(gate).data.data(), cast(up).data.data(), gate.rows * gate.cols, o.data.data(), stream_);
  }
}

void CudaBackend::add(Activations& x, const Activations& y) {
  check_shape(y, x.rows, x.cols, "residual");
  launch_add(cast(x).data.data(), cast(y).data.data(), x.rows * x.cols, stream_);
}

void CudaBackend::copy_rows_to_host(const Activations& x, std::span<const int64_t> rows, float* out) {
  const float* src = cast(x).data.data();
  for (size_t i = 0; i < rows.size(); ++i)
    OCTET_CUDA_CHECK(cudaMemcpyAsync(out + i * x.cols, src + rows[i] * x.cols, static_cast<size_t>(x.cols) * 4,
                                     cudaMemcpyDeviceToHost, stream_));
  OCTET_CUDA_CHECK(cudaStreamSynchronize(stream_));
}

void CudaBackend::sample_rows(const Activations& logits, std::span<const int64_t> rows, std::span<const RowSampling> per_row,
                              std::span<int32_t> tokens_out) {
  check_sample_rows(logits, rows, per_row, tokens_out);
  if (rows.empty()) return;
  const size_t n = rows.size();
  sample_specs_host_.resize(n);
  for (size_t i = 0; i < n; ++i) {
    const RowSampling& p = per_row[i];
    sample_specs_host_[i] = SampleRowSpec{rows[i], p.temperature, p.top_k, p.top_p, p.min_p, p.seed, p.step};
  }
  ensure_capacity(sample_specs_, n);
  ensure_capacity(sampled_tokens_, n);
  sample_specs_.upload(sample_specs_host_.data(), n, stream_);
  launch_sample_rows(cast(logits).data.data(), logits.cols, sample_specs_.data(), static_cast<int64_t>(n),
                     sampled_tokens_.data(), stream_);
  OCTET_CUDA_CHECK(cudaMemcpyAsync(tokens_out.data(), sampled_tokens_.data(), n * sizeof(int32_t),
                                   cudaMemcpyDeviceToHost, stream_));
  OCTET_CUDA_CHECK(cudaStreamSynchronize(stream_));
}

void CudaBackend::gather_rows(const Activations& x, std::span<const int64_t> rows, Activations& out) {
  check_shape(out, static_cast<int64_t>(rows.size()), x.cols, "gather output");
  // Inside a step, the step's logit rows are already on the device (a recording cannot upload).
  const bool step_rows = in_step_ && std::equal(rows.begin(), rows.end(), step_rows_host_.begin(), step_rows_host_.end());
  if (!step_rows) {
    if (graphs_.capturing()) fail("cuda backend: gather_rows inside a recorded step must gather the step's logit rows");
    ensure_capacity(gather_rows_, rows.size());
    gather_rows_.upload(rows.data(), rows.size(), stream_);
  }
  launch_gather_rows(cast(x).data.data(), step_rows ? step_rows_.data() : gather_rows_.data(),
                     static_cast<int64_t>(rows.size()), x.cols, cast(out).data.data(), stream_);
}

void CudaBackend::expect_prepared(size_t tokens) const {
  if (prepared_ != tokens) fail("cuda backend: prepare_batch() was given {} tokens, the op has {}", prepared_, tokens);
}

void CudaBackend::record_step_stop() {
  if (graphs_.capturing()) return;
  OCTET_CUDA_CHECK(cudaEventRecord(step_stop_, stream_));
  step_timed_ = true;
}

}  // namespace cuda

CudaStatus probe_cuda() {
  CudaStatus status;
  status.compiled = true;
  cudaDriverGetVersion(&status.driver_version);
  cudaRuntimeGetVersion(&status.runtime_version);
  int count = 0;
  const cudaError_t error = cudaGetDeviceCount(&count);
  if (error != cudaSuccess || count == 0) {
    status.reason = error != cudaSuccess ? std::string("no usable NVIDIA GPU: ") + cudaGetErrorString(error)
                                         : "no NVIDIA GPU found";
    cudaGetLastError();  // clear the sticky error so later calls start clean
    return status;
  }
  for (int i = 0; i < count; ++i) {
    cudaDeviceProp props{};
    if (cudaGetDeviceProperties(&props, i) != cudaSuccess) continue;
    GpuInfo gpu;
    gpu.index = i;
    gpu.name = props.name;
    gpu.compute_major = props.major;
    gpu.compute_minor = props.minor;
    gpu.multiprocessors = props.multiProcessorCount;
    gpu.total_memory_bytes = props.totalGlobalMem;
    size_t free_bytes = 0, total_bytes = 0;
    if (cudaSetDevice(i) == cudaSuccess && cudaMemGetInfo(&free_bytes, &total_bytes) == cudaSuccess)
      gpu.free_memory_bytes = free_bytes;
    status.gpus.push_back(gpu);
  }
  status.available = !status.gpus.empty();
  if (!status.available) status.reason = "no NVIDIA GPU could be queried";
  return status;
}

std::unique_ptr<Backend> make_cuda_backend(int device_index, Numerics numerics) {
  CudaStatus status = probe_cuda();
  if (!status.available) fail("--device cuda: {}", status.reason);
  if (device_index < 0 || device_index >= static_cast<int>(status.gpus.size()))
    fail("--device cuda: GPU {} does not exist ({} found)", device_index, status.gpus.size());
  return std::make_unique<cuda::CudaBackend>(device_index, numerics);
}

}  // namespace octet::backend
