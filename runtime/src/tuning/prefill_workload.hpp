// A prefill problem on the GPU for timing and tuning: one batch of equal-length sequences, random bf16/fp16 q, K and
// V (contiguous; 8-bit codes with per-channel scales when kv_quant is set), and a double-precision check of sampled
// rows. Used by `swajit bench prefill` and by the prefill
// tuner, so both measure the same way.
#pragma once
#include <cuda.h>

#include <optional>
#include <vector>

#include "device_buffer.hpp"
#include "prefill_problem.hpp"
#include "swajit/swajit.hpp"

namespace swajit {

// A timed prefill call: its kernel description (AttentionCall: dtype, head_dim, windows, KV quantization, page_size)
// and its run-time sizes; every sequence is seq_len queries over the same seq_len keys, or, when q_lens is given,
// sequence b is q_lens[b] queries chunked after a cached prefix of prefix_len tokens (kv_len = prefix_len + q_lens[b]).
// K/V are contiguous (page_size 0) or a paged NHD cache whose page tables list each sequence's pages in order (or,
// shuffled_pages, in a random order of the cache's pages); heads grouped, causal, without sink logits.
struct PrefillShape : AttentionCall {
  PrefillShape() {
    page_size = 0;  // contiguous K/V
    local_window = 4096;
  }
  int batch = 1, seq_len = 4096;
  int num_q_heads = 32, num_kv_heads = 8;
  std::vector<int> q_lens;  // varlen: one entry per sequence (batch and seq_len unused)
  int prefix_len = 0;       // varlen: cached tokens before each sequence's queries
  bool shuffled_pages = false;  // paged: pages at random places of the cache, not one after another
  bool per_tensor_scale = false;  // 8-bit K/V: one dequant scale per tensor (else one per kv head and channel)
  int sequences() const { return q_lens.empty() ? batch : int(q_lens.size()); }
  int q_len(int b) const { return q_lens.empty() ? seq_len : q_lens[b]; }
  int kv_len(int b) const { return q_lens.empty() ? seq_len : prefix_len + q_lens[b]; }
  double useful_flops() const;  // 4 x head_dim per visible (query, key) pair and q head
};

// The prefill bench grid (issue 6): batch 1, 32 q heads, head_dim 128, window 4096, seq x kv heads.
struct PrefillGrid {
  std::vector<int> seq_lens = {4096, 8192, 16384, 32768};
  std::vector<int> num_kv_heads = {32, 8};
  int batch = 1, num_q_heads = 32, head_dim = 128, local_window = 4096, global_window = 0;
  KvQuant kv_quant = KvQuant::kNone;
  int page_size = 0;        // 0: contiguous K/V
  std::vector<int> q_lens;  // varlen rows instead of seq_lens (see PrefillShape)
  int prefix_len = 0;
  bool shuffled_pages = false;
  bool per_tensor_scale = false;
  PrefillShape shape(int kv_heads, int seq_len) const;
};

class PrefillWorkload {
 public:
  // Allocates and fills everything on GPU `device` (its context must be current); launches go to `stream`.
  PrefillWorkload(const PrefillShape& shape, int device, CUstream stream);

  const PrefillShape& shape() const { return shape_; }
  PrefillProblem problem() const;  // the validated call (spec, grid) the runtime sees
  // One call; `config` forces a config, else the runtime chooses by `policy`. Output poisoned first when asked.
  void run(const std::optional<PrefillConfig>& config, TuningPolicy policy = TuningPolicy::kDefault, bool poison = false);
  // Median milliseconds of `reps` calls (CUDA events, after warm-up).
  double time_ms(const std::optional<PrefillConfig>& config, int reps, TuningPolicy policy = TuningPolicy::kDefault);
  // Host time (us) of one call (validation, config pick, kernel lookup, launch), mean of `calls`.
  double host_us_per_call(const std::optional<PrefillConfig>& config, int calls);
  // Relative L2 error of sampled rows of the last output (first and last query of sequence 0 and random ones, the
  // first and last q head) against the double-precision reference (computed once, on first use).
  double sampled_relative_error();

 private:
  DLTensor view(const DeviceBuffer& b, std::vector<int64_t>& shape, DLDataType dtype) const;
  struct Call {  // the arguments of one prefill() call (options point at `scale`)
    DLTensor q, k, v, out, cu_seqlens_q, cu_seqlens_k, block_table, seq_lens, scale;
    PrefillOptions options;
  };
  Call call(const std::optional<PrefillConfig>& config, TuningPolicy policy) const;
  float kv_value(const std::vector<uint8_t>& store, size_t element) const;  // what a stored K/V element stands for
  PrefillShape shape_;
  int device_;
  CUstream stream_;
  std::vector<uint16_t> q_bits_;
  std::vector<uint8_t> k_store_, v_store_;  // K/V bytes as uploaded: 16-bit values, or 8-bit codes
  std::vector<float> scales_;               // 8-bit K/V: [num_kv_heads, head_dim], shared by K and V
  bool paged() const { return shape_.page_size > 0; }
  mutable std::vector<int64_t> q_shape_, k_shape_, cu_shape_, scale_shape_, table_shape_, lens_shape_;  // DLTensor::shape points at them
  DeviceBuffer q_, k_, v_, out_, cu_seqlens_q_, cu_seqlens_k_, block_table_, seq_lens_, scales_d_;
  std::vector<int> sampled_rows_;        // query rows of sequence 0 that are checked
  std::vector<double> sampled_expected_; // their reference output, [row][head 0 and last][head_dim]
};

}  // namespace swajit
