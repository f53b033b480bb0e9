// swajit: the command-line tool. info | gen | check | bench (decode, prefill, load) | tune | db
#include <CLI/CLI.hpp>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <thread>

#include <algorithm>
#include <chrono>

#include "bench_decode.hpp"
#include "bench_family.hpp"
#include "bench_prefill.hpp"
#include "checked_input.hpp"
#include "cuda_driver.hpp"
#include "device_flag.hpp"
#include "family.hpp"
#include "heuristic.hpp"
#include "tune_commands.hpp"
#include "tune_family.hpp"
#ifdef SWAJIT_HAVE_CPU_BACKEND
#include "cpu_backend.hpp"
#endif
#include "family_harness.hpp"
#include "prefill_problem.hpp"
#include "kernel_cache.hpp"
#include "memory_system.hpp"
#include "nvrtc_compiler.hpp"
#include "shipped_tuning.hpp"
#include "spec_flags.hpp"
#include "swajit/generator.hpp"
#include "swajit/swajit.hpp"
#include "swajit/version.hpp"
#include "tuning_store.hpp"

namespace swajit::cli {
namespace {

// The kernel-cache statistics of the backend a verb ran on.
KernelCacheStats cache_stats(const DLDevice& device) {
#ifdef SWAJIT_HAVE_CPU_BACKEND
  if (device.device_type == kDLCPU) return cpu_kernel_cache_stats();
#endif
  (void)device;
  return kernel_cache_stats();
}

// The config gen prints: the runtime's heuristic for the first GPU (or, without one, with no shared-memory limit),
// with any config flags on top.
int cmd_gen(const SpecFlags& spec_flags, const ConfigFlags& config_flags, const std::string& device_text) {
  const KernelSpec spec = spec_flags.spec();
  if (device_text == "cpu") {  // the C++ the CPU backend compiles in process (tile and splits from the flags)
    CpuDecodeConfig cpu;
    if (config_flags.block_n) cpu.block_n = *config_flags.block_n;
    std::cout << generate_cpu_kernel(spec, cpu).source;
    return 0;
  }
  const auto devices = cuda_devices();
  if (devices.empty()) std::cout << "// no GPU found: config chosen without a device's shared-memory limit\n";
  const DeviceInfo* device = devices.empty() ? nullptr : &devices.front();
  with_cuda_family(spec.family, [&](auto family) {
    std::cout << generate_kernel(spec, config_flags.apply(decltype(family)::heuristic(spec, device))).source;
  });
  return 0;
}

// `gen --jit-time`: what the first use of the kernel costs with a fresh database, step by step: generating the
// source, NVRTC compiling it for the first GPU's architecture (sm_90a without a GPU) and, with a GPU, loading the
// module. Nothing is read from or written to the database.
int cmd_jit_time(const SpecFlags& spec_flags, const ConfigFlags& config_flags) {
  using Clock = std::chrono::steady_clock;
  const auto ms_since = [](Clock::time_point start) {
    return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
  };
  const KernelSpec spec = spec_flags.spec();
  const auto devices = cuda_devices();
  const DeviceInfo* device = devices.empty() ? nullptr : &devices.front();
  const std::string arch = device ? device->arch() : "sm_90a";
  with_cuda_family(spec.family, [&](auto family) {
    const auto start = Clock::now();
    const GeneratedKernel kernel = generate_kernel(spec, config_flags.apply(decltype(family)::heuristic(spec, device)));
    const double generate_ms = ms_since(start);
    const nvrtc::CompiledCubin cubin = nvrtc::compile(kernel.source, kernel.cache_key + ".cu", arch);
    std::printf("jit %s for %s: generate %.1f ms, nvrtc %.1f ms, cubin %zu bytes", kernel.cache_key.c_str(),
                arch.c_str(), generate_ms, cubin.compile_ms, cubin.cubin.size());
    if (device) {
      cuda::ScopedDeviceContext scope(0);
      const auto load_start = Clock::now();
      CUmodule module = nullptr;
      cuda::check(cuda::driver().cuModuleLoadData(&module, cubin.cubin.data()), "cuModuleLoadData");
      const double load_ms = ms_since(load_start);
      cuda::driver().cuModuleUnload(module);
      std::printf(", module load %.1f ms", load_ms);
    }
    std::printf(", first use %.1f ms\n", ms_since(start));
  });
  return 0;
}

// The stored binaries by the compiler that built them (an existing database only: info creates none). A cubin is
// loaded whatever NVRTC built it (kernel_cache.hpp); a CPU object's key holds Clang's version, so one from another
// Clang is not used.
void print_stored_binaries() {
  TuningStore& store = TuningStore::instance();
  const std::string path = store.path();  // not inside with_db, which holds the store's lock
  if (!std::filesystem::exists(path)) return std::printf("database %s: none yet\n", path.c_str()), void();
  const int this_nvrtc = nvrtc::available() ? nvrtc::version() : 0;
#ifdef SWAJIT_HAVE_CPU_BACKEND
  const int this_clang = cpu::clang_version();
#else
  const int this_clang = 0;  // no CPU backend: no object is used
#endif
  const bool opened = store.with_db([&](db::TuningDb& db) {
    std::printf("database %s, stored binaries:\n", path.c_str());
    for (const auto& v : db.binary_versions()) {
      const bool cpu_object = v.arch.rfind("cpu:", 0) == 0;
      const char* note = "";
      if (cpu_object && v.compiler_version != this_clang) note = " (another Clang: not used)";
      if (!cpu_object && this_nvrtc && v.compiler_version != this_nvrtc)
        note = " (another NVRTC: loaded as they are, compiled again only if the driver refuses one)";
      const std::string driver = cpu_object ? "" : " under driver " + std::to_string(v.driver_version);
      std::printf("  %s: %lld built by %s %lld%s%s\n", v.arch.c_str(), (long long)v.count,
                  cpu_object ? "Clang" : "NVRTC", (long long)v.compiler_version, driver.c_str(), note);
    }
  });
  if (!opened) std::printf("database %s: cannot be opened\n", path.c_str());
}

// Whether each device (the GPUs, the CPU) has shipped tuning data (shipped_tuning.hpp) and where it is.
void print_shipped_data(const std::vector<DeviceInfo>& gpus) {
  std::string why;
  const auto dir = shipped::directory(&why);
  if (!dir) return std::printf("shipped tuning data: none (%s)\n", why.c_str()), void();
  std::vector<std::pair<std::string, std::string>> devices;  // label, SKU
  for (const auto& d : gpus) devices.emplace_back("cuda:" + std::to_string(d.ordinal), d.sku());
#ifdef SWAJIT_HAVE_CPU_BACKEND
  devices.emplace_back("cpu", cpu::host_cpu().identity());
#endif
  std::printf("shipped tuning data in %s (beneath the database; SWAJIT_SHIPPED=0 turns it off):\n", dir->c_str());
  for (const auto& [label, sku] : devices) {
    if (shipped::file_for(sku))
      std::printf("  %s: %s, %zu winners\n", label.c_str(), shipped::file_name(sku).c_str(), shipped::winners(sku).size());
    else
      std::printf("  %s: none for this SKU (%s would be %s)\n", label.c_str(), sku.c_str(), shipped::file_name(sku).c_str());
  }
}

int cmd_info() {
  std::string why;
  const auto devices = cuda_devices(&why);
  std::printf("swajit %s\n", SWAJIT_VERSION);
  std::string nvrtc_why;
  if (nvrtc::available(&nvrtc_why)) std::printf("nvrtc: %d.%d\n", nvrtc::version() / 1000, nvrtc::version() % 1000 / 10);
  else std::printf("nvrtc: not available (%s)\n", nvrtc_why.c_str());
  if (devices.empty()) {
    std::printf("cuda: no GPU: %s\n", why.c_str());
  } else {
    for (const auto& d : devices) {
      const MemorySystem memory = memory_system(d);
      std::printf("cuda:%d %s, %s, %d SMs, %.1f GiB, L2 %d MiB, shared/block %d KiB, driver %d\n", d.ordinal,
                  d.name.c_str(), d.arch().c_str(), d.sm_count, d.total_memory / double(1 << 30), d.l2_bytes >> 20,
                  d.max_shared_per_block_optin >> 10, d.driver_version);
      std::printf("  memory: %d MHz x %d bit, peak %.0f GB/s%s, streaming read ~%.0f GB/s, %.0f KiB in flight per SM "
                  "to sustain it (tuning/memory_system.hpp)\n",
                  d.memory_clock_khz / 1000, d.memory_bus_width_bits, memory.peak_bytes_per_s / 1e9,
                  memory.from_attributes ? "" : " (not reported: the architecture's table)",
                  memory.read_bytes_per_s / 1e9, memory.bytes_in_flight_per_sm / 1024.0);
    }
  }
#ifdef SWAJIT_HAVE_CPU_BACKEND
  const cpu::HostCpu& host = cpu::host_cpu();
  std::printf("cpu: %s (%s), %d hardware threads, Clang/LLVM %d in process, tuning identity %s\n",
              host.model_name.c_str(), host.cpu_name.c_str(), hardware_threads(), cpu::clang_version(),
              host.identity().c_str());
#else
  std::printf("cpu: backend not built (configure with -DSWAJIT_CPU_BACKEND=ON)\n");
#endif
  print_shipped_data(devices);
  print_stored_binaries();
  return 0;
}

// Runs every registered family's check matrix (family_harness.hpp) on the device; a case's seed does not depend on
// the filter, so a filtered run repeats the full run's data.
int cmd_check(const std::string& device_text, const std::string& filter, const std::string& family_name,
              uint64_t seed) {
  const DLDevice device = parse_device(device_text);
  const int threads = int(std::max(1u, std::thread::hardware_concurrency()));
  int passed = 0, failed = 0, families_run = 0;
  for_each_harness_family([&](auto family) {
    using Harness = decltype(family);
    if (!family_name.empty() && family_name != Harness::name) return;
    if (!Harness::runs_on(device)) {
      std::printf("%s: not run (%s)\n", Harness::name, Harness::not_run_reason());
      return;
    }
    std::printf("checking %s on %s against the double-precision reference\n", Harness::name,
                device_label(device).c_str());
    ++families_run;
    std::vector<typename Harness::Case> cases;
    std::vector<uint64_t> seeds;
    const auto matrix = Harness::check_matrix(device);
    for (size_t i = 0; i < matrix.size(); ++i)
      if (filter.empty() || matrix[i].name.find(filter) != std::string::npos) {
        cases.push_back(matrix[i]);
        seeds.push_back(seed + Harness::seed_offset + i);
      }
    Harness::prepare(cases, device, threads);
    for (size_t i = 0; i < cases.size(); ++i) {
      const auto& c = cases[i];
      CaseResult r;
      try {
        r = Harness::run_case(c, device, seeds[i]);
      } catch (const std::exception& e) {
        r.detail = e.what();
      }
      (r.passed ? passed : failed)++;
      std::printf("%s %-40s %-52s rel_err %.2e (tol %.0e)%s%s\n", r.passed ? "PASS" : "FAIL", c.name.c_str(),
                  c.spec().key().c_str(), r.rel_err, r.tolerance, r.detail.empty() ? "" : "  ", r.detail.c_str());
    }
  });
  // A filter that matches nothing would otherwise read as a clean run ("0 passed, 0 failed").
  if (!filter.empty() && families_run > 0 && passed + failed == 0)
    throw Error(ErrorCode::kInvalidArgument, "--filter '" + filter + "' is in no case name" +
                (family_name.empty() ? "" : " of family " + family_name) + " (it is a plain substring, not a pattern)");
  KernelCacheStats stats = cache_stats(device);
  std::printf("kernels built: %llu (compiled: %llu, the rest loaded from the database)\n",
              static_cast<unsigned long long>(stats.builds), static_cast<unsigned long long>(stats.nvrtc_compiles));
  if (!stats.first_use_ms.empty()) {
    std::sort(stats.first_use_ms.begin(), stats.first_use_ms.end());
    std::printf("first use per kernel (compile or database read + load, %d threads in parallel): median %.0f ms, "
                "worst %.0f ms\n", threads, stats.first_use_ms[stats.first_use_ms.size() / 2], stats.first_use_ms.back());
  }
  std::printf("%d passed, %d failed\n", passed, failed);
  return failed == 0 ? 0 : 1;
}

// CLI11 reports a mistyped verb as "A subcommand is required"; this names it and the verbs there are instead.
std::optional<std::string> unknown_verb(CLI::App& app, int argc, char** argv) {
  CLI::App* level = &app;
  for (int i = 1; i < argc; ++i) {
    const std::string word = argv[i];
    if (word.starts_with("-")) return std::nullopt;  // options (and their values) follow: not a verb problem
    const std::vector<CLI::App*> verbs = level->get_subcommands({});
    const auto known = std::find_if(verbs.begin(), verbs.end(), [&](CLI::App* v) { return v->get_name() == word; });
    if (known != verbs.end()) {
      level = *known;
      continue;
    }
    if (verbs.empty()) return std::nullopt;  // a positional argument of the verb (db export FILE)
    std::string names;
    for (CLI::App* v : verbs) names += (names.empty() ? "" : ", ") + v->get_name();
    return "unknown verb '" + word + "'" + (level == &app ? "" : " for '" + level->get_name() + "'") +
           "; verbs are " + names;
  }
  return std::nullopt;
}

}  // namespace
}  // namespace swajit::cli

int main(int argc, char** argv) {
  using namespace swajit::cli;
  CLI::App app{"swajit: sliding-window attention kernels, generated, JIT-compiled and tuned"};
  app.require_subcommand(1);
  app.fallthrough();  // --db may follow the verb: `swajit tune --preset X --db file`
  std::string db_path;
  app.add_option("--db", db_path, "tuning database file (default: $SWAJIT_DB, else $XDG_CACHE_HOME/swajit/tuning.db)");

  SpecFlags gen_spec;
  ConfigFlags gen_config;
  auto* gen = app.add_subcommand("gen", "print the generated source of a spec (CUDA, or the CPU backend's C++)");
  gen_spec.add_to(*gen);
  gen_config.add_to(*gen);
  std::string gen_device = "cuda";
  gen->add_option("--device", gen_device, "cuda: the CUDA source (default) | cpu: the CPU backend's C++")
      ->check(CLI::IsMember({"cuda", "cpu"}))
      ->capture_default_str();
  bool gen_jit_time = false;
  gen->add_flag("--jit-time", gen_jit_time,
                "CUDA: instead of printing the source, time its first use with a fresh database (generate, NVRTC "
                "for the first GPU's arch or sm_90a, module load with a GPU)");

  app.add_subcommand("info", "backends and devices found");

  std::string check_device = "auto", check_filter, check_family;
  uint64_t check_seed = 1;
  auto* check = app.add_subcommand("check", "run the correctness matrix against the reference");
  check->add_option("--device", check_device, kDeviceHelp)->capture_default_str();
  check->add_option("--filter", check_filter, "only cases whose name contains this");
  std::vector<std::string> harness_names;
  swajit::for_each_harness_family([&](auto family) { harness_names.push_back(decltype(family)::name); });
  check->add_option("--family", check_family, "only this family's matrix (its KernelSpec name: paged_decode, prefill, sparse_decode)")->check(CLI::IsMember(harness_names));
  check->add_option("--seed", check_seed, "random seed of the first case")
      ->check(unsigned_64())
      ->capture_default_str();

  auto* bench = app.add_subcommand("bench", "benchmarks");
  bench->require_subcommand(1);
  std::vector<BenchVerb> bench_verbs;
  for_each_bench_family([&](auto family) { bench_verbs.push_back(decltype(family)::add_to(*bench)); });
  std::string load_device = "auto";
  auto* bench_load = bench->add_subcommand("load", "build every tuned kernel from the database; load time per kernel");
  bench_load->add_option("--device", load_device, kDeviceHelp)->capture_default_str();

  TuneRun tune_run;
  std::string tune_device = "auto", tune_family;
  int quick_reps = 0, final_reps = 0;
  auto* tune = app.add_subcommand("tune", "tune a family's shapes on the GPU (or the CPU) and store the winners in the database");
  tune->add_option("--device", tune_device, std::string(kDeviceHelp) + " | cuda:all (one worker process per GPU)")
      ->capture_default_str();
  tune->add_option("--shard", tune_run.shard, "i/n: tune every n-th item starting at i")->capture_default_str();
  tune->add_option("--quick-reps", quick_reps, "timed runs per candidate (default: the family's)")->check(reps_range());
  tune->add_option("--final-reps", final_reps, "timed runs per finalist (default: the family's)")->check(reps_range());
  std::vector<TuneFamilyVerb> tune_verbs;
  for_each_tune_family([&](auto family) { tune_verbs.push_back(decltype(family)::add_to(*tune)); });
  std::string family_names;
  for (const auto& v : tune_verbs) family_names += (family_names.empty() ? "" : " | ") + v.family;
  tune_family = tune_verbs.front().family;
  tune->add_option("--family", tune_family, family_names)->capture_default_str();

  std::string db_verb, db_argument;
  auto* db = app.add_subcommand("db", "inspect and move tuning databases");
  db->add_option("verb", db_verb, "list | show | export FILE | import FILE | merge DB | verify | vacuum")->required();
  db->add_option("argument", db_argument, "the file for export, import and merge");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (const std::optional<std::string> verb = unknown_verb(app, argc, argv)) {
      std::fprintf(stderr, "swajit: invalid argument: %s\n", verb->c_str());
      return 2;
    }
    return app.exit(e);
  }
  try {
    if (!db_path.empty()) swajit::set_tuning_db_path(db_path);
    if (gen->parsed() && gen_jit_time) return cmd_jit_time(gen_spec, gen_config);
    if (gen->parsed()) return cmd_gen(gen_spec, gen_config, gen_device);
    if (tune->parsed()) {
      const auto verb = std::find_if(tune_verbs.begin(), tune_verbs.end(), [&](const auto& v) { return v.family == tune_family; });
      if (verb == tune_verbs.end())
        throw swajit::Error(swajit::ErrorCode::kInvalidArgument, "--family '" + tune_family + "' is unknown; families: " + family_names);
      if (tune->count("--quick-reps")) tune_run.quick_reps = quick_reps;
      if (tune->count("--final-reps")) tune_run.final_reps = final_reps;
      parse_shard(tune_run.shard);  // a bad shard is named before any worker starts
      if (tune_device == "cuda:all") return tune_on_every_gpu(argc, argv, tune_run, verb->run);
      tune_run.device = parse_device(tune_device);
      return verb->run(tune_run);
    }
    if (db->parsed()) return run_db(db_verb, db_argument);
    for (const BenchVerb& verb : bench_verbs)
      if (verb.command->parsed()) return verb.run();
    if (bench_load->parsed()) return run_load_bench(parse_device(load_device));
    if (app.got_subcommand("info")) return cmd_info();
    if (check->parsed()) return cmd_check(check_device, check_filter, check_family, check_seed);
  } catch (const swajit::Error& e) {
    std::fprintf(stderr, "swajit: %s\n", e.what());
    return 2;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "swajit: out of memory: the requested shapes do not fit this machine's memory\n");
    return 2;
  } catch (const std::exception& e) {  // none may escape main; this one is a swajit bug, so say so
    std::fprintf(stderr, "swajit: internal error (please report): %s\n", e.what());
    return 3;
  }
  return 0;
}
