// The CUDA backend's linear layers: the FP8 GEMV for decode-sized batches, cuBLASLt (its epilogue
// scales or a scaling pass) above them, the skinny GEMM behind its switch, one GEMM for a fused group,
// and the products fused into the norm and SwiGLU that read them.
#include "backend/cuda/cuda_backend.h"

#include <algorithm>
#include <span>
#include <utility>

namespace octet::backend::cuda {
namespace {

// The fused group (fuse_linears) whose members are exactly `weights`, in its order, all of in_features
// columns; null where they are not such a group.
const FusedLinears* whole_group(std::span<const LinearWeight* const> weights, int64_t in_features) {
  if (weights.empty()) return nullptr;
  const FusedLinears* group = static_cast<const CudaLinear&>(*weights[0]).fused.get();
  if (!group || group->members != static_cast<int>(weights.size())) return nullptr;
  for (size_t i = 0; i < weights.size(); ++i) {
    const auto& w = static_cast<const CudaLinear&>(*weights[i]);
    if (w.fused.get() != group || w.fused_index != static_cast<int>(i) || w.in_features != in_features) return nullptr;
  }
  return group;
}

}  // namespace

// One GEMV launch for FP8 weights that share the input at decode sizes; above them one GEMM for a
// fused group (grouped_gemm), else one linear each.
void CudaBackend::linear_group(const Activations& x, std::span<const LinearWeight* const> weights,
                               std::span<Activations* const> outs) {
  if (reproducible_) return Backend::linear_group(x, weights, outs);
  const bool skinny = use_skinny_gemm(x.rows, x.cols);
  int64_t group_n = 0;  // the launch's matrix: the members' rows together
  for (const LinearWeight* weight : weights) group_n += weight->out_features;
  bool fused = weights.size() <= GemvGroup::kMaxMembers && weights.size() == outs.size() &&
               (gemv_e4m3_preferred(x.rows, group_n, x.cols) || skinny);
  for (const LinearWeight* weight : weights) {
    const auto& w = static_cast<const CudaLinear&>(*weight);
    fused = fused && w.format == LinearFormat::fp8 && w.block_scales.size() == 0 && w.static_input_scale <= 0.0f &&
            w.in_features == x.cols;
  }
  if (!fused) {
    // The hint waits for the group's last member (Backend::linear_group runs them one by one).
    const L2PrefetchRanges hint = std::exchange(pending_prefetch_, {});
    if (!grouped_gemm(x, weights, outs)) Backend::linear_group(x, weights, outs);
    pending_prefetch_ = hint;
    issue_weight_prefetch(x.rows);
    return;
  }
  GemvGroup group;
  group.count = static_cast<int>(weights.size());
  for (size_t i = 0; i < weights.size(); ++i) {
    const auto& w = static_cast<const CudaLinear&>(*weights[i]);
    check_shape(*outs[i], x.rows, w.out_features, "linear output");
    group.w[i] = w.e4m3_codes();
    group.col_scales[i] = w.channel_scales();
    group.y[i] = cast(*outs[i]).data.data();
    group.n[i] = w.out_features;
  }
  const auto& input = quantized(x);
  if (probe_skips("linears", x.rows)) return issue_weight_prefetch(x.rows);
  if (skinny) launch_skinny_gemm(input.codes.data(), input.row_scales.data(), x.rows, group, x.cols);
  else launch_gemv_e4m3_group(input.codes.data(), input.row_scales.data(), x.rows, group, x.cols, stream_);
  issue_weight_prefetch(x.rows);
}

// Where the GEMV is not taken (gemv_e4m3_preferred: above 8 rows, and large weights at every row
// count) an FP8 product is an unscaled cuBLASLt GEMM plus a scaling pass over its output
// (gemm_e4m3, grouped_gemm). The two ops below leave out that pass where the product's only reader
// follows at once: the norm and SwiGLU kernels apply the row and channel scales as they load it (the
// same floats as the pass). OCTET_CUDA_FUSED_PRODUCTS=0 keeps the pass (for comparison).
bool CudaBackend::unscaled_cublaslt(int64_t m, int64_t n, int64_t k) const {
  return !gemv_e4m3_preferred(m, n, k) && !use_skinny_gemm(m, k) && !(epilogue_scales_ && m > kMinEpilogueScaledRows);
}

bool CudaBackend::unscaled_gemm_rows(int64_t m, int64_t n, int64_t k) const {
  return fused_products_ && unscaled_cublaslt(m, n, k);
}

bool CudaBackend::plain_fp8(const CudaLinear& w) {
  return w.format == LinearFormat::fp8 && w.static_input_scale <= 0.0f && w.block_scales.size() == 0;
}

void CudaBackend::linear_add_rmsnorm(const Activations& x, const LinearWeight& weight, Activations& proj, Activations& residual,
                                     const VectorWeight& norm, float eps, Activations& out) {
  const auto& w = static_cast<const CudaLinear&>(weight);
  const int64_t m = x.rows, n = w.out_features, k = w.in_features;
  if (reproducible_ || !plain_fp8(w) || x.cols != k || !unscaled_gemm_rows(m, n, k)) return Backend::linear_add_rmsnorm(x, weight, proj, residual, norm, eps, out);
  check_shape(proj, m, n, "linear output");
  check_shape(residual, m, n, "residual");
  check_shape(out, m, n, "rmsnorm output");
  float* product = cast(proj).data.data();
  float* r = cast(residual).data.data();
  auto& o = cast(out);
  const float* norm_weights = static_cast<const CudaVector&>(norm).values.data();
  // Where the fused norm does not fit (rows too wide, unaligned), the default: GEMM, scaling pass, norm.
  if (!add_product_rmsnorm_quantize_fits(r, product, w.channel_scales(), norm_weights, m, n, o.data.data(), o.codes.data()))
    return Backend::linear_add_rmsnorm(x, weight, proj, residual, norm, eps, out);
  const auto& input = quantized(x);
  if (!gemm_->run(GemmType::e4m3, input.codes.data(), w.e4m3_codes(), product, m, n, k, stream_))
    return Backend::linear_add_rmsnorm(x, weight, proj, residual, norm, eps, out);
  issue_weight_prefetch(m);
  if (probe_skips("norm", m)) return;
  if (!try_launch_add_product_rmsnorm_quantize_in_registers(r, product, input.row_scales.data(), w.channel_scales(),
                                                            norm_weights, eps, m, n, o.data.data(), o.codes.data(),
                                                            o.row_scales.data(), stream_))
    fail("cuda backend: the fused norm refused a product it was checked to fit");
  o.codes_current = true;
}

void CudaBackend::linear_swiglu(const Activations& x, const LinearWeight& gate, const LinearWeight& up, Activations& gate_out,
                                Activations& up_out, Activations& out) {
  if (reproducible_) return Backend::linear_swiglu(x, gate, up, gate_out, up_out, out);
  const auto& g = static_cast<const CudaLinear&>(gate);
  const auto& u = static_cast<const CudaLinear&>(up);
  const int64_t m = x.rows, n = g.out_features, k = g.in_features;
  // One fused allocation holding gate then up (fuse_linears), so one GEMM gives both.
  const LinearWeight* members[] = {&gate, &up};
  const FusedLinears* group = whole_group(members, x.cols);
  const bool fits = group && plain_fp8(g) && plain_fp8(u) && u.out_features == n && x.cols == k &&
                    grouped_gemm_ != GroupedGemm::off && unscaled_gemm_rows(m, n + u.out_features, k);
  if (!fits) return Backend::linear_swiglu(x, gate, up, gate_out, up_out, out);
  check_shape(out, m, n, "swiglu output");
  ensure_capacity(group_product_, static_cast<size_t>(m * group->rows));
  auto& o = cast(out);
  // Where the fused SwiGLU does not fit (rows not whole float4s), the default: GEMM, split pass, SwiGLU.
  if (!swiglu_quantize_product_fits(group_product_.data(), group->rows, g.first_row, u.first_row, group->scales.data(),
                                    m, n, o.data.data(), o.codes.data()))
    return Backend::linear_swiglu(x, gate, up, gate_out, up_out, out);
  const auto& input = quantized(x);
  if (!gemm_->run(GemmType::e4m3, input.codes.data(), group->codes.data(), group_product_.data(), m, group->rows, k, stream_))
    return Backend::linear_swiglu(x, gate, up, gate_out, up_out, out);
  issue_weight_prefetch(m);
  if (probe_skips("swiglu", m)) return;
  if (!try_launch_swiglu_quantize_product_in_registers(group_product_.data(), group->rows, g.first_row, u.first_row,
                                                       input.row_scales.data(), group->scales.data(), m, n, o.data.data(),
                                                       o.codes.data(), o.row_scales.data(), stream_))
    fail("cuda backend: the fused SwiGLU refused a product it was checked to fit");
  o.codes_current = true;
}

// Every linear op issues the pending prefetch hint right after its weight stream.
void CudaBackend::linear(const Activations& x, const LinearWeight& weight, Activations& out) {
  if (reproducible_) return reproducible_linear(x, weight, out);
  linear_unhinted(x, weight, out);
  issue_weight_prefetch(x.rows);
}

void CudaBackend::linear_unhinted(const Activations& x, const LinearWeight& weight, Activations& out) {
  const auto& w = static_cast<const CudaLinear&>(weight);
  const int64_t m = x.rows, n = w.out_features, k = w.in_features;
  check_shape(x, m, k, "linear input");
  check_shape(out, m, n, "linear output");
  float* y = cast(out).data.data();
  if (probe_skips("linears", m)) { (void)quantized(x); return; }
  switch (w.format) {
    case LinearFormat::fp8: {
      const uint8_t* codes = nullptr;
      const float* scales = nullptr;
      if (w.static_input_scale > 0.0f) {  // the checkpoint's scale: quantized for this weight alone
        ensure_capacity(codes_, static_cast<size_t>(m * k));
        ensure_capacity(row_scales_, static_cast<size_t>(m));
        launch_quantize_rows_e4m3(cast(x).data.data(), m, k, w.static_input_scale, codes_.data(), row_scales_.data(), stream_);
        codes = codes_.data();
        scales = row_scales_.data();
      } else {
        const auto& input = quantized(x);
        codes = input.codes.data();
        scales = input.row_scales.data();
      }
      if (w.block_scales.size() > 0) {  // 128×128 block scales: their own kernel, every batch size
        launch_linear_e4m3_block128(codes, scales, m, w.codes.data(), w.block_scales.data(), n, k, y, stream_);
        return;
      }
      // Decode-sized batches read each weight once through the GEMV; larger ones go to tensor cores.
      if (!use_wgmma_gemm(m, k) && gemv_e4m3_preferred(m, n, k)) {
        launch_gemv_e4m3(codes, scales, m, w.e4m3_codes(), w.channel_scales(), n, k, y, stream_);
      } else if (use_skinny_gemm(m, k)) {
        GemvGroup group;
        group.count = 1;
        group.w[0] = w.e4m3_codes();
        group.col_scales[0] = w.channel_scales();
        group.y[0] = y;
        group.n[0] = n;
        launch_skinny_gemm(codes, scales, m, group, k);
      } else if (!gemm_e4m3(codes, scales, w, m, y)) {
        launch_matmul_e4m3_simple(codes, scales, m, w.e4m3_codes(), w.channel_scales(), n, k, y, stream_);
      }
      return;
    }
    case LinearFormat::bf16:
      ensure_capacity(bf16_, static_cast<size_t>(m * k));
      launch_to_bf16(cast(x).data.data(), m * k, bf16_.data(), stream_);
      if (!gemm_->run(GemmType::bf16, bf16_.data(), w.bf16.data(), y, m, n, k, stream_))
        fail("cuBLASLt has no BF16 algorithm for [{}, {}] x [{}, {}]", m, k, n, k);
      return;
    case LinearFormat::f32:
      if (!gemm_->run(GemmType::f32, cast(x).data.data(), w.f32.data(), y, m, n, k, stream_))
        fail("cuBLASLt has no float32 algorithm for [{}, {}] x [{}, {}]", m, k, n, k);
      return;
  }
}

// The fused q/k/v group where linear_group would run grouped_gemm's unscaled GEMM and then its split
// pass: the GEMM alone, its product read by the RoPE + KV write with the row and channel scales
// (QkvProduct): one pass fewer, the same bits in q, k, v and the cache. OCTET_CUDA_FUSED_QKV_ROPE=0
// keeps the split pass (for comparison). Elsewhere (the GEMV, separate GEMMs, prefill sizes that
// scale in the epilogue) the default.
void CudaBackend::linear_qkv_rope_kv_write(const Activations& x, std::span<const LinearWeight* const> qkv,
                                           Activations& q, Activations& k, Activations& v, KvCache& cache,
                                           int64_t layer, const TokenBatch& batch,
                                           std::span<const float> inverse_frequencies) {
  if (reproducible_) return Backend::linear_qkv_rope_kv_write(x, qkv, q, k, v, cache, layer, batch, inverse_frequencies);
  Activations* const outs[] = {&q, &k, &v};
  const FusedLinears* group = qkv.size() == 3 ? whole_group(qkv, x.cols) : nullptr;
  const int64_t m = x.rows, k_in = x.cols;
  int64_t group_n = 0;
  for (const LinearWeight* w : qkv) group_n += w->out_features;
  if (!fused_qkv_rope_ || grouped_gemm_ == GroupedGemm::off || !group || !unscaled_cublaslt(m, group_n, k_in))
    return Backend::linear_qkv_rope_kv_write(x, qkv, q, k, v, cache, layer, batch, inverse_frequencies);
  QkvProduct source;
  for (size_t i = 0; i < qkv.size(); ++i) source.first_col[i] = static_cast<const CudaLinear&>(*qkv[i]).first_row;
  for (size_t i = 0; i < qkv.size(); ++i) check_shape(*outs[i], m, qkv[i]->out_features, "linear output");
  const auto& input = quantized(x);
  ensure_capacity(group_product_, static_cast<size_t>(m * group->rows));
  if (!gemm_->run(GemmType::e4m3, input.codes.data(), group->codes.data(), group_product_.data(), m, group->rows, k_in,
                  stream_))
    return Backend::linear_qkv_rope_kv_write(x, qkv, q, k, v, cache, layer, batch, inverse_frequencies);
  issue_weight_prefetch(m);
  source.product = group_product_.data();
  source.cols = group->rows;
  source.row_scales = input.row_scales.data();
  source.col_scales = group->scales.data();
  source.values_out = cast(v).data.data();
  rope_kv_write_from(cache, layer, batch, q, k, v, inverse_frequencies, &source);
}

// An FP8 product on cuBLASLt with the scales applied in its epilogue or, where it has no such
// algorithm for the shape (or OCTET_CUDA_GEMM_EPILOGUE_SCALES=0), unscaled and then scaled by a
// pass over the output. False when cuBLASLt has no FP8 algorithm for the shape at all.
// Only above 128 rows: on the H200 the epilogue-scaled algorithms made prefill faster (8B 4096 tokens
// 126.5 → 108.5 ms, 70B 855.6 → 797.6 ms) but decode batches slower (8B b64 10.49 → 11.66 ms, 70B b32
// 37.7 → 49.7 ms), where the unscaled GEMM and the scaling pass stay.
bool CudaBackend::gemm_e4m3(const uint8_t* codes, const float* row_scales, const CudaLinear& w, int64_t m, float* y) {
  const int64_t n = w.out_features, k = w.in_features;
  if (epilogue_scales_ && m > kMinEpilogueScaledRows &&
      gemm_->run_e4m3_scaled(codes, row_scales, w.e4m3_codes(), w.channel_scales(), y, m, n, k, stream_))
    return true;
  if (!gemm_->run(GemmType::e4m3, codes, w.e4m3_codes(), y, m, n, k, stream_)) return false;
  launch_scale_rows_cols(y, m, n, row_scales, w.channel_scales(), stream_);
  return true;
}

// The members of one fused group, all of them in its order: one cuBLASLt GEMM with n = the group's
// rows (Σ members' out_features, plus padding) into scratch, then one pass that scales each element and writes it to its member
// (scale_split.cu), instead of a GEMM and a scaling pass per member; the narrow members (k, v) then
// ride on the wide one's weight stream. Above kMinEpilogueScaledRows the separate GEMMs apply the
// scales in their epilogue, so a group's pass would only copy: an extra read and write of the whole
// output, and at those (prefill) sizes the GEMMs are compute-bound and gain little from one launch.
// There the members stay separate unless OCTET_CUDA_GROUPED_GEMM=all (an experiment). False: not such
// a group or no cuBLASLt algorithm (the caller runs the members one by one).
bool CudaBackend::grouped_gemm(const Activations& x, std::span<const LinearWeight* const> weights, std::span<Activations* const> outs) {
  if (grouped_gemm_ == GroupedGemm::off || weights.size() != outs.size()) return false;
  const FusedLinears* group = whole_group(weights, x.cols);
  if (!group) return false;
  ScaleSplit split;
  split.count = group->members;
  split.product_cols = group->rows;
  for (size_t i = 0; i < weights.size(); ++i) {
    const auto& w = static_cast<const CudaLinear&>(*weights[i]);
    check_shape(*outs[i], x.rows, w.out_features, "linear output");
    split.out[i] = cast(*outs[i]).data.data();
    split.first_col[i] = w.first_row;
    split.cols[i] = w.out_features;
  }
  const int64_t m = x.rows, n = group->rows, k = x.cols;
  const bool epilogue = epilogue_scales_ && m > kMinEpilogueScaledRows;
  if (epilogue && grouped_gemm_ != GroupedGemm::all) return false;
  const auto& input = quantized(x);
  ensure_capacity(group_product_, static_cast<size_t>(m * n));
  const bool scaled = epilogue && gemm_->run_e4m3_scaled(input.codes.data(), input.row_scales.data(), group->codes.data(),
                                                         group->scales.data(), group_product_.data(), m, n, k, stream_);
  if (!scaled && !gemm_->run(GemmType::e4m3, input.codes.data(), group->codes.data(), group_product_.data(), m, n, k, stream_))
    return false;
  launch_scale_split(group_product_.data(), m, scaled ? nullptr : input.row_scales.data(),
                     scaled ? nullptr : group->scales.data(), split, stream_);
  return true;
}

// Rows 17–128 (the GEMV takes fewer) on the skinny GEMM when OCTET_CUDA_SKINNY_GEMM=1; rows from
// OCTET_CUDA_WGMMA_GEMM_ROWS to 128 on a wgmma GEMM (sm_90, k a multiple of 128): the narrow tiles'
// up to 64 rows (unless OCTET_CUDA_WGMMA_GEMM_KERNEL=streamk), stream-K above.
bool CudaBackend::use_wgmma_gemm(int64_t rows, int64_t k) const {
  return wgmma_rows_ > 0 && rows >= wgmma_rows_ && wgmma_skinny_gemm_fits(rows, k);
}

bool CudaBackend::use_skinny_gemm(int64_t rows, int64_t k) const {
  if (use_wgmma_gemm(rows, k)) return true;
  return skinny_gemm_ && rows > 16 && skinny_gemm_e4m3_fits(rows, k);
}

void CudaBackend::launch_skinny_gemm(const uint8_t* codes, const float* row_scales, int64_t rows, const GemvGroup& group, int64_t k) {
  if (use_wgmma_gemm(rows, k)) {
    if (wgmma_narrow_ && wgmma_narrow_gemm_fits(rows, k)) {
      launch_wgmma_narrow_gemm(codes, row_scales, rows, group, k, stream_);
      return;
    }
    const WgmmaScratch need = wgmma_skinny_gemm_scratch(rows, group, k);
    ensure_capacity(wgmma_scratch_, std::max<size_t>(1, need.floats));
    if (wgmma_counters_.size() < need.counters) {
      ensure_capacity(wgmma_counters_, need.counters);
      OCTET_CUDA_CHECK(cudaMemsetAsync(wgmma_counters_.data(), 0, wgmma_counters_.bytes(), stream_));
    }
    launch_wgmma_skinny_gemm(codes, row_scales, rows, group, k, wgmma_scratch_.data(), wgmma_scratch_.size(),
                             wgmma_counters_.data(), wgmma_counters_.size(), stream_);
    return;
  }
  const size_t scratch_floats = skinny_gemm_e4m3_scratch_floats(rows, group, k);
  ensure_capacity(skinny_scratch_, std::max<size_t>(1, scratch_floats));
  launch_skinny_gemm_e4m3_group(codes, row_scales, rows, group, k, skinny_scratch_.data(), skinny_scratch_.size(), stream_);
}

// x with its per-row dynamic E4M3 codes current (quantized now unless the writer already did).
const CudaActivations& CudaBackend::quantized(const Activations& x) {
  const auto& a = cast(x);
  if (!a.codes_current) {
    if (probe_skips("quant", x.rows)) return a;
    launch_quantize_rows_e4m3(a.data.data(), x.rows, x.cols, 0.0f, a.codes.data(), a.row_scales.data(), stream_);
    a.codes_current = true;
  }
  return a;
}

}  // namespace octet::backend::cuda
