// `swajit tune --family <family>`: FamilyTune<Config> adds a family's own flags to `swajit tune` and runs it once
// parsed; for_each_tune_family is the one place a family's tuning verb is registered (as bench_family.hpp does for
// `swajit bench`). The flags every family shares (device, shard, reps) are parsed once into TuneRun.
#pragma once
#include <dlpack/dlpack.h>

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "swajit/spec.hpp"

namespace swajit::cli {

// The shared flags of `swajit tune`, parsed.
struct TuneRun {
  DLDevice device{kDLCUDA, 0};
  std::string shard = "0/1";           // i/n: this process tunes items i, i+n, i+2n, ... of the family's list
  std::optional<int> quick_reps;       // unset: the family's default
  std::optional<int> final_reps;
};

// A registered family's tuning: its --family name and what runs it (with its own flags parsed).
struct TuneFamilyVerb {
  std::string family;
  std::function<int(const TuneRun&)> run;
};

template <class Config>
struct FamilyTune;

template <>
struct FamilyTune<DecodeConfig> {
  static TuneFamilyVerb add_to(CLI::App& tune);  // tune_family.cpp: --preset/--workload grids, --restart
};

template <>
struct FamilyTune<PrefillConfig> {
  static TuneFamilyVerb add_to(CLI::App& tune);  // tune_family.cpp: the --seq x --num-kv-heads grid
};

template <>
struct FamilyTune<SparseDecodeConfig> {
  static TuneFamilyVerb add_to(CLI::App& tune);  // tune_family.cpp: --preset a|b x --batch
};

// Calls f(FamilyTune<Config>{}) for every family `swajit tune --family` accepts; the first is the default.
template <class F>
void for_each_tune_family(F&& f) {
  f(FamilyTune<DecodeConfig>{});
  f(FamilyTune<PrefillConfig>{});
  f(FamilyTune<SparseDecodeConfig>{});
}

// --device cuda:all: one worker process per GPU of the host, all writing into the same database (SQLite serializes
// the writers). Worker g of G runs this program again with --device cuda:g and the g-th share of flags.shard
// (worker_shard); with one GPU it runs `run_here` in this process on cuda:0. Returns the worst exit status.
int tune_on_every_gpu(int argc, char** argv, const TuneRun& flags, const std::function<int(const TuneRun&)>& run_here);
// The items of shard "i/n" split between `workers`: worker g takes (i + n g) / (n workers).
std::string worker_shard(const std::string& shard, int worker, int workers);
// This program's arguments (argv[1..]) with --device and --shard replaced by the worker's.
std::vector<std::string> worker_arguments(int argc, char** argv, int worker, const std::string& shard);

}  // namespace swajit::cli
