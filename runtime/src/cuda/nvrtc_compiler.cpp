#include "nvrtc_compiler.hpp"

#include <cuda.h>  // CUDA_VERSION: the toolkit this was built against
#include <nvrtc.h>

#include <chrono>

#include "shared_library.hpp"
#include "swajit/error.hpp"

namespace swajit::nvrtc {
namespace {

#define SWAJIT_NVRTC_FUNCTIONS(X)                                                                    \
  X(nvrtcVersion) X(nvrtcGetErrorString) X(nvrtcCreateProgram) X(nvrtcCompileProgram) X(nvrtcGetProgramLogSize) \
  X(nvrtcGetProgramLog) X(nvrtcGetCUBINSize) X(nvrtcGetCUBIN) X(nvrtcDestroyProgram)

struct Api {
#define SWAJIT_DECLARE(name) decltype(&::name) name = nullptr;
  SWAJIT_NVRTC_FUNCTIONS(SWAJIT_DECLARE)
#undef SWAJIT_DECLARE
  bool ok = false;
  std::string why_not;
};

// The NVRTC of the CUDA major version we were built against.
std::string soname() { return "libnvrtc.so." + std::to_string(CUDA_VERSION / 1000); }

// That soname, else the toolkit's lib64 when it is not on the path (the loader knows the library by its soname
// either way).
Api load_api() {
  Api api;
  const std::string library_name = soname();
  std::string errors;
  void* library = dl::open_first({library_name, "/usr/local/cuda/lib64/" + library_name, "libnvrtc.so"}, &errors);
  if (!library) {
    api.why_not = "NVRTC could not be opened (" + library_name + "): " + errors;
    return api;
  }
#define SWAJIT_RESOLVE(name)                                 \
  if (!dl::resolve(library, #name, api.name)) {              \
    api.why_not = std::string("NVRTC lacks ") + #name;       \
    return api;                                              \
  }
  SWAJIT_NVRTC_FUNCTIONS(SWAJIT_RESOLVE)
#undef SWAJIT_RESOLVE
  api.ok = true;
  return api;
}

const Api& api() {
  static const Api loaded = load_api();
  if (!loaded.ok) throw Error(ErrorCode::kNoDevice, loaded.why_not);
  return loaded;
}

void check(nvrtcResult result, const char* what) {
  if (result != NVRTC_SUCCESS)
    throw Error(ErrorCode::kCompileError, std::string(what) + " failed: " + api().nvrtcGetErrorString(result));
}

}  // namespace

bool available(std::string* why_not) {
  try {
    api();
    return true;
  } catch (const Error& e) {
    if (why_not) *why_not = e.what();
    return false;
  }
}

bool loaded() { return dl::is_loaded(soname()); }

int version() {
  int major = 0, minor = 0;
  check(api().nvrtcVersion(&major, &minor), "nvrtcVersion");
  return major * 1000 + minor * 10;
}

std::vector<std::string> compile_options(const std::string& arch) {
  return {"--gpu-architecture=" + arch, "--std=c++17", "--device-as-default-execution-space", "-lineinfo"};
}

CompiledCubin compile(const std::string& source, const std::string& program_name, const std::string& arch) {
  const Api& nv = api();
  const auto start = std::chrono::steady_clock::now();
  nvrtcProgram program = nullptr;
  check(nv.nvrtcCreateProgram(&program, source.c_str(), program_name.c_str(), 0, nullptr, nullptr), "nvrtcCreateProgram");
  struct Destroy {
    const Api& nv;
    nvrtcProgram* program;
    ~Destroy() { nv.nvrtcDestroyProgram(program); }
  } destroy{nv, &program};

  const std::vector<std::string> options = compile_options(arch);
  std::vector<const char*> option_ptrs;
  for (const auto& o : options) option_ptrs.push_back(o.c_str());
  const nvrtcResult result = nv.nvrtcCompileProgram(program, int(option_ptrs.size()), option_ptrs.data());

  CompiledCubin out;
  size_t log_size = 0;
  check(nv.nvrtcGetProgramLogSize(program, &log_size), "nvrtcGetProgramLogSize");
  out.log.resize(log_size);
  if (log_size > 0) check(nv.nvrtcGetProgramLog(program, out.log.data()), "nvrtcGetProgramLog");
  while (!out.log.empty() && (out.log.back() == '\0' || out.log.back() == '\n')) out.log.pop_back();
  if (result != NVRTC_SUCCESS) {
    std::string options_text;
    for (const auto& o : options) options_text += " " + o;
    throw Error(ErrorCode::kCompileError, "NVRTC could not compile " + program_name + " for " + arch + " (" +
                                              nv.nvrtcGetErrorString(result) + "), options:" + options_text +
                                              "\n---- NVRTC log ----\n" + out.log);
  }
  size_t cubin_size = 0;
  check(nv.nvrtcGetCUBINSize(program, &cubin_size), "nvrtcGetCUBINSize");
  out.cubin.resize(cubin_size);
  check(nv.nvrtcGetCUBIN(program, out.cubin.data()), "nvrtcGetCUBIN");
  out.compile_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  return out;
}

}  // namespace swajit::nvrtc
