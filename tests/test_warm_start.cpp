// Warm start: a process whose kernels are all in the tuning database opens no compiler. NVRTC must stay unloaded
// (asked of the dynamic loader: nvrtc::loaded) while the binary's key is computed and its cubin read back, and, on a
// GPU, through a whole first call whose kernel a previous process compiled; on the CPU, Clang (libclang-cpp) must
// stay unloaded the same way. Its own executable, so that nothing before it in the process has opened a compiler.
#include <doctest/doctest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>

#include "check.hpp"
#ifdef SWAJIT_HAVE_CPU_BACKEND
#include "cpu_backend.hpp"
#endif
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

// Runs warm_case() on `where` in a forked child with the database `db` and returns its exit code: 0 when the case
// passed and the process compiled (cold) or neither compiled nor opened the compiler (warm); kChildSkipped when there
// is no GPU. The child inherits what this process has loaded, so the callers run before anything here compiles.
int run_child(DLDevice where, const std::filesystem::path& db, bool expect_warm) {
  const bool on_cpu = where.device_type == kDLCPU;
  std::fflush(nullptr);  // or the child would print this process's buffered output again
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid > 0) {
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    REQUIRE(WIFEXITED(status));
    return WEXITSTATUS(status);
  }
  int code = 0;
  try {
    std::string why;
    if (!on_cpu && cuda_devices(&why).empty()) {
      std::printf("no GPU (%s)\n", why.c_str());
      std::fflush(stdout);
      std::_Exit(kChildSkipped);
    }
    const auto compiler_loaded = [&] {
#ifdef SWAJIT_HAVE_CPU_BACKEND
      if (on_cpu) return cpu::clang_loaded();
#endif
      return nvrtc::loaded();
    };
    set_tuning_db_path(db.string());
    const bool loaded_before = compiler_loaded();
    const auto start = std::chrono::steady_clock::now();
    const CaseResult r = run_decode_case(warm_case(), where, kSeed);
    const double case_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    KernelCacheStats stats = kernel_cache_stats();
#ifdef SWAJIT_HAVE_CPU_BACKEND
    if (on_cpu) stats = cpu_kernel_cache_stats();
#endif
    const bool loaded_after = compiler_loaded();
    std::printf("%s %s process: passed %d (rel_err %.2e), %s loaded before %d after %d, kernels built %llu, compiled "
                "%llu, first case (with the host reference) %.1f ms %s\n",
                expect_warm ? "warm" : "cold", on_cpu ? "CPU" : "GPU", r.passed, r.rel_err, on_cpu ? "Clang" : "NVRTC",
                loaded_before, loaded_after, (unsigned long long)stats.builds,
                (unsigned long long)stats.nvrtc_compiles, case_ms, r.detail.c_str());
    if (!r.passed) code = 1;
    else if (expect_warm && (loaded_before || loaded_after || stats.nvrtc_compiles != 0)) code = 2;
    else if (!expect_warm && (stats.nvrtc_compiles == 0 || !loaded_after)) code = 3;  // the cold one compiled
  } catch (const std::exception& e) {
    std::printf("child failed: %s\n", e.what());
    code = 4;
  }
  std::fflush(stdout);
  std::_Exit(code);
}

}  // namespace

// These two run first (file order), while nothing in this process has opened a compiler.
TEST_CASE("warm start (GPU): a fresh process runs a kernel another process compiled, without opening NVRTC") {
  REQUIRE_FALSE(nvrtc::loaded());
  const std::filesystem::path db = temp_db("gpu");
  const int cold = run_child({kDLCUDA, 0}, db, /*expect_warm=*/false);  // no CUDA in this process before forking
  if (cold == kChildSkipped) {
    MESSAGE("skipped: no GPU");
    return;
  }
  CHECK(cold == 0);
  CHECK(run_child({kDLCUDA, 0}, db, /*expect_warm=*/true) == 0);
  std::filesystem::remove(db);
}

#ifdef SWAJIT_HAVE_CPU_BACKEND
TEST_CASE("warm start (CPU): a fresh process runs a kernel another process compiled, without loading Clang") {
  REQUIRE_FALSE(cpu::clang_loaded());
  const std::filesystem::path db = temp_db("cpu");
  CHECK(run_child({kDLCPU, 0}, db, /*expect_warm=*/false) == 0);
  CHECK(run_child({kDLCPU, 0}, db, /*expect_warm=*/true) == 0);
  std::filesystem::remove(db);
}
#endif

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

#ifdef SWAJIT_HAVE_CPU_BACKEND
TEST_CASE("the CPU compiler module: opened by the first compile, errors come back typed with Clang's log") {
  // Last in the file: this loads Clang into the test process.
  const cpu::CompiledObject object = cpu::compile_to_object("extern \"C\" int swajit_probe() { return 7; }", "probe.cpp");
  CHECK(cpu::clang_loaded());
  REQUIRE(object.object.size() > 4);
  CHECK(std::string(object.object.data(), 4) == "\x7f" "ELF");
  const auto module = cpu::load_object(object.object, "probe");
  CHECK(reinterpret_cast<int (*)()>(module->lookup("swajit_probe"))() == 7);
  try {
    cpu::compile_to_object("int broken = ;", "broken.cpp");
    FAIL("a source that does not compile must throw");
  } catch (const Error& e) {
    CHECK(e.code() == ErrorCode::kCompileError);
    const std::string what = e.what();
    CHECK(what.rfind(std::string(error_code_name(ErrorCode::kCompileError)) + ": Clang could not compile broken.cpp", 0) == 0);
    CHECK(what.find("expected expression") != std::string::npos);  // Clang's diagnostic, carried in the message
  }
}
#endif
