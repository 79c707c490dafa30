#pragma once
// octet::Error: the one exception type of the library. Messages carry context (file, key, tensor,
// expected vs found) so the CLI can print them as one line.
#include <fmt/format.h>

#include <stdexcept>
#include <string>

namespace octet {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

template <typename... Args>
[[noreturn]] void fail(fmt::format_string<Args...> format, Args&&... args) {
  throw Error(fmt::format(format, std::forward<Args>(args)...));
}

}  // namespace octet
