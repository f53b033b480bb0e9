// swajit: sliding-window attention kernels, generated and JIT-compiled for the caller's exact shapes.
//
//   #include <swajit/swajit.hpp>
//   swajit::DecodeOptions opt;
//   opt.local_window = 4096;                     // each query sees the last 4096 positions ...
//   opt.global_window = 4;                       // ... and the first 4 (attention sinks)
//   swajit::paged_decode(q, k_cache, v_cache, block_table, seq_lens, out, stream, opt);
//
// Tensors are DLPack DLTensors (what PyTorch, JAX and CuPy export without copies). The first call for a new
// specialization generates and compiles its kernel (NVRTC, for the device's own arch); later calls launch at once.
//
// Threads and streams: every function here may be called from any number of host threads, on any number of CUDA
// streams, at the same time. What calls share is made safe so:
// - split-KV scratch: each call that needs it (and gets no DecodeOptions::workspace) allocates its own, in stream
//   order from a library memory pool, and frees it in stream order after its last grid, so calls on different
//   streams never share bytes. A call captured into a CUDA graph gets a buffer the graph owns (freed when the graph
//   and its instantiations are destroyed): no warm-up call is needed, and replays on any stream share it with no
//   other call; two instantiations of one graph must not run at once. A caller's workspace is the caller's to keep
//   to one stream at a time.
// - device-side argument errors are recorded per stream: check_device_errors(device, stream) reports and clears
//   what the kernels launched on that stream found.
// - kernels: a specialization is generated and compiled once per process and context; concurrent first uses wait
//   for that one build. The tuning database is one connection behind a lock.
// - the CPU backend runs one call at a time on its thread pool; concurrent CPU calls queue.
// No call synchronizes the host with the stream, except with check_device_args or while tuning on a miss.
#pragma once
#include <cuda.h>
#include <dlpack/dlpack.h>

#include <cstddef>
#include <optional>
#include <string>

#include "swajit/device.hpp"
#include "swajit/error.hpp"
#include "swajit/spec.hpp"

namespace swajit {

// Where a call's config comes from when DecodeOptions::config is not set.
enum class TuningPolicy {
  kDefault,     // kTuneOnMiss when the environment sets SWAJIT_TUNE=1, else kDatabase
  kHeuristic,   // never consult the tuning database
  kDatabase,    // the tuned winner for (GPU SKU, spec, shape bucket) if the database has one, else the heuristic
  kTuneOnMiss,  // like kDatabase, but a miss is tuned on the spot (seconds; never during graph capture) and stored
};

// The tuning database file (default: $SWAJIT_DB, else $XDG_CACHE_HOME/swajit/tuning.db, else
// ~/.cache/swajit/tuning.db). Takes effect for lookups made after the call.
void set_tuning_db_path(const std::string& path);

// What a decode and a prefill call share: the mask, the GQA mapping, the softmax scale, 8-bit K/V and its scales,
// where the config comes from, and the device-side argument check.
struct AttentionOptions {
  int local_window = 0;      // > 0: query at position p sees j only if p - j < local_window; <= 0: unlimited
  int global_window = 0;     // >= 0: positions j < global_window are always visible (sink tokens)
  std::optional<float> softmax_scale;  // default 1 / sqrt(head_dim); finite and > 0
  KvLayout kv_layout = KvLayout::kNHD;    // of a paged cache
  GqaMapping gqa = GqaMapping::kGrouped;  // q head h reads kv head h / group, or h % num_kv_heads (interleaved)
  // Learned attention-sink logits (gpt-oss): float32 [num_q_heads] on the same device, in the units of
  // softmax_scale * q.k; each row's denominator gains exp(sink_logits[h] - max). Null: none.
  const DLTensor* sink_logits = nullptr;
  // 8-bit K/V: the caches (or k / v) hold int8 (DLPack int8) or fp8 e4m3 bytes (DLPack uint8), dequantized in the
  // kernel as value * scale with float32 scales [num_kv_heads, head_dim] (per channel) or a single value (per tensor).
  KvQuant kv_quant = KvQuant::kNone;
  const DLTensor* k_scale = nullptr;
  const DLTensor* v_scale = nullptr;
  TuningPolicy tuning = TuningPolicy::kDefault;  // used when no config is forced
  // Synchronize after the launch and throw kDeviceArgument if the kernel found invalid seq_lens / block_table (or
  // offsets) values (it always guards against them and writes zeros for the affected sequences).
  bool check_device_args = false;
};

struct DecodeOptions : AttentionOptions {
  std::optional<DecodeConfig> config;  // force a GPU tuning config (validated); default: see `tuning`
  std::optional<CpuDecodeConfig> cpu_config;  // the same for the CPU backend (tensors on kDLCPU)
  // Split-KV scratch (size from paged_decode_workspace_bytes). When null each call that needs it allocates its own in
  // stream order (a captured call: one its graph owns). A caller's workspace must not be in use on two streams at once.
  void* workspace = nullptr;
  size_t workspace_bytes = 0;
  // The seq_lens values as the host knows them (batch ints), or null: they only plan the grid (a batch of equal
  // lengths takes the direct kernel, without the work schedule), as FlashInfer's plan() takes host lengths. The kernels
  // always read seq_lens, so values gone stale (a replayed graph) cost balance, never correctness. Host-readable
  // seq_lens are read for this without it.
  const int* host_seq_lens = nullptr;
};

// Paged decode attention with sliding window and sinks. The backend follows the tensors' device: kDLCUDA runs the
// CUDA kernel on `stream`; kDLCPU runs the CPU kernel (compiled in process by Clang) synchronously, `stream` unused.
//   q, out       [batch, q_seqlen, num_q_heads, head_dim] (or [batch, num_q_heads, head_dim]: q_seqlen 1),
//                bf16 or fp16, any strides with a contiguous last dim
//   k/v_cache    NHD [num_pages, page_size, num_kv_heads, head_dim] or HND [num_pages, num_kv_heads, page_size, head_dim]
//   block_table  int32 [batch, max_pages_per_seq]; seq_lens int32 [batch], KV length including the new tokens
// Query s of sequence b sits at p = seq_lens[b] - q_seqlen + s. Throws swajit::Error naming any invalid argument.
void paged_decode(const DLTensor& q, const DLTensor& k_cache, const DLTensor& v_cache, const DLTensor& block_table,
                  const DLTensor& seq_lens, const DLTensor& out, CUstream stream, const DecodeOptions& options = {});

// Bytes of workspace paged_decode needs for these tensors and options (0 when no split is used).
size_t paged_decode_workspace_bytes(const DLTensor& q, const DLTensor& k_cache, const DLTensor& v_cache,
                                    const DLTensor& block_table, const DLTensor& seq_lens, const DLTensor& out,
                                    const DecodeOptions& options = {});

// Waits for `stream` and throws kDeviceArgument if any kernel launched on `stream` (device `device_ordinal`) since the
// last check of that stream found invalid seq_lens / block_table / cu_seqlens values; clears that stream's record.
void check_device_errors(int device_ordinal, CUstream stream);

struct PrefillOptions : AttentionOptions {
  bool causal = true;        // false: drop "j <= p" (the windows still apply)
  // The longest query run of the batch, when the caller knows it (sizes the grid). 0: read from cu_seqlens_q when it
  // is host-readable, else total_q (always safe; idle blocks exit at once).
  int max_q_len = 0;
  std::optional<PrefillConfig> config;    // force a tuning config (validated); default: see `tuning`
};

// Varlen sliding-window prefill (CUDA). Sequence b's queries are rows [cu_seqlens_q[b], cu_seqlens_q[b + 1]) of q
// and its query i sits at position p = kv_len_b - q_len_b + i, so a chunk after a cached prefix (q_len < kv_len)
// works; it sees j iff (j <= p or !causal) and (p - j < local_window or j < global_window).
//   q, out           [total_q, num_q_heads, head_dim], bf16 or fp16, any strides with a contiguous last dim
//   k, v             [total_kv, num_kv_heads, head_dim]; sequence b's keys are rows [cu_seqlens_k[b], cu_seqlens_k[b + 1]);
//                    q's dtype, or 8-bit with options.kv_quant
//   cu_seqlens_q/_k  int32 [batch + 1], non-decreasing from 0
void prefill(const DLTensor& q, const DLTensor& k, const DLTensor& v, const DLTensor& cu_seqlens_q,
             const DLTensor& cu_seqlens_k, const DLTensor& out, CUstream stream, const PrefillOptions& options = {});

// The same over a paged KV cache (layouts and block_table as in paged_decode); seq_lens[b] is the KV length of
// sequence b including its queries, which are already in the cache.
void paged_prefill(const DLTensor& q, const DLTensor& k_cache, const DLTensor& v_cache, const DLTensor& block_table,
                   const DLTensor& seq_lens, const DLTensor& cu_seqlens_q, const DLTensor& out, CUstream stream,
                   const PrefillOptions& options = {});

struct SparseDecodeOptions : AttentionOptions {
  // Optional float32 [batch, q_seqlen, topk], added to the scaled score of each selected slot (-inf: padding).
  const DLTensor* score_bias = nullptr;
  std::optional<SparseDecodeConfig> config;     // force a GPU tuning config (validated)
  std::optional<CpuDecodeConfig> cpu_config;    // force the CPU backend's (its block_n is the gather tile)
};

// Top-k sparse decode (DeepSeek-V3.2/V4-style indexed attention) over a paged cache, with an optional local window,
// per-slot score bias and learned sink logits. README: "Sparse top-k decode".
//   q            [batch, q_seqlen, num_q_heads, head_dim] (or 3-D with q_seqlen 1); GQA groups 1..128
//   k_cache      paged as in paged_decode (NHD/HND, any page size) ...
//   v_cache      ... and V of the same shape, or null: one shared cache whose rows are K and whose first
//                head_dim_v columns are V (MLA: head_dim 576, head_dim_v 512)
//   indices      int32 [batch, q_seqlen, topk], topk 1..2048: logical positions j of the sequence, -1 = unused slot.
//                j > p (the query's position, as in decode) is masked; a j inside the local window is skipped (the
//                window counts it once); j >= seq_lens[b] or < -1 is a device-side argument error: that query row
//                is zeros and the error is recorded per stream as for decode's block_table (CPU: thrown after the call).
//   out          [batch, q_seqlen, num_q_heads, head_dim_v]: head_dim_v = head_dim with a V cache
// options.local_window > 0: the query also sees the last local_window positions j <= p; global_window must be 0.
void sparse_decode(const DLTensor& q, const DLTensor& k_cache, const DLTensor* v_cache, const DLTensor& block_table,
                   const DLTensor& seq_lens, const DLTensor& indices, const DLTensor& out, CUstream stream,
                   const SparseDecodeOptions& options = {});

// The spec the runtime would specialize for these tensors (validated); used by tools and the tuner.
KernelSpec paged_decode_spec(const DLTensor& q, const DLTensor& k_cache, const DLTensor& v_cache,
                             const DLTensor& block_table, const DLTensor& seq_lens, const DLTensor& out,
                             const DecodeOptions& options = {});

}  // namespace swajit
