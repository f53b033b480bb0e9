// The CUDA kernel cache's stages one by one: look up by name, generate, compile (NVRTC, then the tuning database),
// load and configure. Compile runs wherever NVRTC is installed; load and configure need a GPU and check, without one,
// that they fail with a typed error instead.
#include <doctest/doctest.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "cuda_driver.hpp"
#include "kernel_cache.hpp"
#include "nvrtc_compiler.hpp"
#include "swajit/error.hpp"
#include "swajit/generator.hpp"
#include "swajit/swajit.hpp"

using namespace swajit;
namespace stages = swajit::kernel_stages;

namespace {

KernelSpec small_decode_spec() {
  AttentionCall call;
  call.head_dim = 64;
  call.group = 4;
  call.local_window = 128;
  return paged_decode_kernel_spec(call);
}

const DecodeConfig kConfig{32, 2, 2, 1};

std::filesystem::path temp_db() {
  return std::filesystem::temp_directory_path() / ("swajit_kernel_cache_test_" + std::to_string(::getpid()) + ".db");
}

}  // namespace

TEST_CASE("look up: a kernel is named by its spec key, config key and arch") {
  const KernelSpec spec = small_decode_spec();
  const std::string name = stages::kernel_name(spec, kConfig.compile_key(), "sm_90a");
  CHECK(name == spec.key() + "|bn32_wn2_st2|sm_90a");
  CHECK(stages::kernel_name(spec, kConfig.compile_key(), "sm_80") != name);
  CHECK(stages::kernel_name(spec, DecodeConfig{64, 2, 2, 1}.compile_key(), "sm_90a") != name);
}

TEST_CASE("generate: the same name always gives the same source") {
  const GeneratedKernel a = generate_paged_decode_cuda(small_decode_spec(), kConfig);
  const GeneratedKernel b = generate_paged_decode_cuda(small_decode_spec(), kConfig);
  CHECK(a.source == b.source);
  CHECK(a.source.find(a.kernel_symbol) != std::string::npos);
  CHECK_FALSE(a.merge_symbol.empty());  // decode has a split-KV merge pass
}

TEST_CASE("compile: NVRTC once, then the cubin from the tuning database") {
  std::string why;
  if (!nvrtc::available(&why)) {
    MESSAGE("skipped: " << why);
    return;
  }
  set_tuning_db_path(temp_db().string());
  const GeneratedKernel generated = generate_paged_decode_cuda(small_decode_spec(), kConfig);
  const std::string hash = stages::binary_hash(generated, "sm_80");
  CHECK(hash.size() == 16);
  CHECK(stages::binary_hash(generated, "sm_90a") != hash);  // the arch is part of the binary's identity
  constexpr int kDriver = 13000;

  const stages::Cubin first = stages::compile(generated, hash, "sm_80", kDriver);
  CHECK_FALSE(first.from_database);
  CHECK(first.compile_ms > 0);
  REQUIRE(first.bytes.size() > 1000);
  CHECK(std::string(first.bytes.data(), 4) == "\x7f" "ELF");

  const stages::Cubin stored = stages::compile(generated, hash, "sm_80", kDriver);
  CHECK(stored.from_database);
  CHECK(stored.compile_ms == 0);
  CHECK(stored.bytes == first.bytes);

  // Another driver (or NVRTC) built it: still offered from the database; the driver decides when loading.
  CHECK(stages::compile(generated, hash, "sm_80", kDriver + 10).from_database);
  CHECK_FALSE(stages::compile(generated, hash, "sm_80", kDriver, /*use_database=*/false).from_database);
  set_tuning_db_path((temp_db().string() + ".unused"));
  std::filesystem::remove(temp_db());
}

TEST_CASE("load and configure: functions found, attributes set, registers read back (GPU)") {
  std::string why;
  const auto devices = cuda_devices(&why);
  const GeneratedKernel generated = generate_paged_decode_cuda(small_decode_spec(), kConfig);
  LoadedKernel kernel;
  if (devices.empty()) {
    MESSAGE("no GPU (" << why << "): load must fail with kNoDevice");
    CHECK_THROWS_AS(stages::load({}, generated, &kernel), Error);
    try {
      stages::load({}, generated, &kernel);
    } catch (const Error& e) {
      CHECK(e.code() == ErrorCode::kNoDevice);
    }
    return;
  }
  const DeviceInfo& device = devices.front();
  cuda::ScopedDeviceContext scope(device.ordinal);
  const stages::Cubin cubin =
      stages::compile(generated, stages::binary_hash(generated, device.arch()), device.arch(), device.driver_version,
                      /*use_database=*/false);
  REQUIRE(stages::load(cubin.bytes, generated, &kernel) == CUDA_SUCCESS);
  CHECK(kernel.main != nullptr);
  CHECK(kernel.merge != nullptr);
  kernel.shared_bytes = decode_geometry(small_decode_spec(), kConfig).shared_bytes;
  stages::configure(device, &kernel);
  CHECK(kernel.registers > 0);
  CHECK(kernel.local_bytes == 0);
  cuda::check(cuda::driver().cuModuleUnload(kernel.module), "cuModuleUnload");
  CHECK(stages::load(std::vector<char>(64, 'x'), generated, &kernel) != CUDA_SUCCESS);  // not a cubin: nothing loaded
  CHECK(kernel.module == nullptr);
}
