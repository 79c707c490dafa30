// GPU micro-benchmarks: the device's copy bandwidth and FP8 GEMM rate (the two ceilings), then the
// FP8 decode GEMV on Llama-3.3-70B shapes, each against the measured copy bandwidth.
//   octet_gpu_bench           all shapes, all row counts, every variant at rows = 1
//   octet_gpu_bench --quick   the two 70B MLP shapes at rows 1 and 8, default variant
#include "backend/device.h"
#include "common/error.h"

#include <fmt/format.h>

#include <cstring>
#include <exception>
#include <vector>

int main(int argc, char** argv) {
  using namespace octet::backend;
  const bool quick = argc > 1 && std::strcmp(argv[1], "--quick") == 0;
  try {
    const CudaStatus status = probe_cuda();
    if (!status.available) {
      fmt::print("no GPU: {}\n", status.reason);
      return 2;
    }
    const GpuInfo& gpu = status.gpus.at(0);
    fmt::print("{} (compute {}, {} SMs, {:.0f} MiB L2, {:.1f} GiB)\n", gpu.name, gpu.compute_capability(),
               gpu.multiprocessors, gpu.l2_cache_bytes / 1048576.0, gpu.total_memory_bytes / 1073741824.0);
    const double copy = measure_copy_bandwidth_bytes_per_s(0);
    fmt::print("device copy (read + write): {:.0f} GB/s\n", copy / 1e9);
    if (!quick) fmt::print("cuBLASLt FP8 GEMM 8192³: {:.0f} TFLOP/s\n", measure_fp8_gemm_flops(0) / 1e12);

    struct Shape { int64_t n, k; const char* what; };
    std::vector<Shape> shapes = {{28672, 8192, "gate/up"}, {8192, 28672, "down"}};
    if (!quick) {
      shapes.push_back({8192, 8192, "q/o"});
      shapes.push_back({1024, 8192, "k/v"});
      shapes.push_back({257, 1000, "odd"});
    }
    const std::vector<int64_t> row_counts = quick ? std::vector<int64_t>{1, 8} : std::vector<int64_t>{1, 2, 4, 8};
    fmt::print("\n{:>8} {:>6} {:>6} {:>4}  {:<28} {:>9} {:>8} {:>7} {:>9}\n", "shape", "n", "k", "m", "variant", "µs",
               "GB/s", "% copy", "max err");
    for (const Shape& s : shapes)
      for (int64_t m : row_counts) {
        std::vector<int> variants = {-1};
        if (!quick && m == 1)
          for (int v = 0; v < gemv_fp8_variants(); ++v) variants.push_back(v);
        for (int v : variants) {
          const GemvBenchResult r = bench_gemv_fp8(0, s.n, s.k, m, v);
          fmt::print("{:>8} {:>6} {:>6} {:>4}  {:<28} {:>9.1f} {:>8.0f} {:>6.1f}% {:>9.1e}\n", s.what, s.n, s.k, m,
                     r.variant_name, r.microseconds, r.gigabytes_per_s, 100.0 * r.gigabytes_per_s * 1e9 / copy,
                     r.max_relative_error);
        }
      }
    return 0;
  } catch (const std::exception& e) {
    fmt::print(stderr, "octet_gpu_bench: {}\n", e.what());
    return 1;
  }
}
