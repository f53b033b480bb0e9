// The --device flag every verb takes: auto (the first GPU, else the CPU) | cpu | cuda | cuda:N.
#pragma once
#include <dlpack/dlpack.h>

#include <string>

#include "swajit/device.hpp"
#include "swajit/error.hpp"

namespace swajit::cli {

inline constexpr const char* kDeviceHelp = "auto (first GPU, else the CPU) | cpu | cuda | cuda:N";

inline DLDevice parse_device(const std::string& text) {
  if (text == "auto") return cuda_devices().empty() ? DLDevice{kDLCPU, 0} : DLDevice{kDLCUDA, 0};
  if (text == "cpu") return {kDLCPU, 0};
  if (text == "cuda") return {kDLCUDA, 0};
  if (text.rfind("cuda:", 0) == 0 && text.size() > 5 && text.find_first_not_of("0123456789", 5) == std::string::npos)
    return {kDLCUDA, std::stoi(text.substr(5))};
  throw Error(ErrorCode::kInvalidArgument, "--device '" + text + "' is not one of auto, cpu, cuda, cuda:N");
}

inline std::string device_label(const DLDevice& d) {
  return d.device_type == kDLCPU ? "cpu" : "cuda:" + std::to_string(d.device_id);
}

}  // namespace swajit::cli
