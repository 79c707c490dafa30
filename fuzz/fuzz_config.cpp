// libFuzzer target: the configuration system on arbitrary input: YAML files composed through
// `defaults:` lists, `key=value` overrides and environment variables, resolved, rendered and turned
// into engine options, as every command does at start. The input holds, separated by kSeparator:
// configs/defaults.yaml, configs/fuzz.yaml (the named config), configs/other.yaml (for defaults
// lists to name), the overrides one per line and the environment as NAME=VALUE lines. octet::Error is
// the accepted failure; any other exception (a yaml-cpp one included), a crash or a sanitizer report
// is a finding.
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"
#include "fuzz_input.h"
#include "scratch_directory.h"
#include "octet/config.h"

namespace {

namespace fs = std::filesystem;

constexpr std::string_view kSeparator = "\n=octet-fuzz-part=\n";

fs::path work_directory() {
  static const fs::path dir = octet::fuzz::scratch_directory("octet-fuzz-config");
  return dir;
}

std::vector<std::string> lines(std::string_view text) {
  std::vector<std::string> out;
  for (std::string_view line : octet::fuzz::split_parts(text, "\n"))
    if (!line.empty()) out.emplace_back(line);
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const fs::path dir = work_directory();
  octet::fuzz::empty_directory(dir);
  const auto parts = octet::fuzz::split_parts(std::string_view(reinterpret_cast<const char*>(data), size), kSeparator);
  octet::fuzz::write_parts(dir, parts, {"defaults.yaml", "fuzz.yaml", "other.yaml"});

  octet::ConfigRequest request;
  request.config_path = dir.string();
  request.config_name = parts.size() > 1 && !parts[1].empty() ? "fuzz" : "";
  if (parts.size() > 3) request.overrides = lines(parts[3]);
  request.environment.clear();
  if (parts.size() > 4)
    for (const std::string& line : lines(parts[4]))
      if (const size_t equals = line.find('='); equals != std::string::npos && equals > 0)
        request.environment[line.substr(0, equals)] = line.substr(equals + 1);
  try {
    const octet::Config config = octet::load_config(request);
    (void)octet::render_config(config.resolved, true);
    (void)octet::engine_options(config);
  } catch (const octet::Error&) {
  }
  return 0;
}
