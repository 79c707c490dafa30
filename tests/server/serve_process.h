#pragma once
// `octet serve` as a child process for tests: started on a free loopback port, its port read from
// the line it prints, signalled and waited for with time limits (never left running).
#include "support/model_files.h"

#include <gtest/gtest.h>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <optional>
#include <regex>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace octet::testing {

class ServeProcess {
 public:
  // extra: further arguments (flags, key=value overrides). Fails the test when no port appears in time.
  explicit ServeProcess(std::vector<std::string> extra, std::chrono::seconds start_limit = std::chrono::seconds(60),
                        int port = 0) {
    std::vector<std::string> args = {std::string(OCTET_BINARY_DIR) + "/octet", "serve", "--port", std::to_string(port),
                                     "--device", "cpu"};
    if (auto model = smollm2_gguf()) args.insert(args.end(), {"--model", *model});  // CTest runs in the build folder
    args.insert(args.end(), extra.begin(), extra.end());
    int out[2];
    if (pipe(out) != 0) return;
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
    posix_spawn_file_actions_addclose(&actions, out[0]);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    if (posix_spawn(&pid_, argv[0], &actions, nullptr, argv.data(), environ) != 0) pid_ = -1;
    posix_spawn_file_actions_destroy(&actions);
    close(out[1]);
    stdout_fd_ = out[0];
    if (pid_ <= 0) return;
    const auto deadline = std::chrono::steady_clock::now() + start_limit;
    static const std::regex listening(R"(listening on http://127\.0\.0\.1:(\d+))");
    while (std::chrono::steady_clock::now() < deadline && port_ == 0) {
      pollfd p{stdout_fd_, POLLIN, 0};
      if (poll(&p, 1, 100) <= 0) {
        if (exited_now()) break;
        continue;
      }
      char buffer[512];
      const ssize_t n = read(stdout_fd_, buffer, sizeof buffer);
      if (n <= 0) break;
      output_.append(buffer, static_cast<size_t>(n));
      std::smatch m;
      if (std::regex_search(output_, m, listening)) port_ = std::stoi(m[1]);
    }
  }
  ~ServeProcess() {
    if (pid_ > 0 && !exit_status_) {
      kill(pid_, SIGKILL);
      int status = 0;
      waitpid(pid_, &status, 0);
    }
    if (stdout_fd_ >= 0) close(stdout_fd_);
  }
  ServeProcess(const ServeProcess&) = delete;
  ServeProcess& operator=(const ServeProcess&) = delete;

  int port() const { return port_; }
  const std::string& output() const { return output_; }
  void signal(int number) const { kill(pid_, number); }
  // The exit status (or -signal) once the process ends within limit; nothing when it is still running.
  std::optional<int> wait_exit(std::chrono::milliseconds limit) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (!exited_now() && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    return exit_status_;
  }

 private:
  bool exited_now() {
    if (exit_status_) return true;
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) != pid_) return false;
    exit_status_ = WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
    return true;
  }

  pid_t pid_ = -1;
  int stdout_fd_ = -1;
  int port_ = 0;
  std::string output_;
  std::optional<int> exit_status_;
};

}  // namespace octet::testing
