#include "swajit/error.hpp"

namespace swajit {

const char* error_code_name(ErrorCode code) {
  switch (code) {
    case ErrorCode::kInvalidArgument: return "invalid argument";
    case ErrorCode::kUnsupported: return "unsupported";
    case ErrorCode::kNoDevice: return "no device";
    case ErrorCode::kCompileError: return "compile error";
    case ErrorCode::kCudaError: return "CUDA error";
    case ErrorCode::kDatabaseError: return "database error";
    case ErrorCode::kDeviceArgument: return "invalid device argument";
  }
  return "error";
}

}  // namespace swajit
