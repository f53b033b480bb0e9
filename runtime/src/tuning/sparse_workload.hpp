// A sparse top-k decode problem on the GPU for timing and tuning: random bf16 q and paged K/V (pages scattered over
// the cache through a random block table), every row's selection random positions of its sequence. Used by
// `swajit bench sparse` and by the sparse tuner, so both measure the same way. Its outputs are verified against the
// CUDA-core kernel's (which the check matrix verifies against the double-precision reference).
#pragma once
#include <cuda.h>

#include <optional>
#include <string>
#include <vector>

#include "device_buffer.hpp"
#include "sparse_decode_problem.hpp"
#include "swajit/swajit.hpp"

namespace swajit {

// Diagnostics of what bounds a kernel (bench sparse only): indices drawn from the first `index_span` tokens (0: the
// whole sequence), so that the gathered rows stay in L2; `empty_selection`: every slot -1, so the kernel does all its
// work without the gather's reads; `contiguous_pages`: each sequence's pages follow each other in the cache (a fresh
// allocator's layout) instead of lying at random pages, so that its selection touches few 2 MB frames; `v_gap_bytes`
// (a multiple of 16): the V cache this many bytes into its allocation, moving V's addresses against K's;
// `eager_timing`: time_us launches the calls directly instead of replaying a CUDA graph of them.
struct SparseDiagnostics {
  int index_span = 0;
  bool empty_selection = false;
  bool contiguous_pages = false;
  int64_t v_gap_bytes = 0;
  bool eager_timing = false;
};

// A timed sparse call: its kernel description (AttentionCall: dtype, head_dim, head_dim_v, shared_kv, topk,
// local_window, sink_logits, page_size) and its run-time sizes; q_seqlen 1, NHD, grouped heads.
struct SparseShape : AttentionCall {
  SparseShape() {
    page_size = 64;
    dtype = DType::kBF16;
  }
  std::string name = "custom";  // the preset it comes from, if any
  int batch = 1, kv_len = 32768;
  int num_q_heads = 64, num_kv_heads = 8;
  SparseDiagnostics diagnostics;
  double selected_bytes() const;  // K/V rows read (topk + window per sequence) and q / out
  double flops() const;           // 2 x (head_dim + head_dim_v) per selected row and q head
};

// Issue 16's bench shapes at `batch`: "a" (64 q / 8 kv heads, head_dim 128, separate K/V: topk 512 and 2048 at kv
// 32768 and 131072) and "b" (MLA: 128 q heads over one latent head 576 / 512, topk 2048, kv 131072; without and with
// a 128-token window and sinks).
std::vector<SparseShape> sparse_preset(const std::string& name, int batch);

class SparseWorkload {
 public:
  // Allocates and fills everything on GPU `device` (its context must be current); launches go to `stream`.
  SparseWorkload(const SparseShape& shape, int device, CUstream stream);

  const SparseShape& shape() const { return shape_; }
  SparseDecodeProblem problem() const;  // the validated call (spec, grid) the runtime sees
  // One call; `config` forces a config, else the runtime chooses by `policy`.
  void run(const std::optional<SparseDecodeConfig>& config, TuningPolicy policy = TuningPolicy::kDefault);
  // Median microseconds of one call: a CUDA graph of one call per replica (each on its own cache, so that a replay
  // reads several L2s' worth of distinct rows, as the peers are timed), replayed `reps` times with the L2 evicted before
  // each replay, divided by the replicas.
  double time_us(const std::optional<SparseDecodeConfig>& config, int reps, TuningPolicy policy = TuningPolicy::kDefault);
  // Relative L2 error of the last output against the CUDA-core kernel's output (computed once, on first use).
  double relative_error();

 private:
  struct Call {
    DLTensor q, k, v, out, block_table, seq_lens, indices, sinks;
    SparseDecodeOptions options;
  };
  Call call(const std::optional<SparseDecodeConfig>& config, TuningPolicy policy, int replica = 0) const;
  void run_replica(int replica, const std::optional<SparseDecodeConfig>& config, TuningPolicy policy);
  std::vector<uint16_t> download_out() const;
  SparseShape shape_;
  int device_;
  CUstream stream_;
  mutable std::vector<int64_t> q_shape_, out_shape_, cache_shape_, table_shape_, lens_shape_, idx_shape_, sink_shape_;
  int replicas_ = 1;  // caches side by side; replica r's block table points at its own pages
  int64_t table_elements_ = 0;
  DeviceBuffer q_, k_, v_, out_, block_table_, seq_lens_, indices_, sinks_;
  std::vector<uint16_t> expected_;  // the CUDA-core kernel's output
};

}  // namespace swajit
