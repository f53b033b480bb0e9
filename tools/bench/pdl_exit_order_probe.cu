// Does work ordered after a PDL-launched grid whose blocks exit without griddepcontrol.wait see the grid before it?
// primary (100 us, writes at its end, 30 us after its launch trigger) -> second grid (PDL, every block exits at once),
// then: A an event recorded after the second grid, waited on by another stream whose (plain) checker kernel reads the
// primary's writes; B a plain checker kernel on the same stream; C the host reading mapped memory after an event
// synchronize; D A's pattern captured into a graph and replayed; E (control) the other stream's checker with no event.
// Build: nvcc -O2 -arch=sm_90a -o pdl_exit_order_probe pdl_exit_order_probe.cu
// H200, session 14 (tools/bench/RESULTS.md): A-D 0 stale reads in 300 each; the control E 5280 in 20 (all of them).
#include <cuda_runtime.h>
#include <cstdio>
__device__ __forceinline__ void gdc_wait() { asm volatile("griddepcontrol.wait;" ::: "memory"); }
__device__ __forceinline__ void gdc_launch() { asm volatile("griddepcontrol.launch_dependents;" :::); }
__device__ void spin(long long cycles) { long long t0 = clock64(); while (clock64() - t0 < cycles) {} }
constexpr int kMain = 264;
__global__ void primary(volatile int* data, int iter, long long body, long long tail) {
  gdc_wait();
  spin(body);
  gdc_launch();
  spin(tail);
  __syncthreads();
  if (threadIdx.x == 0) { data[blockIdx.x] = iter; __threadfence_system(); }
}
__global__ void second_nowait() {}
__global__ void checker(const int* data, int iter, int* errors) {
  for (int i = threadIdx.x; i < kMain; i += blockDim.x)
    if (__ldcg(data + i) != iter) atomicAdd(errors, 1);
}
void pdl(void (*k)(), cudaStream_t s) {
  cudaLaunchConfig_t c{}; c.gridDim = dim3(4096); c.blockDim = dim3(128); c.stream = s;
  cudaLaunchAttribute at[1]; at[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  at[0].val.programmaticStreamSerializationAllowed = 1; c.attrs = at; c.numAttrs = 1;
  cudaLaunchKernelEx(&c, k);
}
int main() {
  int *data, *errors, *host_data;
  cudaHostAlloc(&host_data, kMain * 4, cudaHostAllocMapped);
  cudaMalloc(&data, kMain * 4); cudaMalloc(&errors, 4); cudaMemset(errors, 0, 4);
  int* mapped; cudaHostGetDevicePointer(&mapped, host_data, 0);
  cudaStream_t s1, s2; cudaStreamCreateWithFlags(&s1, cudaStreamNonBlocking); cudaStreamCreateWithFlags(&s2, cudaStreamNonBlocking);
  cudaEvent_t ev; cudaEventCreateWithFlags(&ev, cudaEventDisableTiming);
  int khz; cudaDeviceGetAttribute(&khz, cudaDevAttrClockRate, 0);
  const long long body = (long long)khz * 100 / 1000, tail = (long long)khz * 30 / 1000;  // 30 us after the trigger: an early completion would surely be seen
  const int iters = 300;
  int iter = 0, e = 0;
  // A: event -> other stream
  for (int i = 0; i < iters; ++i) {
    ++iter; primary<<<kMain, 128, 0, s1>>>(data, iter, body, tail); pdl(second_nowait, s1);
    cudaEventRecord(ev, s1); cudaStreamWaitEvent(s2, ev, 0); checker<<<1, 256, 0, s2>>>(data, iter, errors);
  }
  cudaDeviceSynchronize(); cudaMemcpy(&e, errors, 4, cudaMemcpyDeviceToHost); cudaMemset(errors, 0, 4);
  std::printf("A event -> other stream's checker: %d stale reads in %d, %s\n", e, iters, cudaGetErrorString(cudaGetLastError()));
  // B: plain checker on the same stream
  for (int i = 0; i < iters; ++i) {
    ++iter; primary<<<kMain, 128, 0, s1>>>(data, iter, body, tail); pdl(second_nowait, s1);
    checker<<<1, 256, 0, s1>>>(data, iter, errors);
  }
  cudaDeviceSynchronize(); cudaMemcpy(&e, errors, 4, cudaMemcpyDeviceToHost); cudaMemset(errors, 0, 4);
  std::printf("B same-stream plain checker: %d stale reads in %d, %s\n", e, iters, cudaGetErrorString(cudaGetLastError()));
  // C: host after event synchronize (primary writes mapped host memory)
  int stale = 0;
  for (int i = 0; i < iters; ++i) {
    ++iter; primary<<<kMain, 128, 0, s1>>>(mapped, iter, body, tail); pdl(second_nowait, s1);
    cudaEventRecord(ev, s1); cudaEventSynchronize(ev);
    for (int j = 0; j < kMain; ++j) if (((volatile int*)host_data)[j] != iter) { ++stale; break; }
  }
  std::printf("C host after event sync: %d stale iterations in %d, %s\n", stale, iters, cudaGetErrorString(cudaGetLastError()));
  // E (control: must find stale reads): the other stream's checker with no event to wait on
  for (int i = 0; i < 20; ++i) {
    ++iter; primary<<<kMain, 128, 0, s1>>>(data, iter, body, tail); pdl(second_nowait, s1);
    checker<<<1, 256, 0, s2>>>(data, iter, errors);
    cudaDeviceSynchronize();
  }
  cudaMemcpy(&e, errors, 4, cudaMemcpyDeviceToHost); cudaMemset(errors, 0, 4);
  std::printf("E control, no event: %d stale reads in 20 (expected > 0), %s\n", e, cudaGetErrorString(cudaGetLastError()));
  // D: A captured into a graph (s2 forked from s1 by the event), replayed
  cudaGraph_t g; cudaGraphExec_t ge;
  cudaStreamBeginCapture(s1, cudaStreamCaptureModeThreadLocal);
  ++iter; const int graph_iter = iter;
  primary<<<kMain, 128, 0, s1>>>(data, graph_iter, body, tail); pdl(second_nowait, s1);
  cudaEventRecord(ev, s1); cudaStreamWaitEvent(s2, ev, 0); checker<<<1, 256, 0, s2>>>(data, graph_iter, errors);
  cudaEventRecord(ev, s2); cudaStreamWaitEvent(s1, ev, 0);
  cudaError_t ce = cudaStreamEndCapture(s1, &g);
  if (ce == cudaSuccess) ce = cudaGraphInstantiate(&ge, g, 0);
  if (ce != cudaSuccess) { std::printf("D: capture failed: %s\n", cudaGetErrorString(ce)); return 0; }
  for (int i = 0; i < iters; ++i) {
    cudaMemsetAsync(data, 0, kMain * 4, s1);  // the replay's primary must write them again before the checker reads
    cudaGraphLaunch(ge, s1);
  }
  cudaDeviceSynchronize(); cudaMemcpy(&e, errors, 4, cudaMemcpyDeviceToHost);
  std::printf("D graph, event branch: %d stale reads in %d, %s\n", e, iters, cudaGetErrorString(cudaGetLastError()));
}
