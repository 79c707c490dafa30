// The CUDA backend's linears and attention under numerics reproducible (reproducible.cu): the same
// bits as the CPU backend's cpu_reproducible.cpp. FP8 inputs are quantized into the activation's own
// code buffer, which is left marked stale, so the fast path never reads codes made this way.
#include "backend/canonical_numerics.h"
#include "backend/cuda/cuda_backend.h"

namespace octet::backend::cuda {

void CudaBackend::reproducible_linear(const Activations& x, const LinearWeight& weight, Activations& out) {
  const auto& w = static_cast<const CudaLinear&>(weight);
  const int64_t m = x.rows, n = w.out_features, k = w.in_features;
  check_shape(x, m, k, "linear input");
  check_shape(out, m, n, "linear output");
  const auto& input = cast(x);
  reproducible::LinearOperand operand;
  switch (w.format) {
    case LinearFormat::fp8:
      if (k > canonical::kMaxExactFp8Terms)
        fail("reproducible numerics: an FP8 linear of {} in-features is beyond the {} whose sums are exact", k,
             canonical::kMaxExactFp8Terms);
      operand.e4m3_codes = w.e4m3_codes();
      if (w.block_scales.size() > 0) operand.block_scales = w.block_scales.data();
      else operand.channel_scales = w.channel_scales();
      input.codes_current = false;
      reproducible::launch_quantize_rows(input.data.data(), m, k, w.static_input_scale, input.codes.data(),
                                         input.row_scales.data(), stream_);
      break;
    case LinearFormat::bf16: operand.bf16 = w.bf16.data(); break;
    case LinearFormat::f32: operand.f32 = w.f32.data(); break;
  }
  reproducible::launch_linear(input.data.data(), input.codes.data(), input.row_scales.data(), operand, m, k, n,
                              cast(out).data.data(), stream_);
}

void CudaBackend::reproducible_attention(const CudaKvCache& c, int64_t layer, const TokenBatch& batch, const Activations& q,
                                         Activations& out) {
  reproducible::launch_attention(cast(q).data.data(), static_cast<int64_t>(batch.size()), q.cols / c.spec.head_dim,
                                 slots_.data(), positions_.data(), c.layout(), c.k[layer].data(), c.v[layer].data(),
                                 c.fp8() ? c.k_scales[layer].data() : nullptr, c.fp8() ? c.v_scales[layer].data() : nullptr,
                                 cast(out).data.data(), stream_);
}

}  // namespace octet::backend::cuda
