// Probe (sm_90): does a TMA tensor load of ONE 128-byte row with the 128-byte swizzle, written at row offset r x 128
// of a 1024-byte-aligned shared buffer, land swizzled as row r of the WgmmaTile layout (16-byte chunk c at c ^ (r % 8):
// the swizzle follows the shared-memory address), or as row 0 of its own atom (chunk c at c)? If the former, the
// MLA gather could move each latent row as nine TMA boxes (one per 64 columns) instead of 72 cp.async chunks.
// Build: nvcc -arch=sm_90a -std=c++17 -o tma_row_probe tools/bench/tma_row_probe.cu   Run: ./tma_row_probe
#include <cuda.h>
#include <cuda_runtime.h>
#include <cstdio>
#include <cstring>
#include <vector>

constexpr int kRows = 16, kCols = 64;  // 16 rows of 64 16-bit values: 128 bytes each

__global__ void probe(const __grid_constant__ CUtensorMap map, unsigned short* out) {
  __shared__ alignas(1024) unsigned short tile[kRows * kCols];
  __shared__ alignas(8) unsigned long long barrier;
  const unsigned bar = static_cast<unsigned>(__cvta_generic_to_shared(&barrier));
  const unsigned base = static_cast<unsigned>(__cvta_generic_to_shared(tile));
  if (threadIdx.x == 0) {
    asm volatile("mbarrier.init.shared::cta.b64 [%0], 1;" ::"r"(bar));
    asm volatile("fence.proxy.async.shared::cta;");
    asm volatile("mbarrier.expect_tx.relaxed.cta.shared::cta.b64 [%0], %1;" ::"r"(bar), "r"(kRows * kCols * 2));
    for (int r = 0; r < kRows; ++r) {
      const int source_row = (r * 5 + 3) % kRows;  // rows gathered out of order
      asm volatile(
          "cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3}], [%4];" ::"r"(
              base + r * 128),
          "l"(&map), "r"(0), "r"(source_row), "r"(bar)
          : "memory");
    }
    asm volatile(
        "{ .reg .pred done;\nWAIT: mbarrier.try_wait.parity.shared::cta.b64 done, [%0], 0;\n@!done bra WAIT; }" ::"r"(bar)
        : "memory");
  }
  __syncthreads();
  for (int i = threadIdx.x; i < kRows * kCols; i += blockDim.x) out[i] = tile[i];
}

int main() {
  std::vector<unsigned short> host(kRows * kCols);
  for (int i = 0; i < kRows * kCols; ++i) host[i] = static_cast<unsigned short>(i);  // row * 64 + column
  unsigned short *src = nullptr, *out = nullptr;
  cudaMalloc(&src, host.size() * 2);
  cudaMalloc(&out, host.size() * 2);
  cudaMemcpy(src, host.data(), host.size() * 2, cudaMemcpyHostToDevice);
  void* entry = nullptr;
  cudaDriverEntryPointQueryResult found;
  cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &entry, 12000, cudaEnableDefault, &found);
  if (!entry) return std::printf("tma_row_probe: no cuTensorMapEncodeTiled\n"), 1;
  using Encode = CUresult (*)(CUtensorMap*, CUtensorMapDataType, cuuint32_t, void*, const cuuint64_t*, const cuuint64_t*,
                              const cuuint32_t*, const cuuint32_t*, CUtensorMapInterleave, CUtensorMapSwizzle,
                              CUtensorMapL2promotion, CUtensorMapFloatOOBfill);
  CUtensorMap map;
  const cuuint64_t dims[2] = {kCols, kRows}, strides[1] = {kCols * 2};
  const cuuint32_t box[2] = {kCols, 1}, element_strides[2] = {1, 1};
  const CUresult encoded = reinterpret_cast<Encode>(entry)(
      &map, CU_TENSOR_MAP_DATA_TYPE_UINT16, 2, src, dims, strides, box, element_strides, CU_TENSOR_MAP_INTERLEAVE_NONE,
      CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_NONE, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  if (encoded != CUDA_SUCCESS) return std::printf("tma_row_probe: encode failed (%d)\n", int(encoded)), 1;
  probe<<<1, 128>>>(map, out);
  const cudaError_t ran = cudaDeviceSynchronize();
  if (ran != cudaSuccess) return std::printf("tma_row_probe: kernel failed: %s\n", cudaGetErrorString(ran)), 1;
  std::vector<unsigned short> got(host.size());
  cudaMemcpy(got.data(), out, got.size() * 2, cudaMemcpyDeviceToHost);
  int by_address = 0, unswizzled = 0;
  for (int r = 0; r < kRows; ++r) {
    const int source_row = (r * 5 + 3) % kRows;
    for (int c = 0; c < 8; ++c) {  // 16-byte chunk c of shared row r holds source chunk c ^ (r % 8)?
      const unsigned short first = got[r * kCols + c * 8];
      by_address += first == source_row * kCols + (c ^ (r % 8)) * 8;
      unswizzled += first == source_row * kCols + c * 8;
    }
  }
  std::printf("tma_row_probe: %d of %d chunks as the address-based swizzle (c ^ row %% 8), %d unswizzled -> %s\n",
              by_address, kRows * 8, unswizzled,
              by_address == kRows * 8 ? "ADDRESS-BASED: one-row boxes land in WgmmaTile rows"
                                      : "NOT address-based: one-row boxes do not fit WgmmaTile");
  return by_address == kRows * 8 ? 0 : 2;
}
