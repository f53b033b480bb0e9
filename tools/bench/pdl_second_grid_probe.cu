// What a second grid costs after a long grid whose SMs are full (shared memory), as paged decode's merge grid follows
// its main grid: a PDL-launched grid (every block waits, none waits, or 256 of 4096 wait) against a tail launch (CUDA
// dynamic parallelism) by the long grid's last block only when there is work. Checked: the next kernel (PDL, waits)
// sees the long grid's writes and the second grid's, also when the second grid's blocks never wait.
// Build: nvcc -O2 -arch=sm_90a -rdc=true -o pdl_second_grid_probe pdl_second_grid_probe.cu -lcudadevrt
// H200, session 14 (tools/bench/RESULTS.md): 104.0 / 110.4 / 107.1 / 107.3 us a replay without a second grid / every
// block waiting / none / 256; tail launch 104.7 with nothing launched, 118.8 of 256 blocks, 124.5 of 4096.
#include <cuda_runtime.h>
#include <cstdio>
#include <vector>
#include <algorithm>
__device__ __forceinline__ void gdc_wait() { asm volatile("griddepcontrol.wait;" ::: "memory"); }
__device__ __forceinline__ void gdc_launch() { asm volatile("griddepcontrol.launch_dependents;" :::); }
__device__ void spin(long long cycles) { long long t0 = clock64(); while (clock64() - t0 < cycles) {} }
constexpr int kMain = 264, kSecond = 4096;
__global__ void second(int* marks, int iter) {
  extern __shared__ char pad[];
  gdc_wait();
  if (threadIdx.x == 0) marks[blockIdx.x] = iter;
}
__global__ void second_nowait(int* marks, int iter, int work) {
  if (int(blockIdx.x) >= work) return;
  gdc_wait();
  if (threadIdx.x == 0) marks[blockIdx.x] = iter;
}
__global__ void primary(int* data, int* marks, int* counter, int iter, long long body, long long tail, int tail_blocks) {
  extern __shared__ char pad[];
  gdc_wait();
  spin(body);
  gdc_launch();
  spin(tail);
  if (threadIdx.x == 0) data[blockIdx.x] = iter;
  if (tail_blocks < 0) return;
  __syncthreads();
  if (threadIdx.x == 0) {
    __threadfence();
    if (atomicAdd(counter, 1) == int(gridDim.x) - 1) {
      *counter = 0;
      if (tail_blocks > 0) second<<<tail_blocks, 128, 16384, cudaStreamTailLaunch>>>(marks, iter);
    }
  }
}
__global__ void checker(const int* data, const int* marks, int iter, int second_blocks, int* errors) {
  gdc_wait();
  for (int i = threadIdx.x; i < kMain; i += blockDim.x)
    if (__ldcg(data + i) != iter) atomicAdd(errors, 1);
  for (int i = threadIdx.x; i < second_blocks; i += blockDim.x)
    if (__ldcg(marks + i) != iter) atomicAdd(errors + 1, 1);
}
template <class K, class... A>
void launch(K k, dim3 grid, dim3 block, size_t smem, cudaStream_t s, A... args) {
  cudaLaunchConfig_t c{};
  c.gridDim = grid; c.blockDim = block; c.stream = s; c.dynamicSmemBytes = smem;
  cudaLaunchAttribute at[1];
  at[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  at[0].val.programmaticStreamSerializationAllowed = 1;
  c.attrs = at; c.numAttrs = 1;
  cudaError_t e = cudaLaunchKernelEx(&c, k, args...);
  if (e != cudaSuccess) std::printf("launch: %s\n", cudaGetErrorString(e));
}
int main() {
  const int iters = 200;
  int *data, *marks, *errors, *counter;
  cudaMalloc(&data, kMain * 4); cudaMalloc(&marks, kSecond * 4); cudaMalloc(&errors, 8); cudaMalloc(&counter, 4);
  cudaMemset(data, 0xff, kMain * 4); cudaMemset(marks, 0xff, kSecond * 4); cudaMemset(errors, 0, 8); cudaMemset(counter, 0, 4);
  const int primary_smem = 110 * 1024;  // two blocks fill an SM's shared memory: no second-grid block fits beside them
  cudaFuncSetAttribute(primary, cudaFuncAttributeMaxDynamicSharedMemorySize, primary_smem);
  cudaFuncSetAttribute(second, cudaFuncAttributeMaxDynamicSharedMemorySize, 16384);
  cudaStream_t s; cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking);
  int clock_khz; cudaDeviceGetAttribute(&clock_khz, cudaDevAttrClockRate, 0);
  const long long body = (long long)clock_khz * 100 / 1000, tail = (long long)clock_khz * 1 / 1000;  // 100 us, 1 us
  const char* names[] = {"no second grid", "PDL second grid, every block waits", "PDL second grid, none waits (no work)",
                         "tail launch, no work (none launched)", "tail launch of 4096 blocks", "tail launch of 256 blocks",
                         "PDL second grid, 256 of 4096 blocks wait"};
  for (int round = 0; round < 2; ++round)
    for (int mode = 0; mode < 7; ++mode) {
      const int tail_blocks = mode == 3 ? 0 : mode == 4 ? kSecond : mode == 5 ? 256 : -1;
      const int checked = mode == 1 || mode == 4 ? kSecond : mode == 5 || mode == 6 ? 256 : 0;
      cudaGraph_t g; cudaGraphExec_t ge;
      cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal);
      for (int i = 0; i < iters; ++i) {
        const int iter = round * 100000 + mode * 1000 + i + 1;
        launch(primary, dim3(kMain), dim3(128), primary_smem, s, data, marks, counter, iter, body, tail, tail_blocks);
        if (mode == 1) launch(second, dim3(kSecond), dim3(128), 0, s, marks, iter);
        if (mode == 2) launch(second_nowait, dim3(kSecond), dim3(128), 0, s, marks, iter, 0);
        if (mode == 6) launch(second_nowait, dim3(kSecond), dim3(128), 0, s, marks, iter, 256);
        launch(checker, dim3(1), dim3(256), 0, s, (const int*)data, (const int*)marks, iter, checked, errors);
      }
      cudaError_t ce = cudaStreamEndCapture(s, &g);
      if (ce != cudaSuccess) { std::printf("mode %d: capture failed: %s\n", mode, cudaGetErrorString(ce)); cudaGetLastError(); continue; }
      ce = cudaGraphInstantiate(&ge, g, 0);
      if (ce != cudaSuccess) { std::printf("mode %d: instantiate failed: %s\n", mode, cudaGetErrorString(ce)); cudaGetLastError(); continue; }
      std::vector<float> ms;
      for (int r = 0; r < 6; ++r) {
        cudaEvent_t a, b; cudaEventCreate(&a); cudaEventCreate(&b);
        cudaEventRecord(a, s); cudaGraphLaunch(ge, s); cudaEventRecord(b, s); cudaEventSynchronize(b);
        float t; cudaEventElapsedTime(&t, a, b); ms.push_back(t);
      }
      std::sort(ms.begin(), ms.end());
      int e[2]; cudaMemcpy(e, errors, 8, cudaMemcpyDeviceToHost); cudaMemset(errors, 0, 8);
      std::printf("round %d mode %d (%s): %.2f us per iteration, errors %d / %d, %s\n", round, mode, names[mode],
                  ms[3] * 1000 / iters, e[0], e[1], cudaGetErrorString(cudaGetLastError()));
      cudaGraphExecDestroy(ge); cudaGraphDestroy(g);
    }
}
