// Library-owned device memory that calls on any number of streams and host threads use at once without sharing
// bytes between streams:
// - the split-KV workspace of one call, allocated in stream order from the context's memory pool
//   (cuMemAllocFromPoolAsync) and freed in stream order after the call's last grid (cuMemFreeAsync), so two streams
//   never hold the same bytes at the same time; a call captured into a CUDA graph gets a buffer the graph owns (a
//   CUDA user object frees it once the graph and its instantiations are destroyed), so no warm-up call is needed
//   before capturing and a graph's replays, on whatever stream, share it with nothing else;
// - the device-side argument-error record, one slot per stream, so check_device_errors(stream) reports what the
//   kernels of that stream found and clears only that.
#pragma once
#include <cuda.h>

#include <cstddef>

namespace swajit {

// The error record (int[2]: bit mask, first offending batch index) of `stream` in `context` (current). Each stream
// handle gets its own slot (the per-thread default stream one per host thread); past kStreamStatusSlots distinct
// streams in one context, the rest share the last slot (their errors are still reported, possibly on a sibling).
// Safe during graph capture, also on first use.
int* stream_status(CUcontext context, CUstream stream);
inline constexpr int kStreamStatusSlots = 4096;

// Reads and clears `stream`'s record after synchronizing the stream; {0, INT_MAX} when nothing was recorded.
struct StatusRecord {
  int bits = 0, first_index = 0;
};
StatusRecord take_stream_status(CUcontext context, CUstream stream);

// One call's split-KV workspace: allocated on `stream` from the context's pool when constructed, freed on the same
// stream when destroyed (after the launches that use it were enqueued, so the free is ordered after them); during a
// capture, owned by the graph instead.
class StreamWorkspace {
 public:
  StreamWorkspace(CUcontext context, CUstream stream, size_t bytes);
  ~StreamWorkspace();
  StreamWorkspace(const StreamWorkspace&) = delete;
  StreamWorkspace& operator=(const StreamWorkspace&) = delete;
  char* data() const { return reinterpret_cast<char*>(ptr_); }

 private:
  CUstream stream_ = nullptr;
  CUdeviceptr ptr_ = 0;
  bool owned_by_graph_ = false;  // captured: the graph keeps the buffer for its lifetime
};

// `count` ints that are zero when `stream`'s next kernel starts, for kernels that count arrivals and leave every count
// at zero when they end (the fused split-KV merge's per-(sequence, kv head) counters). Kept per stream handle (as the
// status slots), zeroed in stream order when first made or grown, so calls on one stream, which run one after
// another, share them and calls on two streams never do; during a capture, a zeroed buffer the graph owns, shared by
// the calls captured on that stream, so a graph's replays on any stream share it with nothing else. (As with the
// status slots, a stream handle the driver reuses after cuStreamDestroy gets the destroyed stream's counters: its
// kernels must have finished by then.)
int* stream_arrival_counts(CUcontext context, CUstream stream, size_t count);

bool stream_is_capturing(CUstream stream);

}  // namespace swajit
