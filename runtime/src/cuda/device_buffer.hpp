// RAII device memory through the Driver API, for the check harness, the benchmarks and the tests.
#pragma once
#include <cuda.h>

#include <cstddef>
#include <vector>

#include "cuda_driver.hpp"

namespace swajit {

// cuMemcpyHtoD from pageable memory and cuMemsetD8 return before their bytes land (CUDA's "API synchronization
// behavior"), ordered only on the legacy default stream, with which a CU_STREAM_NON_BLOCKING stream is not: a kernel
// launched there next could read the old bytes (H200, session 10: the check harness's poison landed over one wave of a
// decode's output, and seq_lens read while landing gave warps different schedules and hung a block). So every
// host-side write here waits for the legacy stream, where it was queued (not for the context: a tune-on-miss in a
// serving process must not wait for the inference work on its other streams).
inline void wait_for_host_writes() {
  cuda::check(cuda::driver().cuStreamSynchronize(CU_STREAM_LEGACY), "cuStreamSynchronize(legacy stream, after a host write)");
}

class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(size_t bytes) : bytes_(bytes) {
    if (bytes_) cuda::check(cuda::driver().cuMemAlloc(&ptr_, bytes_), "cuMemAlloc");
  }
  template <class T>
  explicit DeviceBuffer(const std::vector<T>& host) : DeviceBuffer(host.size() * sizeof(T)) {
    upload(host);
  }
  ~DeviceBuffer() {
    if (ptr_) cuda::driver().cuMemFree(ptr_);
  }
  DeviceBuffer(DeviceBuffer&& o) noexcept : ptr_(o.ptr_), bytes_(o.bytes_) { o.ptr_ = 0; o.bytes_ = 0; }
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
    std::swap(ptr_, o.ptr_);
    std::swap(bytes_, o.bytes_);
    return *this;
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  template <class T>
  void upload(const std::vector<T>& host) {
    write(host.data(), host.size() * sizeof(T));
  }
  // The first `bytes` bytes from host memory at `src`.
  void write(const void* src, size_t bytes) {
    if (bytes == 0) return;
    cuda::check(cuda::driver().cuMemcpyHtoD(ptr_, src, bytes), "cuMemcpyHtoD");
    wait_for_host_writes();
  }
  // Every byte set to `byte`.
  void fill(unsigned char byte) {
    if (bytes_ == 0) return;
    cuda::check(cuda::driver().cuMemsetD8(ptr_, byte, bytes_), "cuMemsetD8");
    wait_for_host_writes();
  }
  template <class T>
  std::vector<T> download() const {
    std::vector<T> host(bytes_ / sizeof(T));
    if (!host.empty()) cuda::check(cuda::driver().cuMemcpyDtoH(host.data(), ptr_, bytes_), "cuMemcpyDtoH");
    return host;
  }
  CUdeviceptr ptr() const { return ptr_; }
  void* data() const { return reinterpret_cast<void*>(ptr_); }
  size_t bytes() const { return bytes_; }

 private:
  CUdeviceptr ptr_ = 0;
  size_t bytes_ = 0;
};

}  // namespace swajit
