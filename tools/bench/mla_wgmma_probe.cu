// Probe (sm_90a): what the MLA kernels' tensor work costs by itself, one block per SM, nothing gathered. Per 64-token
// tile the MLA kernels issue S = Q K^T as 36 wgmmas m64 n64 k16 with Q and K from shared memory (SS), and P V as 4
// wgmmas m64 n256 k16 per column warpgroup (P from registers, V from shared memory). Every kernel structure took about
// 5,400 cycles a tile without any read (session 8 run B), against about 2,200 of tensor work at the peak rate: this
// times the wgmmas alone, in the modes below, in cycles per tile (clock64 over `iters` tiles, median over the SMs).
// Build (the generated MLA prelude first: tile layout, descriptors, wgmma wrappers):
//   { build/tools/swajit gen --family sparse_decode --dtype bf16 --head-dim 576 --head-dim-v 512 --shared-kv
//     --page-size 64 --group 128 --topk 2048 --mma true --mla true --seesaw true --splits 1 --l2-ahead false
//     --table-prefetch false; cat tools/bench/mla_wgmma_probe.cu; } > /tmp/probe.cu
//   nvcc -arch=sm_90a -O3 -o tools/bench/mla_wgmma_probe /tmp/probe.cu
// Run: tools/bench/mla_wgmma_probe (gpu_mla.sh --probe runs it when the binary lies beside the script).
#include <algorithm>
#include <cstdio>
#include <vector>

enum ProbeMode {
  kScoresOneWarpgroup, kScoresBoth, kPvBoth, kScoresBesidePv, kScoresThenPv, kGatherZeroFill, kGatherFromL2,
  kAllWithZeroFill, kModes
};
const char* const kModeNames[kModes] = {
    "S, one warpgroup (36 x m64n64k16 SS; peak 1152 cycles)",
    "S, both warpgroups at once (2 tiles' S; peak 2304)",
    "P V, both warpgroups (8 x m64n256k16 RS; peak 1024)",
    "S on warpgroup 0 beside P V on warpgroup 1 (peak 1664)",
    "S then P V on both (two tiles' S and P V; peak 3328)",
    "gather only: 18 zero-filling cp.async a thread (one 72 KB tile)",
    "gather only: the same from a 1.1 MB buffer in L2",
    "S then P V on both, one zero-filled gather beside (peak 3328)"};

// One tile's gather as the MLA kernels issue it: thread i copies 16-byte chunks i % 8 + 8 c (c < 9) of rows i / 8 and
// i / 8 + 32 into the swizzled stage from rows of a buffer of kL2Rows, or zero-filled (`read` false: nothing read, the
// source address only named, as the kernels do for empty slots).
constexpr int kL2Rows = 1024;
__device__ __forceinline__ void probe_gather(u32 tile, const char* from, bool read, int it) {
  const int part = threadIdx.x % kCopyParts;
#pragma unroll
  for (int pass = 0; pass < kCopyPasses; ++pass) {
    const int row = int(threadIdx.x) / kCopyParts + pass * kRowsPerPass;
    const char* src = from + ((it * kBlockN + row) % kL2Rows) * (kHeadDim * 2);
#pragma unroll
    for (int i = 0; i < kChunksPerPart; ++i) {
      const int chunk = part + i * kCopyParts;
      cp_async_16(tile + LatentTile::offset_bytes(row, chunk), src + chunk * 16, read);
    }
  }
}

extern "C" __global__ void __launch_bounds__(256, 1) wgmma_probe(int iters, int mode, long long* cycles, float* sink,
                                                                 const char* l2_rows) {
  extern __shared__ __align__(1024) unsigned char smem[];
  const u32 q_tile = smem_u32(smem), tile = q_tile + kQBytes;
  for (int i = threadIdx.x; i < (kQBytes + kStageBytes) / 4; i += blockDim.x)
    reinterpret_cast<u32*>(smem)[i] = 0x3c003c00u;  // small finite values (no NaN from stale bits)
  fence_shared_for_async_proxy();
  __syncthreads();
  const int warpgroup = __shfl_sync(0xffffffffu, int(threadIdx.x) / kWarpgroupThreads, 0);
  const bool gather_only = mode == kGatherZeroFill || mode == kGatherFromL2;
  const bool scores_here = mode == kScoresOneWarpgroup ? warpgroup == 0
                           : mode == kScoresBesidePv   ? warpgroup == 0
                                                       : mode != kPvBoth && !gather_only;
  const bool pv_here = mode == kPvBoth || mode == kScoresThenPv || mode == kAllWithZeroFill ||
                       (mode == kScoresBesidePv && warpgroup == 1);
  const bool gather_here = gather_only || mode == kAllWithZeroFill;
  float scores[kBlockN / 8][4], out[kWarpgroupOutFrags][4];
  zero_output(out);
  u32 probs[kBlockN / 16][4];
  for (int step = 0; step < kBlockN / 16; ++step)
    for (int i = 0; i < 4; ++i) probs[step][i] = 0x3c003c00u;
  float total = 0.f;
  __syncthreads();
  const long long start = clock64();
  for (int it = 0; it < iters; ++it) {
    // The addresses made opaque each tile, as in the kernels (whose stage changes): no descriptor hoisted out of the
    // loop into registers.
    u32 q_now, tile_now;
    asm volatile("mov.b32 %0, %1;" : "=r"(q_now) : "r"(q_tile));
    asm volatile("mov.b32 %0, %1;" : "=r"(tile_now) : "r"(tile));
    const u64 q_desc = warp_uniform(wgmma_descriptor(q_now, kKStepBytes, kSwizzleAtomBytes));
    const u64 k_desc = warp_uniform(wgmma_descriptor(tile_now, kKStepBytes, kSwizzleAtomBytes));
    if (gather_here) probe_gather(tile, l2_rows, mode == kGatherFromL2, it);  // (into the stage the wgmmas read: timing only)
    if (scores_here) {
      wgmma_fence();
      issue_tile_scores<0, kDimSteps>(scores, q_desc, k_desc);
      wgmma_commit();
      wgmma_wait<0>();
      pin_accumulators(scores);
      total += scores[0][0];
    }
    if (pv_here) {
      wgmma_fence();
      issue_pv(out, probs, v_descriptor(tile_now, warpgroup), 0);
      wgmma_commit();
      wgmma_wait<0>();
      pin_accumulators(out);
    }
    if (gather_here) cp_async_wait_all();
  }
  __syncthreads();
  const long long end = clock64();
  if (threadIdx.x == 0) cycles[blockIdx.x] = end - start;
  sink[blockIdx.x * blockDim.x + threadIdx.x] = total + out[0][0];
}

int main() {
  int sms = 0;
  cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0);
  const int bytes = kQBytes + kStageBytes, iters = 256;
  if (cudaFuncSetAttribute(wgmma_probe, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes) != cudaSuccess) {
    std::printf("probe: cannot take %d bytes of shared memory\n", bytes);
    return 1;
  }
  long long* cycles;
  float* sink;
  char* l2_rows;
  cudaMalloc(&cycles, sms * sizeof(long long));
  cudaMalloc(&sink, sms * 256 * sizeof(float));
  cudaMalloc(&l2_rows, size_t(kL2Rows) * kHeadDim * 2);
  cudaMemset(l2_rows, 0, size_t(kL2Rows) * kHeadDim * 2);
  for (int mode = 0; mode < kModes; ++mode) {
    for (int warm = 0; warm < 2; ++warm) wgmma_probe<<<sms, 256, bytes>>>(iters, mode, cycles, sink, l2_rows);
    if (cudaDeviceSynchronize() != cudaSuccess) {
      std::printf("probe: mode %d failed: %s\n", mode, cudaGetErrorString(cudaGetLastError()));
      return 1;
    }
    std::vector<long long> host(sms);
    cudaMemcpy(host.data(), cycles, sms * sizeof(long long), cudaMemcpyDeviceToHost);
    std::sort(host.begin(), host.end());
    std::printf("%-60s %7.0f cycles a tile (median of %d SMs)\n", kModeNames[mode], double(host[sms / 2]) / iters, sms);
  }
  return 0;
}
