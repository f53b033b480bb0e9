#include "cpu_jit.hpp"

#include <dlfcn.h>
#include <llvm/ExecutionEngine/Orc/ExecutionUtils.h>
#include <llvm/ExecutionEngine/Orc/LLJIT.h>
#include <llvm/MC/TargetRegistry.h>
#include <llvm/Support/MemoryBuffer.h>
#include <llvm/Support/TargetSelect.h>
#include <llvm/Target/TargetMachine.h>
#include <llvm/Target/TargetOptions.h>
#include <llvm/TargetParser/Host.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <mutex>

#include "cpu_llvm.hpp"
#include "shared_library.hpp"
#include "swajit/error.hpp"

namespace swajit::cpu {

void initialize_llvm() {
  static std::once_flag once;
  std::call_once(once, [] {
    llvm::InitializeNativeTarget();
    llvm::InitializeNativeTargetAsmPrinter();
  });
}

std::vector<std::string> enabled_features() {
  std::vector<std::string> features;
  for (const auto& f : llvm::sys::getHostCPUFeatures())
    if (f.second) features.push_back("+" + f.first().str());
  std::sort(features.begin(), features.end());
  return features;
}

std::unique_ptr<llvm::TargetMachine> host_target_machine() {
  initialize_llvm();
  const std::string triple = llvm::sys::getProcessTriple();
  std::string error;
  const llvm::Target* target = llvm::TargetRegistry::lookupTarget(triple, error);
  if (!target) throw Error(ErrorCode::kUnsupported, "no LLVM target for " + triple + ": " + error);
  llvm::TargetOptions options;  // contraction was decided per operation by Clang (-ffp-contract=fast)
  return std::unique_ptr<llvm::TargetMachine>(target->createTargetMachine(
      triple, host_cpu().cpu_name, host_cpu().features, options, llvm::Reloc::PIC_, std::nullopt,
      llvm::CodeGenOptLevel::Aggressive));
}

namespace {

std::string error_text(llvm::Error e) {
  std::string text;
  llvm::raw_string_ostream os(text);
  os << e;
  return text;
}

class LoadedModule : public JitModule {
 public:
  explicit LoadedModule(std::unique_ptr<llvm::orc::LLJIT> jit) : jit_(std::move(jit)) {}
  void* lookup(const std::string& symbol) const override {
    auto address = jit_->lookup(symbol);
    if (!address)
      throw Error(ErrorCode::kCompileError, "symbol '" + symbol + "' not found in the JIT module: " + error_text(address.takeError()));
    return address->toPtr<void*>();
  }

 private:
  std::unique_ptr<llvm::orc::LLJIT> jit_;
};

}  // namespace

std::string HostCpu::identity() const {
  uint64_t h = 0xcbf29ce484222325ull;  // FNV-1a: a short stable tag for the feature list
  for (unsigned char c : features) h = (h ^ c) * 0x100000001b3ull;
  char tag[17];
  std::snprintf(tag, sizeof(tag), "%016llx", static_cast<unsigned long long>(h));
  return "cpu:" + model_name + "|" + cpu_name + "|" + tag;
}

const HostCpu& host_cpu() {
  static const HostCpu cpu = [] {
    HostCpu c;
    c.cpu_name = llvm::sys::getHostCPUName().str();
    std::string joined;
    for (const auto& f : enabled_features()) joined += (joined.empty() ? "" : ",") + f;
    c.features = joined;
    std::ifstream info("/proc/cpuinfo");
    for (std::string line; std::getline(info, line);)
      if (line.rfind("model name", 0) == 0) {
        c.model_name = line.substr(line.find(':') + 2);
        break;
      }
    if (c.model_name.empty()) c.model_name = c.cpu_name;
    return c;
  }();
  return cpu;
}

int clang_version() { return LLVM_VERSION_MAJOR * 10000 + LLVM_VERSION_MINOR * 100 + LLVM_VERSION_PATCH; }

namespace {

// Clang lives in its own shared module, opened by the first compile: a process whose CPU objects are all in the
// tuning database never loads it (nor libclang-cpp). It is looked up next to the binary holding this code (the
// executable, or the shared library that linked libswajit), then where the build put it.
CompileEntry compiler_entry() {
  static const CompileEntry entry = []() -> CompileEntry {
    std::vector<std::string> names;
    if (const auto here = dl::directory_of(reinterpret_cast<const void*>(&compiler_entry)); !here.empty())
      names.push_back((here / kCompilerModule).string());
    names.push_back(SWAJIT_CPU_COMPILER_BUILD_PATH);
    names.push_back(kCompilerModule);  // on the loader's path
    std::string errors;
    void* module = dl::open_first(names, &errors);  // never closed: Clang registers itself with LLVM
    CompileEntry fn = nullptr;
    if (!module || !dl::resolve(module, kCompileSymbol, fn))
      throw Error(ErrorCode::kUnsupported, std::string("the CPU backend's compiler ") + kCompilerModule +
                                               " could not be opened: " + (module ? dlerror() : errors));
    return fn;
  }();
  return entry;
}

}  // namespace

bool clang_loaded() { return dl::is_loaded(SWAJIT_CLANG_SONAME); }

CompiledObject compile_to_object(const std::string& source, const std::string& name) {
  const auto start = std::chrono::steady_clock::now();
  CompiledObject out;
  ErrorCode code{};
  std::string message;
  if (!compiler_entry()(source, name, &out.object, &code, &message)) throw Error(code, message);
  out.compile_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  return out;
}

std::unique_ptr<JitModule> load_object(const std::vector<char>& object, const std::string& name) {
  initialize_llvm();
  auto jit = llvm::orc::LLJITBuilder().create();
  if (!jit) throw Error(ErrorCode::kCompileError, "cannot create an LLJIT: " + error_text(jit.takeError()));
  // The generated code calls libm (exp2f, log2f, ldexpf): resolve against this process.
  auto process = llvm::orc::DynamicLibrarySearchGenerator::GetForCurrentProcess((*jit)->getDataLayout().getGlobalPrefix());
  if (!process) throw Error(ErrorCode::kCompileError, "cannot expose process symbols: " + error_text(process.takeError()));
  (*jit)->getMainJITDylib().addGenerator(std::move(*process));
  auto buffer = llvm::MemoryBuffer::getMemBufferCopy(llvm::StringRef(object.data(), object.size()), name);
  if (auto e = (*jit)->addObjectFile(std::move(buffer)))
    throw Error(ErrorCode::kCompileError, "cannot load the object of " + name + ": " + error_text(std::move(e)));
  return std::make_unique<LoadedModule>(std::move(*jit));
}

}  // namespace swajit::cpu
