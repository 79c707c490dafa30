#pragma once
// The message of the octet::Error an action throws ("<no error>" when it throws none), and a check
// that a message names every expected part. OCTET_PRINT_ERRORS=1 prints each message.
#include "common/error.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <functional>
#include <initializer_list>
#include <string>

namespace octet::testing {

inline std::string error_of(const std::function<void()>& action) {
  try {
    action();
  } catch (const Error& e) {
    if (std::getenv("OCTET_PRINT_ERRORS")) std::printf("%s\n", e.what());
    return e.what();
  }
  return "<no error>";
}

inline void expect_parts(const std::string& message, std::initializer_list<std::string> parts) {
  EXPECT_NE(message, "<no error>");
  for (const auto& part : parts) EXPECT_NE(message.find(part), std::string::npos) << "'" << part << "' not in: " << message;
}

}  // namespace octet::testing
