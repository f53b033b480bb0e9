// `swajit bench decode`: paged decode timed with CUDA graph replay beside its memory-bandwidth floor.
#pragma once
#include <optional>
#include <string>
#include <vector>

#include <dlpack/dlpack.h>

#include "decode_workload.hpp"
#include "swajit/spec.hpp"

namespace swajit::cli {

struct DecodeBenchOptions {
  std::vector<int> batches = {1, 8, 32, 128};
  std::vector<int> kv_lens = {4096, 32768};
  std::vector<int> q_seqlens = {1, 4};
  int local_window = 4096, global_window = 0;
  int num_q_heads = 32, num_kv_heads = 8, head_dim = 128, page_size = 16;
  std::string dtype = "bf16";
  std::string kv_quant = "none";
  bool sink_logits = false;              // learned per-head sinks (gpt-oss)         // none | int8 | fp8: 8-bit caches with per-channel scales
  int reps = 100;
  DLDevice device{kDLCUDA, 0};
  bool verify = true;                    // check sequence 0 of every row against the reference
  std::optional<DecodeConfig> config;    // force a config instead of the runtime's choice
  bool compare_heuristic = false;        // also time the heuristic config and print the tuned speedup
  // Ragged batches (CUDA): --lengths (a list or file: one batch of those lengths) or --distribution (one batch per
  // --batch, drawn with --seed); "uniform" is the --kv-len grid. --write-lengths DIR keeps each row's lengths.
  std::string lengths;
  std::string distribution = "uniform";
  uint64_t seed = 1;
  std::string write_lengths_dir;
  bool host_lengths = false;  // give the runtime the lengths on the host too (DecodeOptions::host_seq_lens)
};

// One timed row: the shape (with its per-sequence lengths when ragged) and the label of its length column.
struct DecodeBenchRow {
  DecodeShape shape;
  std::string label;
};
std::vector<DecodeBenchRow> decode_bench_rows(const DecodeBenchOptions& options);

// Prints one table row per shape; returns 0 when every row ran (and verified), 1 otherwise.
int run_decode_bench(const DecodeBenchOptions& options);

}  // namespace swajit::cli
