// swajit: generation of specialized kernel source from the templates embedded in the library.
#pragma once
#include <string>

#include "swajit/spec.hpp"

namespace swajit {

// Launch geometry of one paged-decode specialization: computed here, once, and written into the generated
// source as constants, so the kernel and the host launcher cannot disagree.
struct DecodeGeometry {
  int rows;             // q_seqlen * group query rows per kv head
  int warps_m;          // 16-row mma tiles
  int threads;          // threads per block of the main kernel
  int q_bytes;          // shared memory of the Q tile
  int tile_bytes;       // shared memory of one K (or V) pipeline stage, as stored (8-bit KV: half, widened in registers)
  int stored_row_bytes; // row stride of a stored K/V tile (a token's bytes; + 16 when bulk-copied rows are padded)
  int barrier_offset;   // where a producer's mbarriers start in shared memory (DecodeConfig::producer > 0)
  int epilogue_stride;  // fp32 row stride (floats) of the epilogue buffer
  int epilogue_bytes;   // shared memory the epilogue reuses after the main loop
  int shared_bytes;     // total dynamic shared memory of the main kernel
  int merge_threads;    // threads per block of the split-KV merge kernel (a block merges one row)
};
DecodeGeometry decode_geometry(const KernelSpec& spec, const DecodeConfig& config);
// SWAJIT_DECODE_TIMELINE=1 (a device-run experiment, off otherwise and compiled out): every paged-decode block stamps
// %globaltimer at fixed points into PagedDecodeParams::timeline (runtime/src/api/decode_timeline.hpp prints them).
bool decode_timeline_requested();

struct GeneratedKernel {
  std::string source;         // complete, self-contained CUDA C++ (no #include)
  std::string kernel_symbol;  // extern "C" name of the main kernel
  std::string merge_symbol;   // extern "C" name of the split-KV merge kernel
  std::string cache_key;      // spec key + "__" + config compile key
};
GeneratedKernel generate_paged_decode_cuda(const KernelSpec& spec, const DecodeConfig& config);

// Launch geometry of one prefill specialization, written into the source as constants like DecodeGeometry.
struct PrefillGeometry {
  int threads;             // one warp per m_tiles x 16 query rows, plus the producer warpgroup when warp specialized
  int q_bytes;             // shared memory of one Q tile (a persistent config holds two)
  int tile_bytes;          // shared memory of one V (and K) pipeline stage (warp-specialized 8-bit K/V: widened)
  int k_tile_bytes;        // of one K stage: tile_bytes, or stored_k_scores the stored 8-bit tile
  int v_stages;            // V's stages: config.stages, or stored_k_scores one more (in the room K's stages leave)
  int dequant_bytes;       // 8-bit KV only: the widened 16-bit K and V tiles the MMAs read
  int barrier_bytes;       // warp specialized: mbarriers full and empty of K and V per stage, q_full and q_empty per Q tile (8 bytes each); else 0
  int shared_bytes;        // total dynamic shared memory
  int producer_registers;  // warp specialized: setmaxnreg targets of the producer and the consumer warpgroups
  int consumer_registers;  // (0 when not warp specialized)
};
PrefillGeometry prefill_geometry(const KernelSpec& spec, const PrefillConfig& config);
GeneratedKernel generate_prefill_cuda(const KernelSpec& spec, const PrefillConfig& config);  // merge_symbol empty

// Launch geometry of one sparse_decode specialization, written into the source as constants.
struct SparseDecodeGeometry {
  int threads;          // threads per block of the main kernel
  int rows_per_block;   // q heads of one kv head a block computes (min(group, 16); mma: min(group, 64))
  int q_rows;           // rows_per_block padded to whole rows per warp
  int row_blocks;       // blocks per (kv head, query token, split): ceil(group / rows_per_block)
  int rows;             // q_seqlen * group: split slots per (sequence, kv head)
  int q_bytes;          // shared memory of the Q rows (fp32; mma: 16-bit rows padded as the K rows; token_split: 0)
  int k_row_bytes;      // one gathered K row in shared memory, padded by 16 bytes (conflict-free row per lane)
  int v_row_bytes;      // the same for V (0 with a shared K/V cache: V is read from the K rows)
  int stage_bytes;      // one pipeline stage: block_n K rows and V rows
  int shared_bytes;     // total dynamic shared memory of the main kernel
  int merge_threads;    // threads per block of the split merge
  int col_slices;       // mma: warps sharing a 16-row tile, each accumulating its slice of the V columns (else 1)
  int meta_bytes;       // the gather's lookup ring: stages + 1 tiles of (page, slot, bias) per candidate
  int softmax_bytes;    // mma: shared memory of the tile's fp32 scores, 16-bit probabilities, row statistics
  int prob_buffers;     // mla with warp_specialize: the scorer's P exchange buffers (else 0)
};
SparseDecodeGeometry sparse_decode_geometry(const KernelSpec& spec, const SparseDecodeConfig& config);
GeneratedKernel generate_sparse_decode_cuda(const KernelSpec& spec, const SparseDecodeConfig& config);

// The generator and the geometry of a CUDA family, chosen by its config type (for family-generic code such as the
// kernel cache).
inline GeneratedKernel generate_kernel(const KernelSpec& spec, const DecodeConfig& config) {
  return generate_paged_decode_cuda(spec, config);
}
inline GeneratedKernel generate_kernel(const KernelSpec& spec, const PrefillConfig& config) {
  return generate_prefill_cuda(spec, config);
}
inline GeneratedKernel generate_kernel(const KernelSpec& spec, const SparseDecodeConfig& config) {
  return generate_sparse_decode_cuda(spec, config);
}
inline DecodeGeometry kernel_geometry(const KernelSpec& spec, const DecodeConfig& config) { return decode_geometry(spec, config); }
inline SparseDecodeGeometry kernel_geometry(const KernelSpec& spec, const SparseDecodeConfig& config) {
  return sparse_decode_geometry(spec, config);
}
inline PrefillGeometry kernel_geometry(const KernelSpec& spec, const PrefillConfig& config) { return prefill_geometry(spec, config); }

// Scratch each CPU worker thread needs for one work item of (spec, config), in floats.
int cpu_scratch_floats(const KernelSpec& spec, const CpuDecodeConfig& config);
// The CPU kernel's C++ source (compiled in process by Clang); symbols as for CUDA, with a "swajit_cpu_" prefix.
GeneratedKernel generate_paged_decode_cpu(const KernelSpec& spec, const CpuDecodeConfig& config);
// The sparse_decode family's CPU kernel (the CPU config's block_n is its gather tile).
GeneratedKernel generate_sparse_decode_cpu(const KernelSpec& spec, const CpuDecodeConfig& config);
// The CPU source of whichever family `spec` is.
inline GeneratedKernel generate_cpu_kernel(const KernelSpec& spec, const CpuDecodeConfig& config) {
  return spec.family == KernelFamily::kSparseDecode ? generate_sparse_decode_cpu(spec, config)
                                                    : generate_paged_decode_cpu(spec, config);
}

// Embedded template text by file name (e.g. "paged_decode.cuh"); throws kInvalidArgument for an unknown name.
std::string_view template_text(std::string_view name);

}  // namespace swajit
