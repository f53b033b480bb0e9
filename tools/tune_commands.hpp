// `swajit tune`, `swajit db ...` and `swajit bench load`: the offline tuning workflow.
#pragma once
#include "prefill_workload.hpp"
#include <string>
#include <vector>

#include "decode_workload.hpp"
#include "sparse_workload.hpp"

namespace swajit::cli {

struct TuneCommand {
  std::string preset;         // mistral-7b | gemma-3-27b | gpt-oss-20b
  std::string workload_file;  // JSON {"shapes": [{...DecodeShape fields...}]}
  std::string shard = "0/1";  // i/n: this process tunes items i, i+n, i+2n, ...
  bool restart = false;       // forget the progress of an interrupted run of the same job
  DLDevice device{kDLCUDA, 0};
  std::vector<int> batches = {1, 8, 32, 128}, kv_lens = {4096, 32768}, q_seqlens = {1, 4};  // preset grid
  int quick_reps = 20, final_reps = 100;
};

// `swajit tune --family prefill`: the prefill bench grid (or the given lists), one winner per shape.
struct PrefillTuneCommand : PrefillGrid {
  int device = 0;
  int quick_reps = 5, final_reps = 20;
  std::string shard = "0/1";  // i/n over the grid's (kv heads, seq) items, in order
};
int run_prefill_tune(const PrefillTuneCommand& command);

// `swajit tune --family sparse_decode`: issue 16's bench shapes (presets a, b) at each batch, one winner per shape.
struct SparseTuneCommand {
  std::vector<std::string> presets = {"a", "b"};
  std::vector<int> batches = {1, 32, 128};
  int device = 0;
  int quick_reps = 10, final_reps = 40;
  std::string shard = "0/1";  // i/n over the (preset shape, batch) items, in order
};
int run_sparse_tune(const SparseTuneCommand& command);

std::vector<std::string> preset_names();
std::vector<DecodeShape> preset_shapes(const std::string& preset, const TuneCommand& grid);
std::vector<DecodeShape> workload_shapes(const std::string& path);  // throws kInvalidArgument naming the field
int run_tune(const TuneCommand& command);

// db verbs: list | show | export FILE | import FILE | merge DB | verify | vacuum
int run_db(const std::string& verb, const std::string& argument);

// Builds the kernel of every winner stored for this GPU and reports per-kernel load time and NVRTC compiles.
int run_load_bench(DLDevice device);

}  // namespace swajit::cli
