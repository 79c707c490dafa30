#pragma once
// A throwaway config folder per test, and requests that see only the environment a test gives them.
#include "octet/config.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <string>

namespace octet::testing {

class ConfigDir {
 public:
  ConfigDir() {
    std::random_device random;
    path_ = std::filesystem::temp_directory_path() /
            ("octet-config-" + std::to_string(random()) + std::to_string(random()));
    std::filesystem::create_directories(path_);
  }
  ~ConfigDir() { std::filesystem::remove_all(path_); }
  ConfigDir(const ConfigDir&) = delete;
  ConfigDir& operator=(const ConfigDir&) = delete;

  void write(const std::string& name, const std::string& text) const {
    const auto file = path_ / name;
    std::filesystem::create_directories(file.parent_path());
    std::ofstream(file) << text;
  }
  std::string path() const { return path_.string(); }
  void copy_shipped_defaults() const {
    std::filesystem::copy_file(std::string(OCTET_SOURCE_DIR) + "/configs/defaults.yaml", path_ / "defaults.yaml");
  }

  ConfigRequest request(const std::string& name = "", std::vector<std::string> overrides = {},
                        std::map<std::string, std::string> environment = {}) const {
    ConfigRequest request;
    request.config_path = path();
    request.config_name = name;
    request.overrides = std::move(overrides);
    request.environment = std::move(environment);
    return request;
  }

 private:
  std::filesystem::path path_;
};

inline std::string shipped_configs() { return std::string(OCTET_SOURCE_DIR) + "/configs"; }

// The shipped configs with no environment: what a clean shell sees.
inline ConfigRequest shipped_request(const std::string& name = "", std::vector<std::string> overrides = {},
                                     std::map<std::string, std::string> environment = {}) {
  ConfigRequest request;
  request.config_path = shipped_configs();
  request.config_name = name;
  request.overrides = std::move(overrides);
  request.environment = std::move(environment);
  return request;
}

// The message of the octet::Error that `action` throws, or "" (and a test failure) when none is thrown.
inline std::string error_of(const std::function<void()>& action) {
  try {
    action();
  } catch (const std::exception& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected an error";
  return "";
}

}  // namespace octet::testing
