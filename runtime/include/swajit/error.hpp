// swajit: the one exception type every public call throws.
#pragma once
#include <stdexcept>
#include <string>

namespace swajit {

enum class ErrorCode {
  kInvalidArgument,  // a caller's argument is outside its allowed range; the message names it
  kUnsupported,      // a valid request this build or device cannot serve (e.g. head_dim 96)
  kNoDevice,         // no CUDA driver, no GPU, or no NVRTC where one is needed
  kCompileError,     // NVRTC or Clang rejected generated source; the message holds the compiler log
  kCudaError,        // a CUDA Driver API call failed; the message names the call and the error string
  kDatabaseError,    // the tuning database could not be read or written
  kDeviceArgument,   // the kernel found invalid device-side metadata (seq_lens, block_table)
};

const char* error_code_name(ErrorCode code);

class Error : public std::runtime_error {
 public:
  Error(ErrorCode code, const std::string& message)
      : std::runtime_error(std::string(error_code_name(code)) + ": " + message), code_(code) {}
  ErrorCode code() const { return code_; }

 private:
  ErrorCode code_;
};

}  // namespace swajit
