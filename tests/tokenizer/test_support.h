#pragma once
// Shared helpers of the tokenizer tests: fixture paths, golden files, random inputs with a
// printed seed (OCTET_TEST_SEED repeats a run).
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <random>
#include <string>
#include <vector>

namespace octet::tokenizer::testing {

inline std::string fixture_path(const std::string& name) { return std::string(OCTET_SOURCE_DIR) + "/tests/fixtures/" + name; }

inline nlohmann::json load_json(const std::string& path) {
  std::ifstream in(path);
  EXPECT_TRUE(in.good()) << "cannot open " << path;
  return nlohmann::json::parse(in);
}

inline std::string models_dir() {
  const char* env = std::getenv("OCTET_MODELS");
  return env != nullptr ? env : std::string(OCTET_SOURCE_DIR) + "/models";
}

inline uint64_t test_seed() {
  const char* env = std::getenv("OCTET_TEST_SEED");
  const uint64_t seed = env != nullptr ? std::strtoull(env, nullptr, 10) : std::random_device{}();
  std::cout << "[ seed     ] " << ::testing::UnitTest::GetInstance()->current_test_info()->name()
            << " OCTET_TEST_SEED=" << seed << std::endl;
  return seed;
}

// Arbitrary bytes, biased toward the interesting ones: ASCII text, spaces and newlines, UTF-8
// lead and continuation bytes (so valid and broken multi-byte sequences both occur).
inline std::string random_bytes(std::mt19937_64& rng, size_t max_length) {
  static const std::vector<std::string> fragments = {
      " ", "  ", "\n", "\r\n", "\t", "a", "Z", "7", "'s", "é", "中", "😀", "\xE2\x80\x8D", "\xC3", "\x80", "\xFF",
      "\xF0\x9F", "<|", "|>", "<|im_start|>", "<|im_end|>", "\xED\xA0\x80", "\xC2\xA0", std::string(1, '\0')};
  std::uniform_int_distribution<size_t> length_distribution(0, max_length);
  std::uniform_int_distribution<int> kind(0, 3);
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_int_distribution<size_t> fragment(0, fragments.size() - 1);
  std::string out;
  const size_t length = length_distribution(rng);
  while (out.size() < length) {
    if (kind(rng) == 0) out.push_back(static_cast<char>(byte(rng)));
    else out.append(fragments[fragment(rng)]);
  }
  return out;
}

inline std::string hex(const std::string& bytes) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (unsigned char c : bytes) {
    out.push_back(digits[c >> 4]);
    out.push_back(digits[c & 15]);
    out.push_back(' ');
  }
  return out;
}

}  // namespace octet::tokenizer::testing
