// libFuzzer target: safetensors File::parse on arbitrary bytes, then what a loader does with a parsed
// file (lookups, tensor bytes, widening of small floating-point tensors). Any octet::Error is an
// accepted outcome; crashes, sanitizer reports and leaks are not.
#include <cstddef>
#include <cstdint>
#include <span>

#include "common/error.h"
#include "formats/safetensors.h"

namespace {

constexpr uint64_t kMaxWidenElements = uint64_t{1} << 16;

void exercise(const octet::safetensors::File& file) {
  for (const auto& tensor : file.tensors()) {
    if (file.find(tensor.name) != &tensor) __builtin_trap();  // every listed tensor is found by its name
    const auto bytes = file.bytes(tensor);
    volatile uint8_t sink = bytes.empty() ? 0 : bytes[bytes.size() - 1];
    (void)sink;
    if (tensor.element_count > kMaxWidenElements) continue;
    try { file.to_float(tensor); } catch (const octet::Error&) {}
  }
  for (const auto& [key, value] : file.metadata()) (void)file.find(key);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const auto file = octet::safetensors::File::parse(std::span<const uint8_t>(data, size), "fuzz.safetensors");
    exercise(file);
  } catch (const octet::Error&) {
  }
  return 0;
}
