#include "backend/cuda/integer_setting.h"

#include "common/error.h"

#include <cstdlib>

namespace octet::backend::cuda {

int64_t integer_setting(const char* variable, int64_t fallback, int64_t low, int64_t high, const char* expected) {
  const char* value = std::getenv(variable);
  if (value == nullptr || *value == '\0') return fallback;
  char* end = nullptr;
  const long long number = std::strtoll(value, &end, 10);
  if (*end != '\0' || number < low || number > high)
    fail("{} is '{}', expected {} from {} to {}", variable, value, expected, low, high);
  return number;
}

}  // namespace octet::backend::cuda
