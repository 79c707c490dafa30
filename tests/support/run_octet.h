#pragma once
// Runs shell commands and the built `octet` executable as a user would, capturing output and exit code.
#include <array>
#include <cstdio>
#include <string>
#include <sys/wait.h>

namespace octet::testing {

struct CommandResult {
  int exit_code = -1;
  std::string output;  // stdout, and stderr unless discarded
};

// command_line runs under /bin/sh as given (redirections included).
inline CommandResult run_shell(const std::string& command_line) {
  CommandResult run;
  FILE* pipe = popen(command_line.c_str(), "r");
  if (!pipe) return run;
  std::array<char, 4096> buffer;
  size_t n;
  while ((n = fread(buffer.data(), 1, buffer.size(), pipe)) > 0) run.output.append(buffer.data(), n);
  const int status = pclose(pipe);
  run.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return run;
}

inline CommandResult run_octet(const std::string& arguments, bool merge_stderr = true) {
  return run_shell(std::string(OCTET_BINARY_DIR) + "/octet " + arguments + (merge_stderr ? " 2>&1" : " 2>/dev/null"));
}

}  // namespace octet::testing
