#include "cpu_jit.hpp"

#include <clang/Basic/Diagnostic.h>
#include <clang/Basic/DiagnosticOptions.h>
#include <clang/CodeGen/CodeGenAction.h>
#include <clang/Frontend/CompilerInstance.h>
#include <clang/Frontend/CompilerInvocation.h>
#include <clang/Frontend/TextDiagnosticPrinter.h>
#include <clang/Lex/PreprocessorOptions.h>
#include <llvm/ExecutionEngine/Orc/ExecutionUtils.h>
#include <llvm/ExecutionEngine/Orc/LLJIT.h>
#include <llvm/IR/LegacyPassManager.h>
#include <llvm/IR/Module.h>
#include <llvm/MC/TargetRegistry.h>
#include <llvm/Support/MemoryBuffer.h>
#include <llvm/Support/TargetSelect.h>
#include <llvm/Target/TargetMachine.h>
#include <llvm/Target/TargetOptions.h>
#include <llvm/TargetParser/Host.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <mutex>

#include "swajit/error.hpp"

namespace swajit::cpu {
namespace {

void initialize_llvm() {
  static std::once_flag once;
  std::call_once(once, [] {
    llvm::InitializeNativeTarget();
    llvm::InitializeNativeTargetAsmPrinter();
  });
}

std::string error_text(llvm::Error e) {
  std::string text;
  llvm::raw_string_ostream os(text);
  os << e;
  return text;
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

CompiledObject compile_to_object(const std::string& source, const std::string& name) {
  initialize_llvm();
  const auto start = std::chrono::steady_clock::now();
  // Diagnostics go to a string that a failure carries, never to stderr.
  std::string diagnostics;
  llvm::raw_string_ostream diagnostics_stream(diagnostics);
  auto diag_options = llvm::makeIntrusiveRefCnt<clang::DiagnosticOptions>();
  auto printer = std::make_unique<clang::TextDiagnosticPrinter>(diagnostics_stream, diag_options.get());
  auto diag_engine = llvm::makeIntrusiveRefCnt<clang::DiagnosticsEngine>(
      llvm::makeIntrusiveRefCnt<clang::DiagnosticIDs>(), diag_options, printer.release());

  // cc1 arguments: the host's triple, CPU and features; no system headers (the generated source needs none).
  std::vector<std::string> args = {"-triple", llvm::sys::getProcessTriple(), "-target-cpu", host_cpu().cpu_name,
                                   "-O3", "-std=c++20", "-ffp-contract=fast", "-vectorize-loops", "-vectorize-slp",
                                   "-funroll-loops", "-nostdsysteminc", "-nobuiltininc", "-mrelocation-model", "pic",
                                   "-pic-level", "2", "-x", "c++", name};
  for (const auto& f : enabled_features()) {
    args.push_back("-target-feature");
    args.push_back(f);
  }
  std::vector<const char*> argv;
  for (const auto& a : args) argv.push_back(a.c_str());

  auto invocation = std::make_shared<clang::CompilerInvocation>();
  clang::CompilerInvocation::CreateFromArgs(*invocation, argv, *diag_engine);
  invocation->getPreprocessorOpts().addRemappedFile(name, llvm::MemoryBuffer::getMemBufferCopy(source, name).release());
  clang::CompilerInstance compiler;
  compiler.setInvocation(invocation);
  compiler.setDiagnostics(diag_engine.get());
  compiler.getDiagnostics().setClient(new clang::TextDiagnosticPrinter(diagnostics_stream, diag_options.get()), true);

  llvm::LLVMContext context;
  clang::EmitLLVMOnlyAction action(&context);
  if (!compiler.ExecuteAction(action) || compiler.getDiagnostics().hasErrorOccurred())
    throw Error(ErrorCode::kCompileError, "Clang could not compile " + name + "\n---- Clang log ----\n" + diagnostics);
  std::unique_ptr<llvm::Module> module = action.takeModule();

  auto machine = host_target_machine();
  module->setDataLayout(machine->createDataLayout());
  module->setTargetTriple(machine->getTargetTriple().str());
  llvm::SmallVector<char, 0> object;
  llvm::raw_svector_ostream object_stream(object);
  llvm::legacy::PassManager passes;
  if (machine->addPassesToEmitFile(passes, object_stream, nullptr, llvm::CodeGenFileType::ObjectFile))
    throw Error(ErrorCode::kUnsupported, "LLVM cannot emit object code for " + machine->getTargetTriple().str());
  passes.run(*module);

  CompiledObject out;
  out.object.assign(object.begin(), object.end());
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
