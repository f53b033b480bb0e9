// NVRTC, opened with dlopen at run time. Compiles generated CUDA source to a cubin for one architecture.
#pragma once
#include <string>
#include <vector>

namespace swajit::nvrtc {

bool available(std::string* why_not = nullptr);
int version();  // major * 1000 + minor * 10, like CUDA_VERSION; throws kNoDevice when NVRTC is missing

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
