// A paged-decode problem for timing and tuning, on a GPU or in host memory for the CPU backend: random q / K / V (or
// 8-bit codes and scales), shuffled pages, and enough replicas (distinct q, out and KV pages) that successive calls
// never find their KV in the last-level cache. Used by `swajit bench decode` and by the tuner, so both measure the
// same way.
#pragma once
#include <cuda.h>

#include <memory>
#include <optional>
#include <vector>

#include "device_buffer.hpp"
#include "paged_decode_problem.hpp"
#include "swajit/swajit.hpp"

namespace swajit {

// A timed decode call: its kernel description (AttentionCall: dtype, head_dim, page_size, q_seqlen, windows, sinks,
// KV quantization) and its run-time sizes. The workload times NHD caches with grouped heads; the GQA group comes
// from num_q_heads / num_kv_heads (spec() sets it).
struct DecodeShape : AttentionCall {
  DecodeShape() { local_window = 4096; }
  int batch = 1, kv_len = 4096;
  int num_q_heads = 32, num_kv_heads = 8;
  // A ragged batch: sequence b's KV length (batch values). Empty: every sequence has kv_len; else kv_len should be
  // their max (the tuning bucket's length).
  std::vector<int> seq_lens;
  bool host_lengths = false;  // also give the runtime the lengths on the host (DecodeOptions::host_seq_lens: planning)

  int seq_len(int b) const { return seq_lens.empty() ? kv_len : seq_lens[b]; }
  // Sequence b's first position inside the local window of its first query (0 without a local window).
  int first_visible(int b) const;
  // Sequence b's logical pages that any of its queries can see: the sinks' [0, sink_end) and the window's (with the
  // extra queries) [window_begin, end), disjoint. The only pages a workload allocates and fills.
  struct TouchedPages {
    int sink_end = 0, window_begin = 0, end = 0;
    int64_t count() const { return int64_t(sink_end) + end - window_begin; }
  };
  TouchedPages touched_pages(int b) const;

  // The kernel spec the shape runs (validated: throws like paged_decode_kernel_spec).
  KernelSpec spec() const;
};

// Memory of a workload: a device allocation, or host memory (new[]: 16-byte aligned) for the CPU backend.
class WorkloadBuffer {
 public:
  WorkloadBuffer() = default;
  WorkloadBuffer(size_t bytes, bool host);
  template <class T>
  WorkloadBuffer(const std::vector<T>& values, bool host) : WorkloadBuffer(values.size() * sizeof(T), host) {
    write(values.data(), values.size() * sizeof(T));
  }
  void* data() const { return host_ ? static_cast<void*>(host_.get()) : device_.data(); }
  size_t bytes() const { return bytes_; }
  void write(const void* src, size_t bytes);
  void read(size_t offset, void* dst, size_t bytes) const;

 private:
  std::unique_ptr<char[]> host_;
  DeviceBuffer device_;
  size_t bytes_ = 0;
};

class DecodeWorkload {
 public:
  // Allocates and fills everything on `where` ({kDLCUDA, n}: that device's context must be current, `stream` is
  // used; {kDLCPU, 0}: host memory).
  DecodeWorkload(const DecodeShape& shape, DLDevice where, CUstream stream);

  const DecodeShape& shape() const { return shape_; }
  int replicas() const { return replicas_; }
  double kv_bytes() const { return kv_bytes_; }     // K/V bytes one call must read (window + sinks)
  double qo_bytes() const { return qo_bytes_; }     // q read + out written

  // One call on replica r; `config` / `cpu_config` force a config (else the runtime chooses, by `policy`).
  void run(int replica, const std::optional<DecodeConfig>& config, TuningPolicy policy = TuningPolicy::kDefault,
           const std::optional<CpuDecodeConfig>& cpu_config = std::nullopt);
  // Fills every replica's output with NaN bits (in stream order on the GPU): an output the next run leaves unwritten
  // then fails relative_error.
  void poison_output();
  // The validated problem of replica r, as paged_decode sees it.
  DecodeProblem problem(int replica) const;
  // Median time of one call in microseconds: a CUDA graph of one call per replica, replayed `reps` times; on the
  // CPU, wall time of one pass over the replicas.
  double time_us(const std::optional<DecodeConfig>& config, int reps);
  // Host time (us) of one eager call of replica 0 (validation, config pick, kernel lookup, launches), mean of `calls`.
  double host_us_per_call(const std::optional<DecodeConfig>& config, int calls);
  double time_cpu_us(const std::optional<CpuDecodeConfig>& config, int reps);
  // Relative L2 error of sequence `b` of replica 0 (from the last run) against the double-precision reference.
  double relative_error(int b) const;

 private:
  DecodeOptions options(const std::optional<DecodeConfig>& config) const;
  // Calls f(q, k, v, block_table, seq_lens, out, options) with replica r's tensors.
  template <class F>
  void with_tensors(int replica, DecodeOptions options, F&& f) const;

  DecodeShape shape_;
  DLDevice where_;
  CUstream stream_;
  int replicas_ = 1, max_pages_ = 0;
  int64_t num_pages_ = 0;
  double kv_bytes_ = 0, qo_bytes_ = 0;
  std::vector<std::vector<int>> logical_pages_;  // per sequence: its pages that the window and sinks touch
  std::vector<int> tables_;         // [replicas, batch, max_pages]
  std::vector<int> lens_;           // [batch]
  std::vector<float> scales_;       // [num_kv_heads, head_dim] (8-bit caches)
  std::vector<float> sinks_;        // [num_q_heads] learned sink logits
  WorkloadBuffer k_, v_, q_, out_, tables_d_, lens_d_, scales_d_, sinks_d_;
  std::vector<int64_t> q_shape_, cache_shape_, table_shape_, lens_shape_, scale_shape_, sinks_shape_;
};

}  // namespace swajit
