#include "stream_scratch.hpp"

#include <algorithm>
#include <climits>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <tuple>
#include <vector>

#include "cuda_driver.hpp"
#include "swajit/error.hpp"

namespace swajit {
namespace {

constexpr int kStatusInts = 2;  // per slot: error bits, first offending batch index

// What the library keeps per CUDA context: the workspace pool and the status slots.
struct ContextScratch {
  CUmemoryPool pool = nullptr;
  CUdeviceptr status_slab = 0;  // kStreamStatusSlots x int[2], cleared to {0, INT_MAX}
  int next_slot = 0;
  // Which slot each stream owns. The per-thread default stream is one handle for many streams: keyed by thread too.
  std::map<std::tuple<CUstream, std::thread::id>, int> slot_of;
  // Each stream's arrival counters (stream_arrival_counts), same keys.
  struct Counts {
    CUdeviceptr ptr = 0;
    size_t count = 0;
  };
  std::map<std::tuple<CUstream, std::thread::id>, Counts> counts_of;
};
std::mutex scratch_mutex;
std::map<CUcontext, ContextScratch> scratch_by_context;

// Runs `f` with the calling thread's capture mode relaxed, so that setting up a context's scratch (cuMemAlloc,
// cuMemPoolCreate) also works on a first call made inside a graph capture; the capture itself is not touched: the
// memory is cleared on a private stream.
template <class F>
void outside_capture_rules(F&& f) {
  const cuda::Driver& d = cuda::driver();
  CUstreamCaptureMode mode = CU_STREAM_CAPTURE_MODE_RELAXED;
  cuda::check(d.cuThreadExchangeStreamCaptureMode(&mode), "cuThreadExchangeStreamCaptureMode");
  try {
    f();
  } catch (...) {
    d.cuThreadExchangeStreamCaptureMode(&mode);
    throw;
  }
  cuda::check(d.cuThreadExchangeStreamCaptureMode(&mode), "cuThreadExchangeStreamCaptureMode");
}

// Clears one slot in stream order: bits 0, first index INT_MAX (the kernels keep the minimum).
void clear_status(CUdeviceptr slot, CUstream stream) {
  const cuda::Driver& d = cuda::driver();
  cuda::check(d.cuMemsetD32Async(slot, 0, 1, stream), "cuMemsetD32Async(status)");
  cuda::check(d.cuMemsetD32Async(slot + sizeof(int), INT_MAX, 1, stream), "cuMemsetD32Async(status)");
}

void create_scratch(ContextScratch& s) {
  const cuda::Driver& d = cuda::driver();
  CUdevice device;
  cuda::check(d.cuCtxGetDevice(&device), "cuCtxGetDevice");
  int pools_supported = 0;
  cuda::check(d.cuDeviceGetAttribute(&pools_supported, CU_DEVICE_ATTRIBUTE_MEMORY_POOLS_SUPPORTED, device),
              "cuDeviceGetAttribute(MEMORY_POOLS_SUPPORTED)");
  if (pools_supported) {
    CUmemPoolProps props{};
    props.allocType = CU_MEM_ALLOCATION_TYPE_PINNED;
    props.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
    props.location.id = device;
    cuda::check(d.cuMemPoolCreate(&s.pool, &props), "cuMemPoolCreate");
    // Keep freed workspace reserved in the pool: without this every synchronization hands it back to the driver
    // and the next call maps it again.
    cuuint64_t keep_all = UINT64_MAX;
    cuda::check(d.cuMemPoolSetAttribute(s.pool, CU_MEMPOOL_ATTR_RELEASE_THRESHOLD, &keep_all),
                "cuMemPoolSetAttribute(RELEASE_THRESHOLD)");
  }
  std::vector<int> cleared(size_t(kStreamStatusSlots) * kStatusInts, 0);
  for (size_t i = 1; i < cleared.size(); i += kStatusInts) cleared[i] = INT_MAX;
  cuda::check(d.cuMemAlloc(&s.status_slab, cleared.size() * sizeof(int)), "cuMemAlloc(status)");
  CUstream setup;  // a private stream: never one the caller may be capturing
  cuda::check(d.cuStreamCreate(&setup, CU_STREAM_NON_BLOCKING), "cuStreamCreate");
  CUresult synced = d.cuMemcpyHtoDAsync(s.status_slab, cleared.data(), cleared.size() * sizeof(int), setup);
  if (synced == CUDA_SUCCESS) synced = d.cuStreamSynchronize(setup);
  d.cuStreamDestroy(setup);
  cuda::check(synced, "clearing the status slots");
}

// The context's scratch, created on first use; the caller holds scratch_mutex.
ContextScratch& scratch_locked(CUcontext context) {
  auto it = scratch_by_context.find(context);
  if (it != scratch_by_context.end()) return it->second;
  ContextScratch s;
  outside_capture_rules([&] { create_scratch(s); });
  return scratch_by_context.emplace(context, s).first->second;
}

// The key of a stream's status slot and counters: the per-thread default stream is one per host thread.
std::tuple<CUstream, std::thread::id> stream_key(CUstream stream) {
  if (stream == CU_STREAM_LEGACY) stream = nullptr;  // two names of one stream
  const std::thread::id thread = stream == CU_STREAM_PER_THREAD ? std::this_thread::get_id() : std::thread::id{};
  return {stream, thread};
}

CUdeviceptr status_slot_locked(CUcontext context, CUstream stream) {
  ContextScratch& s = scratch_locked(context);
  auto [it, added] = s.slot_of.emplace(stream_key(stream), 0);
  if (added) it->second = s.next_slot < kStreamStatusSlots ? s.next_slot++ : kStreamStatusSlots - 1;
  return s.status_slab + size_t(it->second) * kStatusInts * sizeof(int);
}

}  // namespace

bool stream_is_capturing(CUstream stream) {
  CUstreamCaptureStatus status = CU_STREAM_CAPTURE_STATUS_NONE;
  cuda::check(cuda::driver().cuStreamIsCapturing(stream, &status), "cuStreamIsCapturing");
  return status != CU_STREAM_CAPTURE_STATUS_NONE;
}

int* stream_status(CUcontext context, CUstream stream) {
  std::lock_guard<std::mutex> lock(scratch_mutex);
  return reinterpret_cast<int*>(status_slot_locked(context, stream));
}

StatusRecord take_stream_status(CUcontext context, CUstream stream) {
  const cuda::Driver& d = cuda::driver();
  CUdeviceptr slot;
  {
    std::lock_guard<std::mutex> lock(scratch_mutex);
    slot = status_slot_locked(context, stream);
  }
  int host[kStatusInts] = {0, 0};
  // Stream-ordered copy: it waits for this stream's kernels only, not for the legacy stream's or other streams'.
  cuda::check(d.cuMemcpyDtoHAsync(host, slot, sizeof(host), stream), "cuMemcpyDtoHAsync(status)");
  cuda::check(d.cuStreamSynchronize(stream), "cuStreamSynchronize");
  if (host[0] != 0) clear_status(slot, stream);
  return {host[0], host[1]};
}

namespace {

// Workspace that a captured graph owns: freed by a later call once the graph and all its instantiations are gone
// (the driver then runs the user object's destructor, which may not call CUDA itself).
struct GraphOwnedBuffer {
  CUcontext context;
  CUdeviceptr ptr;
};
std::mutex released_mutex;
std::vector<GraphOwnedBuffer> released_buffers;

void CUDA_CB release_graph_buffer(void* buffer) {
  std::unique_ptr<GraphOwnedBuffer> owned(static_cast<GraphOwnedBuffer*>(buffer));
  std::lock_guard<std::mutex> lock(released_mutex);
  released_buffers.push_back(*owned);
}

// Frees (in `stream`'s order: nothing can use them any more) the buffers of `context` that destroyed graphs left.
void free_released_buffers(CUcontext context, CUstream stream) {
  std::vector<GraphOwnedBuffer> mine;
  {
    std::lock_guard<std::mutex> lock(released_mutex);
    if (released_buffers.empty()) return;
    auto theirs = std::partition(released_buffers.begin(), released_buffers.end(),
                                 [&](const GraphOwnedBuffer& b) { return b.context != context; });
    mine.assign(theirs, released_buffers.end());
    released_buffers.erase(theirs, released_buffers.end());
  }
  for (const GraphOwnedBuffer& b : mine) cuda::driver().cuMemFreeAsync(b.ptr, stream);
}

// The buffer that calls captured on one stream of one capture share: they run in that stream's order, one after
// another, so one buffer serves them all (as the graph's replays are ordered too); calls captured on another stream
// of the same capture (a fork) get their own.
struct CaptureBuffer {
  cuuint64_t capture_id = 0;
  CUdeviceptr ptr = 0;
  size_t bytes = 0;
};
std::map<CUstream, CaptureBuffer> capture_buffers;        // workspaces, guarded by scratch_mutex
std::map<CUstream, CaptureBuffer> capture_arrival_counts;  // zeroed arrival counters, guarded by scratch_mutex

// A buffer from `pool` that the graph being captured on `stream` owns for its lifetime (from `buffers`: one kind of
// buffer per map), all zeros when `zeroed`. Graph launches of one executable graph are ordered, so its calls never
// overlap one another; no allocation node sits between the graph's kernels, and the graph's calls on one stream reuse
// one buffer, as the library's single scratch did before.
CUdeviceptr graph_owned_buffer(CUcontext context, CUstream stream, CUmemoryPool pool, size_t bytes,
                               std::map<CUstream, CaptureBuffer>& buffers, bool zeroed) {
  const cuda::Driver& d = cuda::driver();
  CUstreamCaptureStatus status;
  cuuint64_t id;
  CUgraph graph = nullptr;
  const CUgraphNode* nodes = nullptr;
  const CUgraphEdgeData* edges = nullptr;
  size_t count = 0;
  cuda::check(d.cuStreamGetCaptureInfo(stream, &status, &id, &graph, &nodes, &edges, &count), "cuStreamGetCaptureInfo");
  std::lock_guard<std::mutex> lock(scratch_mutex);
  CaptureBuffer& shared = buffers[stream];
  if (shared.capture_id == id && shared.bytes >= bytes) return shared.ptr;
  CUdeviceptr ptr = 0;
  outside_capture_rules([&] {  // allocated on a private stream, complete before the capture goes on
    CUstream setup;
    cuda::check(d.cuStreamCreate(&setup, CU_STREAM_NON_BLOCKING), "cuStreamCreate");
    CUresult result = d.cuMemAllocFromPoolAsync(&ptr, bytes, pool, setup);
    if (result == CUDA_SUCCESS && zeroed) result = d.cuMemsetD8Async(ptr, 0, bytes, setup);
    if (result == CUDA_SUCCESS) result = d.cuStreamSynchronize(setup);
    d.cuStreamDestroy(setup);
    cuda::check(result, "cuMemAllocFromPoolAsync(graph workspace)");
  });
  auto owned = std::make_unique<GraphOwnedBuffer>(GraphOwnedBuffer{context, ptr});
  CUuserObject object;
  const CUresult created = d.cuUserObjectCreate(&object, owned.get(), &release_graph_buffer, 1,
                                                CU_USER_OBJECT_NO_DESTRUCTOR_SYNC);
  if (created != CUDA_SUCCESS) {
    d.cuMemFreeAsync(ptr, stream);
    cuda::check(created, "cuUserObjectCreate");
  }
  owned.release();  // the user object's destructor owns it now
  cuda::check(d.cuGraphRetainUserObject(graph, object, 1, CU_GRAPH_USER_OBJECT_MOVE), "cuGraphRetainUserObject");
  shared = {id, ptr, bytes};
  return ptr;
}

}  // namespace

StreamWorkspace::StreamWorkspace(CUcontext context, CUstream stream, size_t bytes) : stream_(stream) {
  if (bytes == 0) return;
  CUmemoryPool pool;
  {
    std::lock_guard<std::mutex> lock(scratch_mutex);
    pool = scratch_locked(context).pool;
  }
  if (!pool)
    throw Error(ErrorCode::kUnsupported,
                "this device has no stream-ordered memory pools (CU_DEVICE_ATTRIBUTE_MEMORY_POOLS_SUPPORTED is 0), "
                "which the library's split-KV workspace needs: pass DecodeOptions::workspace (size from "
                "paged_decode_workspace_bytes)");
  if (stream_is_capturing(stream)) {
    ptr_ = graph_owned_buffer(context, stream, pool, bytes, capture_buffers, false);
    owned_by_graph_ = true;
    return;
  }
  free_released_buffers(context, stream);
  cuda::check(cuda::driver().cuMemAllocFromPoolAsync(&ptr_, bytes, pool, stream), "cuMemAllocFromPoolAsync(workspace)");
}

int* stream_arrival_counts(CUcontext context, CUstream stream, size_t count) {
  const cuda::Driver& d = cuda::driver();
  count = std::max<size_t>(count, 1);
  if (stream_is_capturing(stream)) {
    CUmemoryPool pool;
    {
      std::lock_guard<std::mutex> lock(scratch_mutex);
      pool = scratch_locked(context).pool;
    }
    if (!pool)
      throw Error(ErrorCode::kUnsupported, "capturing the fused split-KV merge needs stream-ordered memory pools, which "
                                           "this device lacks; force a config without it (fused_merge = false)");
    return reinterpret_cast<int*>(graph_owned_buffer(context, stream, pool, count * sizeof(int), capture_arrival_counts, true));
  }
  std::lock_guard<std::mutex> lock(scratch_mutex);
  ContextScratch::Counts& counts = scratch_locked(context).counts_of[stream_key(stream)];
  if (counts.count < count) {
    // Rare (a larger batch than before on this stream): cuMemFree waits for the kernels that may still count on the
    // old buffer; the new one is zeroed in the stream's order, before the kernel this call launches.
    // (Relaxed capture rules: another thread may be capturing in global mode meanwhile.)
    outside_capture_rules([&] {
      if (counts.ptr) cuda::check(d.cuMemFree(counts.ptr), "cuMemFree(arrival counts)");
      counts = {};
      CUdeviceptr ptr = 0;
      cuda::check(d.cuMemAlloc(&ptr, count * sizeof(int)), "cuMemAlloc(arrival counts)");
      counts = {ptr, count};
    });
    cuda::check(d.cuMemsetD32Async(counts.ptr, 0, count, stream), "cuMemsetD32Async(arrival counts)");
  }
  return reinterpret_cast<int*>(counts.ptr);
}

StreamWorkspace::~StreamWorkspace() {
  if (ptr_ && !owned_by_graph_) cuda::driver().cuMemFreeAsync(ptr_, stream_);
}

}  // namespace swajit
