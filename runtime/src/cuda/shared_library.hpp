// How the CUDA driver (libcuda), NVRTC and the CPU compiler module are opened at run time: one style for all, so the
// library links and starts on machines without them and says why a backend is missing.
#pragma once
#include <dlfcn.h>

#include <filesystem>
#include <string>
#include <vector>

namespace swajit::dl {

// The first of `names` that opens, or nullptr with every failure appended to *errors.
inline void* open_first(const std::vector<std::string>& names, std::string* errors) {
  for (const auto& name : names) {
    if (void* library = dlopen(name.c_str(), RTLD_NOW | RTLD_LOCAL)) return library;
    *errors += std::string(errors->empty() ? "" : "; ") + dlerror();
  }
  return nullptr;
}

// Whether the library known by `soname` is loaded in this process (however it was opened); opens nothing.
inline bool is_loaded(const std::string& soname) {
  void* library = dlopen(soname.c_str(), RTLD_NOW | RTLD_NOLOAD);
  if (library) dlclose(library);  // drops the reference RTLD_NOLOAD took
  return library != nullptr;
}

// The folder of the executable or shared library that holds `address` (e.g. a function of libswajit): files
// installed beside the code (the CPU compiler module, shipped tuning data) are looked up from there. Empty if unknown.
inline std::filesystem::path directory_of(const void* address) {
  Dl_info info{};
  if (!dladdr(address, &info) || !info.dli_fname) return {};
  std::error_code ec;  // dli_fname is as the program was started (maybe relative): pin it before a chdir
  return std::filesystem::absolute(info.dli_fname, ec).parent_path();
}

// Points `fn` at `symbol` of `library`; false when the library lacks it.
template <class Fn>
bool resolve(void* library, const char* symbol, Fn& fn) {
  fn = reinterpret_cast<Fn>(dlsym(library, symbol));
  return fn != nullptr;
}

}  // namespace swajit::dl
