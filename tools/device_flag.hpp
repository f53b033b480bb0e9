// The --device flag every verb takes: auto (the first GPU, else the CPU) | cpu | cuda | cuda:N.
#pragma once
#include <dlpack/dlpack.h>

#include <charconv>
#include <limits>
#include <string>

#include "swajit/device.hpp"
#include "swajit/error.hpp"

namespace swajit::cli {

inline constexpr const char* kDeviceHelp = "auto (first GPU, else the CPU) | cpu | cuda | cuda:N";

// A CUDA device must exist: without a GPU (or past the last one) the flag itself is the error, named here, before any
// verb starts threads that would meet it.
inline DLDevice parse_device(const std::string& text) {
  if (text == "auto") return cuda_devices().empty() ? DLDevice{kDLCPU, 0} : DLDevice{kDLCUDA, 0};
  if (text == "cpu") return {kDLCPU, 0};
  int ordinal = -1;
  if (text == "cuda") {
    ordinal = 0;
  } else if (text.rfind("cuda:", 0) == 0) {
    const char* end = text.data() + text.size();
    const auto [ptr, ec] = std::from_chars(text.data() + 5, end, ordinal);
    if (ec != std::errc() || ptr != end || ordinal < 0)
      throw Error(ErrorCode::kInvalidArgument, "--device '" + text + "': N in cuda:N must be an integer from 0 to " +
                                                   std::to_string(std::numeric_limits<int>::max()));
  } else {
    throw Error(ErrorCode::kInvalidArgument, "--device '" + text + "' is not one of auto, cpu, cuda, cuda:N");
  }
  std::string why;
  const auto gpus = cuda_devices(&why);
  if (ordinal >= int(gpus.size()))
    throw Error(ErrorCode::kNoDevice, "--device '" + text + "': " +
                                          (gpus.empty() ? "no GPU (" + why + ")"
                                                        : "only " + std::to_string(gpus.size()) + " GPU(s), cuda:0.." +
                                                              std::to_string(gpus.size() - 1)));
  return {kDLCUDA, ordinal};
}

inline std::string device_label(const DLDevice& d) {
  return d.device_type == kDLCPU ? "cpu" : "cuda:" + std::to_string(d.device_id);
}

// The CUDA ordinal of a verb that runs on CUDA only (prefill, sparse bench and tuning).
inline int cuda_ordinal(const DLDevice& device, const std::string& verb) {
  if (device.device_type != kDLCUDA)
    throw Error(ErrorCode::kUnsupported, verb + " runs on CUDA only; --device must be cuda or cuda:N");
  return device.device_id;
}

}  // namespace swajit::cli
