// Warm start: a process whose kernels are all in the tuning database opens no compiler. NVRTC must stay unloaded
// (asked of the dynamic loader: nvrtc::loaded) while the binary's key is computed and its cubin read back, and, on a
// GPU, through a whole first call whose kernel a previous process compiled. Its own executable, so that nothing
// before it in the process has opened NVRTC.
#include <doctest/doctest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>

#include "check.hpp"
#include "kernel_cache.hpp"
#include "nvrtc_compiler.hpp"
#include "swajit/generator.hpp"
#include "swajit/swajit.hpp"
#include "tuning_store.hpp"

using namespace swajit;
namespace stages = swajit::kernel_stages;

namespace {

std::filesystem::path temp_db(const std::string& what) {
  return std::filesystem::temp_directory_path() /
         ("swajit_warm_start_" + what + "_" + std::to_string(::getpid()) + ".db");
}

// The case both processes of the GPU test run: small, heuristic config (the database holds no winner), so the
// first process and the second ask for the same kernel.
DecodeCase warm_case() {
  DecodeCase c;
  c.name = "warm start";
  c.head_dim = 64;
  return c;
}

constexpr uint64_t kSeed = 17;
constexpr int kChildSkipped = 77;  // the child found no GPU

}  // namespace

TEST_CASE("warm start (GPU): a fresh process runs a kernel another process compiled, without opening NVRTC") {
  // The first child compiles and stores the kernel; the second, started only after, must find it and never open
  // NVRTC. A child inherits what this process has loaded, so this case runs first (file order) and checks that
  // NVRTC is not open here; neither this process nor the children touch CUDA before forking.
  REQUIRE_FALSE(nvrtc::loaded());
  const std::filesystem::path db = temp_db("gpu");
  const auto run_child = [&](bool expect_warm) {
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      int code = 0;
      try {
        std::string why;
        if (cuda_devices(&why).empty()) {
          std::printf("no GPU (%s)\n", why.c_str());
          std::fflush(stdout);
          std::_Exit(kChildSkipped);
        }
        set_tuning_db_path(db.string());
        const bool nvrtc_before = nvrtc::loaded();
        const auto start = std::chrono::steady_clock::now();
        const CaseResult r = run_decode_case(warm_case(), {kDLCUDA, 0}, kSeed);
        const double first_call_ms =
            std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
        const KernelCacheStats stats = kernel_cache_stats();
        std::printf("%s process: passed %d (rel_err %.2e), NVRTC loaded before %d after %d, kernels built %llu, "
                    "compiled %llu, first case (includes the host reference) %.1f ms %s\n",
                    expect_warm ? "warm" : "cold", r.passed, r.rel_err, nvrtc_before, nvrtc::loaded(),
                    (unsigned long long)stats.builds, (unsigned long long)stats.nvrtc_compiles, first_call_ms,
                    r.detail.c_str());
        if (!r.passed) code = 1;
        else if (expect_warm && (nvrtc_before || nvrtc::loaded() || stats.nvrtc_compiles != 0)) code = 2;
        else if (!expect_warm && stats.nvrtc_compiles == 0) code = 3;  // the cold process must have compiled
      } catch (const std::exception& e) {
        std::printf("child failed: %s\n", e.what());
        code = 4;
      }
      std::fflush(stdout);
      std::_Exit(code);
    }
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    REQUIRE(WIFEXITED(status));
    return WEXITSTATUS(status);
  };
  const int cold = run_child(/*expect_warm=*/false);
  if (cold == kChildSkipped) {
    MESSAGE("skipped: no GPU");
    return;
  }
  CHECK(cold == 0);
  CHECK(run_child(/*expect_warm=*/true) == 0);
  std::filesystem::remove(db);
}

TEST_CASE("warm start: the binary key and a stored cubin need no NVRTC, whatever NVRTC built it") {
  REQUIRE_FALSE(nvrtc::loaded());  // nothing in this process has opened it yet (the GPU case compiles in children)
  const std::filesystem::path db = temp_db("key");
  set_tuning_db_path(db.string());

  AttentionCall call;
  call.head_dim = 128;
  call.group = 4;
  call.local_window = 4096;
  const KernelSpec spec = paged_decode_kernel_spec(call);
  const GeneratedKernel generated = generate_paged_decode_cuda(spec, DecodeConfig{64, 4, 3, 1});
  const std::string hash = stages::binary_hash(generated, "sm_90a");
  CHECK(hash.size() == 16);
  CHECK_FALSE(nvrtc::loaded());

  // A cubin stored by another process, built by another NVRTC under another driver: found by the key alone.
  constexpr int kOtherNvrtc = 12080, kOtherDriver = 12040, kThisDriver = 13000;
  const std::vector<char> bytes = {'\x7f', 'E', 'L', 'F', 1, 2, 3};
  TuningStore::instance().put_binary(hash, "sm_90a", kOtherNvrtc, kOtherDriver, bytes);
  const stages::Cubin cubin = stages::compile(generated, hash, "sm_90a", kThisDriver);
  CHECK(cubin.from_database);
  CHECK(cubin.bytes == bytes);
  CHECK(cubin.compile_ms == 0);
  CHECK(cubin.compiler_version == kOtherNvrtc);  // reported in the log line if the driver refuses it
  CHECK(cubin.driver_version == kOtherDriver);
  CHECK_FALSE(nvrtc::loaded());

  // A miss is what opens NVRTC (where it is installed): the compile stage then records its version.
  std::string why;
  if (nvrtc::available(&why)) {
    const stages::Cubin compiled = stages::compile(generated, hash, "sm_90a", kThisDriver, /*use_database=*/false);
    CHECK_FALSE(compiled.from_database);
    CHECK(compiled.compiler_version == nvrtc::version());
    CHECK(nvrtc::loaded());
    const auto stored = TuningStore::instance().binary(hash);  // the fresh cubin replaced the foreign one
    REQUIRE(stored);
    CHECK(stored->bytes == compiled.bytes);
    CHECK(stored->compiler_version == nvrtc::version());
  } else {
    MESSAGE("NVRTC not installed (" << why << "): the compile half is not checked");
  }
  set_tuning_db_path(db.string() + ".unused");  // closes the file
  std::filesystem::remove(db);
}
