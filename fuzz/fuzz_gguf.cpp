// libFuzzer target: File::parse on arbitrary bytes, then everything a loader does with a parsed
// file (typed getters, tensor bytes, dequantization of small tensors, the Llama config). Any
// octet::Error is an accepted outcome; crashes, sanitizer reports and leaks are not.
#include <cstddef>
#include <cstdint>
#include <span>

#include "common/error.h"
#include "formats/gguf.h"
#include "model/llama_config.h"

namespace {

// Bounded so each input stays fast; the decoders see every type at this size anyway.
constexpr uint64_t kMaxDequantizeElements = uint64_t{1} << 16;

void exercise(const octet::gguf::File& file) {
  for (const auto& [key, value] : file.metadata()) {
    try { file.get_string(key); } catch (const octet::Error&) {}
    try { file.get_int(key); } catch (const octet::Error&) {}
    try { file.get_uint(key); } catch (const octet::Error&) {}
    try { file.get_float(key); } catch (const octet::Error&) {}
    try { file.get_bool(key); } catch (const octet::Error&) {}
    try { file.get_string_array(key); } catch (const octet::Error&) {}
    try { file.get_int_array(key); } catch (const octet::Error&) {}
    try { file.get_float_array(key); } catch (const octet::Error&) {}
  }
  for (const auto& tensor : file.tensors()) {
    const auto bytes = file.tensor_bytes(tensor);
    volatile uint8_t sink = bytes.empty() ? 0 : bytes[bytes.size() - 1];
    (void)sink;
    if (tensor.element_count > kMaxDequantizeElements) continue;
    try { file.dequantize(tensor); } catch (const octet::Error&) {}
  }
  try {
    const auto config = octet::model::config_from_gguf(file);
    config.parameter_count();
    config.rope_inverse_frequencies();
  } catch (const octet::Error&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const auto file = octet::gguf::File::parse(std::span<const uint8_t>(data, size), "fuzz.gguf");
    exercise(file);
  } catch (const octet::Error&) {
  }
  return 0;
}
