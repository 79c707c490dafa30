// The rule launch.cuh states, checked on the sources: a kernel launched programmatically without
// waiting for the kernel before it would race, so every .cu of the backend's step and sampling
// kernels includes launch.cuh, launches nothing with <<<…>>> (launch_kernel is the only path), and
// every __global__ function in it calls await_earlier_kernels(). Only the load-time kernels (random
// and stored weights, run before any step) may launch plainly. Runs without a GPU.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>

namespace {

std::string read_text(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// The body of the function whose declaration starts at `from`: from its first '{' to the matching '}'.
std::string body_after(const std::string& text, size_t from) {
  const size_t open = text.find('{', from);
  if (open == std::string::npos) return {};
  int depth = 0;
  for (size_t i = open; i < text.size(); ++i) {
    if (text[i] == '{') ++depth;
    if (text[i] == '}' && --depth == 0) return text.substr(open, i - open + 1);
  }
  return {};
}

TEST(KernelLaunchRules, EveryStepKernelWaitsAndLaunchesThroughTheHelper) {
  const std::filesystem::path directory = std::filesystem::path(OCTET_SOURCE_DIR) / "src/backend/cuda";
  const std::set<std::string> load_time = {"random_weights.cu", "stored_weights.cu"};
  int files = 0, kernels = 0;
  for (const auto& entry : std::filesystem::directory_iterator(directory)) {
    if (entry.path().extension() != ".cu" || load_time.count(entry.path().filename().string())) continue;
    const std::string name = entry.path().filename().string();
    const std::string text = read_text(entry.path());
    ++files;
    EXPECT_NE(text.find("#include \"backend/cuda/launch.cuh\""), std::string::npos) << name << " does not include launch.cuh";
    EXPECT_EQ(text.find("<<<"), std::string::npos) << name << " launches a kernel with <<<…>>>, not launch_kernel";
    for (size_t at = text.find("__global__"); at != std::string::npos; at = text.find("__global__", at + 1)) {
      ++kernels;
      const std::string body = body_after(text, at);
      const size_t line = static_cast<size_t>(std::count(text.begin(), text.begin() + static_cast<std::ptrdiff_t>(at), '\n')) + 1;
      EXPECT_NE(body.find("await_earlier_kernels();"), std::string::npos)
          << name << ":" << line << ": a kernel that does not call await_earlier_kernels()";
    }
  }
  EXPECT_GE(files, 10) << "the backend's kernel files were not found in " << directory;
  EXPECT_GE(kernels, 25);
}

}  // namespace
