// octet: the command line. Errors from the library arrive as exceptions and leave as one line on
// stderr with a non-zero exit.
#include "cli/commands.h"
#include "cli/config_cmd.h"
#include "octet/config.h"

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <exception>

namespace {

void configure_logging(const std::string& level) {
  // Logs go to stderr so stdout carries only the answer (or JSON).
  auto logger = spdlog::stderr_color_mt("octet");
  spdlog::set_default_logger(logger);
  spdlog::set_pattern("[%H:%M:%S.%e] [%^%l%$] %v");
  const char* debug = std::getenv("FP8_DEBUG");
  if (debug && (std::string(debug) == "1" || std::string(debug) == "true")) {
    spdlog::set_level(spdlog::level::debug);
    return;
  }
  spdlog::set_level(spdlog::level::from_str(level));
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"octet: FP8 (E4M3) inference for Llama-family models", "octet"};
  app.set_version_flag("--version", "octet 0.1.0");
  app.require_subcommand(1);
  std::string log_level = "warn";
  app.add_option("--log-level", log_level, "Log level on stderr: trace, debug, info, warn (default), error, off")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "off"}));
  app.parse_complete_callback([&] { configure_logging(log_level); });
  try {
    // key=value arguments anywhere on the line are configuration overrides (Hydra style).
    std::vector<std::string> args(argv + 1, argv + argc);
    std::vector<std::string> overrides = octet::extract_overrides(args);
    octet::cli::register_query(app, overrides);
    octet::cli::register_info(app, overrides);
    octet::cli::register_bench(app, overrides);
    octet::cli::register_eval(app, overrides);
    octet::cli::register_config_command(app, overrides);
    octet::cli::register_doctor(app, overrides);
    octet::cli::register_plan(app, overrides);
    octet::cli::register_serve(app, overrides);
    octet::cli::register_quantize(app, overrides);
    std::reverse(args.begin(), args.end());  // CLI11 takes a vector in reverse order
    app.parse(args);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help, --version
    fmt::print(stderr, "octet: error: {} (see octet --help)\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fflush(stdout);
    fmt::print(stderr, "octet: error: {}\n", e.what());
    return 1;
  }
  return 0;
}
