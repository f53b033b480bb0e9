// NVRTC, opened with dlopen at run time, and only when something must be compiled: a process whose kernels are all
// in the tuning database never opens it (the binary key does not include NVRTC's version; see kernel_cache.hpp).
// Compiles generated CUDA source to a cubin for one architecture.
#pragma once
#include <string>
#include <vector>

namespace swajit::nvrtc {

bool available(std::string* why_not = nullptr);
int version();  // major * 1000 + minor * 10, like CUDA_VERSION; opens NVRTC; throws kNoDevice when it is missing
// Whether NVRTC is open in this process; asks the dynamic loader and opens nothing (the warm-start test and
// `swajit bench load` report it).
bool loaded();

struct CompiledCubin {
  std::vector<char> cubin;
  std::string log;        // compiler warnings, possibly empty
  double compile_ms = 0;
};

// arch is "sm_90a", "sm_80", ... Throws Error(kCompileError) with NVRTC's full log when compilation fails.
CompiledCubin compile(const std::string& source, const std::string& program_name, const std::string& arch);

// The options compile() passes for `arch`; part of every binary's cache hash.
std::vector<std::string> compile_options(const std::string& arch);

}  // namespace swajit::nvrtc
