#pragma once
// Locating the real model files that set-up fetches; tests that need them skip visibly without them.
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <string>

namespace octet::testing {

inline std::string models_dir() {
  const char* env = std::getenv("OCTET_MODELS");
  return env && *env ? env : std::string(OCTET_SOURCE_DIR) + "/models";
}

inline std::optional<std::string> smollm2_gguf() {
  std::string path = models_dir() + "/SmolLM2-135M-Instruct.Q4_1.gguf";
  if (std::filesystem::exists(path)) return path;
  return std::nullopt;
}

inline std::string fixture_path(const std::string& name) { return std::string(OCTET_SOURCE_DIR) + "/tests/fixtures/" + name; }

}  // namespace octet::testing

#define OCTET_REQUIRE_SMOLLM2(var)                                                                 \
  auto var##_optional = ::octet::testing::smollm2_gguf();                                           \
  if (!var##_optional) GTEST_SKIP() << "SmolLM2 GGUF not found in " << ::octet::testing::models_dir() \
                                    << " (run scripts/setup.sh)";                                  \
  const std::string var = *var##_optional
