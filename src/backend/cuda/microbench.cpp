// Device ceilings and kernel timings for rooflines, measured rather than taken from a datasheet:
// CUDA events around the region, warm-up first, median of repeats, random (never zero) data.
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/device_buffer.h"
#include "backend/cuda/gemm_cublaslt.h"
#include "backend/cuda/kernels.h"
#include "backend/device.h"
#include "fp8/fp8.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

namespace octet::backend {
namespace {

class EventTimer {
 public:
  EventTimer() {
    OCTET_CUDA_CHECK(cudaEventCreate(&start_));
    OCTET_CUDA_CHECK(cudaEventCreate(&stop_));
  }
  ~EventTimer() {
    cudaEventDestroy(start_);
    cudaEventDestroy(stop_);
  }
  EventTimer(const EventTimer&) = delete;
  EventTimer& operator=(const EventTimer&) = delete;

  // work(i) is called with the repetition number (for rotating inputs).
  template <typename Work>
  double median_seconds(Work&& work, int warmup, int repeats, cudaStream_t stream) {
    for (int i = 0; i < warmup; ++i) work(i);
    OCTET_CUDA_CHECK(cudaStreamSynchronize(stream));
    std::vector<float> ms;
    for (int i = 0; i < repeats; ++i) {
      OCTET_CUDA_CHECK(cudaEventRecord(start_, stream));
      work(warmup + i);
      OCTET_CUDA_CHECK(cudaEventRecord(stop_, stream));
      OCTET_CUDA_CHECK(cudaEventSynchronize(stop_));
      float elapsed = 0;
      OCTET_CUDA_CHECK(cudaEventElapsedTime(&elapsed, start_, stop_));
      ms.push_back(elapsed);
    }
    std::sort(ms.begin(), ms.end());
    return ms[ms.size() / 2] / 1000.0;
  }

 private:
  cudaEvent_t start_, stop_;
};

}  // namespace

double measure_copy_bandwidth_bytes_per_s(int device_index) {
  OCTET_CUDA_CHECK(cudaSetDevice(device_index));
  const size_t bytes = size_t{1} << 30;
  cuda::DeviceBuffer<uint8_t> source(bytes), destination(bytes);
  cuda::launch_random_e4m3(source.data(), 1, static_cast<int64_t>(bytes), static_cast<int64_t>(bytes), 7, nullptr);
  EventTimer timer;
  const double seconds = timer.median_seconds(
      [&](int) {
        OCTET_CUDA_CHECK(cudaMemcpyAsync(destination.data(), source.data(), bytes, cudaMemcpyDeviceToDevice, nullptr));
      },
      3, 20, nullptr);
  return 2.0 * static_cast<double>(bytes) / seconds;  // read + written
}

double measure_fp8_gemm_flops(int device_index) {
  OCTET_CUDA_CHECK(cudaSetDevice(device_index));
  const int64_t n = 8192;
  cuda::DeviceBuffer<uint8_t> a(static_cast<size_t>(n * n)), b(static_cast<size_t>(n * n));
  cuda::DeviceBuffer<float> out(static_cast<size_t>(n * n));
  cuda::launch_random_e4m3(a.data(), n, n, n, 11, nullptr);  // random data: zeros run faster than real inputs
  cuda::launch_random_e4m3(b.data(), n, n, n, 12, nullptr);
  cuda::CublasLtGemm gemm;
  EventTimer timer;
  bool ran = true;
  const double seconds = timer.median_seconds(
      [&](int) { ran = ran && gemm.run(cuda::GemmType::e4m3, a.data(), n, b.data(), n, out.data(), n, n, n, n, nullptr); },
      3, 10, nullptr);
  if (!ran) fail("cuBLASLt found no FP8 algorithm for an 8192³ product");
  return 2.0 * static_cast<double>(n) * n * n / seconds;
}

int gemv_fp8_variants() { return cuda::gemv_variant_count(); }

GemvBenchResult bench_gemv_fp8(int device_index, int64_t n, int64_t k, int64_t m, int variant) {
  OCTET_CUDA_CHECK(cudaSetDevice(device_index));
  if (n <= 0 || k <= 0 || m < 1 || m > cuda::kGemvMaxRows)
    fail("bench_gemv_fp8: n {} k {} m {} (m must be 1 to {})", n, k, m, cuda::kGemvMaxRows);
  cudaDeviceProp props{};
  OCTET_CUDA_CHECK(cudaGetDeviceProperties(&props, device_index));
  const int64_t k_padded = cuda::padded_k(k);
  const int64_t weight_bytes = n * k_padded;
  // Enough copies that the rotation touches ≥ 3× the L2 between two uses of one copy (at least 4),
  // within 8 GiB.
  const int64_t l2 = std::max<int64_t>(props.l2CacheSize, 1);
  const int64_t copies = std::clamp<int64_t>((3 * l2 + weight_bytes - 1) / weight_bytes + 1, 4,
                                             std::max<int64_t>(4, (int64_t{8} << 30) / weight_bytes));

  std::mt19937_64 rng(static_cast<uint64_t>(n * 1000003 + k * 101 + m));
  std::uniform_real_distribution<float> scale_dist(0.5f, 2.0f);
  std::vector<cuda::DeviceBuffer<uint8_t>> weights;
  for (int64_t c = 0; c < copies; ++c) {
    weights.emplace_back(static_cast<size_t>(weight_bytes));
    cuda::launch_random_e4m3(weights.back().data(), n, k, k_padded, 1000 + static_cast<uint64_t>(c), nullptr);
  }
  cuda::DeviceBuffer<uint8_t> x(static_cast<size_t>(m * k_padded));
  cuda::launch_random_e4m3(x.data(), m, k, k_padded, 99, nullptr);
  std::vector<float> w_scales(static_cast<size_t>(n)), x_scales(static_cast<size_t>(m));
  for (auto& s : w_scales) s = scale_dist(rng) / 4096.0f;
  for (auto& s : x_scales) s = scale_dist(rng) / 64.0f;
  cuda::DeviceBuffer<float> device_w_scales(w_scales.size()), device_x_scales(x_scales.size());
  device_w_scales.upload(w_scales.data(), w_scales.size(), nullptr);
  device_x_scales.upload(x_scales.data(), x_scales.size(), nullptr);
  cuda::DeviceBuffer<float> y(static_cast<size_t>(m * n));

  auto launch = [&](int i) {
    const uint8_t* w = weights[static_cast<size_t>(i % copies)].data();
    if (variant < 0)
      cuda::launch_gemv_e4m3(x.data(), device_x_scales.data(), m, w, device_w_scales.data(), n, k_padded, y.data(), nullptr);
    else
      cuda::launch_gemv_e4m3_variant(variant, x.data(), device_x_scales.data(), m, w, device_w_scales.data(), n, k_padded,
                                     y.data(), nullptr);
  };
  EventTimer timer;
  const double seconds = timer.median_seconds(launch, 2 * static_cast<int>(copies), 50, nullptr);

  GemvBenchResult result;
  result.n = n, result.k = k, result.m = m, result.variant = variant;
  if (variant >= 0) {
    const cuda::GemvVariant v = cuda::gemv_variant(variant);
    result.variant_name = fmt::format("{} warps, {} rows, unroll {}", v.warps, 16 * v.row_tiles, v.unroll);
  } else {
    result.variant_name = "default";
  }
  result.microseconds = seconds * 1e6;
  result.bytes = static_cast<double>(weight_bytes + m * k_padded + 4 * m * n);
  result.gigabytes_per_s = result.bytes / seconds / 1e9;

  // Check a sample of outputs of one more run on copy 0 against float64 on the host.
  launch(0);
  OCTET_CUDA_CHECK(cudaStreamSynchronize(nullptr));
  std::vector<float> y_host(static_cast<size_t>(m * n));
  std::vector<uint8_t> x_host(static_cast<size_t>(m * k_padded)), w_row(static_cast<size_t>(k_padded));
  OCTET_CUDA_CHECK(cudaMemcpy(y_host.data(), y.data(), y.bytes(), cudaMemcpyDeviceToHost));
  OCTET_CUDA_CHECK(cudaMemcpy(x_host.data(), x.data(), x.bytes(), cudaMemcpyDeviceToHost));
  std::uniform_int_distribution<int64_t> row_dist(0, n - 1);
  for (int sample = 0; sample < 16; ++sample) {
    const int64_t row = sample == 0 ? n - 1 : row_dist(rng);
    OCTET_CUDA_CHECK(cudaMemcpy(w_row.data(), weights[0].data() + row * k_padded, w_row.size(), cudaMemcpyDeviceToHost));
    for (int64_t t = 0; t < m; ++t) {
      double sum = 0, magnitude = 0;
      for (int64_t i = 0; i < k; ++i) {
        const double product = static_cast<double>(fp8::decode_e4m3(x_host[static_cast<size_t>(t * k_padded + i)])) *
                               fp8::decode_e4m3(w_row[static_cast<size_t>(i)]);
        sum += product;
        magnitude += std::fabs(product);
      }
      const double expected = sum * x_scales[static_cast<size_t>(t)] * w_scales[static_cast<size_t>(row)];
      const double scale = magnitude * x_scales[static_cast<size_t>(t)] * w_scales[static_cast<size_t>(row)];
      const double error = std::fabs(y_host[static_cast<size_t>(t * n + row)] - expected) / std::max(scale, 1e-30);
      result.max_relative_error = std::max(result.max_relative_error, error);
    }
  }
  return result;
}

}  // namespace octet::backend
