// The seed's usage in C++: create the FP8 model manager, print model info and memory savings, ask
// the planner, print performance stats. Run from the repository root after scripts/setup.sh:
//   build/fp8_planner_example [key=value overrides…]
#include "octet/config.h"
#include "octet/manager.h"
#include "octet/planner.h"

#include <fmt/format.h>

#include <exception>
#include <memory>

int main(int argc, char** argv) {
  try {
    octet::ConfigRequest request;
    for (int i = 1; i < argc; ++i) request.overrides.emplace_back(argv[i]);
    const octet::Config config = octet::load_config(request);

    std::shared_ptr<octet::FP8ModelManager> manager = octet::create_fp8_manager(config);
    const octet::ManagedModelInfo info = manager->model_info();
    fmt::print("model: {} ({}, {:.1f}M parameters), precision {}, FP8 type {}, KV cache {}, devices {}, context {}\n",
               info.name, info.architecture, info.parameters / 1e6, info.precision, info.fp8_dtype, info.kv_cache_dtype,
               fmt::join(info.devices, ","), info.context_length);
    if (!info.loaded) fmt::print("local engine not loaded: {}\n", info.not_loaded_reason);

    const octet::MemorySavings savings = manager->estimate_memory_savings();
    fmt::print("memory at {} tokens: weights {:.1f} MiB (BF16) → {:.1f} MiB (FP8), KV cache {:.1f} → {:.1f} MiB, "
               "total saving {:.1f}%\n",
               savings.context_tokens, savings.weights_bf16_bytes / 1048576.0, savings.weights_fp8_bytes / 1048576.0,
               savings.kv_cache_bf16_bytes / 1048576.0, savings.kv_cache_fp8_bytes / 1048576.0,
               savings.total_savings_percentage);

    octet::Planner planner(config, manager);
    octet::PlanOptions options;
    options.max_tokens = 64;
    const octet::PlanResult plan = planner.query_llm("How to craft iron tools in Minecraft?", options);
    fmt::print("plan (route {}, {:.0f} ms, {} + {} tokens):\n{}\n", plan.route, plan.latency_ms, plan.prompt_tokens,
               plan.completion_tokens, plan.text);

    const octet::PerformanceStats stats = manager->performance_stats();
    fmt::print("stats: {} request(s), {:.1f} tok/s, TTFT mean {:.1f} ms, inter-token p50 {:.2f} ms / p99 {:.2f} ms, "
               "host memory {:.1f} MiB (peak {:.1f}), KV cache in use {:.1f} KiB\n",
               stats.requests, stats.throughput_tok_s, stats.time_to_first_token.mean_ms, stats.inter_token_latency.p50_ms,
               stats.inter_token_latency.p99_ms, stats.host_memory_bytes / 1048576.0, stats.host_peak_memory_bytes / 1048576.0,
               stats.kv_cache_bytes_in_use / 1024.0);
    if (stats.gpu_peak_memory_bytes > 0)
      fmt::print("GPU memory {:.1f} MiB (peak {:.1f})\n", stats.gpu_memory_bytes / 1048576.0,
                 stats.gpu_peak_memory_bytes / 1048576.0);
    return 0;
  } catch (const std::exception& e) {
    fmt::print(stderr, "fp8_planner_example: error: {}\n", e.what());
    return 1;
  }
}
