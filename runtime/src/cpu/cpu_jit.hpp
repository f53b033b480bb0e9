// The CPU backend's compiler: C++ source in memory -> Clang's libraries (no external process) -> LLVM IR optimized
// for this host's CPU -> a relocatable object -> ORC LLJIT -> function pointers. Objects can be stored and loaded
// again without Clang: Clang is in its own module (libswajit_cpu_compiler.so, cpu_compiler.cpp), opened by the first
// compile, so a process whose objects are all in the tuning database never loads libclang-cpp. Loading an object
// needs LLVM (ORC links it; the host CPU's name and features come from LLVM), so libLLVM stays linked.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "swajit/error.hpp"

namespace swajit::cpu {

struct HostCpu {
  std::string model_name;  // /proc/cpuinfo "model name", else the LLVM CPU name
  std::string cpu_name;    // LLVM's name for the micro-architecture, e.g. "znver3"
  std::string features;    // enabled ISA features, sorted, e.g. "+avx,+avx2,+fma,..."
  std::string identity() const;  // stable tuning-DB SKU: "cpu:<model>|<cpu>|<hash of features>"
};
const HostCpu& host_cpu();

int clang_version();  // e.g. 190107: part of every object's cache hash

class JitModule {
 public:
  virtual ~JitModule() = default;
  virtual void* lookup(const std::string& symbol) const = 0;  // throws kCompileError naming a missing symbol
};

struct CompiledObject {
  std::vector<char> object;  // relocatable object code for this host
  double compile_ms = 0;
};

// Thread-safe: every call has its own Clang instance and LLVM context. Throws kCompileError with Clang's
// diagnostics when the source does not compile, kUnsupported when the compiler module cannot be opened.
CompiledObject compile_to_object(const std::string& source, const std::string& name);
// Whether Clang's library is loaded in this process; asks the dynamic loader and opens nothing.
bool clang_loaded();

// The compiler module's one entry point: true with the object, else false with the error's code and message
// (nothing is thrown across the module boundary).
using CompileEntry = bool (*)(const std::string& source, const std::string& name, std::vector<char>* object,
                              ErrorCode* error_code, std::string* error_message);
inline constexpr const char* kCompilerModule = "libswajit_cpu_compiler.so";
inline constexpr const char* kCompileSymbol = "swajit_cpu_compile_to_object";
std::unique_ptr<JitModule> load_object(const std::vector<char>& object, const std::string& name);

}  // namespace swajit::cpu
