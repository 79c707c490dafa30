// --device / --precision against what the GPU probe finds: fabricated probe results, so the GPUs
// this machine lacks (none, one without FP8 tensor cores, a Hopper) are all decided here.
#include "engine/backend_choice.h"

#include "support/error_text.h"

#include <gtest/gtest.h>

namespace octet::engine {
namespace {

backend::CudaStatus with_gpu(const char* name, int major, int minor, int index = 0) {
  backend::CudaStatus status;
  status.compiled = status.available = true;
  backend::GpuInfo gpu;
  gpu.index = index;
  gpu.name = name;
  gpu.compute_major = major;
  gpu.compute_minor = minor;
  status.gpus.push_back(gpu);
  return status;
}

backend::CudaStatus without_gpu() {
  backend::CudaStatus status;
  status.compiled = true;
  status.reason = "no CUDA device found";
  return status;
}

TEST(BackendChoice, CpuIsTakenWhenAsked) {
  const BackendChoice choice = decide_backend(Device::cpu, Precision::fp8, with_gpu("NVIDIA H100 80GB HBM3", 9, 0));
  EXPECT_FALSE(choice.cuda);
  EXPECT_TRUE(choice.notice.empty());
}

TEST(BackendChoice, AutoTakesAnFp8GpuForEveryPrecision) {
  for (Precision precision : {Precision::fp8, Precision::bf16, Precision::f32}) {
    const BackendChoice choice = decide_backend(Device::auto_select, precision, with_gpu("NVIDIA L4", 8, 9, 2));
    EXPECT_TRUE(choice.cuda);
    EXPECT_EQ(choice.gpu_index, 2);
  }
}

TEST(BackendChoice, AutoRunsFp8OnTheCpuBelowCompute89AndSaysWhy) {
  const auto a100 = with_gpu("NVIDIA A100-SXM4-80GB", 8, 0);
  const BackendChoice fp8 = decide_backend(Device::auto_select, Precision::fp8, a100);
  EXPECT_FALSE(fp8.cuda);
  testing::expect_parts(fp8.notice, {"NVIDIA A100-SXM4-80GB", "compute 8.0", "8.9", "--precision bf16"});
  const BackendChoice bf16 = decide_backend(Device::auto_select, Precision::bf16, a100);
  EXPECT_TRUE(bf16.cuda) << "bf16 runs on any GPU";
}

TEST(BackendChoice, ForcedCudaWithFp8BelowCompute89IsAnErrorOfferingBf16) {
  const std::string message =
      testing::error_of([] { decide_backend(Device::cuda, Precision::fp8, with_gpu("Tesla V100-SXM2-32GB", 7, 0)); });
  testing::expect_parts(message, {"--device cuda", "8.9", "Tesla V100-SXM2-32GB", "7.0", "--precision bf16"});
  EXPECT_TRUE(decide_backend(Device::cuda, Precision::bf16, with_gpu("Tesla V100-SXM2-32GB", 7, 0)).cuda);
}

TEST(BackendChoice, WithoutAGpuAutoTakesTheCpuAndForcedCudaIsLeftToTheFactory) {
  const BackendChoice automatic = decide_backend(Device::auto_select, Precision::fp8, without_gpu());
  EXPECT_FALSE(automatic.cuda);
  EXPECT_TRUE(automatic.notice.empty()) << "no GPU is the ordinary case, not a warning";
  // The CUDA backend's factory then fails with its own one-line reason (tested in the CLI tests).
  EXPECT_TRUE(decide_backend(Device::cuda, Precision::fp8, without_gpu()).cuda);
}

}  // namespace
}  // namespace octet::engine
