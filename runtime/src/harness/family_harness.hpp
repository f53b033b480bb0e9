// The harness side of the kernel families: what `swajit check` and the tests need from a family (its check matrix,
// where it runs, its case runner), one specialization of FamilyHarness<Config> per family, and the one place a family
// is registered with the harness (for_each_harness_family). It lives in swajit_harness because libswajit must not
// include the harness; the production side of a family is Family<Config> in runtime/src/tuning/family.hpp.
// README: "Adding a kernel family".
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <dlpack/dlpack.h>

#include "check.hpp"

namespace swajit {

template <class Config>
struct FamilyHarness;

// Paged decode: CUDA and the CPU backend.
template <>
struct FamilyHarness<DecodeConfig> {
  using Case = DecodeCase;
  static constexpr const char* name = "paged_decode";  // the KernelSpec family string (`check --family`)
  static constexpr uint64_t seed_offset = 0;  // a case's seed: the --seed + this + its index in the matrix
  static std::vector<DecodeCase> check_matrix(DLDevice) { return decode_check_matrix(); }
  static bool runs_on(DLDevice) { return true; }
  static const char* not_run_reason() { return ""; }
  // Builds the cases' kernels on `threads` threads first (the compile-once cache under concurrency).
  static void prepare(const std::vector<DecodeCase>& cases, DLDevice where, int threads) {
    precompile_cases(cases, where, threads);
  }
  static CaseResult run_case(const DecodeCase& c, DLDevice where, uint64_t seed) { return run_decode_case(c, where, seed); }
};

// Prefill: CUDA only.
template <>
struct FamilyHarness<PrefillConfig> {
  using Case = PrefillCase;
  static constexpr const char* name = "prefill";
  static constexpr uint64_t seed_offset = 1000;
  static std::vector<PrefillCase> check_matrix(DLDevice) { return prefill_check_matrix(); }
  static bool runs_on(DLDevice where) { return where.device_type == kDLCUDA; }
  static const char* not_run_reason() { return "the CPU backend has paged_decode only"; }
  static void prepare(const std::vector<PrefillCase>&, DLDevice, int) {}
  static CaseResult run_case(const PrefillCase& c, DLDevice where, uint64_t seed) {
    return run_prefill_case(c, where.device_id, seed);
  }
};

// Sparse top-k decode: CUDA and the CPU backend.
template <>
struct FamilyHarness<SparseDecodeConfig> {
  using Case = SparseCase;
  static constexpr const char* name = "sparse_decode";
  static constexpr uint64_t seed_offset = 2000;
  static std::vector<SparseCase> check_matrix(DLDevice where) { return sparse_check_matrix(where); }
  static bool runs_on(DLDevice) { return true; }
  static const char* not_run_reason() { return ""; }
  static void prepare(const std::vector<SparseCase>& cases, DLDevice where, int threads) {
    precompile_sparse_cases(cases, where, threads);
  }
  static CaseResult run_case(const SparseCase& c, DLDevice where, uint64_t seed) { return run_sparse_case(c, where, seed); }
};

// Calls f(FamilyHarness<Config>{}) for every family, in the order `swajit check` runs them: the one place a family is
// registered with the harness.
template <class F>
void for_each_harness_family(F&& f) {
  f(FamilyHarness<DecodeConfig>{});
  f(FamilyHarness<PrefillConfig>{});
  f(FamilyHarness<SparseDecodeConfig>{});
}

}  // namespace swajit
