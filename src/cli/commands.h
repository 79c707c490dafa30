#pragma once
// One function per subcommand registers its options on the app; each file holds one subcommand.
#include <CLI/CLI.hpp>

#include <string>
#include <vector>

namespace octet::cli {

void register_query(CLI::App& app, const std::vector<std::string>& overrides);
void register_info(CLI::App& app, const std::vector<std::string>& overrides);
void register_bench(CLI::App& app, const std::vector<std::string>& overrides);
void register_eval(CLI::App& app, const std::vector<std::string>& overrides);
void register_doctor(CLI::App& app, const std::vector<std::string>& overrides);
void register_plan(CLI::App& app, const std::vector<std::string>& overrides);
void register_serve(CLI::App& app, const std::vector<std::string>& overrides);
// `octet bench serve`, under the bench command.
void register_bench_serve(CLI::App& bench, const std::vector<std::string>& overrides);
void register_quantize(CLI::App& app, const std::vector<std::string>& overrides);

}  // namespace octet::cli
