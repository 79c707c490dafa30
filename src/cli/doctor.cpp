// octet doctor: can this machine run the configured model in FP8? (status, reasons, fixes)
#include "cli/commands.h"
#include "cli/config_flags.h"
#include "cli/engine_flags.h"
#include "octet/doctor.h"

#include <fmt/format.h>

#include <memory>

namespace octet::cli {
namespace {

struct DoctorFlags {
  ConfigFlags config;
  bool json = false;
};

void run_doctor(const DoctorFlags& flags) {
  const EnvironmentReport r = validate_fp8_environment(load_config(flags.config.request()));
  if (flags.json) {
    fmt::print("{}\n", report_to_json(r));
    return;
  }
  fmt::print("status           {}\n", r.status);
  fmt::print("CUDA             {}\n", r.cuda_compiled ? fmt::format("compiled in; driver {}, runtime {}", r.cuda_driver_version.empty() ? "none" : r.cuda_driver_version,
                                                                 r.cuda_runtime_version.empty() ? "-" : r.cuda_runtime_version)
                                                      : "not compiled in");
  if (r.gpus.empty()) fmt::print("GPUs             none\n");
  for (const auto& g : r.gpus)
    fmt::print("GPU {}            {} · compute {} · {} total, {} free · FP8 tensor cores: {}\n", g.index, g.name,
               g.compute_capability, format_bytes(g.total_memory_bytes), format_bytes(g.free_memory_bytes),
               g.fp8_tensor_cores ? "yes" : "no");
  fmt::print("NCCL             {}\n", r.nccl_available ? "available" : "not found");
  fmt::print("CPU dot products {}\n", r.cpu_vector_unit);
  fmt::print("model            {}{}\n", r.model, r.model_found ? "" : " (not found locally)");
  if (r.model_bytes_needed)
    fmt::print("memory           needs {} on {}, {} available: {}\n", format_bytes(r.model_bytes_needed), r.device,
               format_bytes(r.memory_available_bytes), r.model_fits ? "fits" : "does not fit");
  for (size_t i = 0; i < r.reasons.size(); ++i) fmt::print("- {}\n  fix: {}\n", r.reasons[i], r.fixes[i]);
}

}  // namespace

void register_doctor(CLI::App& app, const std::vector<std::string>& overrides) {
  auto flags = std::make_shared<DoctorFlags>();
  flags->config.overrides = overrides;
  auto* command = app.add_subcommand("doctor", "Check CUDA, GPUs, FP8 support, NCCL and memory for the configured model");
  flags->config.add_to(*command);
  command->add_flag("--json", flags->json, "Print JSON with status and reasons");
  command->callback([flags] { run_doctor(*flags); });
}

}  // namespace octet::cli
