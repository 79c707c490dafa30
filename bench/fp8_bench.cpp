// Throughput of the bulk FP8 conversions that sit on every quantized linear layer's input path.
// Bytes counted are those moved: 4 bytes read + 1 written per element for encode, 1 + 4 for decode.
#include "fp8/fp8.h"

#include <benchmark/benchmark.h>

#include <cstdint>
#include <random>
#include <vector>

namespace {

constexpr size_t kElements = 1 << 20;

std::vector<float> activations() {
  std::mt19937 rng(1234);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> values(kElements);
  for (float& x : values) x = normal(rng);
  return values;
}

void BM_EncodeScaled(benchmark::State& state, octet::fp8::Format format) {
  const std::vector<float> input = activations();
  std::vector<uint8_t> codes(kElements);
  const float inv_scale = octet::fp8::max_value(format) / 5.0f;
  for (auto _ : state) {
    octet::fp8::encode_scaled(format, input.data(), inv_scale, codes.data(), kElements);
    benchmark::DoNotOptimize(codes.data());
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations() * kElements);
  state.SetBytesProcessed(state.iterations() * kElements * (sizeof(float) + 1));
}

void BM_DecodeScaled(benchmark::State& state, octet::fp8::Format format) {
  const std::vector<float> input = activations();
  std::vector<uint8_t> codes(kElements);
  const float inv_scale = octet::fp8::max_value(format) / 5.0f;
  octet::fp8::encode_scaled(format, input.data(), inv_scale, codes.data(), kElements);
  std::vector<float> output(kElements);
  for (auto _ : state) {
    octet::fp8::decode_scaled(format, codes.data(), 1.0f / inv_scale, output.data(), kElements);
    benchmark::DoNotOptimize(output.data());
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations() * kElements);
  state.SetBytesProcessed(state.iterations() * kElements * (sizeof(float) + 1));
}

BENCHMARK_CAPTURE(BM_EncodeScaled, e4m3, octet::fp8::Format::e4m3);
BENCHMARK_CAPTURE(BM_EncodeScaled, e5m2, octet::fp8::Format::e5m2);
BENCHMARK_CAPTURE(BM_DecodeScaled, e4m3, octet::fp8::Format::e4m3);
BENCHMARK_CAPTURE(BM_DecodeScaled, e5m2, octet::fp8::Format::e5m2);

}  // namespace
