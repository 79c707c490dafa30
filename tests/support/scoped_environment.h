#pragma once
// One environment variable set (or unset, with nullptr) for a scope and restored after it, also when
// the scope throws: tests make backends under their A/B switches this way.
#include <cstdlib>
#include <optional>
#include <stdexcept>
#include <string>

namespace octet::testing {

class ScopedEnvironment {
 public:
  ScopedEnvironment(const char* variable, const char* value) : variable_(variable) {
    if (const char* previous = std::getenv(variable)) previous_ = previous;
    if ((value ? setenv(variable, value, 1) : unsetenv(variable)) != 0)
      throw std::runtime_error(std::string("could not set the environment variable ") + variable);
  }
  ~ScopedEnvironment() {
    if (previous_) setenv(variable_.c_str(), previous_->c_str(), 1);
    else unsetenv(variable_.c_str());
  }
  ScopedEnvironment(const ScopedEnvironment&) = delete;
  ScopedEnvironment& operator=(const ScopedEnvironment&) = delete;

 private:
  std::string variable_;
  std::optional<std::string> previous_;
};

}  // namespace octet::testing
