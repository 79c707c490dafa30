#pragma once
// One function per subcommand registers its options on the app; each file holds one subcommand.
#include <CLI/CLI.hpp>

namespace octet::cli {

void register_query(CLI::App& app);
void register_info(CLI::App& app);
void register_bench(CLI::App& app);
void register_eval(CLI::App& app);

}  // namespace octet::cli
