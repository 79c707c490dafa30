#include "common/error.h"
#include "octet/engine.h"

#include <cstdlib>

namespace octet {

Precision parse_precision(std::string_view name) {
  if (name == "fp8") return Precision::fp8;
  if (name == "bf16") return Precision::bf16;
  if (name == "f32") return Precision::f32;
  fail("unknown precision '{}': expected one of fp8, bf16, f32", name);
}

std::string_view precision_name(Precision precision) {
  switch (precision) {
    case Precision::fp8: return "fp8";
    case Precision::bf16: return "bf16";
    case Precision::f32: return "f32";
  }
  return "?";
}

Device parse_device(std::string_view name) {
  if (name == "auto") return Device::auto_select;
  if (name == "cpu") return Device::cpu;
  if (name == "cuda") return Device::cuda;
  fail("unknown device '{}': expected one of auto, cpu, cuda", name);
}

std::string_view device_name(Device device) {
  switch (device) {
    case Device::auto_select: return "auto";
    case Device::cpu: return "cpu";
    case Device::cuda: return "cuda";
  }
  return "?";
}

Numerics parse_numerics(std::string_view name) {
  if (name == "fast") return Numerics::fast;
  if (name == "reproducible") return Numerics::reproducible;
  fail("unknown numerics '{}': expected one of fast, reproducible", name);
}

std::string_view numerics_name(Numerics numerics) {
  return numerics == Numerics::reproducible ? "reproducible" : "fast";
}

VocabPrecision parse_vocab_precision(std::string_view name) {
  if (name == "auto") return VocabPrecision::auto_select;
  if (name == "bf16") return VocabPrecision::bf16;
  if (name == "fp8") return VocabPrecision::fp8;
  fail("unknown LM head / embedding precision '{}': expected one of auto, bf16, fp8", name);
}

std::string_view vocab_precision_name(VocabPrecision precision) {
  switch (precision) {
    case VocabPrecision::auto_select: return "auto";
    case VocabPrecision::bf16: return "bf16";
    case VocabPrecision::fp8: return "fp8";
  }
  return "?";
}

std::string default_model_path() {
  const char* dir = std::getenv("OCTET_MODELS");
  std::string models = dir && *dir ? dir : "models";
  return models + "/SmolLM2-135M-Instruct.Q4_1.gguf";
}

}  // namespace octet
