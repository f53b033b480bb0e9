// The `swajit bench <family>` verbs: FamilyBench<Config> adds a family's verb and flags to `swajit bench` and runs
// it once parsed; for_each_bench_family is the one place a family's bench is registered.
#pragma once
#include <functional>

#include <CLI/CLI.hpp>

#include "swajit/spec.hpp"

namespace swajit::cli {

// A registered bench verb: its CLI11 subcommand and what runs it (with the flags parsed into it).
struct BenchVerb {
  CLI::App* command = nullptr;
  std::function<int()> run;
};

template <class Config>
struct FamilyBench;

template <>
struct FamilyBench<DecodeConfig> {
  static BenchVerb add_to(CLI::App& bench);  // bench_decode.cpp
};

template <>
struct FamilyBench<PrefillConfig> {
  static BenchVerb add_to(CLI::App& bench);  // bench_prefill.cpp
};

template <>
struct FamilyBench<SparseDecodeConfig> {
  static BenchVerb add_to(CLI::App& bench);  // bench_sparse.cpp
};

// Calls f(FamilyBench<Config>{}) for every family with a bench verb, in the order `swajit bench --help` lists them.
template <class F>
void for_each_bench_family(F&& f) {
  f(FamilyBench<DecodeConfig>{});
  f(FamilyBench<PrefillConfig>{});
  f(FamilyBench<SparseDecodeConfig>{});
}

}  // namespace swajit::cli
