// Weights of a Hugging Face safetensors checkpoint: float tensors in any floating dtype, and FP8
// layers as ModelOpt and compressed-tensors export them, per linear module M:
//   M.weight        F8_E4M3 [out, in]              w = code · weight_scale
//   M.weight_scale  float [] or [1] (per tensor), [out] or [out, 1] (per output channel), or with
//                   compressed-tensors strategy "block" [ceil(out/128), ceil(in/128)] (one per 128×128
//                   block, w = code · weight_scale[o/128][i/128]; DeepSeek-style exports name the same
//                   multiplier weight_scale_inv, read where weight_scale is absent)
//   M.input_scale   float [] or [1]: static activations, x_q = x / input_scale
// and per layer the KV-cache scales under the names the exporters have used: self_attn.k_proj.k_scale
// (ModelOpt), self_attn.k_scale (compressed-tensors), self_attn.k_proj.output_scale (older exports),
// self_attn.kv_scale (one scale for both). Tensors are read one at a time from the mmap; weights
// and tables go to the backend as views of their stored bytes (load_stored), so the backend converts
// them where it keeps them; OCTET_STORED_UPLOAD=0 widens them to float32 on the host instead.
#include <cfloat>
#include <cmath>
#include <cstdlib>
#include <cstring>

#include "backend/backend.h"
#include "common/error.h"
#include "formats/quantization_config.h"
#include "formats/safetensors_checkpoint.h"
#include "model/llama_config.h"
#include "model/weight_source.h"

namespace octet::model {
namespace {

using formats::CheckpointTensor;
using safetensors::Dtype;

std::optional<backend::StoredDtype> stored_dtype(Dtype dtype) {
  switch (dtype) {
    case Dtype::F32: return backend::StoredDtype::f32;
    case Dtype::F16: return backend::StoredDtype::f16;
    case Dtype::BF16: return backend::StoredDtype::bf16;
    case Dtype::F8_E4M3: return backend::StoredDtype::e4m3;
    default: return std::nullopt;
  }
}

bool stored_upload_enabled() {
  const char* value = std::getenv("OCTET_STORED_UPLOAD");
  return value == nullptr || std::strcmp(value, "0") != 0;
}

class HfWeightSource final : public WeightSource {
 public:
  HfWeightSource(std::shared_ptr<const formats::SafetensorsCheckpoint> checkpoint, formats::QuantizationConfig quantization)
      : checkpoint_(std::move(checkpoint)), quantization_(std::move(quantization)), stored_upload_(stored_upload_enabled()) {}

  bool has(const std::string& name) const override { return checkpoint_->has(name); }

  std::vector<float> load(const std::string& name, const std::vector<int64_t>& shape) const override {
    const CheckpointTensor& t = checkpoint_->tensor(name);
    check_shape(t, shape);
    if (t.info->dtype == Dtype::F8_E4M3 && name.ends_with(".weight") && shape.size() == 2)
      return load_linear(name.substr(0, name.size() - 7), shape[0], shape[1]).dequantized(shape[1]);
    std::vector<float> values = t.file->to_float(*t.info);
    t.file->release(*t.info);
    report_read(t.info->byte_size());
    return values;
  }

  MappedTensor load_stored(const std::string& name, const std::vector<int64_t>& shape) const override {
    const CheckpointTensor& t = checkpoint_->tensor(name);
    check_shape(t, shape);
    if (!stored_upload_ || shape.size() != 2 || t.info->dtype == Dtype::F8_E4M3) return nullptr;
    return mapped(t);
  }

  LinearWeights load_linear(const std::string& module, int64_t out, int64_t in) const override {
    const CheckpointTensor& weight = checkpoint_->tensor(module + ".weight");
    check_shape(weight, {out, in});
    const bool excluded = quantization_.quantized() && quantization_.is_excluded(module);
    LinearWeights result;
    if (weight.info->dtype != Dtype::F8_E4M3) {
      // A 16-bit head is accepted whatever the config says (llm.lm_head_precision decides its storage).
      if (quantization_.quantized() && !excluded && module != "lm_head")
        fail("{}: tensor '{}' is {}, but {} quantizes '{}' to FP8 (it is not excluded)", weight.file->path(),
             weight.info->name, safetensors::dtype_name(weight.info->dtype), quantization_.source, module);
      result.keep_16bit = excluded;
      if (stored_upload_ && (result.stored = mapped(weight))) return result;
      result.values = weight.file->to_float(*weight.info);
      weight.file->release(*weight.info);
      report_read(weight.info->byte_size());
      return result;
    }
    if (excluded)
      fail("{}: tensor '{}' is F8_E4M3, but {} excludes '{}' from quantization", weight.file->path(), weight.info->name,
           quantization_.source, module);
    if (stored_upload_) {
      result.stored = mapped(weight);
    } else {
      const auto codes = weight.file->bytes(*weight.info);
      result.e4m3_codes.assign(codes.begin(), codes.end());
      weight.file->release(*weight.info);
      report_read(weight.info->byte_size());
    }
    if (quantization_.block_weights) result.block_scales = block_scales(module, out, in);
    else result.channel_scales = weight_scales(module, out);
    const std::string input_scale = module + ".input_scale";
    if (quantization_.static_activations || (!quantization_.quantized() && checkpoint_->has(input_scale)))
      result.input_scale = scalar(input_scale, "static activation scale");
    return result;
  }

  bool prequantized() const override { return quantization_.quantized(); }

  bool stores_fp8(const std::string& module) const override {
    const CheckpointTensor* weight = checkpoint_->find(module + ".weight");
    return weight && weight->info->dtype == Dtype::F8_E4M3;
  }

  std::optional<KvScales> kv_scales(int64_t layer) const override {
    const std::string p = fmt::format("model.layers.{}.self_attn.", layer);
    const std::string* k = first_present({p + "k_proj.k_scale", p + "k_scale", p + "k_proj.output_scale", p + "kv_scale"});
    const std::string* v = first_present({p + "v_proj.v_scale", p + "v_scale", p + "v_proj.output_scale", p + "kv_scale"});
    if (!k && !v) {
      if (quantization_.fp8_kv_cache)
        fail("{}: missing scale: {} has an FP8 KV cache, but layer {} has no k_scale/v_scale ({}k_proj.k_scale, "
             "{}k_scale, {}k_proj.output_scale or {}kv_scale)",
             checkpoint_->directory(), quantization_.source, layer, p, p, p, p);
      return std::nullopt;
    }
    if (!k || !v)
      fail("{}: missing scale: layer {} has a {} scale but no {} scale", checkpoint_->directory(), layer, k ? "K" : "V",
           k ? "V" : "K");
    return KvScales{scalar(*k, "KV-cache scale"), scalar(*v, "KV-cache scale")};
  }

  uint64_t stored_bytes() const override { return checkpoint_->tensor_bytes(); }

 private:
  void check_shape(const CheckpointTensor& t, const std::vector<int64_t>& shape) const {
    if (t.info->shape != shape)
      fail("{}: tensor '{}' has shape [{}], expected [{}]", t.file->path(), t.info->name, fmt::join(t.info->shape, ", "),
           fmt::join(shape, ", "));
  }

  // A view of a 2-D tensor's bytes in the mmap; releasing it drops the pages and counts them read.
  // nullptr for dtypes a backend does not take as stored (F64, E5M2, integers).
  MappedTensor mapped(const CheckpointTensor& t) const {
    const std::optional<backend::StoredDtype> dtype = stored_dtype(t.info->dtype);
    if (!dtype || t.info->shape.size() != 2) return nullptr;
    auto* view = new backend::StoredTensor{t.file->bytes(*t.info).data(), *dtype, t.info->shape[0], t.info->shape[1]};
    return MappedTensor(view, [this, t](const backend::StoredTensor* v) {
      delete v;
      t.file->release(*t.info);
      report_read(t.info->byte_size());
    });
  }

  const std::string* first_present(const std::vector<std::string>& names) const {
    for (const std::string& name : names)
      if (checkpoint_->has(name)) return &checkpoint_->find(name)->info->name;
    return nullptr;
  }

  std::vector<float> checked_values(const CheckpointTensor& t, const char* what) const {
    if (!safetensors::is_floating(t.info->dtype))
      fail("{}: {} '{}' has dtype {}, expected a floating-point dtype", t.file->path(), what, t.info->name,
           safetensors::dtype_name(t.info->dtype));
    std::vector<float> values = t.file->to_float(*t.info);
    for (size_t i = 0; i < values.size(); ++i)
      if (!std::isfinite(values[i]) || values[i] < FLT_MIN)
        fail("{}: {} '{}' element {} is {}, expected a positive finite number", t.file->path(), what, t.info->name, i,
             values[i]);
    return values;
  }

  float scalar(const std::string& name, const char* what) const {
    const CheckpointTensor* t = checkpoint_->find(name);
    if (!t) fail("{}: missing scale: tensor '{}' ({}) is missing", checkpoint_->directory(), name, what);
    const auto& shape = t->info->shape;
    if (!(shape.empty() || (shape.size() == 1 && shape[0] == 1)))
      fail("{}: {} '{}' has shape [{}], expected a scalar ([] or [1])", t->file->path(), what, name, fmt::join(shape, ", "));
    return checked_values(*t, what)[0];
  }

  // One scale per output channel, a per-tensor scale repeated.
  std::vector<float> weight_scales(const std::string& module, int64_t out) const {
    const std::string name = module + ".weight_scale";
    const CheckpointTensor* t = checkpoint_->find(name);
    if (!t) fail("{}: missing scale: tensor '{}' is missing for the F8_E4M3 weight of '{}'", checkpoint_->directory(), name, module);
    const auto& shape = t->info->shape;
    const bool per_tensor = shape.empty() || (shape.size() == 1 && shape[0] == 1);
    const bool per_channel = (shape.size() == 1 && shape[0] == out) || (shape.size() == 2 && shape[0] == out && shape[1] == 1);
    if (!per_tensor && !per_channel)
      fail("{}: weight scale '{}' has shape [{}], expected [] or [1] (per tensor) or [{}] / [{}, 1] (per output channel)",
           t->file->path(), name, fmt::join(shape, ", "), out, out);
    std::vector<float> values = checked_values(*t, "weight scale");
    if (per_tensor) values.assign(static_cast<size_t>(out), values[0]);
    return values;
  }

  // One scale per 128×128 block, [ceil(out/128), ceil(in/128)] row-major (partial last blocks included).
  std::vector<float> block_scales(const std::string& module, int64_t out, int64_t in) const {
    const std::string name = checkpoint_->has(module + ".weight_scale") || !checkpoint_->has(module + ".weight_scale_inv")
                                 ? module + ".weight_scale"
                                 : module + ".weight_scale_inv";
    const CheckpointTensor* t = checkpoint_->find(name);
    if (!t)
      fail("{}: missing scale: tensor '{}' is missing for the F8_E4M3 weight of '{}' ({} has 128x128 block scales)",
           checkpoint_->directory(), name, module, quantization_.source);
    const std::vector<int64_t> expected{backend::fp8_scale_blocks(out), backend::fp8_scale_blocks(in)};
    if (t->info->shape != expected)
      fail("{}: weight scale '{}' has shape [{}], expected [{}] (one per 128x128 block of the [{}, {}] weight)",
           t->file->path(), name, fmt::join(t->info->shape, ", "), fmt::join(expected, ", "), out, in);
    return checked_values(*t, "weight scale");
  }

  std::shared_ptr<const formats::SafetensorsCheckpoint> checkpoint_;
  formats::QuantizationConfig quantization_;
  bool stored_upload_;
};

}  // namespace

std::unique_ptr<WeightSource> make_hf_weight_source(std::shared_ptr<const formats::SafetensorsCheckpoint> checkpoint,
                                                    formats::QuantizationConfig quantization) {
  return std::make_unique<HfWeightSource>(std::move(checkpoint), std::move(quantization));
}

}  // namespace octet::model
