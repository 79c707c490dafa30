// compressed-tensors FP8_BLOCK checkpoints (weight_scale per 128×128 block) written in the published
// layout (tests/support/tiny_checkpoint.h) load with their codes and block scales as stored: the
// logits equal those of the same codes and scales handed to LlamaModel by the test's own WeightSource,
// and stay within a stated bound of the float32 logits of the weights. The model's sizes are not
// multiples of 128, so every layer has partial last blocks.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>

#include "backend/backend.h"
#include "backend/device.h"
#include "common/error.h"
#include "model/llama_model.h"
#include "model/model_files.h"
#include "support/error_text.h"
#include "support/random.h"
#include "support/require_gpu.h"
#include "support/tiny_checkpoint.h"

namespace octet::model {
namespace {

namespace tw = octet::testing;
using nlohmann::json;
namespace fs = std::filesystem;

// hidden 320 = 2·128 + 64 (5 heads of 64, one KV head: k/v [64, 320]), ffn 300: every linear has 1 to 3
// blocks a side, the last partial.
tw::TinyLlama block_sized_model(std::mt19937_64& rng) {
  tw::TinyLlama sizes;
  sizes.hidden = 320;
  sizes.heads = 5;
  sizes.kv_heads = 1;
  sizes.head_dim = 64;
  sizes.ffn = 300;
  return tw::TinyLlama::random(rng, false, sizes);
}

tw::TestWeightSource float_source(const tw::TinyLlama& m) {
  tw::TestWeightSource source;
  source.weights = m.weights;
  return source;
}

std::vector<float> dir_logits(const fs::path& dir, bool stored_upload, Precision precision = Precision::fp8,
                              backend::Backend* on = nullptr) {
  ::setenv("OCTET_STORED_UPLOAD", stored_upload ? "1" : "0", 1);
  ModelFiles files = open_model_files(dir.string());
  ::unsetenv("OCTET_STORED_UPLOAD");
  return tw::tiny_logits(files.config, *files.weights, precision, on);
}

std::string load_error(const fs::path& dir) {
  return tw::error_of([&] {
    ModelFiles files = open_model_files(dir.string());
    tw::tiny_logits(files.config, *files.weights);
  });
}
using tw::expect_parts;

// The writer's tensors again from its reference source, the scales named module + scale_suffix in
// scale_dtype, for tests that change one of them.
std::vector<tw::StTensor> block_tensors(const tw::TinyLlama& m, const tw::TestWeightSource& reference,
                                        const std::string& scale_suffix, const std::string& scale_dtype) {
  std::vector<tw::StTensor> tensors;
  for (const auto& name : m.order) {
    const std::string module = name.substr(0, name.size() - 7);  // without ".weight"
    const auto q = reference.fp8_blocks.find(module);
    if (q == reference.fp8_blocks.end()) {
      tensors.push_back({name, "BF16", m.shapes.at(name), tw::bf16_bytes(m.weights.at(name))});
      continue;
    }
    const auto& shape = m.shapes.at(name);
    tensors.push_back({name, "F8_E4M3", shape, q->second.codes});
    tensors.push_back({module + scale_suffix, scale_dtype, {(shape[0] + 127) / 128, (shape[1] + 127) / 128},
                       scale_dtype == "BF16" ? tw::bf16_bytes(q->second.scales) : tw::f32_bytes(q->second.scales)});
  }
  return tensors;
}

TEST(HfBlockScales, CompressedTensorsBlockLoadsCodesAndBlockScalesAsStored) {
  std::mt19937_64 rng(tw::test_seed("HfBlockScales.CompressedTensorsBlockLoadsCodesAndBlockScalesAsStored"));
  const tw::TinyLlama m = block_sized_model(rng);
  for (const std::string scale_dtype : {"BF16", "F32"}) {
    const auto dir = tw::fresh_directory("ct_block_" + scale_dtype);
    const tw::TestWeightSource reference = tw::write_compressed_tensors_block_dir(dir, m, scale_dtype);
    ModelFiles files = open_model_files(dir.string());
    EXPECT_EQ(files.format, "compressed-tensors FP8 weights per 128x128 block, dynamic activations");
    EXPECT_TRUE(files.quantization.block_weights);
    EXPECT_FALSE(files.quantization.static_activations);
    const auto loaded = tw::tiny_logits(files.config, *files.weights);
    // The same codes and block scales through the test's WeightSource: bit for bit, both loading routes.
    EXPECT_EQ(loaded, tw::tiny_logits(files.config, reference)) << scale_dtype;
    EXPECT_EQ(dir_logits(dir, false), loaded) << scale_dtype;
    // Other precisions get code · scale widened, exactly the test's dequantized weights.
    EXPECT_EQ(dir_logits(dir, true, Precision::bf16), tw::tiny_logits(files.config, reference, Precision::bf16));
    // Stated tolerance against float32: block scales are per 128 in-features, so their error is at most
    // 1.5 times that of per-channel quantize-at-load (plus 0.02), as for the other FP8 layouts.
    const auto f32 = tw::tiny_logits(files.config, float_source(m), Precision::f32);
    const double block_error = tw::relative_difference(loaded, f32);
    const double at_load_error = tw::relative_difference(tw::tiny_logits(files.config, float_source(m)), f32);
    std::printf("[%s scales] relative logit error vs f32 %.4f; quantize-at-load %.4f\n", scale_dtype.c_str(),
                block_error, at_load_error);
    EXPECT_LT(block_error, 1.5 * at_load_error + 0.02) << scale_dtype;
    fs::remove_all(dir);
  }
}

// DeepSeek-style exports name the same multiplier weight_scale_inv (w = code · weight_scale_inv, despite
// the name): read where weight_scale is absent, with the same result.
TEST(HfBlockScales, WeightScaleInvIsTheSameMultiplier) {
  std::mt19937_64 rng(tw::test_seed("HfBlockScales.WeightScaleInvIsTheSameMultiplier"));
  const tw::TinyLlama m = block_sized_model(rng);
  const auto dir = tw::fresh_directory("ct_block_inv");
  const tw::TestWeightSource reference = tw::write_compressed_tensors_block_dir(dir, m, "F32");
  const auto expected = dir_logits(dir, true);
  tw::write_weights(dir, block_tensors(m, reference, ".weight_scale_inv", "F32"));
  EXPECT_EQ(dir_logits(dir, true), expected);
  fs::remove_all(dir);
}

TEST(HfBlockScales, WrongShapeMissingScaleAndUnsupportedBlocksAreClearErrors) {
  std::mt19937_64 rng(tw::test_seed("HfBlockScales.WrongShapeMissingScaleAndUnsupportedBlocksAreClearErrors"));
  const tw::TinyLlama m = block_sized_model(rng);
  const auto dir = tw::fresh_directory("ct_block_bad");
  const tw::TestWeightSource reference = tw::write_compressed_tensors_block_dir(dir, m, "BF16");
  auto tensors_with = [&](const std::function<void(std::vector<tw::StTensor>&)>& change) {
    std::vector<tw::StTensor> tensors = block_tensors(m, reference, ".weight_scale", "BF16");
    change(tensors);
    tw::write_weights(dir, tensors);
  };
  // o_proj [320, 320] needs [3, 3] scales; a per-channel [320, 1] is refused, naming both shapes.
  tensors_with([](std::vector<tw::StTensor>& tensors) {
    for (auto& t : tensors)
      if (t.name == "model.layers.1.self_attn.o_proj.weight_scale") {
        t.shape = {320, 1};
        t.data = tw::bf16_bytes(std::vector<float>(320, 0.01f));
      }
  });
  expect_parts(load_error(dir), {"'model.layers.1.self_attn.o_proj.weight_scale'", "shape [320, 1]", "expected [3, 3]"});
  tensors_with([](std::vector<tw::StTensor>& tensors) {
    std::erase_if(tensors, [](const tw::StTensor& t) { return t.name == "model.layers.0.mlp.down_proj.weight_scale"; });
  });
  expect_parts(load_error(dir), {"missing scale", "model.layers.0.mlp.down_proj.weight_scale"});

  // Block shapes other than 128×128, and weight strategies Octet does not multiply, name the key.
  json config = json::parse(std::ifstream(dir / "config.json"));
  json& weights = config["quantization_config"]["config_groups"]["group_0"]["weights"];
  weights["block_structure"] = {64, 64};
  tw::write_text(dir / "config.json", config.dump());
  expect_parts(load_error(dir), {"config_groups.group_0.weights", "block_structure [64,64]", "[128, 128]"});
  weights["strategy"] = "group";
  tw::write_text(dir / "config.json", config.dump());
  expect_parts(load_error(dir), {"config_groups.group_0.weights", "strategy 'group'", "block"});
  fs::remove_all(dir);
}

// On the GPU: the block-scaled layers run on the CUDA backend's own kernel (and stay out of the fused
// q/k/v and gate/up GEMV), within the CUDA backend's model tolerance of the CPU: the error against
// float32 at most 1.5 times the CPU's plus 1e-3 (activation codes may round apart).
TEST(CudaBlockScaledCheckpoint, TinyBlockCheckpointOnTheGpuCloseToTheCpu) {
  OCTET_REQUIRE_GPU();
  std::mt19937_64 rng(tw::test_seed("CudaBlockScaledCheckpoint.TinyBlockCheckpointOnTheGpuCloseToTheCpu"));
  const tw::TinyLlama m = block_sized_model(rng);
  const auto dir = tw::fresh_directory("cuda_ct_block");
  tw::write_compressed_tensors_block_dir(dir, m, "BF16");
  auto gpu = backend::make_cuda_backend(0);
  auto cpu = backend::make_cpu_backend(2);
  const auto f32 = dir_logits(dir, true, Precision::f32, cpu.get());
  for (bool stored_upload : {true, false}) {
    const auto on_gpu = dir_logits(dir, stored_upload, Precision::fp8, gpu.get());
    const auto on_cpu = dir_logits(dir, stored_upload, Precision::fp8, cpu.get());
    for (float v : on_gpu) ASSERT_TRUE(std::isfinite(v));
    EXPECT_LT(tw::relative_difference(on_gpu, f32), 1.5 * tw::relative_difference(on_cpu, f32) + 1e-3)
        << "stored upload " << stored_upload;
  }
  fs::remove_all(dir);
}

}  // namespace
}  // namespace octet::model
