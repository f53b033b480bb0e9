// libswajit_cpu_compiler: the CPU backend's Clang front end and code generation, a module that cpu_jit.cpp opens
// only when a kernel must be compiled (a warm process loads its objects with ORC and never loads libclang-cpp).
// Its one entry point (CompileEntry in cpu_jit.hpp) returns errors as codes and text: nothing is thrown across it.
#include <clang/Basic/Diagnostic.h>
#include <clang/Basic/DiagnosticOptions.h>
#include <clang/CodeGen/CodeGenAction.h>
#include <clang/Frontend/CompilerInstance.h>
#include <clang/Frontend/CompilerInvocation.h>
#include <clang/Frontend/TextDiagnosticPrinter.h>
#include <clang/Lex/PreprocessorOptions.h>
#include <llvm/IR/LegacyPassManager.h>
#include <llvm/IR/Module.h>
#include <llvm/Support/MemoryBuffer.h>
#include <llvm/Target/TargetMachine.h>
#include <llvm/TargetParser/Host.h>

#include "cpu_jit.hpp"
#include "cpu_llvm.hpp"
#include "swajit/error.hpp"

namespace swajit::cpu {
namespace {

std::vector<char> compile(const std::string& source, const std::string& name) {
  initialize_llvm();
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
  compiler.setVerboseOutputStream(diagnostics_stream);  // "N errors generated." too

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

  return std::vector<char>(object.begin(), object.end());
}

}  // namespace
}  // namespace swajit::cpu

extern "C" __attribute__((visibility("default"))) bool swajit_cpu_compile_to_object(
    const std::string& source, const std::string& name, std::vector<char>* object, swajit::ErrorCode* error_code,
    std::string* error_message) {
  static_assert(std::is_same_v<decltype(&swajit_cpu_compile_to_object), swajit::cpu::CompileEntry>);
  try {
    *object = swajit::cpu::compile(source, name);
    return true;
  } catch (const swajit::Error& e) {
    *error_code = e.code();
    // what() is "<code name>: <message>"; the caller builds the same Error again from the two.
    const std::string prefix = std::string(swajit::error_code_name(e.code())) + ": ";
    const std::string what = e.what();
    *error_message = what.rfind(prefix, 0) == 0 ? what.substr(prefix.size()) : what;
  } catch (const std::exception& e) {
    *error_code = swajit::ErrorCode::kCompileError;
    *error_message = std::string("Clang failed: ") + e.what();
  }
  return false;
}
