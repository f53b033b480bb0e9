// The LLVM pieces that loading an object (cpu_jit.cpp) and compiling one (cpu_compiler.cpp, the Clang module) share.
#pragma once
#include <memory>
#include <string>
#include <vector>

namespace llvm {
class TargetMachine;
}

namespace swajit::cpu {

void initialize_llvm();                              // the native target, once per process
std::vector<std::string> enabled_features();         // the host's ISA features, "+avx2", ..., sorted
std::unique_ptr<llvm::TargetMachine> host_target_machine();  // for this host's CPU and features, -O3

}  // namespace swajit::cpu
