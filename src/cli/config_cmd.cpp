#include "cli/config_cmd.h"

#include "cli/config_flags.h"
#include "octet/config.h"

#include <fmt/format.h>

#include <memory>

namespace octet::cli {

void register_config_command(CLI::App& app, std::vector<std::string> overrides) {
  CLI::App* config = app.add_subcommand("config", "Inspect the configuration (docs/CONFIG.md)");
  config->require_subcommand(1);
  CLI::App* show = config->add_subcommand(
      "show", "Print the resolved configuration as YAML, each value commented with where it came from");
  // The callback runs after parsing, so the flags must outlive this function.
  auto flags = std::make_shared<ConfigFlags>();
  auto positional = std::make_shared<std::vector<std::string>>();
  auto no_provenance = std::make_shared<bool>(false);
  flags->add_to(*show);
  show->add_flag("--no-provenance", *no_provenance, "Leave out the comments saying where values came from");
  show->add_option("overrides", *positional, "key=value overrides, e.g. llm.precision=bf16");
  show->callback([flags, positional, no_provenance, overrides] {
    flags->overrides = overrides;
    flags->overrides.insert(flags->overrides.end(), positional->begin(), positional->end());
    fmt::print("{}", render_config(resolve_config(flags->request()), !*no_provenance));
  });
}

}  // namespace octet::cli
