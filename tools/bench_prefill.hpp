// `swajit bench prefill`: sliding-window prefill timed with CUDA events, in useful TFLOP/s (visible pairs only).
#pragma once
#include <optional>
#include <vector>

#include "prefill_workload.hpp"
#include "swajit/spec.hpp"

namespace swajit::cli {

struct PrefillBenchOptions : PrefillGrid {
  int reps = 20;
  int device = 0;
  double matmul_tflops = 0;              // the bf16 matmul rate measured in the same run (0: not known)
  std::optional<PrefillConfig> config;   // force a config instead of the heuristic
  // Compare configs on each row's workload instead (nullopt: the runtime's choice), alternated over `rounds`.
  std::vector<std::optional<PrefillConfig>> compared;
  int rounds = 1;
};

// Prints one row per (kv heads, sequence length); returns 0 when every row ran and its sampled rows verified.
int run_prefill_bench(const PrefillBenchOptions& options);

}  // namespace swajit::cli
