// How the CUDA driver (libcuda) and NVRTC are opened at run time: one style for both, so the library links and starts
// on machines without them and says why a backend is missing.
#pragma once
#include <dlfcn.h>

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

// Points `fn` at `symbol` of `library`; false when the library lacks it.
template <class Fn>
bool resolve(void* library, const char* symbol, Fn& fn) {
  fn = reinterpret_cast<Fn>(dlsym(library, symbol));
  return fn != nullptr;
}

}  // namespace swajit::dl
