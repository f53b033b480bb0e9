// The config used when nothing tuned is known: chosen from the spec, the shape and the device's own limits.
#pragma once
#include <cstdint>

#include "paged_decode_problem.hpp"
#include "swajit/device.hpp"
#include "swajit/error.hpp"
#include "swajit/spec.hpp"

namespace swajit {

// Whether `spec` can run `config` (its validate() passes). The heuristics and the tuner's spaces skip configs a spec
// cannot run (warps that do not divide the tile, stages past the limit, TMA boxes that cannot fill pages of 7
// tokens, ...) instead of reporting them.
template <class Config>
bool runs_spec(const Config& config, const KernelSpec& spec) {
  try {
    config.validate(spec);
    return true;
  } catch (const Error&) {
    return false;
  }
}

// The default config for blocks that may use up to `max_shared_per_block` bytes of shared memory on
// multiprocessors with `max_shared_per_sm` (every warp loading; num_splits is kSplitsFromCapacity: the host sizes
// the work list from the kernel's occupancy, paged_decode.cpp). It is also the config of calls whose device or
// (sequence, kv head) pair count is not known, as for `swajit gen` and the tuner's space.
DecodeConfig heuristic_decode_config(const KernelSpec& spec, int max_shared_per_block, int max_shared_per_sm);
// The config for a call on `device` with `sequence_heads` (sequence, kv head) pairs (batch x kv heads; 0 when not
// known) of which none sees more than `visible_tokens` KV tokens (0: not known): the default, or a tile of half its
// tokens and warps (every warp loading, or the bulk-copy producer on sm_90+) where the device's read bandwidth, SM
// count, shared memory and registers predict it streams faster and the pairs fill its blocks, or where pairs too
// short for the work schedule (the direct grid) then run in fewer waves (heuristic.cpp).
// `tma_layout_ok` false (the call's caches do not suit the TMA engine: paged_decode.cpp) keeps the producer warp
// on bulk row copies, which read any layout.
DecodeConfig heuristic_decode_config(const KernelSpec& spec, const DeviceInfo& device, int64_t sequence_heads = 0,
                                     int64_t visible_tokens = 0, bool tma_layout_ok = true);
// The heuristic's TMA-page config (producer 4) for caches TMA cannot read: 16-bit caches take the bulk row copies
// (they read any layout), 8-bit ones every warp loading (row copies of 128 bytes are 10x slower).
DecodeConfig without_tma_pages(const KernelSpec& spec, DecodeConfig config);
// The most tiles of block_n tokens a pair seeing `visible_tokens` spans: a window that does not start on a tile
// boundary, or sinks beside it, spans one more than its length.
inline int max_visible_tiles(int64_t visible_tokens, int block_n) {
  return int((visible_tokens + block_n - 1) / block_n + 1);
}

// Dynamic shared memory the split-KV merge grid asks for and never touches, so that its blocks spread over the SMs.
// The merge grid is scheduled while the main grid's blocks still occupy the SMs (a programmatic dependent launch),
// and the block scheduler then packed 4-7 merge blocks onto the few SMs with room: on the H100 at batch 1,
// q_seqlen 4, those blocks took 2-3 us instead of 1 and set the end of the call. Asking for just over 1 / (k + 1)
// of an SM's shared memory lets at most k = ceil(merge_blocks / SMs) share one SM, the fewest that still run the
// grid in one wave. A grid of more than kMaxMergeBlocksPerSm blocks per SM fills every SM anyway and asks for none.
constexpr int64_t kMaxMergeBlocksPerSm = 8;
// Blocks of `config` an SM holds by its shared memory (with the driver's reserve per block) and threads, whatever
// the kernel's registers: a bound on its occupancy (0 when one block does not fit).
int decode_blocks_per_sm_bound(const KernelSpec& spec, const DecodeConfig& config, const DeviceInfo& device);

int merge_spreading_bytes(const DeviceInfo& device, int64_t merge_blocks);

}  // namespace swajit
